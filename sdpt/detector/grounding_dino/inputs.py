"""Grounding DINO's inputs: images through its image processor, class prompts and normalised box labels."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from sdpt.detector.prompts import prompt_ids


@dataclass
class EncodedBatch:
    """Model inputs for a batch of images, each with its own class prompt.

    `phrase_maps[i]` is (num_classes_i, text_len) with 1 where a token belongs to class k of image i;
    `labels[i]` has `class_labels` (phrase indices into image i's prompt) and `boxes` (cx, cy, w, h) normalised to
    the image's own size, which is what the model predicts relative to (its valid, unpadded area).
    """

    inputs: dict[str, torch.Tensor]
    class_names: list[list[str]]
    image_sizes: list[tuple[int, int]]  # (height, width) of each original image
    phrase_maps: list[torch.Tensor]
    labels: list[dict[str, torch.Tensor]] | None = None

    def to(self, device: torch.device) -> "EncodedBatch":
        self.inputs = {k: v.to(device) for k, v in self.inputs.items()}
        self.phrase_maps = [m.to(device) for m in self.phrase_maps]
        if self.labels is not None:
            self.labels = [{k: v.to(device) for k, v in label.items()} for label in self.labels]
        return self


def encode_batch(detector, images, class_names: list[list[str]], targets=None, context_tokens: int = 0
                 ) -> EncodedBatch:
    """Encode PIL images, each with its class list, and optional targets into model inputs on the detector's device.

    `targets[i]` is a dict with `boxes` (n, 4) pixel xyxy in the original image and `classes` (n,) indices into
    `class_names[i]`.
    """
    max_text_len = detector.config.max_text_len
    encoded = [prompt_ids(detector.tokenizer, names, max_text_len, context_tokens) for names in class_names]
    longest = max(len(ids) for ids, _ in encoded)
    input_ids = torch.zeros(len(images), longest, dtype=torch.long)
    attention_mask = torch.zeros(len(images), longest, dtype=torch.long)
    for row, (ids, _) in enumerate(encoded):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        attention_mask[row, : len(ids)] = 1
    pixels = detector.image_processor(images=images, return_tensors="pt")
    inputs = {
        "pixel_values": pixels["pixel_values"],
        "pixel_mask": pixels["pixel_mask"],
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "token_type_ids": torch.zeros_like(input_ids),
    }
    sizes = [(image.height, image.width) for image in images]
    labels = None
    if targets is not None:
        labels = [_normalised_labels(target, size) for target, size in zip(targets, sizes)]
    batch = EncodedBatch(inputs, [list(n) for n in class_names], sizes, [m for _, m in encoded], labels)
    return batch.to(detector.device)


def _normalised_labels(target, size: tuple[int, int]) -> dict[str, torch.Tensor]:
    height, width = size
    boxes = torch.as_tensor(target["boxes"], dtype=torch.float32).reshape(-1, 4)
    x0, y0, x1, y1 = boxes.unbind(-1)
    normalised = torch.stack([(x0 + x1) / 2 / width, (y0 + y1) / 2 / height, (x1 - x0) / width, (y1 - y0) / height], -1)
    classes = torch.as_tensor(target["classes"], dtype=torch.long).reshape(-1)
    return {"class_labels": classes, "boxes": normalised.clamp(0.0, 1.0)}
