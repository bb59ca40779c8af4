"""Caching the prompt-independent prefix of a GLIP forward pass: the Swin + FPN features and BERT's output.

Every GLIP fusion layer sits in the dynamic head, after both backbones, so whatever layer a prompt starts at, the
image backbone (with its FPN) and the language backbone never depend on it. Inside `GlipPrefixCache.replay(inputs)`
those two return what they returned the last time they saw the same inputs. The frozen model is in eval mode, so a
replayed output equals a recomputed one exactly. A method that prompts BERT's input (learned text context) gets
only the image side cached (`cache_text=False`).
"""
from __future__ import annotations

from collections import OrderedDict
from contextlib import contextmanager

import torch

from sdpt.detector.prefix_store import content_key, detached


class GlipPrefixCache:
    def __init__(self, detector, cache_text: bool = True, max_entries: int = 256):
        self.detector = detector
        self.cache_text = cache_text
        self.max_entries = max_entries
        self._store: dict[str, OrderedDict] = {"vision": OrderedDict(), "text": OrderedDict()}
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
        value = detached(compute())
        store[key] = value
        while len(store) > self.max_entries:
            store.popitem(last=False)
        return value

    @contextmanager
    def replay(self, inputs: dict[str, torch.Tensor]):
        """Within this block, a forward of the model on `inputs` reuses the cached backbones (filling them if new)."""
        model = self.detector.model
        vision_key = content_key(inputs["pixel_values"])
        text_key = content_key(inputs["input_ids"], inputs["attention_mask"])
        patched = []
        backbone, backbone_forward = model.backbone, model.backbone.forward

        def cached_backbone(pixel_values):
            # The head reads the level list; hand out a copy so the cache keeps what it stored.
            return list(self._lookup("vision", vision_key, lambda: list(backbone_forward(pixel_values))))

        backbone.forward = cached_backbone
        patched.append(backbone)
        if self.cache_text:
            language, language_forward = model.language_backbone, model.language_backbone.forward

            def cached_language(input_ids, attention_mask):
                return dict(self._lookup("text", text_key, lambda: language_forward(input_ids, attention_mask)))

            language.forward = cached_language
            patched.append(language)
        try:
            yield self
        finally:
            for module in patched:
                module.__dict__.pop("forward", None)
