"""GLIP-T image backbone (Swin-T + FPN): official checkpoint layout, parity with transformers' Swin, output shapes."""
from __future__ import annotations

import math
from pathlib import Path

import torch

from sdpt.detector.glip.backbone import GlipBackbone, GlipBackboneConfig
from sdpt.detector.glip.fpn import FPN
from sdpt.detector.glip.swin import SwinTransformer, relative_position_index
from sdpt.detector.glip.swin_names import swin_from_transformers, swin_to_transformers

REFERENCE = Path(__file__).with_name("fixtures") / "glip_t_expected_keys.txt"  # a copy of the team's list
PREFIX = "module.backbone."

# tiny widths/depths: every stage has a shifted block, heads have >1 channel, window 3 (shift 1)
TINY = dict(embed_dim=16, depths=(2, 2, 2, 2), num_heads=(2, 2, 4, 4), window_size=3, mlp_ratio=2.0)


def reference_backbone_shapes() -> dict[str, tuple[int, ...]]:
    """`backbone.*` entries of the reference file, `module.backbone.` stripped -> shape."""
    shapes = {}
    for line in REFERENCE.read_text().splitlines():
        key, _, shape = line.partition(" ")
        if key.startswith(PREFIX):
            dims = shape.strip().strip("()").split(",")
            shapes[key[len(PREFIX) :]] = tuple(int(d) for d in dims if d.strip())
    return shapes


def official_relative_position_index(window_size: int) -> torch.Tensor:
    """The official formula, pair by pair: (dh + ws - 1) * (2 ws - 1) + (dw + ws - 1) for query minus key offset."""
    tokens = [(h, w) for h in range(window_size) for w in range(window_size)]
    return torch.tensor(
        [
            [(hq - hk + window_size - 1) * (2 * window_size - 1) + (wq - wk + window_size - 1) for hk, wk in tokens]
            for hq, wq in tokens
        ]
    )


def test_glip_t_state_dict_matches_official_keys_and_shapes() -> None:
    expected = reference_backbone_shapes()
    model = GlipBackbone.glip_t()
    actual = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    assert sorted(set(expected) - set(actual)) == []
    assert sorted(set(actual) - set(expected)) == []
    assert {k: v for k, v in actual.items() if v != expected[k]} == {}

    # the only buffers of the backbone are the per-block `relative_position_index` (49 x 49, long); everything else
    # in the reference is a parameter, so parameters = reference entries minus those buffers
    buffers = {name for name, _ in model.named_buffers()}
    assert buffers == {k for k in expected if k.endswith("relative_position_index")}
    expected_params = sum(math.prod(shape) for key, shape in expected.items() if key not in buffers)
    assert sum(p.numel() for p in model.parameters()) == expected_params


def test_official_layout_loads_strictly_and_index_matches_official_formula() -> None:
    model = GlipBackbone.glip_t()
    window = GlipBackboneConfig().window_size
    official_index = official_relative_position_index(window)
    for name, buffer in model.named_buffers():
        assert torch.equal(buffer, official_index), name

    generator = torch.Generator().manual_seed(0)
    official = {
        key: (
            official_index.clone()
            if key.endswith("relative_position_index")
            else torch.randn(shape, generator=generator)
        )
        for key, shape in reference_backbone_shapes().items()
    }
    model.load_state_dict(official, strict=True)
    loaded = model.state_dict()
    assert all(torch.equal(loaded[key], value) for key, value in official.items())


def test_relative_position_index_matches_transformers() -> None:
    from transformers.models.swin.modeling_swin import SwinRelativePositionBias

    for window in (2, 3, 7):
        assert torch.equal(relative_position_index(window), official_relative_position_index(window))
        hf = SwinRelativePositionBias(num_heads=1, window_size=(window, window))._create_relative_position_index()
        assert torch.equal(relative_position_index(window), hf)


