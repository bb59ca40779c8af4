"""Image tokens inside boxes at a fusion layer: a whole-image box averages every token the layer's attention sees,
and boxes over different objects give different features."""
import torch

from sdpt.detector import box_token_features, encode_batch


def attention_input(detector, image, names, layer):
    """The image tokens the layer's attention receives, captured by a hook of this test's own."""
    seen = {}
    attn = detector.fusion_layers[layer]

    def keep(module, args, kwargs):
        seen["vision"] = args[0] if args else kwargs["vision_features"]

    handle = attn.register_forward_pre_hook(keep, with_kwargs=True)
    try:
        with torch.no_grad():
            detector.model(**encode_batch(detector, [image], [names]).inputs)
    finally:
        handle.remove()
    return seen["vision"][0]


def test_a_whole_image_box_is_the_mean_of_all_tokens(detector, shapes_set):
    sample = shapes_set.samples[0]
    image = sample.load()
    whole = torch.tensor([[0.0, 0.0, float(image.width), float(image.height)]])
    layer = len(detector.fusion_layers) - 1
    features = box_token_features(detector, [image], [whole], shapes_set.class_names, [layer])
    tokens = attention_input(detector, image, shapes_set.class_names, layer)
    with torch.no_grad():
        expected = detector.fusion_layers[layer].vision_proj(tokens).mean(dim=0)
    assert features[layer].shape == (1, detector.fusion_layers[layer].vision_proj.out_features)
    assert torch.allclose(features[layer][0], expected, atol=1e-5)


def test_each_box_gets_its_own_feature_and_tiny_boxes_still_get_one(detector, shapes_set):
    sample = shapes_set.samples[0]
    image = sample.load()
    w, h = image.width, image.height
    boxes = torch.tensor([[0.0, 0.0, w / 2, h / 2], [w / 2, h / 2, w, h], [10.0, 10.0, 10.5, 10.5]])
    features = box_token_features(detector, [image, image], [boxes, boxes[:0]], shapes_set.class_names, [0, 1])
    for layer in (0, 1):
        assert features[layer].shape[0] == 3  # the second image has no boxes
        assert torch.isfinite(features[layer]).all()
        assert not torch.allclose(features[layer][0], features[layer][1])
