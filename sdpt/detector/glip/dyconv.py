"""The vision block of GLIP's DyHead tower (`DyConv` in microsoft/GLIP's `vldyhead.py`), with its modulated
deformable convolutions and dynamic ReLU, under the official checkpoint's names:

    DyConv.{0,1,2}.conv.{weight,bias}   3x3 (modulated deformable) convs: 0 = level below, 1 = same level,
                                        2 = level above (stride 2)
    DyConv.{0,1,2}.bn.{weight,bias}     GroupNorm (called "bn" upstream whatever the norm is)
    AttnConv.1.{weight,bias}            1x1 conv of the scale-attention (after a global average pool)
    relu.fc.{0,2}.{weight,bias}         DyReLU's two linear layers
    offset.{weight,bias}                3x3 conv giving 18 offsets + 9 mask logits per location

GLIP passes a dict {"visual": [5 maps], "lang": {...}} through its tower; this block only reads and replaces
"visual" and hands "lang" on untouched, so here it takes and returns the plain list of level maps (finest first).

Offset reuse and its truncation (the one non-obvious fact of this block). For level l the offsets and mask are
computed once, from level l's map, at level l's size (H_l, W_l), and given to all three convs of that level. The
conv over the next, smaller level l+1 (stride 1) has an output of only (H_{l+1}, W_{l+1}), yet receives the
(N, 18, H_l, W_l) offsets. maskrcnn_benchmark's CUDA op does not check this: per image b it takes the raw pointer
of offset[b] (resp. mask[b]) and indexes it as if it were a contiguous (18, h, w) array with the OUTPUT's h, w
(`data_offset_ptr[((2 * k) * height_col + h_col) * width_col + w_col]` in `modulated_deformable_im2col_gpu_kernel`).
So it reads the first 18*h*w values of image b's flattened offsets (9*h*w of its mask) and re-folds them as
(18, h, w): a reinterpretation of leading memory, NOT a spatial crop offset[b, :, :h, :w]. Channel k of what it
reads starts at flat position k*h*w, i.e. inside original channel floor(k*h*w / (H*W)), so the smaller level's
sampling positions come from a mix of the larger level's offset planes. The batch stride is honoured (offset[b]
is taken as a tensor), and slicing the 27-channel conv output into offsets does not change this, because image
b's first 18 channels are laid out contiguously from offset[b]'s pointer either way. `read_as_output_size` does
exactly this, so that a shape-checked op with the same offset/mask layout (this project's
`deform_conv.modulated_deform_conv2d`, or torchvision's `deform_conv2d`) computes what the official op computes;
tests/sdpt/detector/glip/test_dyhead.py checks it against an element-by-element restatement of the CUDA kernel. A
read that would need more values than the tensor holds (output larger than the offsets) is undefined upstream and
refused here.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from sdpt.detector.glip.deform_conv import KERNEL, KERNEL_POINTS, modulated_deform_conv2d

OFFSET_CHANNELS = 2 * KERNEL_POINTS  # (dy, dx) per kernel point, interleaved: channel 2k = dy, 2k+1 = dx
OFFSET_AND_MASK_CHANNELS = 3 * KERNEL_POINTS  # 27: what the checkpoint's `offset` conv outputs


def read_as_output_size(tensor: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """`tensor` (N, K, H, W) as the official CUDA deformable conv reads it for an output of (height, width).

    Per image, the first K*height*width values of its flattened (K, H, W) block, re-folded as (K, height, width)
    (see the module docstring). Returns `tensor` itself when the sizes already match.
    """
    batch, channels, full_height, full_width = tensor.shape
    if (full_height, full_width) == (height, width):
        return tensor
    needed = channels * height * width
    if needed > channels * full_height * full_width:
        raise ValueError(
            f"deformable conv output {height}x{width} needs more offset values than a "
            f"{full_height}x{full_width} offset map holds (the official op would read past the image's block)"
        )
    # reshape copies when the tensor is a channel slice of a bigger one; each image's values keep their order.
    return tensor.reshape(batch, -1)[:, :needed].reshape(batch, channels, height, width)


class ModulatedDeformConv(nn.Module):
    """3x3 modulated deformable conv (DCNv2) with maskrcnn_benchmark's parameter names and initialisation.

    forward(x, offset, mask): offset (N, 18, H', W') with interleaved (dy, dx) per kernel point in row-major kernel
    order, mask (N, 9, H', W') already squashed to (0, 1); (H', W') may exceed the output size, in which case they
    are read the way the official CUDA op reads them (`read_as_output_size`).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, padding: int = 1) -> None:
        super().__init__()
        self.stride = stride
        self.padding = padding
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, KERNEL, KERNEL))
        self.bias = nn.Parameter(torch.empty(out_channels))
        # Upstream's own reset (uniform over +-1/sqrt(fan_in), zero bias); DyConv's normal(0, 0.01) re-init only
        # touches nn.Conv2d instances, which this is not, so this is the init that stands for the deformable case.
        bound = 1.0 / math.sqrt(in_channels * KERNEL_POINTS)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.zeros_(self.bias)

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        def one(size: int) -> int:
            return (size + 2 * self.padding - KERNEL) // self.stride + 1

        return one(height), one(width)

    def forward(self, x: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        out_height, out_width = self.output_size(x.shape[-2], x.shape[-1])
        offset = read_as_output_size(offset, out_height, out_width)
        mask = read_as_output_size(mask, out_height, out_width)
        return modulated_deform_conv2d(x, offset, mask, self.weight, self.bias, self.stride, self.padding)


class ConvNorm(nn.Module):
    """A 3x3 conv (plain or modulated deformable) followed by an optional GroupNorm ("bn" in the checkpoint)."""

    def __init__(
        self, in_channels: int, out_channels: int, stride: int, deformable: bool, gn_groups: int | None
    ) -> None:
        super().__init__()
        self.deformable = deformable
        if deformable:
            self.conv: nn.Module = ModulatedDeformConv(in_channels, out_channels, stride=stride)
        else:
            self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=KERNEL, stride=stride, padding=1)
            nn.init.normal_(self.conv.weight, 0.0, 0.01)
            nn.init.zeros_(self.conv.bias)
        self.bn = nn.GroupNorm(gn_groups, out_channels) if gn_groups else None

    def forward(
        self, x: torch.Tensor, offset: torch.Tensor | None = None, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        x = self.conv(x, offset, mask) if self.deformable else self.conv(x)
        return self.bn(x) if self.bn is not None else x


def hard_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """relu6(x + 3) / 6, GLIP's h_sigmoid."""
    return F.relu6(x + 3.0) / 6.0


class HardSigmoid(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return hard_sigmoid(x)


class DyReLU(nn.Module):
    """Dynamic ReLU (GLIP's `DYReLU` with its defaults: two linear pieces with biases, no spatial branch).

    From the globally pooled input, a 2-layer MLP (`fc.0`, `fc.2`, hidden = in_channels // reduction) gives per
    channel a1, b1, a2, b2; out = max(a1 * x + b1, a2 * x + b2). The pieces start around a1 = 1, a2 = 0, b = 0
    (i.e. near a plain ReLU): a = (s - 0.5) * 2 * lambda_a + init, b = s - 0.5, with s the hard sigmoid outputs.
    """

    PIECES = 4  # a1, b1, a2, b2

    def __init__(self, in_channels: int, out_channels: int, reduction: int = 4, lambda_a: float = 1.0) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.slope_range = 2.0 * lambda_a
        if reduction == 4:
            hidden = in_channels // reduction
        else:  # upstream rounds other reductions to a multiple of 4 (never below 90 % of the exact value)
            exact = in_channels // reduction
            hidden = max(4, int(exact + 2) // 4 * 4)
            if hidden < 0.9 * exact:
                hidden += 4
        self.fc = nn.Sequential(
            nn.Linear(in_channels, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, out_channels * self.PIECES),
            HardSigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch = x.shape[0]
        coefficients = self.fc(x.mean(dim=(2, 3))).view(batch, self.PIECES * self.out_channels, 1, 1)
        a1, b1, a2, b2 = torch.split(coefficients, self.out_channels, dim=1)
        a1 = (a1 - 0.5) * self.slope_range + 1.0
        a2 = (a2 - 0.5) * self.slope_range + 0.0
        b1 = b1 - 0.5
        b2 = b2 - 0.5
        return torch.max(x * a1 + b1, x * a2 + b2)


class DyConv(nn.Module):
    """One DyHead vision block: every level mixed with its neighbours, scale attention, DyReLU.

    For level l: same = DyConv[1](x_l); from the finer level above, DyConv[2](x_{l-1}) at stride 2; from the
    coarser level below, DyConv[0](x_{l+1}) at stride 1, bilinearly upsampled (align_corners=True, as
    F.upsample_bilinear) to level l's size. All three use level l's offsets/mask (see the module docstring for how
    the smaller conv reads them). With the scale attention (use_dyfuse) the terms are weighted by
    hard_sigmoid(relu(conv1x1(avgpool(term)))) before averaging; else plainly averaged. Then DyReLU (or ReLU).

    Constructor arguments mirror GLIP's config: use_gn (MODEL.DYHEAD.USE_GN, with MODEL.GROUP_NORM.NUM_GROUPS =
    gn_groups, 16 by default), use_dyrelu, use_dyfuse, use_deform (USE_DFCONV); GLIP-T has all of them on.
    forward(features: list of (B, in_channels, H_l, W_l), finest first) -> list of (B, out_channels, H_l, W_l).
    """

    def __init__(
        self,
        in_channels: int = 256,
        out_channels: int = 256,
        use_gn: bool = True,
        gn_groups: int = 16,
        use_dyrelu: bool = True,
        use_dyfuse: bool = True,
        use_deform: bool = True,
    ) -> None:
        super().__init__()
        groups = gn_groups if use_gn else None
        # Index order is the checkpoint's: 0 = level below (stride 1), 1 = same level, 2 = level above (stride 2).
        self.DyConv = nn.ModuleList(
            [
                ConvNorm(in_channels, out_channels, 1, use_deform, groups),
                ConvNorm(in_channels, out_channels, 1, use_deform, groups),
                ConvNorm(in_channels, out_channels, 2, use_deform, groups),
            ]
        )
        if use_dyfuse:
            # Sequential so that the 1x1 conv sits at index 1, as in the checkpoint (AttnConv.1.*).
            self.AttnConv: nn.Sequential | None = nn.Sequential(
                nn.AdaptiveAvgPool2d(1), nn.Conv2d(in_channels, 1, kernel_size=1), nn.ReLU()
            )
            nn.init.normal_(self.AttnConv[1].weight, 0.0, 0.01)
            nn.init.zeros_(self.AttnConv[1].bias)
        else:
            self.AttnConv = None
        self.relu: nn.Module = DyReLU(in_channels, out_channels) if use_dyrelu else nn.ReLU()
        self.offset = (
            nn.Conv2d(in_channels, OFFSET_AND_MASK_CHANNELS, kernel_size=KERNEL, padding=1) if use_deform else None
        )

    def _offsets(self, feature: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        if self.offset is None:
            return None, None
        offset_and_mask = self.offset(feature)
        return offset_and_mask[:, :OFFSET_CHANNELS], offset_and_mask[:, OFFSET_CHANNELS:].sigmoid()

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        mixed = []
        last = len(features) - 1
        for level, feature in enumerate(features):
            offset, mask = self._offsets(feature)
            terms = [self.DyConv[1](feature, offset, mask)]
            if level > 0:
                terms.append(self.DyConv[2](features[level - 1], offset, mask))
            if level < last:
                below = self.DyConv[0](features[level + 1], offset, mask)
                terms.append(F.interpolate(below, size=feature.shape[-2:], mode="bilinear", align_corners=True))
            stacked = torch.stack(terms)
            if self.AttnConv is not None:
                weights = hard_sigmoid(torch.stack([self.AttnConv(term) for term in terms]))
                stacked = stacked * weights
            mixed.append(stacked.mean(dim=0))
        return [self.relu(level_map) for level_map in mixed]
