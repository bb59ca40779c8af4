"""The branch's image-query scores, computed in one product from the image tokens (`_image_query_probs`), equal a
literal per-head restatement softmax((x W_h^T + b_h) s K_h^T) V_h, times each head's scale, through the output
weight: in value and in the gradients that reach the prompt tokens and the branch scales."""
import torch

from sdpt.detector.fusion_prompts import FusionPrompts, prompt_branch
from sdpt.detector.glip.fusion import BiMultiHeadAttention

HEADS, HEAD_DIM = 4, 8


def _literal_vision_update(attn, states, tokens, scales):
    out = 0
    keys, values = attn.l_proj(tokens), attn.values_l_proj(tokens)  # (N, E)
    for h in range(HEADS):
        cols = slice(h * HEAD_DIM, (h + 1) * HEAD_DIM)
        queries = (states @ attn.v_proj.weight[cols].T + attn.v_proj.bias[cols]) * attn.scale  # (B, Q, head_dim)
        probs = (queries @ keys[:, cols].T).softmax(dim=-1)  # (B, Q, N)
        out = out + scales[h] * (probs @ values[:, cols]) @ attn.out_v_proj.weight[:, cols].T
    return out


def test_image_query_scores_in_one_product_equal_the_literal_per_head_attention():
    torch.manual_seed(0)
    attn = BiMultiHeadAttention(v_dim=16, l_dim=24, embed_dim=HEADS * HEAD_DIM, num_heads=HEADS)
    attn = attn.eval().requires_grad_(False)
    with torch.no_grad():
        for param in attn.parameters():
            param.copy_(0.3 * torch.randn_like(param))  # nonzero biases: the folded offset must carry them
    states = torch.randn(2, 50, 16)
    keys = attn._split_heads(attn.l_proj(torch.randn(2, 6, 24)))
    results = []
    for literal in (True, False):
        text = torch.randn(5, 24, generator=torch.Generator().manual_seed(1)).requires_grad_()
        scales = torch.linspace(-0.8, 0.8, HEADS).requires_grad_()
        if literal:
            update = _literal_vision_update(attn, states, text, scales)
        else:
            prompts = FusionPrompts(None, text, branch_scales=(scales, torch.full((1,), 0.6)))
            update, _text_update = prompt_branch(attn, states, keys, prompts, 2)
        update.square().sum().backward()
        results.append((update.detach(), text.grad, scales.grad))
    for want, got in zip(*results):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)  # float rounding of another summation order
    assert results[0][0].abs().max() > 1e-2  # the branch acts
