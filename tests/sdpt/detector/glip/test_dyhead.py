"""GLIP-T's DyConv block, head output layers and anchor generator: checkpoint names and shapes, the deformable
offsets' truncated read (against an element-by-element restatement of maskrcnn_benchmark's CUDA kernel), the token
logits formula, and the cell anchors' values."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import deform_conv2d

from sdpt.detector.glip.anchors import AnchorGenerator, cell_anchors_for_level
from sdpt.detector.glip.dyconv import DyConv, DyReLU, ModulatedDeformConv, read_as_output_size
from sdpt.detector.glip.head_outputs import HeadOutputs

REFERENCE = Path(__file__).with_name("fixtures") / "glip_t_expected_keys.txt"  # a copy of the team's list


def _reference_entries(prefix: str) -> dict[str, tuple[int, ...]]:
    entries = {}
    for line in REFERENCE.read_text().splitlines():
        key, shape = line.split(" ", 1)  # "name (d0, d1, ...)"
        if key.startswith(prefix):
            entries[key[len(prefix):]] = tuple(int(n) for n in shape.strip("()").split(",") if n)
    return entries


def _shapes(module: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {key: tuple(value.shape) for key, value in module.state_dict().items()}


# --- 1. names and shapes -------------------------------------------------------------------------------------------


def test_dyconv_matches_checkpoint_entries():
    expected = _reference_entries("module.rpn.head.dyhead_tower.2.")
    block = DyConv(256, 256)
    assert _shapes(block) == expected
    # upstream calls the norm "bn"; with USE_GN it is a GroupNorm of MODEL.GROUP_NORM.NUM_GROUPS = 16 groups
    for conv in block.DyConv:
        assert isinstance(conv.bn, torch.nn.GroupNorm) and conv.bn.num_groups == 16


def test_head_outputs_match_checkpoint_entries():
    head_entries = _reference_entries("module.rpn.head.")
    expected = {key: shape for key, shape in head_entries.items() if not key.startswith("dyhead_tower.")}
    assert _shapes(HeadOutputs()) == expected


def test_anchor_generator_matches_checkpoint_entries():
    expected = _reference_entries("module.rpn.anchor_generator.")
    generator = AnchorGenerator()
    assert _shapes(generator) == expected
    assert not list(generator.parameters())  # buffers only
    assert all(buffer.dtype == torch.float32 for buffer in generator.buffers())


# --- 2. deformable offsets: reuse across levels and the truncated read ----------------------------------------------


def _bilinear(data: list[float], height: int, width: int, h: float, w: float) -> float:
    # dmcn_im2col_bilinear: corners outside the map count as zero
    h_low, w_low = math.floor(h), math.floor(w)
    h_high, w_high = h_low + 1, w_low + 1
    lh, lw = h - h_low, w - w_low
    hh, hw = 1 - lh, 1 - lw
    v1 = data[h_low * width + w_low] if h_low >= 0 and w_low >= 0 else 0.0
    v2 = data[h_low * width + w_high] if h_low >= 0 and w_high <= width - 1 else 0.0
    v3 = data[h_high * width + w_low] if h_high <= height - 1 and w_low >= 0 else 0.0
    v4 = data[h_high * width + w_high] if h_high <= height - 1 and w_high <= width - 1 else 0.0
    return hh * hw * v1 + hh * lw * v2 + lh * hw * v3 + lh * lw * v4


def cuda_modulated_deform_conv(x, offset_memory, mask_memory, weight, bias, stride):
    """maskrcnn_benchmark's modulated_deform_conv_cuda_forward + modulated_deformable_im2col_gpu_kernel, one
    element at a time. offset_memory[b] / mask_memory[b]: the flat memory from the data pointer of offset[b] /
    mask[b] onwards, which the kernel indexes with the OUTPUT's height_col x width_col (no shape check)."""
    batch, channels, height, width = x.shape
    out_channels, kernel = weight.shape[0], weight.shape[2]
    pad = 1
    height_col = (height + 2 * pad - kernel) // stride + 1
    width_col = (width + 2 * pad - kernel) // stride + 1
    out = torch.zeros(batch, out_channels, height_col, width_col, dtype=x.dtype)
    for b in range(batch):
        data_offset = offset_memory[b].tolist()
        data_mask = mask_memory[b].tolist()
        columns = torch.zeros(channels * kernel * kernel, height_col * width_col, dtype=x.dtype)
        for c_im in range(channels):
            data_im = x[b, c_im].reshape(-1).tolist()
            for h_col in range(height_col):
                for w_col in range(width_col):
                    h_in, w_in = h_col * stride - pad, w_col * stride - pad
                    for i in range(kernel):
                        for j in range(kernel):
                            k = i * kernel + j
                            offset_h = data_offset[((2 * k) * height_col + h_col) * width_col + w_col]
                            offset_w = data_offset[((2 * k + 1) * height_col + h_col) * width_col + w_col]
                            mask = data_mask[(k * height_col + h_col) * width_col + w_col]
                            h_im, w_im = h_in + i + offset_h, w_in + j + offset_w
                            val = 0.0
                            if h_im > -1 and w_im > -1 and h_im < height and w_im < width:
                                val = _bilinear(data_im, height, width, h_im, w_im)
                            columns[c_im * kernel * kernel + k, h_col * width_col + w_col] = val * mask
        out[b] = (weight.reshape(out_channels, -1) @ columns).reshape(out_channels, height_col, width_col)
    return out + bias.view(1, -1, 1, 1)


