"""GLIP's anchor generator (`make_anchor_generator_complex` + `AnchorGenerator` in maskrcnn_benchmark), with the
per-level cell anchors as buffers named as in the checkpoint (`rpn.anchor_generator.cell_anchors.{0..4}`, each
(anchors per location, 4) float32).

Box convention (Detectron / maskrcnn_benchmark "+1" pixels): boxes are xyxy with inclusive corners, a box's width
is x2 - x1 + 1, and a box of width w around centre c spans c -+ (w - 1) / 2. The base window of a level with
stride s is (0, 0, s - 1, s - 1), centre (s - 1) / 2; for aspect ratio r (h / w) its width is
round(sqrt(s*s / r)) and its height round(width * r) (round half to even, as numpy); each size S of the level scales
that window by S / s. Ratios vary slowest, sizes fastest. ATSS's box coder (not here) uses the same +1 widths.
With GLIP-T's settings (one ratio 1.0, one scale per octave) level l's single cell anchor is
(c - (S - 1) / 2, c - (S - 1) / 2, c + (S - 1) / 2, c + (S - 1) / 2), e.g. (-28, -28, 35, 35) for s = 8, S = 64.

Grid anchors: cell anchors shifted by (x, y, x, y) for x = 0, s, ..., (W - 1) s and the same in y, locations in
row-major (y, x) order, all anchors of one location together: ((H * W * A), 4) per level. GLIP's per-anchor
"visibility" field (straddle threshold) is not reproduced: ATSS's inference does not read it.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


GLIP_T_SIZES = (64, 128, 256, 512, 1024)
GLIP_T_STRIDES = (8, 16, 32, 64, 128)


def cell_anchors_for_level(stride: int, sizes: Sequence[float], aspect_ratios: Sequence[float]) -> torch.Tensor:
    """The (len(aspect_ratios) * len(sizes), 4) float32 cell anchors of one level (see the module docstring)."""
    centre = (stride - 1) / 2.0
    boxes = []
    for ratio in aspect_ratios:
        # Python's round is half-to-even like numpy's, which upstream uses.
        base_width = float(round(math.sqrt(stride * stride / ratio)))
        base_height = float(round(base_width * ratio))
        for size in sizes:
            scale = size / stride
            half_width = 0.5 * (base_width * scale - 1.0)
            half_height = 0.5 * (base_height * scale - 1.0)
            boxes.append([centre - half_width, centre - half_height, centre + half_width, centre + half_height])
    # Computed in float64 (as upstream's numpy) and stored in float32 (as upstream's `.float()`).
    return torch.tensor(boxes, dtype=torch.float64).float()


class BufferList(nn.Module):
    """Tensors registered as buffers "0", "1", ... (so the state dict reads `cell_anchors.0`, ...)."""

    def __init__(self, tensors: Sequence[torch.Tensor]) -> None:
        super().__init__()
        for index, tensor in enumerate(tensors):
            self.register_buffer(str(index), tensor)

    def __len__(self) -> int:
        return len(self._buffers)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self._buffers[str(index)]

    def __iter__(self):
        return iter(self._buffers.values())


class AnchorGenerator(nn.Module):
    """Per-level anchors for an FPN with one anchor size per level (times `scales_per_octave` octave steps).

    forward(feature_maps: sequence of (..., H_l, W_l) tensors) -> list of (H_l * W_l * A, 4) xyxy anchors;
    grid_anchors(grid_sizes: sequence of (H_l, W_l)) does the same from sizes.
    """

    def __init__(
        self,
        sizes: Sequence[float] = GLIP_T_SIZES,
        strides: Sequence[int] = GLIP_T_STRIDES,
        aspect_ratios: Sequence[float] = (1.0,),
        scales_per_octave: int = 1,
        octave: float = 2.0,
    ) -> None:
        super().__init__()
        if len(sizes) != len(strides):
            raise ValueError(f"one anchor size per level expected: {len(sizes)} sizes for {len(strides)} strides")
        self.strides = tuple(strides)
        level_sizes = [[size * octave ** (step / scales_per_octave) for step in range(scales_per_octave)]
                       for size in sizes]
        self.cell_anchors = BufferList(
            [cell_anchors_for_level(stride, sizes_, aspect_ratios) for stride, sizes_ in zip(strides, level_sizes)]
        )

    def num_anchors_per_location(self) -> list[int]:
        return [cell.shape[0] for cell in self.cell_anchors]

    def grid_anchors(self, grid_sizes: Sequence[tuple[int, int]]) -> list[torch.Tensor]:
        if len(grid_sizes) != len(self.strides):
            raise ValueError(f"{len(grid_sizes)} feature maps for {len(self.strides)} anchor levels")
        anchors = []
        for (height, width), stride, cell in zip(grid_sizes, self.strides, self.cell_anchors):
            xs = torch.arange(0, width * stride, step=stride, dtype=torch.float32, device=cell.device)
            ys = torch.arange(0, height * stride, step=stride, dtype=torch.float32, device=cell.device)
            shift_y, shift_x = torch.meshgrid(ys, xs, indexing="ij")
            shift_x, shift_y = shift_x.reshape(-1), shift_y.reshape(-1)
            shifts = torch.stack((shift_x, shift_y, shift_x, shift_y), dim=1)
            anchors.append((shifts[:, None, :] + cell[None, :, :]).reshape(-1, 4))
        return anchors

    def forward(self, feature_maps: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        return self.grid_anchors([(int(f.shape[-2]), int(f.shape[-1])) for f in feature_maps])
