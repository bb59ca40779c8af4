"""GLIP's training loss for its ATSS head, on plain tensors: positive anchors by ATSS, a token-level sigmoid focal
loss on the dot-product logits, a GIoU box loss weighted by centerness, and a centerness BCE.

The head's outputs are taken flat over the feature levels, in the order the anchors are concatenated:
    anchors            (A, 4) pixel xyxy, shared by the batch, or (B, A, 4) per image
    level_counts       anchors per level (their sum is A), finest level first
    box_regression     (B, A, 4) deltas in the coder of `sdpt.detector.glip.box_coder`
    centerness         (B, A) logits
    dot_product_logits (B, A, T) logits of every anchor against every text token
    text_mask          (B, T) nonzero at the prompt's real tokens (padding is left out of the loss)
and per image i the targets gt_boxes[i] (n_i, 4) pixel xyxy with gt_token_maps[i] (n_i, T') (T' <= T padded with
zeros; wider maps are cut), 1 at the tokens that name box j.

Normalisation follows GLIP on one process: the token and centerness terms are divided by the number of positive
anchors in the batch (at least 1), the GIoU term by the sum of the positives' centerness targets, and the GIoU
term is then weighted by 2 (ATSS.REG_LOSS_WEIGHT). GLIP also gives unmatched anchors a target of 1 at the last of
its 256 token positions (a "no object" slot); that position is padding in any prompt shorter than 256 tokens and
the text mask drops it, so the slot is left out here: unmatched anchors have all-zero token targets.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from sdpt.detector.glip.box_coder import box_iou, decode, encode

logger = logging.getLogger(__name__)

# Candidates per level: the anchors whose centres are nearest a box's centre (GLIP: ATSS.TOPK x 1 anchor per place).
ATSS_TOPK = 9
# A candidate's centre must lie this many pixels inside the box on every side.
CENTRE_INSIDE_MARGIN = 0.01
# Token focal loss (DYHEAD.FUSE_CONFIG.TOKEN_ALPHA / TOKEN_GAMMA).
FOCAL_ALPHA = 0.25
FOCAL_GAMMA = 2.0
# Term weights: DOT_PRODUCT_TOKEN_LOSS_WEIGHT, ATSS.REG_LOSS_WEIGHT, and the centerness term as it comes.
TOKEN_LOSS_WEIGHT = 1.0
REG_LOSS_WEIGHT = 2.0
CENTERNESS_LOSS_WEIGHT = 1.0
# Keeps GIoU finite for empty boxes, as in GLIP.
GIOU_EPS = 1e-7


def atss_assign(anchors: torch.Tensor, level_counts: Sequence[int], gt_boxes: torch.Tensor,
                topk: int = ATSS_TOPK) -> torch.Tensor:
    """The index of the box each anchor learns from, or -1 for background: (A,) long.

    For each box: the `topk` anchors per level whose centres are nearest the box's centre are candidates; those
    whose IoU reaches the mean + standard deviation of the candidates' IoUs, and whose centre lies inside the box,
    are positive. An anchor positive for several boxes takes the one it overlaps most.
    """
    num_anchors = anchors.shape[0]
    if sum(level_counts) != num_anchors:
        raise ValueError(f"level_counts sum to {sum(level_counts)}, but there are {num_anchors} anchors")
    matched = torch.full((num_anchors,), -1, dtype=torch.long, device=anchors.device)
    num_gt = gt_boxes.shape[0]
    if num_gt == 0:
        return matched
    anchors = anchors.to(gt_boxes.dtype)
    ious = box_iou(anchors, gt_boxes)  # (A, n)
    anchor_centres = (anchors[:, :2] + anchors[:, 2:]) / 2
    gt_centres = (gt_boxes[:, :2] + gt_boxes[:, 2:]) / 2
    # Plain differences rather than cdist, whose matrix-product shortcut would reorder near-ties.
    distances = (anchor_centres[:, None, :] - gt_centres[None, :, :]).pow(2).sum(-1).sqrt()

    candidates, start = [], 0
    for count in level_counts:
        nearest = distances[start:start + count].topk(min(topk, count), dim=0, largest=False).indices
        candidates.append(nearest + start)
        start += count
    candidates = torch.cat(candidates)  # (K, n): anchor indices, one column per box
    candidate_ious = ious.gather(0, candidates)
    # Unbiased std, as torch's default in GLIP; the threshold adapts to how well the box's size fits the anchors.
    threshold = candidate_ious.mean(0) + candidate_ious.std(0)
    positive = candidate_ious >= threshold

    cx, cy = anchor_centres[candidates, 0], anchor_centres[candidates, 1]
    sides = torch.stack([cx - gt_boxes[:, 0], cy - gt_boxes[:, 1], gt_boxes[:, 2] - cx, gt_boxes[:, 3] - cy])
    positive &= sides.min(0).values > CENTRE_INSIDE_MARGIN

    box_index = torch.arange(num_gt, device=anchors.device).expand_as(candidates)
    claimed = torch.full_like(ious, float("-inf"))
    rows, cols = candidates[positive], box_index[positive]
    claimed[rows, cols] = ious[rows, cols]
    best_iou, best_box = claimed.max(1)
    return torch.where(best_iou > float("-inf"), best_box, matched)


def token_focal_loss(logits: torch.Tensor, targets: torch.Tensor, text_mask: torch.Tensor | None = None,
                     alpha: float = FOCAL_ALPHA, gamma: float = FOCAL_GAMMA) -> torch.Tensor:
    """Binary sigmoid focal loss of (B, A, T) logits against 0/1 targets, summed over the real tokens of `text_mask`
    (B, T) and over every anchor; not normalised. A negative `alpha` turns the class weighting off."""
    if text_mask is not None:
        keep = (text_mask[:, None, :] > 0).expand_as(logits)
        # Selecting rather than multiplying by the mask: a padded logit that is inf would otherwise turn the sum NaN.
        logits, targets = logits[keep], targets[keep]
    prob = logits.sigmoid()
    cross_entropy = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    prob_of_truth = prob * targets + (1 - prob) * (1 - targets)
    loss = cross_entropy * (1 - prob_of_truth) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss.sum()


def giou_loss(pred_boxes: torch.Tensor, target_boxes: torch.Tensor) -> torch.Tensor:
    """1 - GIoU of each predicted box with its target, both (P, 4) pixel xyxy: (P,). Areas here have no +1 pixel,
    as in GLIP's GIoU; a predicted box turned inside out is flattened to zero width or height."""
    px0, py0, px1, py1 = pred_boxes.unbind(-1)
    px1, py1 = torch.max(px0, px1), torch.max(py0, py1)
    tx0, ty0, tx1, ty1 = target_boxes.unbind(-1)
    pred_area = (px1 - px0) * (py1 - py0)
    target_area = (tx1 - tx0) * (ty1 - ty0)
    overlap = ((torch.min(px1, tx1) - torch.max(px0, tx0)).clamp(min=0)
               * (torch.min(py1, ty1) - torch.max(py0, ty0)).clamp(min=0))
    enclosing = (torch.max(px1, tx1) - torch.min(px0, tx0)) * (torch.max(py1, ty1) - torch.min(py0, ty0)) + GIOU_EPS
    union = pred_area + target_area - overlap + GIOU_EPS
    giou = overlap / union - (enclosing - union) / enclosing
    return 1 - giou


