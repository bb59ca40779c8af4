"""Classes nobody has labelled yet: they are not negatives, and the zero-shot teacher speaks for them.

A project class with no confirmed box anywhere in the training set is unknown, not absent: treating it as a
negative in every image teaches the prompt to suppress it, and the classes the frozen detector already found best
lose most. Here the training loop learns which classes those are, which of each batch's tokens must stay silent in
the focal loss, and what the frozen detector says on each batch (computed once, before the first step).
"""
from __future__ import annotations

import contextlib
import logging

import torch

from sdpt.data import FewShotSet

logger = logging.getLogger(__name__)


def box_counts(dataset: FewShotSet) -> list[int]:
    counts = [0] * len(dataset.class_names)
    for sample in dataset.samples:
        for cls in sample.classes.tolist():
            counts[cls] += 1
    return counts


def unlabelled_classes(dataset: FewShotSet) -> set[int]:
    """Indices of the classes with no box in the whole training set."""
    return {k for k, count in enumerate(box_counts(dataset)) if count == 0}


def silent_phrases(batch, chunks: list[list[int]], unlabelled: set[int]) -> list[list[int]]:
    """For each image of an encoded batch (class chunk `chunks[i]`), the phrase indices of its unlabelled classes."""
    return [[position for position, cls in enumerate(chunk) if cls in unlabelled] for chunk in chunks]


def held_tokens(batch, ignored: list[list[int]]) -> torch.Tensor:
    """(B, T) True at the tokens of the phrases listed in `ignored[i]` for image i of an encoded `batch`."""
    length = batch.inputs["input_ids"].shape[1]
    mask = torch.zeros(len(ignored), length, dtype=torch.bool, device=batch.inputs["input_ids"].device)
    for image, phrases in enumerate(ignored):
        for phrase in phrases:
            mask[image] |= batch.phrase_maps[image][phrase, :length].bool()
    return mask


class BatchTargets:
    """Per batch: the tokens with no negative signal, and the cached zero-shot teacher for them."""

    def __init__(self, silent: torch.Tensor | None, teacher):
        self.silent, self.teacher = silent, teacher


@torch.no_grad()
def prepare_targets(detector, batches, chunks_per_batch, unlabelled: set[int], with_teacher: bool,
                    cache=None) -> list[BatchTargets]:
    """Silent-token masks (and teacher outputs, when asked) for every batch; one frozen forward per batch, here."""
    targets = []
    for batch, chunks in zip(batches, chunks_per_batch):
        phrases = silent_phrases(batch, chunks, unlabelled)
        if not any(phrases):
            targets.append(BatchTargets(None, None))
            continue
        silent = held_tokens(batch, phrases)
        teacher = None
        if with_teacher:
            replay = cache.replay(batch.inputs) if cache is not None else contextlib.nullcontext()
            with replay:
                outputs = detector.forward(batch)
            teacher = detector.teacher_targets(outputs, silent)
        targets.append(BatchTargets(silent, teacher))
    if unlabelled:
        logger.info("%d class(es) without a training box: no negative signal for them%s", len(unlabelled),
                    "; held to the zero-shot teacher" if with_teacher else "")
    return targets
