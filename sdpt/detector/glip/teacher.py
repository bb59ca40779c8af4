"""The cached zero-shot teacher on GLIP: the frozen model's token probabilities at every anchor, kept for the run.

GLIP's anchors are fixed positions of the image (no query selection as in Grounding DINO's two-stage decoder), so
anchor a of the prompted model and anchor a of the frozen one always look at the same place: the correspondence is
exact, and every anchor is held at the tokens of the classes the labels say nothing about.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class GlipTeacherTargets:
    tokens: torch.Tensor  # (B, T) bool: the held tokens
    probs: torch.Tensor  # (B, A, T) frozen-model probabilities (zeros off the held tokens)


@torch.no_grad()
def teacher_targets(outputs, tokens: torch.Tensor) -> GlipTeacherTargets:
    logits = outputs.predictions.dot_product_logits
    length = tokens.shape[1]
    return GlipTeacherTargets(tokens, logits[..., :length].float().sigmoid() * tokens[:, None, :])


def distillation_loss(outputs, teacher: GlipTeacherTargets) -> torch.Tensor:
    """Binary cross-entropy of the prompted model's logits at the held (anchor, token) pairs against the teacher's
    probabilities, averaged over those pairs; 0 (with a graph) when nothing is held."""
    logits = outputs.predictions.dot_product_logits
    tokens = teacher.tokens
    if not bool(tokens.any()):
        return logits.sum() * 0.0
    length = tokens.shape[1]
    student = logits[..., :length].float()
    pairs = tokens[:, None, :].expand_as(student)
    return F.binary_cross_entropy_with_logits(student[pairs], teacher.probs[pairs])