def centerness_targets(boxes: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """How central each anchor's centre is in its box, (P,) in (0, 1]: sqrt(min(l, r)/max(l, r) * min(t, b)/max(t, b))
    of its distances to the box's sides."""
    cx = (anchors[:, 0] + anchors[:, 2]) / 2
    cy = (anchors[:, 1] + anchors[:, 3]) / 2
    left, top, right, bottom = cx - boxes[:, 0], cy - boxes[:, 1], boxes[:, 2] - cx, boxes[:, 3] - cy
    horizontal = torch.min(left, right) / torch.max(left, right)
    vertical = torch.min(top, bottom) / torch.max(top, bottom)
    return torch.sqrt(horizontal * vertical)


def _per_image_anchors(anchors: torch.Tensor, batch_size: int) -> torch.Tensor:
    return anchors.expand(batch_size, *anchors.shape) if anchors.dim() == 2 else anchors


def _fit_width(token_map: torch.Tensor, width: int) -> torch.Tensor:
    """A (n, T') token map padded with zeros or cut to `width` columns."""
    token_map = token_map[:, :width]
    return F.pad(token_map, (0, width - token_map.shape[1]))


def glip_loss(box_regression: torch.Tensor, centerness: torch.Tensor, dot_product_logits: torch.Tensor,
              anchors: torch.Tensor, level_counts: Sequence[int], text_mask: torch.Tensor | None,
              gt_boxes: Sequence[torch.Tensor], gt_token_maps: Sequence[torch.Tensor], *,
              topk: int = ATSS_TOPK, focal_alpha: float = FOCAL_ALPHA, focal_gamma: float = FOCAL_GAMMA,
              token_loss_weight: float = TOKEN_LOSS_WEIGHT, reg_loss_weight: float = REG_LOSS_WEIGHT,
              centerness_loss_weight: float = CENTERNESS_LOSS_WEIGHT,
              ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The total loss and its weighted parts {"token_focal", "giou", "centerness"} (they sum to the total).

    Shapes as in the module docstring. Computed in float32 whatever the inputs' dtype, as GLIP casts its loss.
    """
    box_regression, centerness, logits = box_regression.float(), centerness.float(), dot_product_logits.float()
    batch_size, num_anchors, num_tokens = logits.shape
    anchors = _per_image_anchors(anchors, batch_size).to(logits.device, torch.float32)

    token_targets = torch.zeros_like(logits)
    positive_anchors, matched_boxes, positive_masks = [], [], []
    for image in range(batch_size):
        boxes = gt_boxes[image].to(logits.device, torch.float32)
        matched = atss_assign(anchors[image], level_counts, boxes, topk)
        positive = matched >= 0
        token_map = _fit_width(gt_token_maps[image].to(logits.device, torch.float32), num_tokens)
        token_targets[image, positive] = token_map[matched[positive]]
        positive_masks.append(positive)
        positive_anchors.append(anchors[image, positive])
        matched_boxes.append(boxes[matched[positive]])
    positive = torch.stack(positive_masks)
    positive_anchors, matched_boxes = torch.cat(positive_anchors), torch.cat(matched_boxes)
    num_positive = positive_anchors.shape[0]
    normaliser = max(float(num_positive), 1.0)

    token_term = token_focal_loss(logits, token_targets, text_mask, focal_alpha, focal_gamma) / normaliser
    pred_deltas, centre_logits = box_regression[positive], centerness[positive]
    if num_positive:
        # Targets pass through the coder as GLIP's do, so a box over 1000/16 times its anchor is seen clamped.
        target_boxes = decode(encode(matched_boxes, positive_anchors), positive_anchors)
        centre_targets = centerness_targets(target_boxes, positive_anchors)
        per_box = giou_loss(decode(pred_deltas, positive_anchors), target_boxes)
        giou_term = (per_box * centre_targets).sum() / centre_targets.sum()
        centre_term = F.binary_cross_entropy_with_logits(centre_logits, centre_targets, reduction="sum") / normaliser
    else:
        logger.debug("no positive anchors in this batch: box and centerness terms are zero")
        # Sums over no elements: zero, yet still part of the graph.
        giou_term, centre_term = pred_deltas.sum(), centre_logits.sum()

    parts = {
        "token_focal": token_loss_weight * token_term,
        "giou": reg_loss_weight * giou_term,
        "centerness": centerness_loss_weight * centre_term,
    }
    return sum(parts.values()), parts
