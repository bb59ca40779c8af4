"""Caching the prompt-independent prefix of a Grounding DINO forward pass.

Everything before the first prompted fusion layer (the Swin and BERT backbones and the encoder layers before it)
does not depend on the prompt. Inside `PrefixCache.replay(inputs)`, those modules return what they returned the
last time they saw the same inputs, instead of running again. The frozen model is in eval mode, so a replayed
output equals a recomputed one exactly.
"""
from __future__ import annotations

from collections import OrderedDict
from contextlib import contextmanager

import torch

from sdpt.detector.prefix_store import content_key as _content_key, detached as _detach


class PrefixCache:
    """Replays the backbones and the first `encoder_layers` encoder layers for inputs seen before.

    encoder_layers: how many encoder layers lie wholly before the first prompted one (0 = only the backbones).
    cache_text: False when a method prompts the text backbone's input (its output then depends on the prompt). The
        encoder layers then depend on the prompt too (their fusion reads the text features), so none is replayed:
        replaying them froze a learned text context at its first value, with no gradient to it (DPT, found
        2026-11-30), and would hand one prompt's encoder output to another with the same placeholder ids.
    max_entries: how many distinct inputs are kept per part (least recently used are dropped).
    """

    def __init__(self, detector, encoder_layers: int, cache_text: bool = True, max_entries: int = 256):
        self.detector = detector
        self.encoder_layers = encoder_layers if cache_text else 0
        self.cache_text = cache_text
        self.max_entries = max_entries
        self._store: dict[str, OrderedDict] = {"vision": OrderedDict(), "text": OrderedDict(), "encoder": OrderedDict()}
        self.hits = 0
        self.misses = 0

    def clear(self) -> None:
        for part in self._store.values():
            part.clear()

    def __len__(self) -> int:
        return len(self._store["vision"])

    def _lookup(self, part: str, key: str, compute):
        store = self._store[part]
        if key in store:
            store.move_to_end(key)
            self.hits += 1
            return store[key]
        self.misses += 1
        value = _detach(compute())
        store[key] = value
        while len(store) > self.max_entries:
            store.popitem(last=False)
        return value

    @contextmanager
    def replay(self, inputs: dict[str, torch.Tensor]):
        """Within this block, a forward of the detector on `inputs` reuses the cached prefix (filling it if new)."""
        model = self.detector.model.model
        vision_key = _content_key(inputs["pixel_values"], inputs["pixel_mask"])
        text_key = _content_key(inputs["input_ids"], inputs["attention_mask"])
        patched = []

        def patch(module, forward):
            module.forward = forward
            patched.append(module)

        backbone = model.backbone
        backbone_forward = backbone.forward

        def cached_backbone(pixel_values, pixel_mask):
            features, positions = self._lookup("vision", vision_key, lambda: backbone_forward(pixel_values, pixel_mask))
            # The model appends extra levels to these lists: hand out copies so the cache stays as stored.
            return list(features), list(positions)

        patch(backbone, cached_backbone)
        if self.cache_text:
            text_backbone = model.text_backbone
            text_forward = text_backbone.forward

            def cached_text(*args, **kwargs):
                return self._lookup("text", text_key, lambda: text_forward(*args, **kwargs))

            patch(text_backbone, cached_text)
        if self.encoder_layers > 0:
            self._patch_encoder(model.encoder.layers, vision_key + text_key, patch)
        try:
            yield self
        finally:
            for module in patched:
                module.__dict__.pop("forward", None)

    def _patch_encoder(self, layers, key: str, patch) -> None:
        last = self.encoder_layers - 1
        cached = key in self._store["encoder"]
        for index in range(self.encoder_layers):
            layer = layers[index]
            original = layer.forward
            if cached and index < last:
                # Its output would only feed the next layer, which is replayed too: pass inputs through unchanged.
                def passthrough(vision_features, *args, text_features=None, **kwargs):
                    return (vision_features, text_features), (None, None, None, None)
                patch(layer, passthrough)
            elif index == last:
                def replay_last(*args, _original=original, **kwargs):
                    return self._lookup("encoder", key, lambda: _original(*args, **kwargs))
                patch(layer, replay_last)
