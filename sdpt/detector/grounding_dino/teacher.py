"""The cached zero-shot teacher: what the frozen detector says on each training batch, kept for the whole run.

Where the labels say nothing about a class (no confirmed box anywhere in the training set: not labelled yet, not
known to be absent), the prompted model is held to the frozen model's scores for that class's tokens instead of
being pushed towards 0 (learning without forgetting; KgCoOp does the same for prompts). The frozen model's outputs
on a fixed batch never change during tuning, so they are computed once, before the first step, and each step adds no
forward pass.

Two places are held, both with an exact correspondence between teacher and student (no box matching):
- the encoder's per-position token logits, which choose the decoder's proposals (same image position);
- the decoder's final token logits, for each query whose proposal came from the same encoder position in both
  models (the decoder's queries are the encoder's top-k positions, in order).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class TeacherTargets:
    """Frozen-model probabilities on one batch; `tokens` (B, T) marks the tokens that are held (True)."""

    tokens: torch.Tensor  # (B, T) bool
    encoder_probs: torch.Tensor | None  # (B, positions, T_held) probabilities at the held tokens, or None
    proposals: torch.Tensor | None  # (B, queries) encoder positions of the decoder queries
    decoder_probs: torch.Tensor  # (B, queries, T) final-layer probabilities (zeros off the held tokens)


def proposal_positions(detector, outputs) -> torch.Tensor | None:
    """The encoder positions the decoder's queries came from (as the model picks them), or None without two stages."""
    if outputs.enc_outputs_class is None:
        return None
    return torch.topk(outputs.enc_outputs_class.max(-1)[0], detector.config.num_queries, dim=1)[1]


@torch.no_grad()
def teacher_targets(detector, outputs, tokens: torch.Tensor) -> TeacherTargets:
    """Cache the frozen model's `outputs` (a forward without any prompt) at the held `tokens`."""
    length = tokens.shape[1]
    decoder = outputs.logits[..., :length].float().sigmoid() * tokens[:, None, :]
    encoder = None
    if outputs.enc_outputs_class is not None:
        encoder = outputs.enc_outputs_class[..., :length].float().sigmoid() * tokens[:, None, :]
    return TeacherTargets(tokens, encoder, proposal_positions(detector, outputs), decoder)


def distillation_loss(detector, outputs, teacher: TeacherTargets) -> torch.Tensor:
    """Binary cross-entropy of the prompted model's held-token logits against the teacher's probabilities, averaged
    over the held (position or query, token) pairs of the encoder and the decoder; 0 when nothing is held."""
    tokens = teacher.tokens
    if not bool(tokens.any()):
        return outputs.logits.sum() * 0.0
    length = tokens.shape[1]
    total = outputs.logits.new_zeros(())
    if teacher.encoder_probs is not None and outputs.enc_outputs_class is not None:
        logits = outputs.enc_outputs_class[..., :length].float()
        pairs = tokens[:, None, :].expand_as(logits)
        total = total + F.binary_cross_entropy_with_logits(logits[pairs], teacher.encoder_probs[pairs])
    student = proposal_positions(detector, outputs)
    logits = outputs.logits[..., :length].float()
    if student is None or teacher.proposals is None:
        same = torch.ones(logits.shape[:2], dtype=torch.bool, device=logits.device)
        order = torch.arange(logits.shape[1], device=logits.device).expand(logits.shape[0], -1)
    else:
        # query j of the student and query k of the teacher started from the same encoder position
        match = student[:, :, None] == teacher.proposals[:, None, :]  # (B, Q, Q)
        same, order = match.any(-1), match.float().argmax(-1)
    if bool(same.any()):
        targets = torch.gather(teacher.decoder_probs, 1, order[..., None].expand(-1, -1, length))
        pairs = same[..., None] & tokens[:, None, :]
        total = total + F.binary_cross_entropy_with_logits(logits[pairs], targets[pairs])
    return total
