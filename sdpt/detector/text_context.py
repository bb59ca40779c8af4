"""Learned context vectors in the text backbone's input: `[MASK]` placeholders in the prompt become learned vectors.

A forward hook on the word-embedding layer replaces the embedding at each placeholder with the context vector
of its rank within its run of placeholders (the k-th placeholder before a class name gets vector k).
"""
from __future__ import annotations

from typing import Callable

import torch

from sdpt.detector.prompts import _CONTEXT_ID


class TextContextInjector:
    """Every host's text backbone is a BERT: `embedding()` returns its word-embedding layer (each host says where it
    is; called at attach time, so a model swapped in by full fine-tuning is the one hooked)."""

    def __init__(self, embedding: Callable[[], torch.nn.Module], vectors: Callable[[], torch.Tensor]):
        self._embedding = embedding
        self.vectors = vectors  # returns (M, hidden)
        self._handle = None

    @property
    def embedding(self):
        return self._embedding()

    def attach(self) -> None:
        if self._handle is None:
            self._handle = self.embedding.register_forward_hook(self._replace)

    def detach(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def _replace(self, module, inputs, output):
        input_ids = inputs[0]
        is_context = input_ids == _CONTEXT_ID  # (B, T)
        if not is_context.any():
            return output
        vectors = self.vectors().to(output.dtype)  # (M, H)
        rank = (torch.cumsum(is_context.long(), dim=1) - 1) % vectors.shape[0]  # k-th placeholder of its run
        return torch.where(is_context.unsqueeze(-1), vectors[rank], output)
