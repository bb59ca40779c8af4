"""Dataclass configs for prompt methods and tuning, with JSON round-trip."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


class ConfigError(ValueError):
    """A config value that cannot work; the message names the field and what is allowed."""


INJECTIONS = ("branch", "shared_gate", "paper")  # implemented in sdpt/detector/fusion.py


@dataclass
class FusionPromptConfig:
    """Options shared by methods that put tokens into the fusion layers' attention."""

    num_tokens: int = field(default=10, metadata={"help": "prompt tokens per set"})
    injection: str = field(default="branch", metadata={
        "help": "how the tokens act (sdpt/detector/fusion.py): 'branch' = own softmax per stream, added after the "
                "fusion layer-scale behind tanh(scale) that starts at 0 (ours; the default); 'shared_gate' = appended "
                "to the attention behind a learned logit gate (prompt files before format 2); 'paper' = appended, "
                "ungated, as published"})
    per_head_scales: bool = field(default=False, metadata={
        "help": "'branch' only: one learned scale per attention head instead of one per layer and stream"})
    layers: list[int] | None = field(default=None, metadata={"help": "fusion layers to prompt (None = all)"})
    init: str = field(default="uniform", metadata={
        "help": "'uniform' (U(-s, s), as released), 'normal' (N(0, s)) or, for sdpt, 'boxes': tokens start as the "
                "mean image token inside training boxes at their layer, mapped by its vision_proj (the rest U(-s, s))"})
    init_scale: float = field(default=1.0, metadata={"help": "s in the init above"})
    gate_init: float = field(default=-10.0, metadata={
        "help": "'shared_gate' only: initial logit offset on every prompt attention score, per layer (learned as the mass exp(offset)); "
                "very negative = the prompted model starts as the zero-shot model (-6 was measured to still flip "
                "the encoder's top-k choice)"})
    gate_lr_scale: float = field(default=1.0, metadata={
        "help": "learning rate of the gates ('shared_gate') or branch scales ('branch') relative to the prompts'"})
    image_sees_text_prompts: bool = field(default=True, metadata={
        "help": "False masks the text-side prompts for image queries, as the released SDPT (GLIP) code does"})
    text_sees_image_prompts: bool = field(default=True, metadata={
        "help": "'branch' only: False keeps text queries away from the image-side prompts (image stream only)"})

    def validate(self, num_fusion_layers: int) -> None:
        if self.num_tokens < 1:
            raise ConfigError(f"num_tokens must be at least 1, got {self.num_tokens}")
        if self.injection not in INJECTIONS:
            raise ConfigError(f"injection must be one of {list(INJECTIONS)}, got {self.injection!r}")
        if self.init not in ("uniform", "normal", "boxes"):
            raise ConfigError(f"init must be 'uniform', 'normal' or 'boxes', got {self.init!r}")
        for layer in self.layers or []:
            if not -num_fusion_layers <= layer < num_fusion_layers:
                raise ConfigError(f"layer {layer} does not exist; the model has fusion layers 0..{num_fusion_layers - 1}")
        if self.layers is not None and not self.layers:
            raise ConfigError("layers is empty; give at least one fusion layer or None for all")


@dataclass
class SDPTConfig(FusionPromptConfig):
    """SDPT (Zhou, Wu et al., ECCV 2024): unified prototype tokens in the fusion attention space."""

    shared: bool = field(default=False, metadata={"help": "one prototype set for all prompted layers"})
    # SDPT's defaults differ from the other fusion methods': benchmarks/default_choice.py picked 20 prototypes with
    # per-head scales on validation draws at 5 and 10 shots (mean 0.257, against 0.247 with 10 prototypes and 0.245
    # for dual prompts). Prompt files record every option, so files saved with other defaults load as they were.
    num_tokens: int = field(default=20, metadata={"help": "prototype tokens per set"})
    per_head_scales: bool = field(default=True, metadata={
        "help": "'branch' only: one learned scale per attention head instead of one per layer and stream"})


