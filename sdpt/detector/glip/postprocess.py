"""GLIP's ATSS head outputs -> per-image `Detections` (pixel xyxy boxes, class indices, scores), as GLIP's
ATSSPostProcessor does it with dot-product logits.

Per feature level: each class's score is the mean sigmoid probability of its phrase's tokens; (anchor, class)
pairs scoring above `pre_nms_threshold` are candidates, at most `pre_nms_top_n` of them, ranked by that score times
sigmoid(centerness); their boxes are decoded, clipped to the image and reported with score
sqrt(class score * sigmoid(centerness)). The levels are then pooled, NMS at `nms_threshold` runs within each class
(IoU with the +1 pixel convention of GLIP's kernel), and the best `detections_per_image` are kept.

Inputs, flat over the levels in the anchors' order:
    box_regression (B, A, 4), centerness (B, A) logits, dot_product_logits (B, A, T),
    anchors (A, 4) or (B, A, 4) pixel xyxy, level_counts (anchors per level),
    class_token_maps (C, T') for the whole batch or one per image: 1 at the tokens of class c's phrase,
    image_sizes: (height, width) of each image, in the pixels the anchors live in.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
import torchvision

from sdpt.detector.glip.box_coder import PIXEL_OFFSET, clip_to_image, decode, inclusive_to_exclusive
from sdpt.detector.detections import Detections

logger = logging.getLogger(__name__)

# GLIP's MODEL.ATSS defaults for testing.
INFERENCE_TH = 0.05
PRE_NMS_TOP_N = 1000
NMS_TH = 0.6
DETECTIONS_PER_IMG = 100
# Boxes narrower or shorter than this many pixels (inclusive count) are dropped; GLIP passes 0.
MIN_SIZE = 0.0


def class_scores(token_probs: torch.Tensor, class_token_map: torch.Tensor) -> torch.Tensor:
    """(A, T) token probabilities -> (A, C) class scores: the mean probability over each class's tokens
    (GLIP's SCORE_AGG "MEAN"); a class with no tokens scores 0."""
    width = token_probs.shape[-1]
    class_token_map = class_token_map[:, :width].to(token_probs.dtype)
    class_token_map = torch.nn.functional.pad(class_token_map, (0, width - class_token_map.shape[1]))
    return token_probs @ class_token_map.T / class_token_map.sum(-1).clamp(min=1)


def _per_image(value, batch_size: int) -> list:
    """A value given once for the batch, or once per image, as a list with one entry per image."""
    if isinstance(value, torch.Tensor):
        return [value] * batch_size if value.dim() == 2 else list(value)
    return list(value)


def _names_per_image(class_names, batch_size: int) -> list[list[str]]:
    if not class_names:
        return [[] for _ in range(batch_size)]
    if isinstance(class_names[0], str):
        return [list(class_names)] * batch_size
    return [list(names) for names in class_names]


def _level_candidates(regression: torch.Tensor, centre_prob: torch.Tensor, token_probs: torch.Tensor,
                      anchors: torch.Tensor, class_token_map: torch.Tensor, image_size: tuple[int, int],
                      pre_nms_threshold: float, pre_nms_top_n: int, min_size: float):
    """Boxes, classes and scores of one level of one image before NMS."""
    scores = class_scores(token_probs, class_token_map)  # (A_l, C)
    # The threshold reads the class score alone; the ranking that follows includes centerness.
    candidate = scores > pre_nms_threshold
    ranked = (scores * centre_prob[:, None])[candidate]
    ranked, order = ranked.topk(min(int(candidate.sum()), pre_nms_top_n))
    where = candidate.nonzero()[order]
    anchor_index, classes = where[:, 0], where[:, 1]
    boxes = clip_to_image(decode(regression[anchor_index], anchors[anchor_index]), image_size)
    # Sizes in maskrcnn_benchmark's inclusive pixel count, as its remove_small_boxes measures them.
    widths, heights = boxes[:, 2] - boxes[:, 0] + PIXEL_OFFSET, boxes[:, 3] - boxes[:, 1] + PIXEL_OFFSET
    keep = (widths >= min_size) & (heights >= min_size)
    return boxes[keep], classes[keep], ranked[keep].sqrt()


def _best(scores: torch.Tensor, count: int) -> torch.Tensor:
    """Indices of the `count` best scores, ties at the cut kept as GLIP's kthvalue cut keeps them."""
    if count <= 0 or len(scores) <= count:
        return torch.arange(len(scores), device=scores.device)
    cut = scores.float().cpu().kthvalue(len(scores) - count + 1).values.item()
    return (scores >= cut).nonzero().squeeze(1)


@torch.no_grad()
def glip_detections(box_regression: torch.Tensor, centerness: torch.Tensor, dot_product_logits: torch.Tensor,
                    anchors: torch.Tensor, level_counts: Sequence[int],
                    class_token_maps: torch.Tensor | Sequence[torch.Tensor],
                    image_sizes: Sequence[tuple[int, int]],
                    class_names: Sequence[str] | Sequence[Sequence[str]] | None = None, *,
                    pre_nms_threshold: float = INFERENCE_TH, pre_nms_top_n: int = PRE_NMS_TOP_N,
                    nms_threshold: float = NMS_TH, detections_per_image: int = DETECTIONS_PER_IMG,
                    min_size: float = MIN_SIZE) -> list[Detections]:
    """Detections of each image, best score first (shapes in the module docstring).

    class_names: one list for the batch or one per image; defaults to no names. Boxes stay in the pixels of
    `image_sizes` (rescaling to an original image is the caller's).
    """
    batch_size = box_regression.shape[0]
    if sum(level_counts) != box_regression.shape[1]:
        raise ValueError(f"level_counts sum to {sum(level_counts)}, not to the {box_regression.shape[1]} anchors")
    anchors = anchors.expand(batch_size, *anchors.shape) if anchors.dim() == 2 else anchors
    token_maps = _per_image(class_token_maps, batch_size)
    names = _names_per_image(class_names, batch_size)
    token_probs = dot_product_logits.float().sigmoid()
    centre_probs = centerness.float().sigmoid()
    regression = box_regression.float()

    results = []
    for image in range(batch_size):
        pieces, start = [], 0
        for count in level_counts:
            level = slice(start, start + count)
            pieces.append(_level_candidates(
                regression[image, level], centre_probs[image, level], token_probs[image, level],
                anchors[image, level].float(), token_maps[image].to(token_probs.device), image_sizes[image],
                pre_nms_threshold, pre_nms_top_n, min_size))
            start += count
        boxes, classes, scores = (torch.cat(parts) for parts in zip(*pieces))
        # GLIP's NMS kernel counts pixels inclusively; torchvision's does not, so the far corners move out one pixel.
        keep = torchvision.ops.batched_nms(inclusive_to_exclusive(boxes), scores, classes, nms_threshold)
        keep = keep[_best(scores[keep], detections_per_image)]
        keep = keep[scores[keep].argsort(descending=True)]
        logger.debug("image %d: %d candidates, %d detections", image, len(scores), len(keep))
        results.append(Detections(boxes[keep].cpu(), classes[keep].cpu(), scores[keep].cpu(), names[image]))
    return results
