"""GLIP's language side: the text encoder (transformers' `BertModel` without pooler, under `language_backbone.body
.model`) and the BERT layers of the fusion head, which are transformers' `BertLayer` under GLIP's key names.

GLIP reads the encoder's last layer twice: `hidden` (what the fusion layers update) and `embedded` (the mean of the
last N_LAYERS layers divided by N_LAYERS once more, a quirk of the official code that is a no-op for GLIP-T's
N_LAYERS = 1), both with padded tokens kept; `masks` is the attention mask (1 = a real token).
"""
from __future__ import annotations

import torch
from torch import nn


class TextEncoder(nn.Module):
    """`body.model` is the BertModel, so the official keys `language_backbone.body.model.*` load as they are."""

    def __init__(self, bert_config, num_layers: int = 1):
        from transformers import BertModel

        super().__init__()
        self.body = nn.Module()
        self.body.model = BertModel(bert_config, add_pooling_layer=False)
        self.num_layers = num_layers

    @property
    def dim(self) -> int:
        return self.body.model.config.hidden_size

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        outputs = self.body.model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
        layers = outputs.hidden_states[1:]  # the embeddings' output is not a layer
        features = torch.stack(layers[-self.num_layers:], 1).mean(1) / self.num_layers
        mask = attention_mask.to(features.dtype)
        embedded = features * mask.unsqueeze(-1)
        aggregate = embedded.sum(1) / mask.sum(-1, keepdim=True).clamp(min=1)
        return {"hidden": layers[-1], "embedded": embedded, "masks": attention_mask, "aggregate": aggregate}


class TextLayer(nn.Module):
    """One BERT layer of the fusion head (`dyhead_tower.{3k+1}`): self-attention over the text tokens between two
    fusion layers. transformers' BertLayer has GLIP's parameter names (attention / intermediate / output); GLIP
    clamps its attention scores to +-50,000, a bound that only masked positions reach, where softmax gives 0 either
    way."""

    def __init__(self, bert_config):
        from transformers.models.bert.modeling_bert import BertAttention, BertIntermediate, BertOutput

        super().__init__()
        self.attention = BertAttention(bert_config)
        self.intermediate = BertIntermediate(bert_config)
        self.output = BertOutput(bert_config)

    def forward(self, hidden: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        # additive mask (B, 1, 1, T): 0 for tokens, a large negative number for padding, as BERT's extended mask
        blocked = (1.0 - masks[:, None, None, :].to(hidden.dtype)) * torch.finfo(hidden.dtype).min
        attended = self.attention(hidden, attention_mask=blocked)[0]
        return self.output(self.intermediate(attended), attended)
