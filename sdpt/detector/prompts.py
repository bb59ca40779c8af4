"""Class names -> Grounding DINO text prompts (" . "-separated phrases), phrase maps, labels and model inputs."""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass

import torch

# Token ids the model treats as phrase delimiters or specials; a class name must never produce them.
_CONTEXT_ID = 103  # [MASK]: stands for a learned context vector (see text_context.py)
_RESERVED_IDS = {0, 101, 102, 103, 1012, 1029}
_DOT_ID = 1012
_CLS_ID = 101
_SEP_ID = 102


class ClassPromptError(ValueError):
    """A class list or class name that cannot become a text prompt; the message says how to fix it."""


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


def class_name_ids(tokenizer, name: str) -> list[int]:
    """Token ids of one class name; '.' and '?' (phrase delimiters for the model) are read as spaces."""
    text = unicodedata.normalize("NFKC", str(name)).replace(".", " ").replace("?", " ")
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    ids = [tokenizer.unk_token_id if i in _RESERVED_IDS else i for i in ids]
    if not ids:
        raise ClassPromptError(f"class name {name!r} has no readable characters; give it a name with letters")
    return ids


def check_class_names(names: list[str]) -> None:
    if not names:
        raise ClassPromptError("no classes given; list at least one class name")
    seen: dict[str, str] = {}
    for name in names:
        key = unicodedata.normalize("NFKC", str(name)).strip().casefold()
        if not key:
            raise ClassPromptError("a class name is empty; give every class a name")
        if key in seen:
            raise ClassPromptError(f"class names {seen[key]!r} and {name!r} are the same; make them distinct")
        seen[key] = name


def split_class_names(tokenizer, names: list[str], max_text_len: int, context_tokens: int = 0) -> list[list[int]]:
    """Pack class indices, in order, into as few prompts as fit `max_text_len` tokens each ([CLS] ... [SEP]);
    `context_tokens` placeholders stand before every name when a method learns text context."""
    check_class_names(names)
    chunks: list[list[int]] = [[]]
    used = 2  # [CLS] and [SEP]
    for index, name in enumerate(names):
        cost = context_tokens + len(class_name_ids(tokenizer, name)) + 1  # context, the name, its " ." separator
        if cost + 2 > max_text_len:
            raise ClassPromptError(
                f"class name {name!r} is {cost - 1} tokens long; the model reads at most {max_text_len - 3} per name"
            )
        if used + cost > max_text_len:
            chunks.append([])
            used = 2
        chunks[-1].append(index)
        used += cost
    return chunks


def prompt_ids(tokenizer, names: list[str], max_text_len: int, context_tokens: int = 0
               ) -> tuple[list[int], torch.Tensor]:
    """Input ids of "[CLS] name1 . name2 . [SEP]" and its (num_classes, max_text_len) phrase map.

    With `context_tokens` = M, each phrase is "[MASK] x M name ." (CoOp-style context sits inside the phrase, since
    the model's text attention stays within phrases); the phrase map marks the name tokens only.
    """
    ids = [_CLS_ID]
    phrase_map = torch.zeros(len(names), max_text_len, dtype=torch.long)
    for k, name in enumerate(names):
        ids += [_CONTEXT_ID] * context_tokens
        name_ids = class_name_ids(tokenizer, name)
        phrase_map[k, len(ids) : len(ids) + len(name_ids)] = 1
        ids += name_ids + [_DOT_ID]
    ids.append(_SEP_ID)
    if len(ids) > max_text_len:
        raise ClassPromptError(
            f"{len(names)} class names need {len(ids)} tokens; at most {max_text_len} fit one prompt "
            "(split them with split_class_names)"
        )
    return ids, phrase_map


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
