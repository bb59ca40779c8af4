"""What every host's prefix cache shares: a content key for input tensors, and outputs detached for storing.

A key is a digest of the tensors' shapes and bytes, so equal inputs replay the same stored output whatever object
holds them; stored outputs are detached (the frozen prefix needs no graph).
"""
from __future__ import annotations

import hashlib

import torch


def content_key(*tensors: torch.Tensor) -> str:
    digest = hashlib.blake2b(digest_size=16)
    for tensor in tensors:
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()


def detached(value):
    if isinstance(value, torch.Tensor):
        return value.detach()
    if isinstance(value, (list, tuple)):
        return type(value)(detached(v) for v in value)
    if type(value) is dict:  # a plain dict only (GLIP's language output); transformers' outputs stay as they are
        return {k: detached(v) for k, v in value.items()}
    return value