def test_swin_matches_transformers_swin_backbone() -> None:
    from transformers import SwinBackbone, SwinConfig

    torch.manual_seed(0)
    ours = SwinTransformer(**TINY, drop_path_rate=0.0, out_indices=(1, 2, 3)).eval()
    # random (non-identity) norms and biases, so a swapped mapping cannot pass by accident
    with torch.no_grad():
        for param in ours.parameters():
            param.add_(0.1 * torch.randn_like(param))
    config = SwinConfig(
        image_size=64,
        patch_size=4,
        embed_dim=TINY["embed_dim"],
        depths=list(TINY["depths"]),
        num_heads=list(TINY["num_heads"]),
        window_size=TINY["window_size"],
        mlp_ratio=TINY["mlp_ratio"],
        drop_path_rate=0.0,
        out_features=["stage2", "stage3", "stage4"],  # transformers' stage k+1 is our stage k
        attn_implementation="eager",
    )
    theirs = SwinBackbone(config).eval()
    missing, unexpected = theirs.load_state_dict(swin_to_transformers(ours.state_dict()), strict=False)
    # SwinModel's final `swin.layernorm` is not used by SwinBackbone and has no GLIP counterpart
    assert all(key.startswith("swin.layernorm.") for key in missing) and unexpected == []

    # not a multiple of the patch (4) or of the window (3) at any stage; the last stage (2x2) is smaller than the
    # window, which both pad to 3x3 and still shift (SwinBackbone always partitions, like GLIP)
    images = torch.randn(2, 3, 37, 53)
    with torch.no_grad():
        out = theirs(images, output_hidden_states=True)
        raw = ours.stage_outputs(images)
        normed = ours(images)
    # hidden_states: [stem, stage1..stage4], each stage before its patch merging and without output norm
    assert len(out.hidden_states) == len(raw) + 1
    for mine, ref in zip(raw, out.hidden_states[1:]):
        assert mine.shape == ref.shape
        torch.testing.assert_close(mine, ref, atol=1e-5, rtol=1e-5)
    # feature_maps: the same maps after the per-output LayerNorm (GLIP's norm{i} = transformers' hidden_states_norms)
    for mine, ref in zip(normed, out.feature_maps, strict=True):
        torch.testing.assert_close(mine, ref, atol=1e-5, rtol=1e-5)


def test_transformers_key_mapping_round_trips() -> None:
    ours = SwinTransformer(**TINY, out_indices=(1, 2, 3))
    state = ours.state_dict()
    mapped = swin_to_transformers(state)
    assert all(".qkv." not in key and "relative_position_index" not in key for key in mapped)
    back = swin_from_transformers(mapped, window_size=TINY["window_size"])
    assert back.keys() == state.keys()
    assert all(torch.equal(back[key], value) for key, value in state.items())
    ours.load_state_dict(back, strict=True)


def test_pyramid_shapes_on_odd_image() -> None:
    torch.manual_seed(0)
    model = GlipBackbone(**TINY, fpn_channels=8).eval()
    height, width = 100, 130
    with torch.no_grad():
        pyramid = model(torch.randn(1, 3, height, width))
    assert model.strides == (8, 16, 32, 64, 128)
    assert [tuple(p.shape) for p in pyramid] == [
        (1, 8, math.ceil(height / s), math.ceil(width / s)) for s in model.strides
    ]
    # P6 from P5 (not from C5), and ReLU only on the way into P7
    top = model.fpn.top_blocks
    with torch.no_grad():
        torch.testing.assert_close(pyramid[3], top.p6(pyramid[2]))
        torch.testing.assert_close(pyramid[4], top.p7(torch.relu(pyramid[3])))


def test_fpn_module_names_follow_official_numbering() -> None:
    fpn = FPN(in_channels=(4, 8, 16), out_channels=8)
    names = {name.split(".")[0] for name, _ in fpn.named_parameters()}
    assert names == {f"fpn_{kind}{k}" for kind in ("inner", "layer") for k in (2, 3, 4)} | {"top_blocks"}


def test_stochastic_layers_only_in_training() -> None:
    torch.manual_seed(0)
    model = GlipBackbone(**TINY, fpn_channels=8, drop_path_rate=0.5, drop_block_prob=0.3)
    images = torch.randn(2, 3, 48, 64)
    with torch.no_grad():
        model.eval()
        first, second = model(images), model(images)
        model.train()
        noisy = model(images)
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    assert not all(torch.allclose(a, b) for a, b in zip(first, noisy))


def test_gradient_checkpointing_gives_same_outputs_and_gradients() -> None:
    torch.manual_seed(0)
    plain = GlipBackbone(**TINY, fpn_channels=8, drop_path_rate=0.0, drop_block_prob=0.0).train()
    checkpointed = GlipBackbone(**TINY, fpn_channels=8, drop_path_rate=0.0, drop_block_prob=0.0, use_checkpoint=True)
    checkpointed.load_state_dict(plain.state_dict())
    checkpointed.train()
    images = torch.randn(1, 3, 40, 40)
    losses = [sum(p.square().mean() for p in m(images)) for m in (plain, checkpointed)]
    for loss in losses:
        loss.backward()
    torch.testing.assert_close(losses[0], losses[1])
    grads = [dict((n, p.grad) for n, p in m.named_parameters()) for m in (plain, checkpointed)]
    for name, grad in grads[0].items():
        torch.testing.assert_close(grad, grads[1][name], msg=name)