@dataclass
class TrainConfig:
    """How a prompt is tuned."""

    steps: int = field(default=200, metadata={"help": "optimizer steps"})
    batch_size: int = field(default=2, metadata={"help": "images per step"})
    lr: float | None = field(default=None, metadata={
        "help": "peak AdamW learning rate; None = the method's own default (`default_lr` of its class, chosen on a "
                "validation split by benchmarks/lr_search.py)"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    adam_beta2: float = field(default=0.99, metadata={
        "help": "AdamW's second-moment decay; shorter memory than the usual 0.999 because prompt gradients grow by "
                "orders of magnitude as the gates open, and a stale second moment then turns into oversized steps"})
    warmup_steps: int = field(default=10, metadata={"help": "linear warm-up steps, then cosine decay to 0"})
    grad_clip: float = field(default=1.0, metadata={"help": "max gradient norm (0 = off)"})
    seed: int = field(default=0, metadata={"help": "seed for init, batching and order"})
    amp: bool = field(default=True, metadata={"help": "bfloat16 autocast on CUDA (ignored on CPU)"})
    aux_loss: bool = field(default=True, metadata={"help": "also supervise every decoder layer"})
    encoder_loss: bool = field(default=True, metadata={
        "help": "also supervise the encoder's top-k proposals (undetached, as the original Grounding DINO does); "
                "must match how the base was trained: on for the released checkpoints (benchmarks/encoder_loss.py "
                "measured a mismatch either way to wreck the detector)"})
    augment: bool = field(default=False, metadata={
        "help": "also train on each image mirrored and zoomed out to 3/4 (sdpt/augment.py); off by default: the "
                "SDPT ablation in BENCHMARKS.md measured it"})
    cache: bool = field(default=True, metadata={"help": "cache the prompt-independent prefix per batch"})
    unlabelled_negatives: bool = field(default=False, metadata={
        "help": "True: a class with no box anywhere in the training set is a negative in every image (as before "
                "2026-12-02); False: nobody labelled it yet, so it gives no negative signal and is held to the "
                "zero-shot teacher instead"})
    distill_weight: float = field(default=0.0, metadata={
        "help": "weight of the cached zero-shot teacher's term for classes without boxes (0 = off, the default: "
                "benchmarks/teacher_weight_search.py chose it on validation draws, since with routes those classes "
                "are answered zero-shot anyway). Use 10 when every class stays prompted (routing off): the term is a "
                "mean over every held (position, token) pair, most of them near 0, so it needs a large weight; on the "
                "shipped model, 30 steps moved an unlabelled class's top scores by 0.17 with weight 0, 0.15 with 1, "
                "0.022 with 10 and 0.020 with 100 (the old loss: 0.25; tests/sdpt/test_unlabelled.py's setting)"})
    route_min_boxes: int = field(default=1, metadata={
        "help": "classes with fewer confirmed training boxes are detected zero-shot (sdpt/routing.py); 0 = every "
                "class prompted"})
    validate_every: int = field(default=20, metadata={
        "help": "with a validation set passed to tune(): score the prompt every this many steps (and before the "
                "first) and keep the best one (early stopping)"})
    stop_margin: float = field(default=0.0, metadata={
        "help": "early stopping keeps the latest scored step within this much validation mAP of the best; 0 (the "
                "default) = the best step. Chosen on validation draws by benchmarks/stop_rule_search.py: the best "
                "step scored 0.158 mean mAP on selection images, a 0.02 margin 0.155, no early stopping 0.154"})
    checkpointing: bool = field(default=False, metadata={
        "help": "recompute encoder/decoder activations during backward instead of keeping them: less peak memory, "
                "slower steps (figures in BENCHMARKS.md)"})

    def validate(self) -> None:
        for name in ("steps", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.lr is not None and self.lr <= 0:
            raise ConfigError(f"lr must be positive, got {self.lr}")
        if self.distill_weight < 0 or self.route_min_boxes < 0 or self.validate_every < 1 or not \
                0 <= self.stop_margin < 1:
            raise ConfigError("distill_weight and route_min_boxes must be 0 or more, validate_every at least 1, "
                              "stop_margin in [0, 1)")
        if not 0 <= self.weight_decay < 10:
            raise ConfigError(f"weight decay must be in [0, 10), got {self.weight_decay} (0.25 is GLIP's)")


def to_dict(config) -> dict:
    return dataclasses.asdict(config)


def from_dict(cls, values: dict):
    """Build `cls` from a dict, refusing unknown keys with a message that lists the known ones."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - known
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} fields {sorted(unknown)}; known fields: {sorted(known)}")
    return cls(**values)
