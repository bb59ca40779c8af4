"""Detection with or without a prompt: class lists split over prompts, results merged per image, and each class
answered by the model its prompt's routing names (sdpt/routing.py)."""
from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Callable, Sequence

import torch
from PIL import Image

from sdpt.data import load_image
from sdpt.detector import Detections
from sdpt.methods import PromptMethod

logger = logging.getLogger(__name__)


def _as_images(images: Sequence) -> list[Image.Image]:
    return [image if isinstance(image, Image.Image) else load_image(Path(image)) for image in images]


def _merge(parts: list[Detections], chunks: list[list[int]], class_names: list[str], top_k: int) -> Detections:
    boxes = torch.cat([p.boxes for p in parts])
    scores = torch.cat([p.scores for p in parts])
    classes = torch.cat([torch.tensor(chunk, dtype=torch.long)[p.classes] for p, chunk in zip(parts, chunks)])
    order = scores.argsort(descending=True)[:top_k]
    return Detections(boxes[order], classes[order], scores[order], list(class_names))


def _keep_classes(found: Detections, keep: torch.Tensor) -> Detections:
    chosen = keep[found.classes] if len(found) else torch.zeros(0, dtype=torch.bool)
    return Detections(found.boxes[chosen], found.classes[chosen], found.scores[chosen], found.class_names)


def routed_detections(zero_shot: Detections, prompted: Detections, prompted_mask: torch.Tensor) -> Detections:
    """Each class's detections from the model it is routed to, ranked together by score. Not cut to top-k again:
    each class keeps exactly the detections its own model gave it, so COCO AP (per class) of a routed class is the
    AP of its model."""
    parts = [_keep_classes(zero_shot, ~prompted_mask), _keep_classes(prompted, prompted_mask)]
    boxes = torch.cat([p.boxes for p in parts])
    scores = torch.cat([p.scores for p in parts])
    classes = torch.cat([p.classes for p in parts])
    order = scores.argsort(descending=True)
    return Detections(boxes[order], classes[order], scores[order], list(prompted.class_names))


def route_plan(prompts: Sequence[PromptMethod | None], class_names: list[str], routed: bool = True):
    """(models to run, and per requested prompt: (index of its prompted run or None, prompted mask or None)).

    A prompt whose classes all go to the prompt runs as itself (no extra cost); one whose classes all go to zero-shot
    is answered by the zero-shot run; a mixed one needs both runs, which share the prompt-independent work."""
    runs: list[PromptMethod | None] = []

    def run_index(model) -> int:
        for k, known in enumerate(runs):
            if known is model:
                return k
        runs.append(model)
        return len(runs) - 1

    plan = []
    for prompt in prompts:
        mask = None
        if prompt is not None and routed and prompt.routing is not None:
            mask = torch.tensor(prompt.routing.prompted_mask(class_names), dtype=torch.bool)
        if prompt is None or (mask is not None and not bool(mask.any())):
            plan.append((run_index(None), None))
        elif mask is None or bool(mask.all()):
            plan.append((run_index(prompt), None))
        else:
            plan.append((run_index(prompt), mask))
            run_index(None)
    return runs, plan


@torch.no_grad()
def detect_many(detector, images: Sequence, class_names: list[str], prompts: Sequence[PromptMethod | None],
                threshold: float = 0.3, top_k: int = 100, batch_size: int = 4,
                on_batch: Callable[[int, int], None] | None = None, routed: bool = True) -> list[list[Detections]]:
    """Detections of every image for each entry of `prompts` (None = zero-shot), sharing prompt-independent work.

    A prompt with a routing answers each class with the model its route names (`routed=False`: every class
    prompted). Returns one list per prompt, each with one `Detections` per image.
    """
    requested = prompts
    prompts, plan = route_plan(requested, class_names, routed)
    zero_run = next((k for k, p in enumerate(prompts) if p is None), None)
    detector.model.eval()
    for prompt in prompts:
        if prompt is not None:
            prompt.eval()  # inference mode, whatever state tuning left it in
    context = max((p.context_tokens for p in prompts if p is not None), default=0)
    chunks = detector.class_chunks(class_names, context)
    first_layer = min([p.first_prompted_layer for p in prompts if p is not None], default=0)
    text_free = not any(p.prompts_text_backbone for p in prompts if p is not None)
    cacheable = all(p.cacheable for p in prompts if p is not None)
    results: list[list[Detections]] = [[] for _ in prompts]
    for start in range(0, len(images), batch_size):
        pictures = _as_images(images[start:start + batch_size])
        # The cache lives for one batch: each prompt (and each class chunk) reuses the backbones' work.
        shareable = len(prompts) > 1 or len(chunks) > 1
        cache = detector.prefix_cache(first_layer, cache_text=text_free) if shareable and cacheable else None
        per_prompt = [[[] for _ in pictures] for _ in prompts]
        for chunk in chunks:
            names = [class_names[i] for i in chunk]
            encoded = {}  # prompt text per context length (learned text context needs placeholders)
            for k, prompt in enumerate(prompts):
                context = prompt.context_tokens if prompt is not None else 0
                if context not in encoded:
                    encoded[context] = detector.encode(pictures, [names] * len(pictures), context_tokens=context)
                batch = encoded[context]
                with contextlib.ExitStack() as stack:
                    if cache is not None:
                        stack.enter_context(cache.replay(batch.inputs))
                    if prompt is not None:
                        stack.enter_context(prompt)
                    outputs = detector.forward(batch)
                for i, found in enumerate(detector.decode(outputs, batch, threshold=threshold, top_k=top_k)):
                    per_prompt[k][i].append(found)
        for k in range(len(prompts)):
            results[k] += [_merge(parts, chunks, class_names, top_k) for parts in per_prompt[k]]
        if on_batch is not None:
            on_batch(min(start + batch_size, len(images)), len(images))
    answers = []
    for run, mask in plan:
        if mask is None:
            answers.append(results[run])
        else:
            answers.append([routed_detections(zero, tuned, mask) for zero, tuned in zip(results[zero_run], results[run])])
    return answers


def detect(detector, images: Sequence, class_names: list[str], prompt: PromptMethod | None = None,
           threshold: float = 0.3, top_k: int = 100, batch_size: int = 4) -> list[Detections]:
    """Boxes (pixel xyxy), class names and scores for each image; `prompt=None` is the zero-shot detector."""
    return detect_many(detector, images, class_names, [prompt], threshold, top_k, batch_size)[0]


def detect_both(detector, images: Sequence, class_names: list[str], prompt: PromptMethod,
                threshold: float = 0.3, top_k: int = 100, batch_size: int = 4):
    """(zero-shot, prompted) detections in one call that computes the prompt-independent prefix once."""
    zero_shot, prompted = detect_many(detector, images, class_names, [None, prompt], threshold, top_k, batch_size)
    return zero_shot, prompted
