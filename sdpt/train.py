"""The tuning loop: a frozen detector, a prompt method's parameters, AdamW, callbacks for progress and cancel."""
from __future__ import annotations

import contextlib
import logging
import math
import random
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from sdpt.augment import with_views
from sdpt.config import TrainConfig
from sdpt.data import DataError, FewShotSet
from sdpt.early_stopping import EarlyStopping
from sdpt.methods import PromptMethod
from sdpt.routing import by_box_count
from sdpt.unlabelled import box_counts, prepare_targets, unlabelled_classes

logger = logging.getLogger(__name__)


@dataclass
class StepInfo:
    step: int
    total_steps: int
    loss: float
    lr: float
    elapsed_s: float
    eta_s: float
    parts: dict[str, float] = field(default_factory=dict)


@dataclass
class TuneState:
    """Where a tuning run stands between chunks: steps done and the optimizer's state (the prompt holds the rest)."""

    step: int
    optimizer: dict


@dataclass
class TuneResult:
    prompt: PromptMethod
    history: list[StepInfo]
    cancelled: bool
    seconds: float
    state: TuneState | None = None  # set when the run paused before its last step (resume with `resume=`)
    validation: list[tuple[int, float]] = field(default_factory=list)  # (step, validation mAP) with early stopping
    best_step: int | None = None  # the step whose prompt was kept (early stopping), else None

    @property
    def finished(self) -> bool:
        return not self.cancelled and self.state is None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def training_items(detector, dataset: FewShotSet, context_tokens: int = 0) -> list[tuple[int, list[int]]]:
    """(sample index, class indices of its prompt) pairs; class lists too long for one prompt are split, and an
    image is seen once per chunk that holds one of its classes (or once, with the first chunk, if it has none)."""
    chunks = detector.class_chunks(dataset.class_names, context_tokens)
    items = []
    for index, sample in enumerate(dataset.samples):
        present = set(sample.classes.tolist())
        chosen = [chunk for chunk in chunks if present & set(chunk)] or [chunks[0]]
        items += [(index, chunk) for chunk in chosen]
    return items


def _encode_items(detector, dataset: FewShotSet, items, images, context_tokens: int):
    names, targets, pictures = [], [], []
    for sample_index, chunk in items:
        sample = dataset.samples[sample_index]
        position = {cls: k for k, cls in enumerate(chunk)}
        keep = [i for i, cls in enumerate(sample.classes.tolist()) if cls in position]
        names.append([dataset.class_names[c] for c in chunk])
        targets.append({"boxes": sample.boxes[keep], "classes": [position[sample.classes[i].item()] for i in keep]})
        pictures.append(images[sample_index])
    return detector.encode(pictures, names, targets, context_tokens=context_tokens)


