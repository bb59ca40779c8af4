"""GLIP's pixel-box arithmetic for its ATSS head: anchor-relative box deltas, clipping to the image, and IoU.

GLIP's VLDyHead carries its own box coder (not maskrcnn_benchmark's generic one): box centres are (x0 + x1) / 2,
widths and heights count pixels inclusively (x1 - x0 + 1), the deltas are scaled by (10, 10, 5, 5), and the
log-size deltas are clamped at log(1000 / 16) before exp. Encoding then decoding returns the box exactly.
Boxes are xyxy in pixels; every function works on tensors with any leading shape (..., 4).
"""
from __future__ import annotations

import math

import torch
import torchvision

# (dx, dy, dw, dh) scale of the regression targets, fixed in GLIP's VLDyHead box coder.
BOX_CODER_WEIGHTS: tuple[float, float, float, float] = (10.0, 10.0, 5.0, 5.0)
# Largest log-size delta passed to exp: a box may grow at most 1000/16 times its anchor.
BBOX_XFORM_CLIP: float = math.log(1000.0 / 16)
# maskrcnn_benchmark counts a box from x0 to x1 as x1 - x0 + 1 pixels wide.
PIXEL_OFFSET: float = 1.0


def _sizes_and_centres(boxes: torch.Tensor) -> tuple[torch.Tensor, ...]:
    x0, y0, x1, y1 = boxes.unbind(-1)
    return x1 - x0 + PIXEL_OFFSET, y1 - y0 + PIXEL_OFFSET, (x0 + x1) / 2, (y0 + y1) / 2


def encode(boxes: torch.Tensor, anchors: torch.Tensor,
           weights: tuple[float, float, float, float] = BOX_CODER_WEIGHTS) -> torch.Tensor:
    """Deltas (..., 4) that take each anchor (..., 4) to its box (..., 4), both pixel xyxy."""
    anchor_w, anchor_h, anchor_cx, anchor_cy = _sizes_and_centres(anchors.to(boxes.dtype))
    box_w, box_h, box_cx, box_cy = _sizes_and_centres(boxes)
    wx, wy, ww, wh = weights
    return torch.stack([
        wx * (box_cx - anchor_cx) / anchor_w,
        wy * (box_cy - anchor_cy) / anchor_h,
        ww * torch.log(box_w / anchor_w),
        wh * torch.log(box_h / anchor_h),
    ], dim=-1)


def decode(deltas: torch.Tensor, anchors: torch.Tensor,
           weights: tuple[float, float, float, float] = BOX_CODER_WEIGHTS,
           size_clip: float = BBOX_XFORM_CLIP) -> torch.Tensor:
    """Pixel xyxy boxes (..., 4) from deltas (..., 4) relative to anchors (..., 4); the inverse of `encode`.

    The log-size deltas are clamped at `size_clip` so that an untrained head cannot overflow exp.
    """
    anchor_w, anchor_h, anchor_cx, anchor_cy = _sizes_and_centres(anchors.to(deltas.dtype))
    wx, wy, ww, wh = weights
    dx, dy, dw, dh = deltas.unbind(-1)
    cx = dx / wx * anchor_w + anchor_cx
    cy = dy / wy * anchor_h + anchor_cy
    w = torch.exp((dw / ww).clamp(max=size_clip)) * anchor_w
    h = torch.exp((dh / wh).clamp(max=size_clip)) * anchor_h
    # Half of (size - 1) either side of the centre: the inclusive-pixel width back to corner coordinates.
    half_w, half_h = (w - PIXEL_OFFSET) / 2, (h - PIXEL_OFFSET) / 2
    return torch.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], dim=-1)


def clip_to_image(boxes: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """Boxes (..., 4) clamped into an image of (height, width): x to [0, width - 1], y to [0, height - 1]."""
    height, width = image_size
    x0, y0, x1, y1 = boxes.unbind(-1)
    max_x, max_y = width - PIXEL_OFFSET, height - PIXEL_OFFSET
    return torch.stack([x0.clamp(0, max_x), y0.clamp(0, max_y), x1.clamp(0, max_x), y1.clamp(0, max_y)], dim=-1)


def box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """(n, m) IoU of pixel xyxy boxes (n, 4) and (m, 4), areas and overlaps counted with inclusive pixels.

    This is the IoU of GLIP's ATSS assignment and of its NMS kernel; it equals torchvision's box_iou on the same
    boxes with x1 and y1 moved out by one pixel.
    """
    return torchvision.ops.box_iou(inclusive_to_exclusive(boxes1), inclusive_to_exclusive(boxes2))


def inclusive_to_exclusive(boxes: torch.Tensor) -> torch.Tensor:
    """Boxes whose far corner is the last pixel -> boxes whose far corner is one past it (for torchvision ops)."""
    return boxes + boxes.new_tensor([0.0, 0.0, PIXEL_OFFSET, PIXEL_OFFSET])

