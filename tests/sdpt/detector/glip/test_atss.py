"""GLIP's ATSS loss and post-processing on hand-made tensors: the assignment worked out by hand, the focal loss
against a literal restatement, the box coder's round trip and clamps, the GIoU and centerness terms, the class
scores and NMS of post-processing, and a loss that falls under a few optimiser steps."""
import math

import pytest
import torch

from sdpt.detector.glip.atss_loss import (
    atss_assign, centerness_targets, giou_loss, glip_loss, token_focal_loss,
)
from sdpt.detector.glip.box_coder import BBOX_XFORM_CLIP, box_iou, clip_to_image, decode, encode
from sdpt.detector.glip.postprocess import class_scores, glip_detections

# Boxes in these cases share the rows 0..9, so an IoU is the overlap of the x ranges over their union
# (pixels counted inclusively: x0..x1 is x1 - x0 + 1 wide).
ROWS = (0.0, 9.0)


def strip(*x_ranges: tuple[float, float]) -> torch.Tensor:
    return torch.tensor([[x0, ROWS[0], x1, ROWS[1]] for x0, x1 in x_ranges])


def grid_anchors(image: int, strides_and_sizes: list[tuple[int, int]]) -> tuple[torch.Tensor, list[int]]:
    """Square anchors centred on each level's grid, finest level first."""
    levels = []
    for stride, size in strides_and_sizes:
        centres = (torch.arange(image // stride) + 0.5) * stride
        cy, cx = torch.meshgrid(centres, centres, indexing="ij")
        half = (size - 1) / 2
        levels.append(torch.stack([cx - half, cy - half, cx + half, cy + half], -1).reshape(-1, 4))
    return torch.cat(levels), [len(level) for level in levels]


# ---- ATSS assignment -------------------------------------------------------------------------------------------

def test_atss_picks_the_anchor_of_the_right_level_and_the_threshold_drops_the_half_overlaps():
    # Box x 10..29 (centre 19.5). Level 0 (10 px anchors): the 2 nearest are 10..19 and 20..29, IoU 10/20 = 0.5
    # each, centres inside. Level 1 (20 px): the 2 nearest are 10..29 (IoU 1) and 30..49 (IoU 0); -20..-1 is
    # farther. Candidate IoUs 0.5, 0.5, 1, 0: mean 0.5, unbiased std sqrt(0.5/3) = 0.408, threshold 0.908.
    anchors = strip((0, 9), (10, 19), (20, 29), (30, 39), (10, 29), (30, 49), (-20, -1))
    gt = strip((10, 29))
    matched = atss_assign(anchors, [4, 3], gt, topk=2)
    assert matched.tolist() == [-1, -1, -1, -1, 0, -1, -1]
    candidate_ious = torch.tensor([0.5, 0.5, 1.0, 0.0])
    assert candidate_ious.mean() + candidate_ious.std() == pytest.approx(0.5 + math.sqrt(0.5 / 3))
    assert box_iou(anchors[[1, 2, 4, 5]], gt).squeeze(1).tolist() == pytest.approx(candidate_ious.tolist())


def test_an_anchor_above_the_threshold_whose_centre_is_outside_the_box_is_background():
    # Box x 0..9. Anchor -10..9: IoU 10/20 = 0.5, centre -0.5 (outside). 4..5: IoU 0.2, centre inside. Two far
    # anchors at IoU 0. Threshold: mean 0.175 + std 0.236 = 0.411 < 0.5, so only the centre rule rejects it.
    anchors = strip((-10, 9), (4, 5), (20, 29), (-30, -21))
    ious = box_iou(anchors, strip((0, 9))).squeeze(1)
    assert ious.tolist() == pytest.approx([0.5, 0.2, 0.0, 0.0])
    assert float(ious[0]) > float(ious.mean() + ious.std())
    assert atss_assign(anchors, [4], strip((0, 9))).tolist() == [-1, -1, -1, -1]
    # Widen the box to x -2..9: the same anchor's centre is now inside (IoU 12/20 = 0.6) and it is positive.
    assert atss_assign(anchors, [4], strip((-2, 9))).tolist() == [0, -1, -1, -1]


def test_an_anchor_positive_for_two_boxes_takes_the_one_it_overlaps_most():
    # Anchor 0..9 is positive for box 0..9 (IoU 1) and for box 0..19 (IoU 0.5, threshold 0.167 + 0.289).
    anchors = strip((0, 9), (40, 49), (60, 69))
    assert atss_assign(anchors, [3], strip((0, 19), (0, 9))).tolist() == [1, -1, -1]
    assert atss_assign(anchors, [3], strip((0, 9), (0, 19))).tolist() == [0, -1, -1]
    assert atss_assign(anchors, [3], strip((0, 19))).tolist() == [0, -1, -1]


def test_no_boxes_leaves_every_anchor_background():
    assert atss_assign(strip((0, 9), (10, 19)), [2], torch.zeros(0, 4)).tolist() == [-1, -1]


# ---- focal loss ------------------------------------------------------------------------------------------------

def literal_focal(logits, targets, mask, alpha=0.25, gamma=2.0):
    total = 0.0
    for b in range(logits.shape[0]):
        for a in range(logits.shape[1]):
            for t in range(logits.shape[2]):
                if not mask[b, t]:
                    continue
                p = 1 / (1 + math.exp(-float(logits[b, a, t])))
                if targets[b, a, t] == 1:
                    total += -alpha * (1 - p) ** gamma * math.log(p)
                else:
                    total += -(1 - alpha) * p ** gamma * math.log(1 - p)
    return total


def test_token_focal_loss_matches_its_definition_and_skips_padded_tokens():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 5) * 3
    targets = (torch.rand(2, 3, 5) > 0.6).float()
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 0]])
    logits[mask[:, None, :].expand_as(logits) == 0] = float("inf")  # padding never reaches the sum
    expected = literal_focal(logits, targets, mask)
    assert float(token_focal_loss(logits, targets, mask)) == pytest.approx(expected, rel=1e-5)


