"""The project's modulated deformable conv (`sdpt/detector/glip/deform_conv.py`) against torchvision's
`deform_conv2d`, which has the same offset and mask layout: values and gradients, at both of DyConv's strides,
with offsets that throw samples off the map, on one-pixel maps, and with a frozen weight."""
from __future__ import annotations

import pytest
import torch
from torchvision.ops import deform_conv2d

from sdpt.detector.glip.deform_conv import modulated_deform_conv2d


def _inputs(stride: int, height: int, width: int, spread: float, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 3, height, width, generator=generator, dtype=torch.float64)
    out_height, out_width = (height - 1) // stride + 1, (width - 1) // stride + 1
    offset = torch.randn(2, 18, out_height, out_width, generator=generator, dtype=torch.float64) * spread
    mask = torch.rand(2, 9, out_height, out_width, generator=generator, dtype=torch.float64)
    weight = torch.randn(4, 3, 3, 3, generator=generator, dtype=torch.float64)
    bias = torch.randn(4, generator=generator, dtype=torch.float64)
    return [t.requires_grad_() for t in (x, offset, mask, weight, bias)]


@pytest.mark.parametrize("stride, height, width, spread", [
    (1, 7, 6, 1.5),  # samples mostly inside
    (2, 9, 8, 1.5),
    (1, 5, 4, 6.0),  # many samples off the map, some partly (one or two neighbours inside)
    (1, 1, 1, 0.7),  # a one-pixel map, as GLIP's coarsest level of a small image
    (2, 1, 3, 0.7),
])
def test_values_and_gradients_equal_torchvision(stride, height, width, spread):
    x, offset, mask, weight, bias = _inputs(stride, height, width, spread)
    ours = modulated_deform_conv2d(x, offset, mask, weight, bias, stride=stride, padding=1)
    theirs = deform_conv2d(x, offset, weight, bias, stride=stride, padding=1, mask=mask)
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-10)
    upstream = torch.randn(ours.shape, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    ours_grads = torch.autograd.grad(ours, (x, offset, mask, weight, bias), upstream)
    theirs_grads = torch.autograd.grad(theirs, (x, offset, mask, weight, bias), upstream)
    for name, got, expected in zip(("x", "offset", "mask", "weight", "bias"), ours_grads, theirs_grads):
        torch.testing.assert_close(got, expected, rtol=1e-8, atol=1e-8, msg=f"gradient of {name}")


def test_a_frozen_weight_gets_no_gradient_and_the_inputs_still_do():
    x, offset, mask, weight, bias = _inputs(1, 5, 5, 1.0)
    frozen = weight.detach()
    out = modulated_deform_conv2d(x, offset, mask, frozen, bias.detach())
    out.sum().backward()
    assert frozen.grad is None
    assert all(t.grad is not None and t.grad.abs().sum() > 0 for t in (x, offset, mask))


def test_offsets_of_the_wrong_size_are_refused():
    x, offset, mask, weight, bias = _inputs(1, 5, 5, 1.0)
    with pytest.raises(ValueError, match="offset must be"):
        modulated_deform_conv2d(x, offset[:, :, :4], mask[:, :, :4], weight, bias)
    with pytest.raises(ValueError, match="weight must be"):
        modulated_deform_conv2d(x, offset, mask, weight[:, :2], bias)


def test_a_trainable_weight_gives_the_same_bits_as_a_frozen_one():
    # full fine-tuning starts from a trainable copy of the frozen model and must start as the zero-shot model
    generator = torch.Generator().manual_seed(5)
    x = torch.randn(2, 32, 2, 3, generator=generator)  # the tiny GLIP's coarse level, where matmul's paths differed
    offset = torch.randn(2, 18, 2, 3, generator=generator)
    mask = torch.rand(2, 9, 2, 3, generator=generator)
    weight, bias = torch.randn(32, 32, 3, 3, generator=generator) * 0.05, torch.randn(32, generator=generator)
    frozen = modulated_deform_conv2d(x, offset, mask, weight, bias)
    trainable = modulated_deform_conv2d(x, offset, mask, weight.clone().requires_grad_(), bias.clone().requires_grad_())
    assert torch.equal(frozen, trainable)
    with torch.no_grad():
        assert torch.equal(frozen, modulated_deform_conv2d(x, offset, mask, weight.clone().requires_grad_(), bias))
