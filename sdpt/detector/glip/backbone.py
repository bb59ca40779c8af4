"""GLIP-T's image backbone (`backbone` in the official checkpoint): Swin-T body + FPN, images -> P3..P7.

Owns only the assembly ("SWINT-FPN-RETINANET"): which Swin stages feed the FPN and the GLIP-T configuration.
The layers themselves live in `swin.py` and `fpn.py`.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import torch
from torch import nn

from sdpt.detector.glip.fpn import FPN
from sdpt.detector.glip.swin import SwinTransformer

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GlipBackboneConfig:
    """Widths and regularisation of the backbone; the defaults are GLIP-T's (MODEL.SWINT / FPN / BACKBONE)."""

    embed_dim: int = 96
    depths: tuple[int, ...] = (2, 2, 6, 2)
    num_heads: tuple[int, ...] = (3, 6, 12, 24)
    window_size: int = 7
    mlp_ratio: float = 4.0
    patch_size: int = 4
    drop_path_rate: float = 0.2  # MODEL.SWINT.DROP_PATH_RATE (the GLIP-T config does not override the default)
    # Swin stages read by the FPN: strides 8, 16, 32 -> P3, P4, P5 (the stride-4 stage is not used)
    out_indices: tuple[int, ...] = (1, 2, 3)
    fpn_channels: int = 256  # MODEL.BACKBONE.OUT_CHANNELS
    drop_block_prob: float = 0.3  # MODEL.FPN.DROP_BLOCK is on by default: DROP_PROB 0.3, DROP_SIZE 3
    drop_block_size: int = 3
    use_checkpoint: bool = False  # gradient checkpointing of Swin blocks (MODEL.BACKBONE.USE_CHECKPOINT)


class GlipBackbone(nn.Module):
    """images (B, 3, H, W), already normalised -> (P3, P4, P5, P6, P7) at strides 8..128 (sizes rounded up).

    Attributes `body` (SwinTransformer) and `fpn` (FPN) carry the official names, so the checkpoint's
    `backbone.*` entries load into this module with strict key matching once the `module.backbone.` prefix is cut.
    """

    def __init__(
        self,
        embed_dim: int = 96,
        depths: tuple[int, ...] = (2, 2, 6, 2),
        num_heads: tuple[int, ...] = (3, 6, 12, 24),
        window_size: int = 7,
        mlp_ratio: float = 4.0,
        patch_size: int = 4,
        drop_path_rate: float = 0.2,
        out_indices: tuple[int, ...] = (1, 2, 3),
        fpn_channels: int = 256,
        drop_block_prob: float = 0.3,
        drop_block_size: int = 3,
        use_checkpoint: bool = False,
    ) -> None:
        super().__init__()
        self.body = SwinTransformer(
            embed_dim=embed_dim,
            depths=depths,
            num_heads=num_heads,
            window_size=window_size,
            mlp_ratio=mlp_ratio,
            patch_size=patch_size,
            drop_path_rate=drop_path_rate,
            out_indices=out_indices,
            use_checkpoint=use_checkpoint,
        )
        self.fpn = FPN(
            in_channels=self.body.out_channels,
            out_channels=fpn_channels,
            drop_block_prob=drop_block_prob,
            drop_block_size=drop_block_size,
        )
        self.out_channels = fpn_channels
        # P_k for the body outputs, then two extra levels, each halving again
        last = self.body.out_strides[-1]
        self.strides = tuple(self.body.out_strides) + (2 * last, 4 * last)
        logger.debug(
            "GLIP backbone: Swin channels %s at strides %s -> FPN %d channels at strides %s",
            self.body.out_channels, self.body.out_strides, fpn_channels, self.strides,
        )

    @classmethod
    def from_config(cls, config: GlipBackboneConfig) -> GlipBackbone:
        return cls(**asdict(config))

    @classmethod
    def glip_t(cls, **overrides: object) -> GlipBackbone:
        """GLIP-T's backbone (Swin-T, FPN 256 channels), with optional overrides of `GlipBackboneConfig` fields."""
        return cls.from_config(GlipBackboneConfig(**overrides))  # type: ignore[arg-type]

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.fpn(self.body(images))
