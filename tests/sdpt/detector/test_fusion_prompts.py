"""The branch's image-query scores folded into one product (`vision_states` given) equal the per-head product over the
projected queries, in value and in the gradients that reach the prompt tokens and the branch scales."""
import torch

from sdpt.detector.fusion_prompts import FusionPrompts, prompt_branch
from sdpt.detector.glip.fusion import BiMultiHeadAttention


def test_folded_image_query_scores_equal_the_per_head_product():
    torch.manual_seed(0)
    attn = BiMultiHeadAttention(v_dim=16, l_dim=24, embed_dim=32, num_heads=4).eval().requires_grad_(False)
    with torch.no_grad():
        for param in attn.parameters():
            param.copy_(0.3 * torch.randn_like(param))  # nonzero biases: the folded offset must carry them
    states = torch.randn(2, 50, 16)
    keys = attn._split_heads(attn.l_proj(torch.randn(2, 6, 24)))
    queries = attn._split_heads(attn.v_proj(states) * attn.scale)
    results = []
    for folded in (False, True):
        text = torch.randn(5, 24, generator=torch.Generator().manual_seed(1)).requires_grad_()
        vision = torch.randn(5, 16, generator=torch.Generator().manual_seed(2)).requires_grad_()
        scales = (torch.linspace(-0.8, 0.8, 4).requires_grad_(), torch.full((1,), 0.6))
        prompts = FusionPrompts(vision, text, branch_scales=scales)
        vision_update, text_update = prompt_branch(attn, queries, keys, prompts, 2,
                                                   vision_states=states if folded else None)
        (vision_update.square().sum() + text_update.square().sum()).backward()
        results.append((vision_update.detach(), text_update.detach(), text.grad, scales[0].grad))
    for plain, folded in zip(*results):
        torch.testing.assert_close(folded, plain, rtol=1e-4, atol=1e-4)  # float rounding of another order
    assert results[0][0].abs().max() > 1e-2  # the branch acts