def test_the_token_term_is_the_focal_sum_over_the_number_of_positives():
    # Two images built like the first ATSS case: one positive anchor each (index 4), so the sum is divided by 2.
    torch.manual_seed(1)
    anchors = strip((0, 9), (10, 19), (20, 29), (30, 39), (10, 29), (30, 49), (-20, -1))
    logits = torch.randn(2, 7, 4)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    maps = [torch.tensor([[0.0, 1, 1]]), torch.tensor([[1.0, 0, 0, 1]])]  # the first is narrower than T
    _, parts = glip_loss(torch.zeros(2, 7, 4), torch.zeros(2, 7), logits, anchors, [4, 3], mask,
                         [strip((10, 29)), strip((10, 29))], maps, topk=2)
    targets = torch.zeros(2, 7, 4)
    targets[0, 4] = torch.tensor([0.0, 1, 1, 0])
    targets[1, 4] = torch.tensor([1.0, 0, 0, 1])
    assert float(parts["token_focal"]) == pytest.approx(literal_focal(logits, targets, mask) / 2, rel=1e-5)


# ---- box coder -------------------------------------------------------------------------------------------------

def test_box_coder_round_trip_and_a_known_delta():
    torch.manual_seed(2)
    anchors = torch.tensor([[0.0, 0, 9, 9], [20, 30, 83, 93], [5, 5, 36, 68]])
    corner = torch.rand(3, 2) * 50
    boxes = torch.cat([corner, corner + 5 + torch.rand(3, 2) * 100], 1)
    assert torch.allclose(decode(encode(boxes, anchors), anchors), boxes, atol=1e-4)
    # A box the same size as its anchor, 5 px to the right: dx = 10 * 5 / 10 pixels wide = 5, the rest 0.
    assert encode(torch.tensor([[5.0, 0, 14, 9]]), anchors[:1]).tolist() == [[5.0, 0.0, 0.0, 0.0]]
    assert torch.equal(decode(torch.zeros(1, 4), anchors[:1]), anchors[:1])


