"""The feature pyramid of GLIP-T (`backbone.fpn` in the official checkpoint): C3-C5 from the Swin -> P3-P7.

Owns: lateral 1x1 convs (`fpn_inner{k}`), top-down nearest upsampling and sum, 3x3 output convs (`fpn_layer{k}`),
the RetinaNet-style extra levels (`top_blocks.p6`, `top_blocks.p7`), and the DropBlock regularisation GLIP applies
inside the FPN while training. Names follow microsoft/GLIP's `fpn.py` as assembled for "SWINT-FPN-RETINANET".
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

# GLIP builds the FPN from a list whose first entry (the stride-4 Swin stage) has 0 channels and is skipped, so
# the levels that exist are numbered from 2: fpn_inner2 reads C3 (stride 8), fpn_inner3 C4, fpn_inner4 C5.
FIRST_MODULE_INDEX = 2


def _kaiming_conv(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> nn.Conv2d:
    """Conv with "same" padding, kaiming-uniform(a=1) weights and zero bias: the official FPN init."""
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=(kernel_size - 1) // 2)
    nn.init.kaiming_uniform_(conv.weight, a=1)
    nn.init.zeros_(conv.bias)
    return conv


class DropBlock2D(nn.Module):
    """DropBlock (Ghiasi et al. 2018) as GLIP uses it: in training, zero block_size x block_size squares.

    Square centres are sampled with probability drop_prob / block_size**2 per position (one mask per image, shared by
    all channels); survivors are rescaled by (#positions / #kept positions) over the whole batch. Identity in eval.
    """

    def __init__(self, drop_prob: float, block_size: int) -> None:
        super().__init__()
        self.drop_prob = drop_prob
        self.block_size = block_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.drop_prob == 0.0:
            return x
        gamma = self.drop_prob / self.block_size**2
        centres = (torch.rand(x.shape[0], 1, *x.shape[2:], device=x.device) < gamma).to(x.dtype)
        dropped = F.max_pool2d(centres, self.block_size, stride=1, padding=self.block_size // 2)
        if self.block_size % 2 == 0:  # even kernels grow the map by one row/column at the end
            dropped = dropped[:, :, :-1, :-1]
        keep = 1.0 - dropped
        # the official code divides by keep.sum() unguarded; the clamp only avoids inf when everything is dropped
        return x * keep * (keep.numel() / keep.sum().clamp_min(1.0))

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}, block_size={self.block_size}"


class LastLevelP6P7(nn.Module):
    """P6 = conv3x3/2(P5); P7 = conv3x3/2(ReLU(P6)).

    GLIP-T feeds P5 (not C5): its builder passes in_channels == out_channels, which selects P5 in the official code.
    P6 itself is returned without ReLU; the ReLU only sits on the path into P7.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.p6 = _kaiming_conv(channels, channels, 3, stride=2)
        self.p7 = _kaiming_conv(channels, channels, 3, stride=2)

    def forward(self, p5: torch.Tensor) -> list[torch.Tensor]:
        p6 = self.p6(p5)
        return [p6, self.p7(F.relu(p6))]


class FPN(nn.Module):
    """Top-down feature pyramid over backbone maps ordered fine to coarse, plus P6/P7.

    forward([C3, C4, C5]) -> (P3, P4, P5, P6, P7), each with `out_channels` channels; P_k has the size of C_k, and
    P6/P7 halve the previous level (rounded up).
    """

    def __init__(
        self,
        in_channels: Sequence[int] = (192, 384, 768),
        out_channels: int = 256,
        drop_block_prob: float = 0.3,
        drop_block_size: int = 3,
        first_module_index: int = FIRST_MODULE_INDEX,
    ) -> None:
        super().__init__()
        self.inner_names = [f"fpn_inner{first_module_index + i}" for i in range(len(in_channels))]
        self.layer_names = [f"fpn_layer{first_module_index + i}" for i in range(len(in_channels))]
        for inner, layer, channels in zip(self.inner_names, self.layer_names, in_channels):
            self.add_module(inner, _kaiming_conv(channels, out_channels, 1))
            self.add_module(layer, _kaiming_conv(out_channels, out_channels, 3))
        self.top_blocks = LastLevelP6P7(out_channels)
        # parameter-free, so it adds no state-dict entries; None keeps the module tree clean when disabled
        self.drop_block = DropBlock2D(drop_block_prob, drop_block_size) if drop_block_prob > 0 else None

    def forward(self, features: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        if len(features) != len(self.inner_names):
            raise ValueError(f"expected {len(self.inner_names)} feature maps, got {len(features)}")
        top_down = getattr(self, self.inner_names[-1])(features[-1])
        # the coarsest level gets no DropBlock in the official code, only the levels the top-down path reaches
        pyramid = [getattr(self, self.layer_names[-1])(top_down)]
        for feature, inner, layer in zip(
            reversed(features[:-1]), reversed(self.inner_names[:-1]), reversed(self.layer_names[:-1])
        ):
            lateral = getattr(self, inner)(feature)
            if lateral.shape[-2:] != top_down.shape[-2:]:
                # by size, not by a factor of 2: odd sizes upstream make the coarser map round up
                top_down = F.interpolate(top_down, size=lateral.shape[-2:], mode="nearest")
            top_down = lateral + top_down
            # DropBlock acts on the output conv's input only; the top-down signal passed on stays undropped
            smoothed_input = self.drop_block(top_down) if self.drop_block is not None else top_down
            pyramid.insert(0, getattr(self, layer)(smoothed_input))
        pyramid.extend(self.top_blocks(pyramid[-1]))
        return tuple(pyramid)
