"""Model outputs -> per-image detections: pixel xyxy boxes, class indices and scores."""
from __future__ import annotations

import torch

from sdpt.detector.detections import Detections


def phrase_scores(logits: torch.Tensor, phrase_map: torch.Tensor) -> torch.Tensor:
    """(queries, text_len) token logits -> (queries, classes) scores: the mean token probability of each phrase."""
    probs = logits.sigmoid().nan_to_num(0.0)
    phrase_map = phrase_map[:, : probs.shape[-1]].to(probs.dtype)
    return probs @ phrase_map.T / phrase_map.sum(-1).clamp(min=1)


def decode_detections(logits, pred_boxes, batch, threshold: float = 0.0, top_k: int = 100) -> list[Detections]:
    """The top-k (query, class) pairs per image above `threshold`, boxes scaled to each original image."""
    results = []
    for image in range(logits.shape[0]):
        scores = phrase_scores(logits[image].float(), batch.phrase_maps[image])  # (queries, classes)
        num_classes = scores.shape[1]
        flat = scores.flatten()
        k = min(top_k, flat.numel())
        top_scores, top_index = flat.topk(k)
        keep = top_scores > threshold
        top_scores, top_index = top_scores[keep], top_index[keep]
        queries, classes = top_index // num_classes, top_index % num_classes
        height, width = batch.image_sizes[image]
        cx, cy, w, h = pred_boxes[image, queries].float().unbind(-1)
        boxes = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)
        boxes = boxes * torch.tensor([width, height, width, height], dtype=boxes.dtype, device=boxes.device)
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, width)
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, height)
        results.append(Detections(boxes.cpu(), classes.cpu(), top_scores.cpu(), list(batch.class_names[image])))
    return results
