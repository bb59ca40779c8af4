"""GLIP-T's checkpoint layout: the spec built from the architecture's constants (glip_t_spec.py) equals the key list
derived from the official module names (fixtures/glip_t_expected_keys.txt, a copy of the team's reference list),
231,780,222 parameters."""
from pathlib import Path

from tests.sdpt.detector.glip.glip_t_spec import glip_t_spec, parameter_count

REFERENCE = Path(__file__).with_name("fixtures") / "glip_t_expected_keys.txt"


def read_reference() -> dict[str, tuple[int, ...]]:
    entries = {}
    for line in REFERENCE.read_text().splitlines():
        key, shape = line.split(" ", 1)
        entries[key.removeprefix("module.")] = tuple(int(v) for v in shape.strip("()").split(",") if v.strip())
    return entries


def test_the_spec_from_constants_is_glip_t_exactly():
    spec = glip_t_spec()
    assert len(spec) == 745 and parameter_count(spec) == 231_780_222
    reference = read_reference()
    assert set(spec) == set(reference), (sorted(set(spec) - set(reference))[:5], sorted(set(reference) - set(spec))[:5])
    assert {k: v for k, v in spec.items() if reference[k] != v} == {}
