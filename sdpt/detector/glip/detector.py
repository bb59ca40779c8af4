"""A frozen GLIP with its tokenizer: detection of class names in PIL images, end to end, and the loss of a batch.

Many classes are split over several captions (each at most `max_query_len` tokens), as for every host; each
caption's detections come back in the original images' pixels with the class indices of the full list.
"""
from __future__ import annotations

import torch

from sdpt.detector.glip.atss_loss import glip_loss
from sdpt.detector.glip.inputs import GlipBatch, encode
from sdpt.detector.glip.model import GlipConfig, GlipModel
from sdpt.detector.glip.postprocess import glip_detections
from sdpt.detector.detections import Detections
from sdpt.detector.prompts import split_class_names


class GlipDetector:
    def __init__(self, model: GlipModel, tokenizer, model_id: str = "glip"):
        self.model, self.tokenizer, self.model_id = model.eval(), tokenizer, model_id
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)

    @property
    def config(self) -> GlipConfig:
        return self.model.config

    def forward(self, batch: GlipBatch):
        return self.model(batch.pixel_values, batch.input_ids, batch.attention_mask)

    @torch.no_grad()
    def detect(self, images, class_names: list[str], threshold: float = 0.05) -> list[Detections]:
        """Detections of `class_names` in each PIL image, scores >= threshold, boxes in the image's own pixels."""
        chunks = split_class_names(self.tokenizer, class_names, self.config.max_query_len)
        found: list[list[Detections]] = [[] for _ in images]
        for chunk in chunks:
            names = [class_names[k] for k in chunk]
            batch = encode(images, [names] * len(images), self.tokenizer, self.config)
            out = self.forward(batch)
            p = out.predictions
            per_image = glip_detections(p.flat_box_regression(), p.flat_centerness(), p.dot_product_logits,
                                        out.flat_anchors, p.level_counts, batch.class_maps, batch.resized_sizes,
                                        names, pre_nms_threshold=min(threshold, 0.05))
            for k, (detections, scale) in enumerate(zip(per_image, batch.scales)):
                keep = detections.scores >= threshold
                classes = torch.tensor(chunk, dtype=torch.long)[detections.classes[keep]]
                found[k].append(Detections(detections.boxes[keep] / scale, classes, detections.scores[keep],
                                           list(class_names)))
        return [_merged(parts, class_names) for parts in found]

    def loss(self, batch: GlipBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        out = self.forward(batch)
        p = out.predictions
        return glip_loss(p.flat_box_regression(), p.flat_centerness(), p.dot_product_logits, out.flat_anchors,
                         p.level_counts, batch.attention_mask, batch.boxes, batch.token_maps)


def _merged(parts: list[Detections], class_names: list[str]) -> Detections:
    if len(parts) == 1:
        return parts[0]
    boxes = torch.cat([p.boxes for p in parts])
    scores = torch.cat([p.scores for p in parts])
    classes = torch.cat([p.classes for p in parts])
    order = scores.argsort(descending=True)
    return Detections(boxes[order], classes[order], scores[order], list(class_names))
