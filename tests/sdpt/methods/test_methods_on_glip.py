"""Every prompt method on GLIP, the paper's own host, through the same host interface as on Grounding DINO: each
starts as the zero-shot model (bit for bit where its injection starts closed), trains only its own tensors, and
round-trips through a prompt file that records the host."""
import pytest
import torch

from sdpt.inference import detect
from sdpt.methods import METHODS, build_method
from sdpt.prompt_io import PromptFileError, load_prompt, save_prompt
from tests.prompt_helpers import open_up

PROMPT_METHODS = sorted(name for name in METHODS if name != "full")


def _outputs(detector, batch):
    p = detector.forward(batch).predictions
    return p.dot_product_logits, p.flat_box_regression(), p.flat_centerness()


@pytest.fixture(scope="module")
def batch(glip_detector, shapes_set):
    samples = shapes_set.samples[:2]
    return glip_detector.encode([s.load() for s in samples], [shapes_set.class_names] * 2,
                                [{"boxes": s.boxes, "classes": s.classes} for s in samples])


@pytest.mark.parametrize("name", PROMPT_METHODS + ["full"])
def test_starts_as_zero_shot(glip_detector, shapes_set, batch, name):
    with torch.no_grad():
        plain = _outputs(glip_detector, batch)
    prompt = build_method(name, glip_detector)
    if prompt.context_tokens:
        pytest.skip("learned text context changes the prompt text from step 0 (CoOp has no gate)")
    with prompt, torch.no_grad():
        start = _outputs(glip_detector, batch)
    for a, b in zip(start, plain):
        assert torch.equal(a, b), name
    with torch.no_grad():
        after = _outputs(glip_detector, batch)
    assert all(torch.equal(a, b) for a, b in zip(after, plain))  # detached: the host's own outputs again


@pytest.mark.parametrize("injection", ["branch", "shared_gate", "paper"])
def test_sdpt_with_each_injection_trains_only_its_own_tensors(glip_detector, batch, injection):
    prompt = open_up(build_method("sdpt", glip_detector, {"injection": injection, "num_tokens": 4}), 0.1)
    with prompt:
        loss, parts = glip_detector.loss(glip_detector.forward(batch), batch)
    loss.backward()
    assert set(parts) == {"token_focal", "giou", "centerness"}
    assert all(p.grad is None for p in glip_detector.model.parameters())
    grads = {n: p.grad for n, p in prompt.named_parameters() if p.requires_grad}
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads.values()), injection
    assert 0 < prompt.trainable_parameters() < 0.05 * glip_detector.parameter_count()


@pytest.mark.parametrize("name", ["text", "visual", "dual", "upt", "dpt", "fusion"])
def test_other_methods_get_gradients(glip_detector, shapes_set, name):
    prompt = open_up(build_method(name, glip_detector), 0.1)
    samples = shapes_set.samples[:2]
    batch = glip_detector.encode([s.load() for s in samples], [shapes_set.class_names] * 2,
                                 [{"boxes": s.boxes, "classes": s.classes} for s in samples],
                                 context_tokens=prompt.context_tokens)
    with prompt:
        loss, _ = glip_detector.loss(glip_detector.forward(batch), batch)
    loss.backward()
    assert all(p.grad is None for p in glip_detector.model.parameters())
    grads = [p.grad for p in prompt.parameters() if p.requires_grad]
    assert grads and any(g is not None and g.abs().sum() > 0 for g in grads), name


def test_prompt_file_records_the_host_and_refuses_the_other(glip_detector, detector, shapes_set, tmp_path):
    prompt = open_up(build_method("sdpt", glip_detector, {"num_tokens": 4}))
    with torch.no_grad():
        prompt.prototypes.normal_()
    images = [s.path for s in shapes_set.samples[:2]]
    before = detect(glip_detector, images, shapes_set.class_names, prompt, threshold=0.0, top_k=10)
    directory = save_prompt(prompt, tmp_path / "glip", shapes_set.class_names)
    loaded, config = load_prompt(directory, glip_detector)
    assert config["host"] == "glip"
    after = detect(glip_detector, images, shapes_set.class_names, loaded, threshold=0.0, top_k=10)
    for a, b in zip(before, after):
        assert torch.equal(a.boxes, b.boxes) and torch.equal(a.scores, b.scores)
    with pytest.raises(PromptFileError, match="tuned on a GLIP host.*is Grounding DINO"):
        load_prompt(directory, detector)
    gd_dir = save_prompt(build_method("sdpt", detector), tmp_path / "gd", shapes_set.class_names)
    with pytest.raises(PromptFileError, match="tuned on a Grounding DINO host.*is GLIP"):
        load_prompt(gd_dir, glip_detector)
