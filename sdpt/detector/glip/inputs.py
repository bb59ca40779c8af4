"""What GLIP is fed: images resized as GLIP's test transform does (shorter side to `min_size`, longer at most
`max_size`), turned into BGR 0..255, normalised and padded to a multiple of `size_divisibility`; class names as one
"[CLS] name1 . name2 . [SEP]" caption with a (classes, tokens) map of which tokens spell each class (BERT's vocabulary,
as sdpt.detector.prompts builds it for every host); and boxes in the resized images' pixels.

Captions are padded to the longest in the batch, not to 256 as GLIP's PAD_MAX does: padded tokens are masked for
the image side of the fusion and in BERT, and no class map points at them, so real outputs do not change.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from sdpt.detector.glip.model import GlipConfig
from sdpt.detector.prompts import prompt_ids


@dataclass
class GlipBatch:
    pixel_values: torch.Tensor  # (B, 3, H, W), normalised, padded
    input_ids: torch.Tensor  # (B, T)
    attention_mask: torch.Tensor  # (B, T)
    class_maps: list[torch.Tensor]  # per image (C_i, T): 1 where a token spells class c
    resized_sizes: list[tuple[int, int]]  # (height, width) of each image after resizing, before padding
    original_sizes: list[tuple[int, int]]
    class_names: list[list[str]]
    boxes: list[torch.Tensor] | None = None  # per image (n, 4) xyxy in resized pixels
    token_maps: list[torch.Tensor] | None = None  # per image (n, T): the tokens of each box's class

    @property
    def scales(self) -> list[float]:
        return [r[0] / o[0] for r, o in zip(self.resized_sizes, self.original_sizes)]

    @property
    def inputs(self) -> dict[str, torch.Tensor]:
        """The model's input tensors by name (what a cache keys on, and where token ids are read)."""
        return {"pixel_values": self.pixel_values, "input_ids": self.input_ids, "attention_mask": self.attention_mask}

    @property
    def phrase_maps(self) -> list[torch.Tensor]:
        """Every host's name for the per-image (classes, tokens) maps."""
        return self.class_maps

    def to(self, device) -> "GlipBatch":
        self.pixel_values = self.pixel_values.to(device)
        self.input_ids, self.attention_mask = self.input_ids.to(device), self.attention_mask.to(device)
        self.class_maps = [m.to(device) for m in self.class_maps]
        if self.boxes is not None:
            self.boxes = [b.to(device) for b in self.boxes]
            self.token_maps = [m.to(device) for m in self.token_maps]
        return self


def resized_size(height: int, width: int, min_size: int, max_size: int) -> tuple[int, int]:
    """GLIP's test-time size: the shorter side to `min_size` unless the longer would pass `max_size`."""
    short, long = min(height, width), max(height, width)
    target = float(min_size)
    if long / short * target > max_size:
        target = round(max_size * short / long)
    if width <= height:
        return int(target * height / width), int(target)
    return int(target), int(target * width / height)


def pixel_batch(images, config: GlipConfig) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    """PIL images -> normalised BGR tensors padded to a common size, and each image's resized (height, width)."""
    from PIL import Image

    tensors, sizes = [], []
    mean = torch.tensor(config.pixel_mean).view(3, 1, 1)
    std = torch.tensor(config.pixel_std).view(3, 1, 1)
    for image in images:
        height, width = resized_size(image.height, image.width, config.min_size, config.max_size)
        resized = image.convert("RGB").resize((width, height), Image.Resampling.BILINEAR)
        rgb = torch.frombuffer(bytearray(resized.tobytes()), dtype=torch.uint8).view(height, width, 3)
        bgr = rgb.permute(2, 0, 1).flip(0).float()  # GLIP's TO_BGR255: BGR channels, 0..255
        tensors.append((bgr - mean) / std)
        sizes.append((height, width))
    step = config.size_divisibility
    tall = -(-max(h for h, _ in sizes) // step) * step
    wide = -(-max(w for _, w in sizes) // step) * step
    batch = torch.zeros(len(tensors), 3, tall, wide)
    for k, tensor in enumerate(tensors):
        batch[k, :, : tensor.shape[1], : tensor.shape[2]] = tensor
    return batch, sizes


def encode(images, class_names: list[list[str]], tokenizer, config: GlipConfig, targets=None,
           context_tokens: int = 0) -> GlipBatch:
    """Images with their class lists (and optional targets: `boxes` (n, 4) pixel xyxy in the original image,
    `classes` (n,) indices into that image's class list) -> a GlipBatch. `context_tokens` placeholders stand before
    each class name for methods that learn text context (see sdpt.detector.prompts.prompt_ids)."""
    pixels, sizes = pixel_batch(images, config)
    encoded = [prompt_ids(tokenizer, names, config.max_query_len, context_tokens) for names in class_names]
    longest = max(len(ids) for ids, _ in encoded)
    input_ids = torch.zeros(len(images), longest, dtype=torch.long)
    attention_mask = torch.zeros(len(images), longest, dtype=torch.long)
    maps = []
    for row, (ids, phrase_map) in enumerate(encoded):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        attention_mask[row, : len(ids)] = 1
        maps.append(phrase_map[:, :longest].float())
    batch = GlipBatch(pixels, input_ids, attention_mask, maps, sizes, [(i.height, i.width) for i in images],
                      [list(n) for n in class_names])
    if targets is not None:
        batch.boxes, batch.token_maps = [], []
        for target, scale, class_map in zip(targets, batch.scales, maps):
            boxes = torch.as_tensor(target["boxes"], dtype=torch.float32).reshape(-1, 4) * scale
            classes = torch.as_tensor(target["classes"], dtype=torch.long).reshape(-1)
            batch.boxes.append(boxes)
            batch.token_maps.append(class_map[classes])
    return batch
