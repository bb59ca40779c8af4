"""Class names -> prompts: phrase maps, splitting long class lists, and names that cannot be used."""
import pytest

from sdpt.detector import ClassPromptError, encode_batch, split_class_names
from sdpt.detector.prompts import prompt_ids


def test_phrase_map_marks_each_class_tokens(detector):
    ids, phrase_map = prompt_ids(detector.tokenizer, ["red square", "cat"], detector.config.max_text_len)
    assert ids[0] == 101 and ids[-1] == 102 and ids.count(1012) == 2
    for k in range(2):
        positions = phrase_map[k].nonzero().flatten().tolist()
        assert positions and all(ids[p] not in (101, 102, 1012) for p in positions)
    assert not (phrase_map[0] & phrase_map[1]).any()


def test_three_hundred_classes_split_into_prompts_that_fit(detector):
    names = [f"class number {i}" for i in range(300)]
    chunks = split_class_names(detector.tokenizer, names, detector.config.max_text_len)
    assert len(chunks) > 1
    assert sorted(i for chunk in chunks for i in chunk) == list(range(300))
    for chunk in chunks:
        ids, _ = prompt_ids(detector.tokenizer, [names[i] for i in chunk], detector.config.max_text_len)
        assert len(ids) <= detector.config.max_text_len


def test_odd_unicode_and_delimiters_in_names_are_safe(detector, shapes_set):
    names = ["Zelle (Typ Ä)", "细胞", "St. John's wort?", "emoji 🦠"]
    batch = encode_batch(detector, [shapes_set.samples[0].load()], [names])
    ids = batch.inputs["input_ids"][0].tolist()
    assert ids.count(1012) == len(names)  # exactly one delimiter per class: '.' and '?' inside names are not
    assert batch.phrase_maps[0].sum(-1).min() >= 1


@pytest.mark.parametrize("names, message", [
    ([], "no classes"),
    (["cat", "  "], "empty"),
    (["Cat", "cat"], "the same"),
    (["\u200b"], "no readable characters"),
])
def test_unusable_class_lists_are_refused(detector, names, message):
    with pytest.raises(ClassPromptError, match=message):
        split_class_names(detector.tokenizer, names, detector.config.max_text_len)
