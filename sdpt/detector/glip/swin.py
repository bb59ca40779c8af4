"""The Swin Transformer image encoder of GLIP-T (`backbone.body` in the official checkpoint).

Owns: patch embedding, windowed multi-head self-attention with a learned relative position bias, shifted windows
and their attention mask, patch merging, stochastic depth, and the LayerNorms applied to the stage outputs that feed
the FPN. Submodule names follow microsoft/GLIP's `swint.py` so that the checkpoint's `backbone.body.*` entries load
strictly (including each block's persistent `relative_position_index` buffer).

The key mapping to transformers' `SwinBackbone` is in `swin_names.py`.

Shapes: tokens travel between blocks as (B, H*W, C); stage outputs are returned as (B, C, H, W).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

# The official code fills masked (cross-region) attention logits with -100, not -inf: exp(-100) is 0 in fp32 for all
# practical purposes and -100 stays finite in fp16. Kept identical so the released weights see the same logits.
SHIFT_MASK_VALUE = -100.0

# Stddev of the truncated-normal init of the relative position bias table (the official init; every other weight
# keeps PyTorch's default init because GLIP never calls the Swin's own `init_weights`).
BIAS_TABLE_INIT_STD = 0.02


def relative_position_index(window_size: int) -> torch.Tensor:
    """(ws*ws, ws*ws) long tensor: row-major flat index into the (2ws-1)^2 bias table for each query/key pair.

    For query (h1, w1) and key (h2, w2) inside a window the offset (h1-h2, w1-w2) lies in [-(ws-1), ws-1]^2; shifting
    both components by ws-1 and flattening with a row length of 2ws-1 gives a unique table row.
    """
    axis = torch.arange(window_size)
    rows, cols = torch.meshgrid(axis, axis, indexing="ij")
    rows, cols = rows.flatten(), cols.flatten()  # position of each token of the window, row-major
    delta_rows = rows[:, None] - rows[None, :] + (window_size - 1)
    delta_cols = cols[:, None] - cols[None, :] + (window_size - 1)
    return delta_rows * (2 * window_size - 1) + delta_cols


def _partition_windows(x: torch.Tensor, window_size: int) -> torch.Tensor:
    """(B, Hp, Wp, C) with Hp, Wp multiples of window_size -> (B * nW, ws*ws, C), windows in row-major order."""
    batch, height, width, channels = x.shape
    x = x.view(batch, height // window_size, window_size, width // window_size, window_size, channels)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window_size * window_size, channels)


def _merge_windows(windows: torch.Tensor, window_size: int, height: int, width: int) -> torch.Tensor:
    """Inverse of `_partition_windows`: (B * nW, ws*ws, C) -> (B, Hp, Wp, C)."""
    channels = windows.shape[-1]
    grid_h, grid_w = height // window_size, width // window_size
    x = windows.view(-1, grid_h, grid_w, window_size, window_size, channels)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, height, width, channels)


def shifted_window_mask(
    padded_height: int, padded_width: int, window_size: int, shift: int, device: torch.device | None = None
) -> torch.Tensor:
    """(nW, ws*ws, ws*ws) additive mask for attention in cyclically shifted windows (0 allowed, -100 blocked).

    After rolling the map by -shift, a window at the bottom/right border holds tokens from up to three strips per
    axis that were not neighbours in the image: [0, P-ws), [P-ws, P-shift), [P-shift, P). Tokens may only attend to
    tokens of the same (row strip, column strip) region.
    """

    def strip_labels(size: int) -> torch.Tensor:
        idx = torch.arange(size, device=device)
        return (idx >= size - window_size).long() + (idx >= size - shift).long()

    regions = strip_labels(padded_height)[:, None] * 3 + strip_labels(padded_width)[None, :]
    region_windows = _partition_windows(regions[None, :, :, None].float(), window_size).squeeze(-1)  # (nW, N)
    different = region_windows[:, :, None] != region_windows[:, None, :]
    return torch.zeros(different.shape, device=device).masked_fill(different, SHIFT_MASK_VALUE)


class DropPath(nn.Module):
    """Stochastic depth: in training, zero a residual branch for a random subset of samples and rescale the rest."""

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.drop_prob == 0.0:
            return x
        keep_prob = 1.0 - self.drop_prob
        keep = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep_prob)
        return x * keep / keep_prob

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}"


class Mlp(nn.Module):
    """The block's feed-forward network: Linear -> GELU -> Linear."""

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class WindowAttention(nn.Module):
    """Multi-head self-attention inside each window, plus a learned bias per relative offset and head."""

    def __init__(self, dim: int, num_heads: int, window_size: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.window_size = window_size
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        # Persistent (unlike transformers' Swin): the official checkpoint stores it, and strict loading expects it.
        self.register_buffer("relative_position_index", relative_position_index(window_size))
        self.qkv = nn.Linear(dim, 3 * dim)  # fused query/key/value, in that order along the output features
        self.proj = nn.Linear(dim, dim)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=BIAS_TABLE_INIT_STD)

    def position_bias(self) -> torch.Tensor:
        """(num_heads, N, N) bias added to the attention logits, N = window_size**2."""
        tokens = self.window_size * self.window_size
        bias = self.relative_position_bias_table[self.relative_position_index.reshape(-1)]
        return bias.view(tokens, tokens, self.num_heads).permute(2, 0, 1)

    def forward(self, windows: torch.Tensor, shift_mask: torch.Tensor | None = None) -> torch.Tensor:
        """windows: (B * nW, N, C); shift_mask: (nW, N, N) or None. Returns (B * nW, N, C)."""
        num_windows_total, tokens, channels = windows.shape
        q, k, v = (
            self.qkv(windows)
            .view(num_windows_total, tokens, 3, self.num_heads, channels // self.num_heads)
            .permute(2, 0, 3, 1, 4)
            .unbind(0)
        )  # each (B * nW, heads, N, head_dim)
        logits_offset = self.position_bias()[None]  # (1, heads, N, N)
        if shift_mask is not None:
            # windows are ordered image-major, so the per-window mask repeats once per image
            images = num_windows_total // shift_mask.shape[0]
            logits_offset = (logits_offset + shift_mask[:, None]).repeat(images, 1, 1, 1)
        # default scale is head_dim ** -0.5, as in the official code (no qk_scale override in GLIP-T)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=logits_offset.to(q.dtype))
        return self.proj(out.transpose(1, 2).reshape(num_windows_total, tokens, channels))


class SwinBlock(nn.Module):
    """Pre-norm transformer block on (shifted) windows: x + attn(norm1(x)), then x + mlp(norm2(x))."""

    def __init__(
        self, dim: int, num_heads: int, window_size: int, shift: int, mlp_ratio: float, drop_path: float
    ) -> None:
        super().__init__()
        if not 0 <= shift < window_size:
            raise ValueError(f"shift {shift} must lie in [0, window_size={window_size})")
        self.window_size = window_size
        self.shift = shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, num_heads, window_size)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, height: int, width: int, shift_mask: torch.Tensor | None) -> torch.Tensor:
        batch, length, channels = x.shape
        if length != height * width:
            raise ValueError(f"{length} tokens do not form a {height}x{width} map")
        ws = self.window_size
        y = self.norm1(x).view(batch, height, width, channels)
        # pad right/bottom with zeros (after the norm, as the official code does) to whole windows
        pad_h, pad_w = (-height) % ws, (-width) % ws
        y = F.pad(y, (0, 0, 0, pad_w, 0, pad_h))
        padded_h, padded_w = height + pad_h, width + pad_w
        if self.shift:
            y = torch.roll(y, shifts=(-self.shift, -self.shift), dims=(1, 2))
        y = self.attn(_partition_windows(y, ws), shift_mask if self.shift else None)
        y = _merge_windows(y, ws, padded_h, padded_w)
        if self.shift:
            y = torch.roll(y, shifts=(self.shift, self.shift), dims=(1, 2))
        y = y[:, :height, :width, :].reshape(batch, length, channels)
        x = x + self.drop_path(y)
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchMerging(nn.Module):
    """2x2 neighbourhood -> one token: concatenate 4C channels, LayerNorm, project to 2C (halves H and W, ceil)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        batch, _, channels = x.shape
        x = x.view(batch, height, width, channels)
        x = F.pad(x, (0, 0, 0, width % 2, 0, height % 2))  # odd sizes: one zero row/column at the bottom/right
        # channel order (even row, even col), (odd row, even col), (even row, odd col), (odd row, odd col):
        # the official order, which the trained `reduction`/`norm` weights depend on
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        return self.reduction(self.norm(x.view(batch, -1, 4 * channels)))


class SwinStage(nn.Module):
    """`depth` blocks alternating plain and shifted windows, then an optional patch merging."""

    def __init__(
        self,
        dim: int,
        depth: int,
        num_heads: int,
        window_size: int,
        mlp_ratio: float,
        drop_path: Sequence[float],
        downsample: bool,
        use_checkpoint: bool = False,
    ) -> None:
        super().__init__()
        self.window_size = window_size
        self.shift = window_size // 2
        self.use_checkpoint = use_checkpoint
        self.blocks = nn.ModuleList(
            SwinBlock(dim, num_heads, window_size, 0 if i % 2 == 0 else self.shift, mlp_ratio, drop_path[i])
            for i in range(depth)
        )
        self.downsample = PatchMerging(dim) if downsample else None

    def forward(self, x: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor, int, int]:
        """Returns (stage output before merging, input of the next stage, its height, its width)."""
        ws = self.window_size
        # one mask per stage, built on the window-padded size; shared by all shifted blocks of the stage
        mask = shifted_window_mask(-(-height // ws) * ws, -(-width // ws) * ws, ws, self.shift, x.device)
        for block in self.blocks:
            if self.use_checkpoint and self.training and torch.is_grad_enabled():
                x = checkpoint(block, x, height, width, mask, use_reentrant=False)
            else:
                x = block(x, height, width, mask)
        if self.downsample is None:
            return x, x, height, width
        return x, self.downsample(x, height, width), (height + 1) // 2, (width + 1) // 2


class PatchEmbed(nn.Module):
    """Non-overlapping patch_size x patch_size patches -> embed_dim channels (strided conv), then LayerNorm."""

    def __init__(self, patch_size: int, in_channels: int, embed_dim: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_channels, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) -> (B, embed_dim, ceil(H/p), ceil(W/p)); zero-pads right/bottom to whole patches."""
        height, width = images.shape[-2:]
        images = F.pad(images, (0, (-width) % self.patch_size, 0, (-height) % self.patch_size))
        x = self.proj(images)
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class SwinTransformer(nn.Module):
    """Swin backbone as built by GLIP for conv body "SWINT-FPN-RETINANET" (Swin-T defaults).

    forward(images (B, 3, H, W)) -> list of LayerNorm-ed stage outputs (B, C_i, H_i, W_i) for `out_indices`,
    where stage i has C_i = embed_dim * 2**i channels and stride patch_size * 2**i (sizes rounded up).

    GLIP-T reads stages 1, 2, 3 (strides 8, 16, 32 -> P3, P4, P5). The official module also emits stage 0 through an
    Identity "norm0", but its FPN never reads that map (in_channels 0), so it is not produced here.
    """

    def __init__(
        self,
        embed_dim: int = 96,
        depths: Sequence[int] = (2, 2, 6, 2),
        num_heads: Sequence[int] = (3, 6, 12, 24),
        window_size: int = 7,
        mlp_ratio: float = 4.0,
        patch_size: int = 4,
        in_channels: int = 3,
        drop_path_rate: float = 0.2,
        out_indices: Sequence[int] = (1, 2, 3),
        use_checkpoint: bool = False,
    ) -> None:
        super().__init__()
        if len(depths) != len(num_heads):
            raise ValueError(f"depths {tuple(depths)} and num_heads {tuple(num_heads)} differ in length")
        if any(not 0 <= i < len(depths) for i in out_indices):
            raise ValueError(f"out_indices {tuple(out_indices)} outside the {len(depths)} stages")
        self.out_indices = tuple(out_indices)
        self.stage_channels = [embed_dim * 2**i for i in range(len(depths))]
        self.out_channels = [self.stage_channels[i] for i in self.out_indices]
        self.out_strides = [patch_size * 2**i for i in self.out_indices]

        self.patch_embed = PatchEmbed(patch_size, in_channels, embed_dim)
        # stochastic depth grows linearly over all blocks of all stages, from 0 to drop_path_rate
        rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        self.layers = nn.ModuleList()
        for i, (depth, heads) in enumerate(zip(depths, num_heads)):
            first = sum(depths[:i])
            self.layers.append(
                SwinStage(
                    dim=self.stage_channels[i],
                    depth=depth,
                    num_heads=heads,
                    window_size=window_size,
                    mlp_ratio=mlp_ratio,
                    drop_path=rates[first : first + depth],
                    downsample=i < len(depths) - 1,
                    use_checkpoint=use_checkpoint,
                )
            )
        # official names: norm{i} for the output of stage i
        for i in self.out_indices:
            self.add_module(f"norm{i}", nn.LayerNorm(self.stage_channels[i]))

    def _stages(self, images: torch.Tensor) -> list[tuple[torch.Tensor, int, int]]:
        """(tokens (B, H*W, C), H, W) of every stage's output before patch merging and before any output norm."""
        x = self.patch_embed(images)
        height, width = x.shape[-2:]
        x = x.flatten(2).transpose(1, 2)
        outputs = []
        for stage in self.layers:
            out, x, next_h, next_w = stage(x, height, width)
            outputs.append((out, height, width))
            height, width = next_h, next_w
        return outputs

    @staticmethod
    def _to_map(tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
        return tokens.view(tokens.shape[0], height, width, -1).permute(0, 3, 1, 2).contiguous()

    def stage_outputs(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Every stage's output (B, C_i, H_i, W_i), without output norms (for inspection and parity tests)."""
        return [self._to_map(t, h, w) for t, h, w in self._stages(images)]

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        stages = self._stages(images)
        maps = []
        for i in self.out_indices:
            tokens, height, width = stages[i]
            maps.append(self._to_map(getattr(self, f"norm{i}")(tokens), height, width))
        return maps
