"""Image tokens inside boxes at a GLIP fusion layer: shapes per layer; a whole-image box averages every token the
layer's attention reads (after the block's layer norm, mapped by vision_proj); a tiny box takes the finest token under
its centre; boxes given in original pixels land on the padded token grid whatever the image's own size; the hooks go
away, also when the call fails."""
import numpy as np
import pytest
import torch
from PIL import Image

from sdpt.detector.glip.box_features import box_token_features
from sdpt.detector.glip.detector import GlipDetector
from sdpt.detector.glip.fusion import flatten_levels
from sdpt.detector.glip.inputs import encode
from sdpt.detector.glip.model import GlipConfig, GlipModel
from sdpt.detector.grounding_dino.loading import tiny_vocab

NAMES = ["red box", "cat"]


@pytest.fixture(scope="module")
def detector() -> GlipDetector:
    from transformers import BertTokenizer

    torch.manual_seed(0)
    return GlipDetector(GlipModel(GlipConfig.tiny()), BertTokenizer(vocab=tiny_vocab(), do_lower_case=True))


def noise(width: int, height: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


def layer_tokens(detector, image, layer):
    """The layer-normed (T, v_dim) image tokens of `layer`, its level shapes and the batch, recomputed here from the
    maps entering the fusion layer (a hook of this test's own)."""
    seen = {}
    fuse = detector.model.rpn.head.fusion_layers[layer]
    handle = fuse.register_forward_pre_hook(lambda module, args: seen.__setitem__("visual", args[0]["visual"]))
    batch = encode([image], [NAMES], detector.tokenizer, detector.config)
    try:
        with torch.no_grad():
            detector.model(batch.pixel_values, batch.input_ids, batch.attention_mask)
    finally:
        handle.remove()
    sequence, shapes = flatten_levels(seen["visual"])
    with torch.no_grad():
        return fuse.b_attn.layer_norm_v(sequence[0]), shapes, batch


def projected(detector, layer, tokens):
    with torch.no_grad():
        return detector.model.rpn.head.fusion_layers[layer].b_attn.attn.vision_proj(tokens)


def cells_inside(shapes, extent, box) -> torch.Tensor:
    """(T,) which tokens have their cell centre inside `box`, xyxy in resized pixels; each level's cells tile
    `extent` = (rows, columns) in pixels."""
    rows, cols = extent
    x0, y0, x1, y1 = box
    masks = []
    for height, width in shapes:
        ys = (torch.arange(height) + 0.5) * rows / height
        xs = (torch.arange(width) + 0.5) * cols / width
        masks.append((((ys >= y0) & (ys <= y1))[:, None] & ((xs >= x0) & (xs <= x1))[None, :]).reshape(-1))
    return torch.cat(masks)


def resized_box(box, batch) -> list[float]:
    (rh, rw), (oh, ow) = batch.resized_sizes[0], batch.original_sizes[0]
    return [box[0] * rw / ow, box[1] * rh / oh, box[2] * rw / ow, box[3] * rh / oh]


def test_shapes_per_layer_and_a_whole_image_box_is_the_mean_of_all_tokens(detector):
    image = noise(150, 100)  # resized to 128 x 192: no padding, so the whole image is the whole token grid
    w, h = image.width, image.height
    boxes = torch.tensor([[0.0, 0.0, w, h], [0.0, 0.0, w / 2, h / 2], [w / 2, h / 2, w, h]])
    padded = noise(130, 100, seed=1)  # resized to 128 x 166, padded to 128 x 192
    features = box_token_features(detector, [image, image, padded], [boxes, boxes[:0], boxes[1:2]], NAMES, [0, 1])
    width = detector.model.rpn.head.fusion_layers[0].b_attn.attn.vision_proj.out_features
    assert set(features) == {0, 1}
    for layer in (0, 1):
        assert features[layer].shape == (4, width)  # the second image has no boxes
        assert torch.isfinite(features[layer]).all()
        assert not torch.allclose(features[layer][1], features[layer][2])
        tokens, _, batch = layer_tokens(detector, image, layer)
        assert batch.pixel_values.shape[-2:] == batch.resized_sizes[0] == (128, 192)
        assert torch.allclose(features[layer][0], projected(detector, layer, tokens).mean(dim=0), atol=1e-5)
    assert not torch.allclose(features[0][0], features[1][0])
    empty = box_token_features(detector, [image], [boxes[:0]], NAMES, [1])
    assert empty[1].shape == (0, width)


def test_a_tiny_box_takes_the_finest_token_under_its_centre(detector):
    image = noise(130, 100, seed=2)
    tiny = [100.0, 60.0, 100.5, 60.4]  # far smaller than a stride-8 cell
    features = box_token_features(detector, [image], [torch.tensor([tiny])], NAMES, [1])
    tokens, shapes, batch = layer_tokens(detector, image, 1)
    x0, y0, x1, y1 = resized_box(tiny, batch)
    row, col = int((y0 + y1) / 2 // 8), int((x0 + x1) / 2 // 8)  # P3 has stride 8 on the padded image
    assert shapes[0] == (128 // 8, 192 // 8)
    expected = projected(detector, 1, tokens[row * shapes[0][1] + col])
    assert features[1].shape == (1, expected.shape[0])
    assert torch.allclose(features[1][0], expected, atol=1e-5)


def test_boxes_in_original_pixels_land_on_the_same_cells_of_the_padded_grid(detector):
    small = noise(130, 100, seed=3)
    large = small.resize((260, 200), Image.Resampling.NEAREST)  # both resize to 128 x 166, padded to 128 x 192
    boxes = torch.tensor([[60.0, 30.0, 125.0, 90.0], [5.0, 5.0, 50.0, 40.0]])
    layer = 0
    found = {}
    for name, image, image_boxes in (("small", small, boxes), ("large", large, boxes * 2)):
        features = box_token_features(detector, [image], [image_boxes], NAMES, [layer])[layer]
        tokens, shapes, batch = layer_tokens(detector, image, layer)
        assert batch.resized_sizes[0] == (128, 166) and tuple(batch.pixel_values.shape[-2:]) == (128, 192)
        cells = [cells_inside(shapes, (128, 192), resized_box(box.tolist(), batch)) for box in image_boxes]
        found[name] = cells
        # The test discriminates: the resized image's own extent (no padding) would pick other cells.
        assert not torch.equal(cells[0], cells_inside(shapes, (128, 166), resized_box(image_boxes[0].tolist(), batch)))
        for feature, inside in zip(features, cells):
            assert 0 < int(inside.sum()) < len(inside)
            assert torch.allclose(feature, projected(detector, layer, tokens[inside].mean(dim=0)), atol=1e-5)
    assert all(torch.equal(a, b) for a, b in zip(found["small"], found["large"]))


def test_hooks_are_removed_afterwards_also_when_the_call_fails(detector):
    def hooks() -> dict[str, tuple]:  # transformers' BERT keeps hooks of its own; ours must come and go
        return {name: (tuple(module._forward_hooks), tuple(module._forward_pre_hooks))
                for name, module in detector.model.named_modules()}

    before = hooks()
    assert not any(any(pair) for name, pair in before.items() if name.startswith(("backbone", "rpn")))
    image = noise(150, 100)
    box_token_features(detector, [image], [torch.tensor([[0.0, 0.0, 50.0, 50.0]])], NAMES, [0, 1])
    assert hooks() == before
    with pytest.raises(RuntimeError):
        box_token_features(detector, [image], [torch.zeros(1, 3)], NAMES, [0, 1])  # not xyxy: fails after the forward
    assert hooks() == before
