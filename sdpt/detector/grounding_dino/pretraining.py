"""Pre-training the small Grounding DINO (`small_model`) on the synthetic grounding stream: its training loop and
the command-line options only it understands (`python -m sdpt.pretrain --host grounding_dino`, the default).

Every image gets its own prompt: the classes it shows plus random absent ones, shuffled, so the model learns to
ground phrases rather than memorise a class order. Scenes are generated on the fly from a seed, so the run is
reproducible from this module alone. The best checkpoint by held-out mAP@0.5 is kept. What every host's
pre-training shares (prompts, optimizer, held-out set) is in `sdpt.pretraining`.
"""
from __future__ import annotations

import json
import logging
import random
import time
from pathlib import Path

import torch

from sdpt.detector.grounding_dino.inputs import encode_batch
from sdpt.detector.grounding_dino.detector import set_fusion_scale
from sdpt.detector.grounding_dino.loss import detection_loss
from sdpt.detector.grounding_dino.small_model import (PHRASE_POSITIONS, build_small_untrained, save_small,
                                                      set_phrase_positions)
from sdpt.detector.loading import load_detector
from sdpt.evaluate import evaluate
from sdpt.pretraining import held_out_set, optimizer_and_schedule, prompt_for
from sdpt.synthetic.grounding import PRETRAIN, scene_stream

logger = logging.getLogger(__name__)

DEFAULT_OUT = Path("assets/sdpt-small")
# Options of `python -m sdpt.pretrain` that only this host understands: flag -> argparse keywords, whose `dest`
# is the keyword of `pretrain` below (a flag left out keeps that keyword's default).
OPTIONS = {
    "--phrase-positions": {"dest": "positions", "choices": PHRASE_POSITIONS,
                           "help": "how phrase words are numbered for MiniLM (default from_one); 'restart' is "
                                   "transformers' numbering, which hides the first word of each phrase from the "
                                   "frozen MiniLM (kept to reproduce old runs)"},
    "--fusion-scale": {"type": float,
                       "help": "set the fusion layers' layer-scales to this before training (transformers starts "
                               "them at 1e-4; see loading.set_fusion_scale)"},
}


def pretrain(out: Path, steps: int, batch_size: int = 8, lr: float = 1e-4, seed: int = 0,
             eval_every: int = 500, eval_images: int = 100, max_classes: int = 24, resume: Path | None = None,
             positions: str = "from_one", stop_at: int | None = None, fusion_scale: float | None = None) -> dict:
    """Train for `steps` steps (from scratch, or on from the checkpoint in `resume`); keep the best in `out`.

    `positions` is how phrase words are numbered for the text backbone (see `small_model`); resuming a checkpoint
    with another scheme than it was trained with switches it over. `stop_at` ends the run early at that step, on
    the schedule of `steps` (how the first stage of the shipped model was made). `fusion_scale` sets the fusion
    layers' layer-scales before training (see `set_fusion_scale`).
    """
    torch.manual_seed(seed)
    detector = load_detector(str(resume), device=None) if resume else build_small_untrained(seed)
    model = detector.model
    set_phrase_positions(model, positions)  # a resumed checkpoint may have been trained with the other numbering
    if fusion_scale is not None:
        set_fusion_scale(model, fusion_scale)
    for name, param in model.named_parameters():
        param.requires_grad_(not name.startswith("model.text_backbone."))  # MiniLM stays as it was trained
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer, schedule = optimizer_and_schedule(trainable, lr, steps)
    rng = random.Random(seed)
    stream = scene_stream(PRETRAIN, seed)
    held_out = held_out_set(eval_images, prefix="sdpt-heldout-")
    best = {"map50": -1.0}
    start = time.perf_counter()
    for step in range(1, min(steps, stop_at or steps) + 1):
        model.train()
        model.model.text_backbone.eval()
        scenes = [next(stream) for _ in range(batch_size)]
        prompts = [prompt_for(objects, PRETRAIN.class_names, rng, max_classes) for _, objects in scenes]
        batch = encode_batch(detector, [image for image, _ in scenes], [p[0] for p in prompts],
                             [p[1] for p in prompts])
        outputs = model(**batch.inputs)
        loss, parts = detection_loss(detector, outputs, batch, aux_loss=True, encoder_loss=True)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 0.1)
        optimizer.step()
        schedule.step()
        if step % 50 == 0:
            elapsed = time.perf_counter() - start
            logger.info("step %d/%d loss %.3f (ce %.3f bbox %.3f giou %.3f) %.2f steps/s", step, steps, loss.item(),
                        parts["loss_ce"], parts["loss_bbox"], parts["loss_giou"], step / elapsed)
        if step % eval_every == 0 or step == steps or step == stop_at:
            model.eval()
            metrics = evaluate(detector, held_out, batch_size=8)
            logger.info("step %d held-out mAP %.4f mAP50 %.4f (%.1f min)", step, metrics["map"], metrics["map50"],
                        (time.perf_counter() - start) / 60)
            if metrics["map50"] > best["map50"]:
                best = {"step": step, "map": metrics["map"], "map50": metrics["map50"],
                        "minutes": round((time.perf_counter() - start) / 60, 1)}
                save_small(detector, out)
                (out / "pretrain_result.json").write_text(json.dumps(best, indent=2))
    return best