def _memory_from(tensor: torch.Tensor, b: int) -> torch.Tensor:
    """The flat storage of a contiguous tensor from tensor[b]'s data pointer onwards."""
    assert tensor.is_contiguous()
    return tensor.reshape(-1)[b * tensor[0].numel():]


def _offsets_of_bigger_level(generator, batch=2, height=5, width=4):
    # an offset conv's raw output on the bigger level, sliced as DyConv slices it (a non-contiguous view)
    offset_and_mask = torch.randn(batch, 27, height, width, generator=generator, dtype=torch.float64) * 1.5
    return offset_and_mask, offset_and_mask[:, :18], offset_and_mask[:, 18:].sigmoid()


def test_torchvision_refuses_the_bigger_levels_offsets():
    generator = torch.Generator().manual_seed(0)
    _, offset, mask = _offsets_of_bigger_level(generator)
    x_small = torch.randn(2, 2, 3, 2, generator=generator, dtype=torch.float64)
    weight = torch.randn(3, 2, 3, 3, generator=generator, dtype=torch.float64)
    with pytest.raises(RuntimeError, match="offset output dims"):
        deform_conv2d(x_small, offset, weight, padding=(1, 1), mask=mask)


def test_truncated_read_is_the_leading_memory_not_a_crop():
    generator = torch.Generator().manual_seed(1)
    offset_and_mask, offset, mask = _offsets_of_bigger_level(generator)
    read = read_as_output_size(offset, 3, 2)
    for b in range(2):
        # the kernel's index ((2k) * h + y) * w + x over offset[b]'s memory, literally
        memory = _memory_from(offset_and_mask, b)
        for channel in range(18):
            for y in range(3):
                for x in range(2):
                    assert read[b, channel, y, x] == memory[(channel * 3 + y) * 2 + x]
    assert not torch.equal(read, offset[:, :, :3, :2])  # a spatial crop is something else
    assert torch.equal(read_as_output_size(mask, 3, 2)[0].reshape(-1), mask[0].reshape(-1)[: 9 * 3 * 2])
    with pytest.raises(ValueError):
        read_as_output_size(offset, 6, 4)


@pytest.mark.parametrize("stride, small_size", [(1, (3, 2)), (2, (5, 7))])
def test_deformable_conv_equals_cuda_kernel_restatement(stride, small_size):
    generator = torch.Generator().manual_seed(2)
    offset_and_mask, offset, mask = _offsets_of_bigger_level(generator)
    x = torch.randn(2, 2, *small_size, generator=generator, dtype=torch.float64)
    conv = ModulatedDeformConv(2, 3, stride=stride).double()
    with torch.no_grad():
        conv.bias.normal_(generator=generator)
        got = conv(x, offset, mask)
        expected = cuda_modulated_deform_conv(
            x,
            [_memory_from(offset_and_mask, b) for b in range(2)],
            [_memory_from(mask, b) for b in range(2)],
            conv.weight,
            conv.bias,
            stride,
        )
        cropped = deform_conv2d(
            x, offset[:, :, : got.shape[2], : got.shape[3]], conv.weight, conv.bias, stride=stride,
            padding=1, mask=mask[:, :, : got.shape[2], : got.shape[3]],
        )
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)
    assert not torch.allclose(cropped, expected)