def test_decode_clamps_growth_and_boxes_clip_to_the_last_pixel():
    anchor = torch.tensor([[0.0, 0, 9, 9]])
    grown = decode(torch.tensor([[0.0, 0, 100.0, 100.0]]), anchor)  # dw / 5 = 20 would be e^20 times wider
    width = math.exp(BBOX_XFORM_CLIP) * 10  # = 625 pixels, inclusive
    assert float(grown[0, 2] - grown[0, 0]) == pytest.approx(width - 1)
    clipped = clip_to_image(torch.tensor([[-5.0, -3, 700, 500], [10, 20, 30, 40]]), (480, 640))
    assert clipped.tolist() == [[0, 0, 639, 479], [10, 20, 30, 40]]


# ---- GIoU and centerness ---------------------------------------------------------------------------------------

def test_giou_is_zero_for_a_perfect_box_and_grows_as_the_box_moves_away():
    target = torch.tensor([[10.0, 10, 50, 40]])
    assert float(giou_loss(target, target)) == pytest.approx(0.0, abs=1e-6)
    losses = [float(giou_loss(target + torch.tensor([shift, 0, shift, 0]), target)) for shift in (2, 8, 20, 40, 60)]
    assert all(a < b for a, b in zip(losses, losses[1:]))
    assert losses[-1] > 1  # disjoint: the enclosing-box penalty takes it past 1 - IoU


def test_centerness_is_one_at_the_centre_and_falls_off_it():
    box = torch.tensor([[0.0, 0, 40, 20]] * 2)
    anchors = torch.tensor([[15.0, 5, 25, 15], [5, 5, 15, 15]])  # centres (20, 10) and (10, 10)
    assert centerness_targets(box, anchors).tolist() == pytest.approx([1.0, math.sqrt(10 / 30)])


def test_a_perfect_regression_leaves_no_giou_term():
    anchors, counts = grid_anchors(64, [(8, 16), (16, 32)])
    gt = torch.tensor([[10.0, 12, 40, 35]])
    regression = encode(gt.expand(len(anchors), 4), anchors)[None]
    total, parts = glip_loss(regression, torch.zeros(1, len(anchors)), torch.zeros(1, len(anchors), 3), anchors,
                             counts, None, [gt], [torch.tensor([[0.0, 1, 0]])])
    assert float(parts["giou"]) == pytest.approx(0.0, abs=1e-5)
    assert float(total) == pytest.approx(sum(float(v) for v in parts.values()))


def test_an_image_without_boxes_has_only_the_token_term():
    anchors, counts = grid_anchors(32, [(8, 16)])
    regression = torch.zeros(1, len(anchors), 4, requires_grad=True)
    total, parts = glip_loss(regression, torch.zeros(1, len(anchors)), torch.zeros(1, len(anchors), 3), anchors,
                             counts, None, [torch.zeros(0, 4)], [torch.zeros(0, 3)])
    values = {name: float(value.detach()) for name, value in parts.items()}
    assert values["giou"] == 0 and values["centerness"] == 0 and values["token_focal"] > 0
    total.backward()


# ---- post-processing -------------------------------------------------------------------------------------------

def logit(p: float) -> float:
    return math.log(p / (1 - p))


