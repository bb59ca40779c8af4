"""GLIP's 3x3 modulated deformable convolution (DCNv2) in plain PyTorch ops: bilinear sampling by `grid_sample`, then
one matrix product with the weight.

Why not torchvision's `deform_conv2d` (the same offset and mask layout): on CPU its backward is the bulk of a GLIP
tuning step. Profiling one SDPT step of GLIP-T at 800 px showed `_deform_conv2d_backward` at 64% of the step
(450 ms a call, 26 calls per step), and it computes the weight's gradient even when the weight is frozen, as it is
for every prompt method. Here autograd differentiates `grid_sample` and a matrix product, so a frozen weight gets no
gradient work, and one 256-channel 100 x 100 conv runs forward and backward about 4x faster on one CPU thread
(forward alone about 2x). The values are torchvision's up to float rounding (tests/sdpt/detector/glip/
test_deform_conv.py checks values and gradients against it, and test_dyhead.py against the CUDA kernel).

The sampling rule is DCNv2's: the value at a fractional (y, x) is the bilinear mix of its four neighbours, a
neighbour outside the map counting as zero. That is `grid_sample` with zero padding, given coordinates normalised
with align_corners=False, where pixel i maps to (2i + 1) / size - 1 (this also holds for one-pixel maps).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

KERNEL = 3
KERNEL_POINTS = KERNEL * KERNEL


def _sampling_grid(offset: torch.Tensor, height: int, width: int, out_height: int, out_width: int, stride: int,
                   padding: int) -> torch.Tensor:
    """(N, 9 * out_height, out_width, 2) grid_sample coordinates (x, y) of every kernel point of every output."""
    batch = offset.shape[0]
    steps = torch.arange(KERNEL, dtype=offset.dtype, device=offset.device)
    row_of_point = steps.repeat_interleave(KERNEL)  # kernel point k = row * 3 + column
    column_of_point = steps.repeat(KERNEL)
    rows = torch.arange(out_height, dtype=offset.dtype, device=offset.device) * stride - padding
    columns = torch.arange(out_width, dtype=offset.dtype, device=offset.device) * stride - padding
    deltas = offset.reshape(batch, KERNEL_POINTS, 2, out_height, out_width)  # (dy, dx) interleaved per point
    y = rows[None, None, :, None] + row_of_point[None, :, None, None] + deltas[:, :, 0]
    x = columns[None, None, None, :] + column_of_point[None, :, None, None] + deltas[:, :, 1]
    grid = torch.stack([(2 * x + 1) / width - 1, (2 * y + 1) / height - 1], dim=-1)
    return grid.reshape(batch, KERNEL_POINTS * out_height, out_width, 2)


def modulated_deform_conv2d(x: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor,
                            bias: torch.Tensor | None, stride: int = 1, padding: int = 1) -> torch.Tensor:
    """x (N, C, H, W), offset (N, 18, H', W'), mask (N, 9, H', W'), weight (O, C, 3, 3) -> (N, O, H', W').

    (H', W') is the output size for `stride` and `padding`; offsets are (dy, dx) per kernel point in row-major
    kernel order, one offset group, dilation 1 (what GLIP's DyConv uses).
    """
    batch, channels, height, width = x.shape
    out_channels = weight.shape[0]
    if weight.shape[1:] != (channels, KERNEL, KERNEL):
        raise ValueError(f"weight must be ({out_channels}, {channels}, 3, 3), got {tuple(weight.shape)}")
    out_height = (height + 2 * padding - KERNEL) // stride + 1
    out_width = (width + 2 * padding - KERNEL) // stride + 1
    expected = (batch, 2 * KERNEL_POINTS, out_height, out_width)
    if tuple(offset.shape) != expected or tuple(mask.shape) != (batch, KERNEL_POINTS, out_height, out_width):
        raise ValueError(f"offset must be {expected} and mask {(batch, KERNEL_POINTS, out_height, out_width)} for "
                         f"a {height}x{width} input at stride {stride}; got {tuple(offset.shape)} and "
                         f"{tuple(mask.shape)}")
    grid = _sampling_grid(offset.to(x.dtype), height, width, out_height, out_width, stride, padding)
    sampled = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    positions = out_height * out_width
    # (N, C, 9, positions): channel-major, kernel point next, as the weight's (C, 3, 3) flattens
    columns = sampled.reshape(batch, channels, KERNEL_POINTS, positions) * mask.reshape(batch, 1, KERNEL_POINTS,
                                                                                         positions).to(x.dtype)
    # An explicit batched product: `matmul` would pick its (2D @ 3D) path by whether the weight requires grad, and
    # the paths round differently, so a trainable copy of a frozen model (full fine-tuning) would not start equal.
    kernel = weight.reshape(1, out_channels, channels * KERNEL_POINTS).expand(batch, -1, -1)
    out = torch.bmm(kernel, columns.reshape(batch, -1, positions))
    if bias is not None:
        out = out + bias.reshape(1, out_channels, 1)
    return out.reshape(batch, out_channels, out_height, out_width)