@pytest.mark.parametrize("stride", [1, 2])
def test_zero_offsets_and_unit_mask_give_a_plain_conv(stride):
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(2, 3, 6, 5, generator=generator, dtype=torch.float64)
    conv = ModulatedDeformConv(3, 4, stride=stride).double()
    out_h, out_w = conv.output_size(6, 5)
    with torch.no_grad():
        conv.bias.normal_(generator=generator)
        got = conv(x, torch.zeros(2, 18, out_h, out_w, dtype=torch.float64), torch.ones(2, 9, out_h, out_w,
                                                                                         dtype=torch.float64))
        expected = F.conv2d(x, conv.weight, conv.bias, stride=stride, padding=1)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)


def _restated_dyconv(block: DyConv, features: list[torch.Tensor]) -> list[torch.Tensor]:
    """GLIP's DyConv.forward over plain ops, every deformable conv through the CUDA kernel restatement."""

    def conv_norm(index, x, offset_and_mask, mask, stride):
        layer = block.DyConv[index]
        memory_offset = [_memory_from(offset_and_mask, b) for b in range(x.shape[0])]
        memory_mask = [_memory_from(mask, b) for b in range(x.shape[0])]
        y = cuda_modulated_deform_conv(x, memory_offset, memory_mask, layer.conv.weight, layer.conv.bias, stride)
        return F.group_norm(y, layer.bn.num_groups, layer.bn.weight, layer.bn.bias, layer.bn.eps)

    def attention(y):
        pooled = y.mean(dim=(2, 3), keepdim=True)
        logit = F.relu(F.conv2d(pooled, block.AttnConv[1].weight, block.AttnConv[1].bias))
        return torch.clamp(logit + 3, 0, 6) / 6

    def dyrelu(y):
        fc1, fc2 = block.relu.fc[0], block.relu.fc[2]
        s = torch.clamp(F.linear(F.relu(F.linear(y.mean(dim=(2, 3)), fc1.weight, fc1.bias)), fc2.weight, fc2.bias)
                        + 3, 0, 6) / 6
        c = y.shape[1]
        a1, b1, a2, b2 = (s[:, n * c:(n + 1) * c, None, None] for n in range(4))
        return torch.maximum(y * ((a1 - 0.5) * 2 + 1) + (b1 - 0.5), y * ((a2 - 0.5) * 2) + (b2 - 0.5))

    out = []
    for level, feature in enumerate(features):
        offset_and_mask = F.conv2d(feature, block.offset.weight, block.offset.bias, padding=1)
        mask = offset_and_mask[:, 18:].sigmoid()
        terms = [conv_norm(1, feature, offset_and_mask, mask, 1)]
        if level > 0:
            terms.append(conv_norm(2, features[level - 1], offset_and_mask, mask, 2))
        if level < len(features) - 1:
            below = conv_norm(0, features[level + 1], offset_and_mask, mask, 1)
            terms.append(F.interpolate(below, size=feature.shape[-2:], mode="bilinear", align_corners=True))
        out.append(sum(t * attention(t) for t in terms) / len(terms))
    return [dyrelu(y) for y in out]


def test_dyconv_block_equals_restated_glip_forward():
    torch.manual_seed(4)
    block = DyConv(4, 4, gn_groups=2).double()
    with torch.no_grad():
        block.offset.weight.mul_(8.0)  # offsets of a few pixels, so sampling crosses borders and pixels
        for layer in block.DyConv:
            layer.bn.weight.normal_()
            layer.bn.bias.normal_()
    generator = torch.Generator().manual_seed(5)
    sizes = [(6, 4), (3, 2), (2, 1), (1, 1), (1, 1)]  # stride-2 sizes line up, as with GLIP's padded inputs
    features = [torch.randn(2, 4, h, w, generator=generator, dtype=torch.float64) for h, w in sizes]
    with torch.no_grad():
        got = block(features)
        expected = _restated_dyconv(block, features)
    for g, e, size in zip(got, expected, sizes):
        assert g.shape == (2, 4, *size)
        torch.testing.assert_close(g, e, rtol=1e-9, atol=1e-9)