def test_class_score_is_the_mean_token_probability_times_centerness_under_a_square_root():
    # Tokens: [CLS] cat ##s dog. Class 0 "cats" = tokens 1, 2; class 1 "dog" = token 3.
    token_maps = torch.tensor([[0.0, 1, 1, 0], [0, 0, 0, 1]])
    probs = [[0.5, 0.9, 0.5, 0.06], [0.5, 0.01, 0.01, 0.01]]
    logits = torch.tensor([[[logit(p) for p in row] for row in probs]])
    assert class_scores(logits[0].sigmoid(), token_maps).flatten().tolist() == pytest.approx([0.7, 0.06, 0.01, 0.01])
    anchors = torch.tensor([[0.0, 0, 9, 9], [50, 50, 59, 59]])
    (found,) = glip_detections(torch.zeros(1, 2, 4), torch.zeros(1, 2), logits, anchors, [2], token_maps,
                               [(100, 100)], ["cats", "dog"])
    # sigmoid(0) = 0.5 of centerness. "dog" (0.06 > 0.05 before centerness) stays though 0.06 * 0.5 is under it.
    assert found.scores.tolist() == pytest.approx([math.sqrt(0.7 * 0.5), math.sqrt(0.06 * 0.5)])
    assert found.classes.tolist() == [0, 1]
    assert found.boxes.tolist() == [[0, 0, 9, 9], [0, 0, 9, 9]]
    assert [d["label"] for d in found.to_list()] == ["cats", "dog"]


def nms_case(shift: float, classes=(0, 0), **kwargs):
    """Two boxes 0..9 and shift..shift+9 (same rows), the first scoring higher, each on its own class token."""
    anchors = strip((0, 9), (shift, shift + 9))
    logits = torch.full((1, 2, 2), -10.0)
    logits[0, 0, classes[0]], logits[0, 1, classes[1]] = 3.0, 2.0
    (found,) = glip_detections(torch.zeros(1, 2, 4), torch.zeros(1, 2), logits, anchors, [2], torch.eye(2),
                               [(100, 100)], **kwargs)
    return anchors, found


@pytest.mark.parametrize("iou, kept", [(0.7, 1), (0.5, 2)])
def test_nms_at_0_6_keeps_one_of_two_boxes_at_iou_0_7_and_both_at_0_5(iou, kept):
    shift = 10 * (1 - iou) / (1 + iou)  # inclusive IoU of 0..9 and shift..shift+9 is (10 - s) / (10 + s)
    anchors, found = nms_case(shift)
    assert float(box_iou(anchors[:1], anchors[1:])) == pytest.approx(iou)
    assert len(found) == kept
    assert found.boxes[0].tolist() == [0, 0, 9, 9]


def test_nms_counts_pixels_inclusively_and_works_within_each_class():
    # Shift 2.4: IoU 7.6/12.4 = 0.613 counted inclusively (suppressed), 6.6/11.4 = 0.579 without the +1 pixel.
    assert len(nms_case(2.4)[1]) == 1
    assert len(nms_case(1.0, classes=(0, 1))[1]) == 2


def test_detections_per_image_keeps_the_best():
    _, found = nms_case(30.0, detections_per_image=1)
    assert len(found) == 1 and found.boxes[0].tolist() == [0, 0, 9, 9]


# ---- optimisation ----------------------------------------------------------------------------------------------

def test_the_loss_falls_under_a_few_optimiser_steps():
    torch.manual_seed(3)
    anchors, counts = grid_anchors(64, [(8, 16), (16, 32)])
    num = len(anchors)
    gt = [torch.tensor([[10.0, 12, 40, 35], [44, 40, 60, 62]])]
    token_maps = [torch.tensor([[0.0, 1, 1, 0, 0, 0], [0, 0, 0, 1, 0, 0]])]
    mask = torch.tensor([[1, 1, 1, 1, 1, 0]])
    regression = (torch.randn(1, num, 4) * 0.5).requires_grad_()
    centerness = torch.zeros(1, num, requires_grad=True)
    logits = torch.full((1, num, 6), -2.0, requires_grad=True)
    optimiser = torch.optim.Adam([regression, centerness, logits], lr=0.1)
    history = []
    for _ in range(30):
        total, parts = glip_loss(regression, centerness, logits, anchors, counts, mask, gt, token_maps)
        history.append({name: float(value.detach()) for name, value in parts.items()})
        optimiser.zero_grad()
        total.backward()
        optimiser.step()
    first, last = history[0], history[-1]
    assert sum(last.values()) < 0.5 * sum(first.values())
    assert all(last[name] < first[name] for name in first)
