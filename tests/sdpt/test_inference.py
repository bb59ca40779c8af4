"""Detection: output format, many classes over several prompts, and zero-shot + prompted in one call."""
import torch

from sdpt.inference import detect, detect_both
from sdpt.methods import build_method
from tests.prompt_helpers import open_up


def test_detections_are_pixel_boxes_with_names(detector, shapes_set):
    sample = shapes_set.samples[0]
    (found,) = detect(detector, [sample.path], shapes_set.class_names, threshold=0.0, top_k=10)
    assert len(found) == 10
    assert (found.boxes[:, 2] >= found.boxes[:, 0]).all() and (found.boxes[:, 2] <= sample.width).all()
    assert (found.boxes[:, 3] <= sample.height).all() and (found.scores[:-1] >= found.scores[1:]).all()
    assert {item["label"] for item in found.to_list()} <= set(shapes_set.class_names)


def test_three_hundred_classes_work(detector, shapes_set):
    names = [f"thing {i}" for i in range(298)] + shapes_set.class_names
    found = detect(detector, [s.path for s in shapes_set.samples[:2]], names, threshold=0.0, top_k=50)
    assert all(len(f) == 50 for f in found)
    assert max(int(f.classes.max()) for f in found) < len(names)
    assert len({int(c) for f in found for c in f.classes}) > 1


def test_both_in_one_call_equals_two_calls(detector, shapes_set):
    prompt = open_up(build_method("sdpt", detector, {"layers": [-1]}))
    images = [s.path for s in shapes_set.samples]
    zero_shot, prompted = detect_both(detector, images, shapes_set.class_names, prompt, threshold=0.0, top_k=20)
    alone_zero = detect(detector, images, shapes_set.class_names, None, threshold=0.0, top_k=20)
    alone_prompted = detect(detector, images, shapes_set.class_names, prompt, threshold=0.0, top_k=20)
    for a, b in zip(zero_shot + prompted, alone_zero + alone_prompted):
        assert torch.equal(a.boxes, b.boxes) and torch.equal(a.scores, b.scores)
    assert any(not torch.equal(a.scores, b.scores) for a, b in zip(zero_shot, prompted))


def _same(a, b):
    return torch.equal(a.boxes, b.boxes) and torch.equal(a.scores, b.scores) and torch.equal(a.classes, b.classes)


def test_routing_is_honoured_class_by_class(detector, shapes_set):
    """Zero-shot-routed classes get exactly the zero-shot boxes, prompted ones the prompt's; every class prompted costs
    one prompted run (the zero-shot model does not run); a class the prompt was not tuned with goes to zero-shot."""
    from sdpt.inference import detect_many, route_plan
    from sdpt.routing import by_box_count

    prompt = open_up(build_method("sdpt", detector, {"layers": [-1]}), token_gain=3.0)
    images = [s.path for s in shapes_set.samples]
    names = shapes_set.class_names
    zero = detect(detector, images, names, None, threshold=0.0, top_k=100)
    plain = detect(detector, images, names, prompt, threshold=0.0, top_k=100)
    prompt.routing = by_box_count(names, [1, 1])
    assert route_plan([prompt], names)[0] == [prompt]  # all prompted: no zero-shot run
    assert all(_same(a, b) for a, b in zip(plain, detect(detector, images, names, prompt, threshold=0.0, top_k=100)))
    prompt.routing = by_box_count(names, [1, 0])  # the second class has no box: zero-shot
    routed = detect(detector, images, names, prompt, threshold=0.0, top_k=100)
    for r, z, p in zip(routed, zero, plain):
        for cls, source in ((0, p), (1, z)):
            mine, theirs = r.classes == cls, source.classes == cls
            assert torch.equal(r.scores[mine], source.scores[theirs]) and torch.equal(r.boxes[mine], source.boxes[theirs])
    unrouted = detect_many(detector, images, names, [prompt], threshold=0.0, top_k=100, routed=False)[0]
    assert all(_same(a, b) for a, b in zip(plain, unrouted))
    # a class added after tuning: not in the routing, so zero-shot, with no error
    grown = names + ["green triangle"]
    zero_grown = detect(detector, images, grown, None, threshold=0.0, top_k=100)
    routed_grown = detect(detector, images, grown, prompt, threshold=0.0, top_k=100)
    for r, z in zip(routed_grown, zero_grown):
        mine, theirs = r.classes == 2, z.classes == 2
        assert torch.equal(r.scores[mine], z.scores[theirs])