def test_dyconv_without_deform_gn_or_dyrelu_runs():
    block = DyConv(8, 8, use_gn=False, use_dyrelu=False, use_dyfuse=False, use_deform=False)
    assert block.offset is None and block.AttnConv is None and block.DyConv[0].bn is None
    assert not isinstance(block.relu, DyReLU)
    features = [torch.randn(1, 8, s, s) for s in (8, 4, 2, 1, 1)]
    assert [tuple(y.shape) for y in block(features)] == [(1, 8, s, s) for s in (8, 4, 2, 1, 1)]


def test_dyrelu_starts_near_relu_pieces():
    relu = DyReLU(8, 8)
    with torch.no_grad():  # fc output 0 -> hard sigmoid 0.5 -> a1 = 1, a2 = 0, b1 = b2 = 0: a plain ReLU
        relu.fc[2].weight.zero_()
        relu.fc[2].bias.zero_()
    x = torch.randn(2, 8, 3, 3)
    torch.testing.assert_close(relu(x), F.relu(x))


# --- 3. head outputs: token logits formula, box regression, centerness ----------------------------------------------


def _small_head(**kwargs) -> HeadOutputs:
    head = HeadOutputs(channels=8, lang_dim=12, num_classes=5, **kwargs)
    generator = torch.Generator().manual_seed(6)
    with torch.no_grad():
        head.log_scale.fill_(0.7)
        head.bias_lang.normal_(generator=generator)
        for n, scale in enumerate(head.scales):
            scale.scale.fill_(0.5 + n)
    return head


def test_dot_product_logits_equal_literal_formula():
    head = _small_head()
    generator = torch.Generator().manual_seed(7)
    sizes = [(4, 3), (2, 2), (1, 2), (1, 1), (1, 1)]
    features = [torch.randn(2, 8, h, w, generator=generator) for h, w in sizes]
    text = torch.randn(2, 5, 12, generator=generator) * 3
    with torch.no_grad():
        got = head(features, text)

        unit_text = text / text.pow(2).sum(-1, keepdim=True).sqrt()
        tokens = (unit_text / 2) @ head.dot_product_projection_text.weight.T + head.dot_product_projection_text.bias
        token_bias = (unit_text * head.bias_lang).sum(-1) + head.bias0  # (B, T)
        expected = []
        for x in features:
            rows = x.flatten(2).transpose(1, 2)  # (B, H*W, C), row-major locations, image side not normalised
            expected.append(torch.einsum("blc,btc->blt", rows, tokens) / math.exp(0.7) + token_bias[:, None, :])
        expected = torch.cat(expected, dim=1).clamp(-50000, 50000)

        assert got.dot_product_logits.shape == (2, sum(h * w for h, w in sizes), 5)
        torch.testing.assert_close(got.dot_product_logits, expected, rtol=1e-5, atol=1e-5)
        for level, (x, scale) in enumerate(zip(features, (0.5, 1.5, 2.5, 3.5, 4.5))):
            # raw deltas times the level's scale: no relu, no exp
            torch.testing.assert_close(got.box_regression[level], scale * head.bbox_pred(x))
            torch.testing.assert_close(got.centerness[level], head.centerness(x))
            torch.testing.assert_close(got.level_logits()[level], expected[:, sum(
                h * w for h, w in sizes[:level]):sum(h * w for h, w in sizes[:level + 1])])
        assert (torch.cat([r.flatten() for r in got.box_regression]) < 0).any()
        # flat views line up with the logits: location (level 1, y=1, x=0) is row 12 + 1 * 2 + 0
        assert got.level_counts == [12, 4, 2, 1, 1]
        torch.testing.assert_close(got.flat_box_regression()[:, 14], got.box_regression[1][:, :, 1, 0])
        torch.testing.assert_close(got.flat_centerness()[:, 14], got.centerness[1][:, 0, 1, 0])
        torch.testing.assert_close(got.dot_product_logits[:, 14], expected[:, 14])