def _schedule(config: TrainConfig):
    def factor(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return factor


def tune(detector, dataset: FewShotSet, prompt: PromptMethod, config: TrainConfig | None = None,
         on_step: Callable[[StepInfo], None] | None = None,
         should_stop: Callable[[], bool] | None = None, resume: TuneState | None = None,
         max_seconds: float | None = None, validation: FewShotSet | None = None) -> TuneResult:
    """Train `prompt`'s parameters on `dataset` with the detector frozen; return the prompt and the loss history.

    Batches are drawn once (seeded) and kept for the whole run, their order shuffled each epoch, so the
    prompt-independent prefix of every batch is computed once and replayed after that.

    Chunked runs (for time-limited GPU calls): `max_seconds` pauses after the step that crosses it and returns a
    `state`; `tune(..., resume=state)` on the same prompt goes on exactly where it stopped (same batches, order,
    schedule and optimizer moments), so chunks give the same prompt as one run.

    Classes with no box in `dataset` give no negative signal (unless `config.unlabelled_negatives`) and are held
    to the cached zero-shot teacher (`config.distill_weight`). With a `validation` set the prompt is scored every
    `config.validate_every` steps and before the first, and the best one is kept (not with chunked runs). The
    prompt comes back with a routing by training boxes (`config.route_min_boxes`, sdpt/routing.py).
    """
    config = config or TrainConfig()
    config.validate()
    if dataset.num_boxes() == 0:
        raise DataError("the training set has no boxes; label at least one object before tuning")
    if validation is not None and (resume is not None or max_seconds is not None):
        raise DataError("early stopping (a validation set) works on whole runs only, not chunked ones")
    if validation is not None and validation.num_boxes() == 0:
        validation = None  # nothing to score on: train the full schedule
    counts = box_counts(dataset)
    seed_everything(config.seed)
    detector.freeze()
    images = [sample.load() for sample in dataset.samples]
    if resume is None:
        prompt.prepare(dataset, images)
    if config.augment:
        dataset, images = with_views(dataset, images)
    items = training_items(detector, dataset, prompt.context_tokens)
    order = torch.randperm(len(items)).tolist()
    groups_of_items = [[items[i] for i in order[s:s + config.batch_size]] for s in range(0, len(order), config.batch_size)]
    batches = [_encode_items(detector, dataset, group, images, prompt.context_tokens) for group in groups_of_items]
    cache = None
    if config.cache and prompt.cacheable:
        cache = detector.prefix_cache(prompt.first_prompted_layer, cache_text=not prompt.prompts_text_backbone,
                                      max_entries=len(batches))  # None where the host has no cache
    unlabelled = set() if config.unlabelled_negatives else unlabelled_classes(dataset)
    targets = prepare_targets(detector, batches, [[chunk for _, chunk in group] for group in groups_of_items],
                              unlabelled, with_teacher=config.distill_weight > 0, cache=cache)
    lr = config.lr if config.lr is not None else prompt.default_lr
    groups = prompt.param_groups(lr)
    parameters = [p for group in groups for p in group["params"]]
    optimizer = torch.optim.AdamW(groups, lr=lr, weight_decay=config.weight_decay,
                                  betas=(0.9, config.adam_beta2))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(config))
    use_amp = config.amp and detector.device.type == "cuda"
    history: list[StepInfo] = []
    start = time.perf_counter()
    cancelled = False
    epoch_order: list[int] = []
    first_step = 0
    if resume is not None:
        optimizer.load_state_dict(resume.optimizer)
        for _ in range(resume.step):  # replay the scheduler and the epoch shuffles the earlier chunks drew
            with warnings.catch_warnings():  # "scheduler.step() before optimizer.step()": intended here
                warnings.simplefilter("ignore", UserWarning)
                scheduler.step()
            if not epoch_order:
                epoch_order = torch.randperm(len(batches)).tolist()
            epoch_order.pop()
        first_step = resume.step
    paused = None
    # routed as it will be used, so that early stopping scores what the user gets
    prompt.routing = by_box_count(dataset.class_names, counts, config.route_min_boxes)
    stopping = (EarlyStopping(validation, config.validate_every, config.stop_margin) if validation is not None
                else None)
    if stopping is not None:
        stopping.score(detector, prompt, first_step)
    prompt.train()
    checkpointing = (detector.activation_checkpointing(prompt.first_prompted_layer) if config.checkpointing
                     else contextlib.nullcontext())
    with prompt, checkpointing:
        for step in range(first_step, config.steps):
            if max_seconds is not None and step > first_step and time.perf_counter() - start >= max_seconds:
                paused = TuneState(step, optimizer.state_dict())
                logger.info("tuning paused at step %d (chunk time limit)", step)
                break
            if should_stop is not None and should_stop():
                cancelled = True
                logger.info("tuning cancelled at step %d", step)
                break
            if not epoch_order:
                epoch_order = torch.randperm(len(batches)).tolist()
            index = epoch_order.pop()
            batch = batches[index]
            replay = cache.replay(batch.inputs) if cache is not None else contextlib.nullcontext()
            autocast = torch.autocast("cuda", dtype=torch.bfloat16) if use_amp else contextlib.nullcontext()
            with replay, autocast:
                outputs = detector.forward(batch)
                loss, parts = detector.loss(outputs, batch, aux_loss=config.aux_loss,
                                            encoder_loss=config.encoder_loss, silent_tokens=targets[index].silent,
                                            teacher=targets[index].teacher, distill_weight=config.distill_weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(parameters, config.grad_clip)
            optimizer.step()
            scheduler.step()
            elapsed = time.perf_counter() - start
            done = step + 1 - first_step
            info = StepInfo(step + 1, config.steps, float(loss.detach()), optimizer.param_groups[0]["lr"], elapsed,
                            elapsed / done * (config.steps - step - 1), parts)
            history.append(info)
            if on_step is not None:
                on_step(info)
            if stopping is not None and stopping.due(step + 1, config.steps):
                prompt.detach()  # scoring attaches the prompt itself
                try:
                    stopping.score(detector, prompt, step + 1)
                finally:
                    prompt.attach()
    prompt.eval()
    best = None
    if stopping is not None and not cancelled:
        stopping.restore_best(prompt)
        best = stopping.best_step
        logger.info("kept the prompt of step %d (validation mAP %.4f; best %.4f, margin %.2f)", best,
                    stopping.kept_score, stopping.best_score, stopping.margin)
    return TuneResult(prompt, history, cancelled, time.perf_counter() - start, paused,
                      stopping.scores if stopping is not None else [], best)
