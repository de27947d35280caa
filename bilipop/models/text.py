"""Title encoders: the study's BERT (transformers, pooled output + linear) and its Table 2 alternative, a
bidirectional recurrent encoder over the same tokenizer's ids.

Both are cut into (input part, body blocks, head) like the cover encoders. The input part turns token ids and the
0/1 attention mask into hidden states and a float additive mask of shape (B, 1, 1, T); only tensors that can carry a
gradient cross pipeline stages (docs/reference.md, "GPipe notes": checkpointing fails on integer stage outputs).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from bilipop.train_config import DEFAULT_DROPOUT

if TYPE_CHECKING:
    from transformers import BertModel

# Large negative but finite in fp16 and bf16 alike, so masked scores vanish after softmax without producing NaN.
MASK_VALUE = -1.0e4


def additive_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, T) 0/1 mask -> (B, 1, 1, T) float mask: 0 where attended, MASK_VALUE at padding."""
    mask = (1.0 - attention_mask[:, None, None, :].float()) * MASK_VALUE
    # A stage output that does not require grad breaks torchgpipe's checkpoint backward; the mask never receives a
    # gradient because the layers read it detached.
    return mask.requires_grad_()


@dataclass
class RNNSpec:
    """A bidirectional GRU or LSTM over token embeddings; ``out_dim`` is the size of the output vector."""

    vocab_size: int = 21128
    embed_dim: int = 256
    hidden: int = 256
    num_layers: int = 1
    cell: str = "gru"
    dropout_rate: float = DEFAULT_DROPOUT
    pad_token_id: int = 0
    out_dim: int = 1000

    def to_dict(self) -> dict:
        return asdict(self)


def build_bert(config: dict) -> BertModel:
    """A randomly initialised ``transformers.BertModel`` from a config dict (``BertConfig.to_dict()``)."""
    from transformers import BertConfig, BertModel

    cfg = BertConfig(**config)
    # Eager attention takes the float additive mask as is, on every device and dtype.
    cfg._attn_implementation = "eager"
    return BertModel(cfg, add_pooling_layer=True)


class BertInput(nn.Module):
    """BERT embeddings plus the float additive mask: (ids, 0/1 mask) -> ((B, T, H), (B, 1, 1, T))."""

    def __init__(self, bert: BertModel) -> None:
        super().__init__()
        self.embeddings = bert.embeddings

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.embeddings(input_ids=input_ids), additive_mask(attention_mask)  # (B, T, H), (B, 1, 1, T)

    def token_embeddings(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.embeddings.word_embeddings(input_ids)  # (B, T, H)

    def from_embeddings(self, embeds: torch.Tensor, attention_mask: torch.Tensor
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        """As forward, from the word embeddings (positions, token types and the norm are added here)."""
        return self.embeddings(inputs_embeds=embeds), additive_mask(attention_mask)


class BertBlock(nn.Module):
    """One BERT encoder layer reading the float additive mask."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        out = self.layer(h, attention_mask=mask.detach().to(h.dtype))
        return out[0] if isinstance(out, tuple) else out


class BertHead(nn.Module):
    """Pooler (tanh(dense(h[:, 0]))) then the study's linear layer to the fusion size."""

    def __init__(self, bert: BertModel, out_dim: int) -> None:
        super().__init__()
        self.pooler = bert.pooler
        self.linear = nn.Linear(bert.config.hidden_size, out_dim)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.linear(self.pooler(h))  # type: ignore[misc]  # BERT is built with its pooler: not None


class RNNInput(nn.Module):
    """Token embeddings plus the float additive mask, as BertInput gives them."""

    def __init__(self, spec: RNNSpec) -> None:
        super().__init__()
        self.embedding = nn.Embedding(spec.vocab_size, spec.embed_dim, padding_idx=spec.pad_token_id)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.embedding(input_ids), additive_mask(attention_mask)  # (B, T, E), (B, 1, 1, T)

    def token_embeddings(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.embedding(input_ids)  # (B, T, E)

    def from_embeddings(self, embeds: torch.Tensor, attention_mask: torch.Tensor
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        return embeds, additive_mask(attention_mask)


class RNNBlock(nn.Module):
    """The recurrent layers, run over the real tokens only (packed), then mean-pooled: (B, T, E) -> (B, 1, 2H)."""

    def __init__(self, spec: RNNSpec) -> None:
        super().__init__()
        cell = {"gru": nn.GRU, "lstm": nn.LSTM}[spec.cell]
        self.rnn = cell(spec.embed_dim, spec.hidden, num_layers=spec.num_layers, batch_first=True,
                        bidirectional=True, dropout=spec.dropout_rate if spec.num_layers > 1 else 0.0)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        keep = (mask.detach()[:, 0, 0, :] == 0).to(x.dtype)  # (B, T)
        lengths = keep.sum(1).clamp(min=1).long().cpu()
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        seq, _ = self.rnn(packed)
        seq, _ = nn.utils.rnn.pad_packed_sequence(seq, batch_first=True, total_length=x.shape[1])  # (B, T, 2H)
        pooled = (seq * keep[..., None]).sum(1) / keep.sum(1, keepdim=True).clamp(min=1)  # (B, 2H)
        return pooled[:, None, :]


class RNNHead(nn.Module):
    """Dropout and a linear layer from the pooled recurrent state to the fusion size."""

    def __init__(self, spec: RNNSpec) -> None:
        super().__init__()
        self.drop = nn.Dropout(spec.dropout_rate)
        self.linear = nn.Linear(2 * spec.hidden, spec.out_dim)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.linear(self.drop(h[:, 0]))


def split_bert(bert: BertModel, out_dim: int) -> tuple[nn.Module, list[nn.Module], nn.Module]:
    """Cut a BertModel into (embeddings, one block per layer, pooler + linear) without copying parameters."""
    return BertInput(bert), [BertBlock(layer) for layer in bert.encoder.layer], BertHead(bert, out_dim)


def split_rnn(spec: RNNSpec) -> tuple[nn.Module, list[nn.Module], nn.Module]:
    """A fresh recurrent encoder as (input part, body blocks, head)."""
    return RNNInput(spec), [RNNBlock(spec)], RNNHead(spec)