def test_dot_product_logits_are_clamped():
    head = _small_head()
    features = [torch.full((1, 8, 1, 1), 1e7) for _ in range(5)]
    text = torch.ones(1, 3, 12)
    with torch.no_grad():
        head.dot_product_projection_text.weight.fill_(1.0)
        head.dot_product_projection_text.bias.zero_()
        logits = head(features, text).dot_product_logits
        assert (logits == 50000).all()
        head.dot_product_projection_text.weight.fill_(-1.0)
        assert (head(features, text).dot_product_logits == -50000).all()


def test_head_initialisation():
    head = HeadOutputs()
    prior = -math.log(0.99 / 0.01)
    assert torch.allclose(head.cls_logits.bias, torch.full((80,), prior))
    assert head.bias0.item() == pytest.approx(prior)
    assert head.log_scale.item() == 0.0 and not head.bias_lang.any()
    assert not head.bbox_pred.bias.any() and not head.centerness.bias.any()
    assert all(scale.scale.item() == 1.0 for scale in head.scales)
    with pytest.raises(ValueError):
        HeadOutputs(num_anchors=3)


# --- 4. anchors ----------------------------------------------------------------------------------------------------


def test_cell_anchors_equal_hand_computed_values():
    # stride s, size S: centre (s - 1) / 2, half extent (S - 1) / 2
    #  8,   64:  3.5 -+  31.5 -> (-28, 35);   16, 128:  7.5 -+  63.5 -> (-56, 71)
    # 32,  256: 15.5 -+ 127.5 -> (-112, 143); 64, 512: 31.5 -+ 255.5 -> (-224, 287)
    # 128, 1024: 63.5 -+ 511.5 -> (-448, 575)
    expected = [(-28, 35), (-56, 71), (-112, 143), (-224, 287), (-448, 575)]
    generator = AnchorGenerator()
    for cell, (low, high) in zip(generator.cell_anchors, expected):
        assert torch.equal(cell, torch.tensor([[low, low, high, high]], dtype=torch.float32))
    assert generator.num_anchors_per_location() == [1] * 5


def test_cell_anchors_with_aspect_ratios():
    # stride 16, ratio 0.5: base width round(sqrt(256 / 0.5)) = round(22.63) = 23, height round(11.5) = 12 (half
    # to even); size 128 scales by 8: 184 x 96 around (7.5, 7.5): x 7.5 -+ 91.5, y 7.5 -+ 47.5.
    # size 256 scales by 16: 368 x 192: x 7.5 -+ 183.5, y 7.5 -+ 95.5.
    # ratio 2: width round(sqrt(128)) = 11, height 22; size 128: 88 x 176: x 7.5 -+ 43.5, y 7.5 -+ 87.5;
    # size 256: 176 x 352: x 7.5 -+ 87.5, y 7.5 -+ 175.5. Ratios vary slowest.
    cells = cell_anchors_for_level(16, (128.0, 256.0), (0.5, 2.0))
    assert torch.equal(cells, torch.tensor([[-84, -40, 99, 55], [-176, -88, 191, 103],
                                            [-36, -80, 51, 95], [-80, -168, 95, 183]], dtype=torch.float32))


def test_grid_anchors_are_row_major_shifts():
    generator = AnchorGenerator()
    feature_maps = [torch.zeros(1, 1, 2, 3)] + [torch.zeros(1, 1, 1, 1)] * 4
    anchors = generator(feature_maps)
    assert [a.shape for a in anchors] == [(6, 4)] + [(1, 4)] * 4
    shifts = torch.tensor([[0, 0], [8, 0], [16, 0], [0, 8], [8, 8], [16, 8]], dtype=torch.float32)
    torch.testing.assert_close(anchors[0], generator.cell_anchors[0] + shifts.repeat(1, 2))
    torch.testing.assert_close(anchors[4], torch.tensor([[-448.0, -448.0, 575.0, 575.0]]))
