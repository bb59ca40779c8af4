"""Class names -> BERT-vocabulary text prompts ("[CLS] name1 . name2 . [SEP]") and phrase maps, as every host reads them."""
from __future__ import annotations

import unicodedata

import torch

# Token ids the model treats as phrase delimiters or specials; a class name must never produce them.
_CONTEXT_ID = 103  # [MASK]: stands for a learned context vector (see text_context.py)
_RESERVED_IDS = {0, 101, 102, 103, 1012, 1029}
_DOT_ID = 1012
_CLS_ID = 101
_SEP_ID = 102


# BERT-based hosts hard-code these token ids ([PAD], [CLS], [SEP], ".", "?"); a tokenizer must keep them.
_SPECIAL_IDS = {"[PAD]": 0, "[UNK]": 100, "[CLS]": 101, "[SEP]": 102, "[MASK]": 103, ".": 1012, "?": 1029}


class ClassPromptError(ValueError):
    """A class list or class name that cannot become a text prompt; the message says how to fix it."""


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


def tiny_vocab() -> dict[str, int]:
    """A small WordPiece vocabulary that spells any lower-case ASCII word and keeps Grounding DINO's special ids."""
    pieces = list("abcdefghijklmnopqrstuvwxyz0123456789") + ["##" + c for c in "abcdefghijklmnopqrstuvwxyz0123456789"]
    pieces += list("-_,;:!'\"()/&+") + ["a", "the", "of", "and"]
    vocab: dict[str, int] = {}
    next_id = 1
    for piece in dict.fromkeys(pieces):
        while next_id in _SPECIAL_IDS.values():
            next_id += 1
        if piece not in _SPECIAL_IDS:
            vocab[piece] = next_id
            next_id += 1
    vocab.update(_SPECIAL_IDS)
    # Fill the gaps so ids are dense up to the largest special id (BERT's embedding needs vocab_size > max id).
    used = set(vocab.values())
    for filler in range(max(used) + 1):
        if filler not in used:
            vocab[f"[unused{filler}]"] = filler
    return vocab
