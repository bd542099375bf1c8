"""Text classifiers, from the bag of embeddings to recurrent encoders.

Every classifier maps token ids ``(B, T)`` and a mask ``(B, T)`` (True on real tokens) to
class logits ``(B, C)``, in two halves so that explanations can take gradients with respect
to the input vectors: ``embed(ids) -> (B, T, D)`` and ``classify(vectors, mask) -> (B, C)``.
Token id ``vocab_size`` is padding (an extra embedding row, kept at zero).

* ``bow``: the mean of the word vectors, then an MLP (a "deep averaging network"; word order
  is ignored).
* ``textcnn``: Kim (2014), *Convolutional Neural Networks for Sentence Classification*:
  parallel 1-D convolutions of widths 3, 4 and 5 over the word vectors, each filter's
  maximum over time (max-over-time pooling: the network that made pooling famous in NLP),
  dropout, one linear layer. Word vectors start random or from lmlab's word2vec/GloVe vectors
  and are fine-tuned ("non-static") or frozen (``freeze_embeddings``: "static").
* ``bilstm`` / ``bigru``: a bidirectional LSTM or GRU encoder whose outputs are max- (or
  mean-) pooled over time, or whose last states are concatenated (``pooling = "last"``).

* ``lm`` / ``prompt`` (:mod:`lmlab.tasks.classify.lm`): a pretrained Transformer with a
  classification head, fine-tuned fully or with LoRA; or prompted, scoring label words.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from lmlab.config import from_dict
from lmlab.errors import LmlabError


@dataclass
class BowConfig:
    vocab_size: int = 0
    n_classes: int = 2
    embed_dim: int = 300
    hidden: int = 256
    dropout: float = 0.3
    freeze_embeddings: bool = False


@dataclass
class TextCNNConfig:
    vocab_size: int = 0
    n_classes: int = 2
    embed_dim: int = 300
    widths: list[int] = field(default_factory=lambda: [3, 4, 5])
    filters: int = 100  # per width
    dropout: float = 0.5
    freeze_embeddings: bool = False


@dataclass
class RNNEncoderConfig:
    vocab_size: int = 0
    n_classes: int = 2
    embed_dim: int = 300
    hidden: int = 150  # per direction
    n_layer: int = 1
    cell: str = "lstm"  # lstm | gru
    pooling: str = "max"  # max | mean | last
    dropout: float = 0.5
    freeze_embeddings: bool = False


class Classifier(nn.Module):
    """Shared parts: the embedding with its padding row, parameter counts, ``forward``."""

    family: ClassVar[str]

    def __init__(self, config: Any) -> None:
        super().__init__()
        if config.vocab_size < 1 or config.n_classes < 2:
            raise LmlabError("a classifier needs a vocabulary and at least two classes")
        self.config = config
        self.pad_id = config.vocab_size
        self.embedding = nn.Embedding(
            config.vocab_size + 1, config.embed_dim, padding_idx=self.pad_id
        )
        nn.init.uniform_(self.embedding.weight, -0.25, 0.25)  # Kim's range for unknown words
        with torch.no_grad():
            self.embedding.weight[self.pad_id].zero_()
        self.embedding.weight.requires_grad_(not config.freeze_embeddings)

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.embedding(ids)

    def classify(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.classify(self.embed(ids), mask)

    @property
    def min_length(self) -> int:
        """Shortest padded length ``forward`` accepts."""
        return 1

    def num_params(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def weights(self) -> dict[str, torch.Tensor]:
        """The tensors ``model.safetensors`` holds (every one, unless a family keeps less)."""
        return self.state_dict()

    def load_weights(self, tensors: dict[str, torch.Tensor]) -> None:
        self.load_state_dict(tensors)


class BowClassifier(Classifier):
    family = "bow"

    def __init__(self, config: BowConfig) -> None:
        super().__init__(config)
        self.mlp = nn.Sequential(
            nn.Linear(config.embed_dim, config.hidden),
            nn.ReLU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.hidden, config.n_classes),
        )

    def classify(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask.unsqueeze(-1).to(x.dtype)  # (B, T, 1)
        mean = (x * m).sum(1) / m.sum(1).clamp_min(1.0)  # (B, D)
        return self.mlp(mean)


class TextCNN(Classifier):
    family = "textcnn"

    def __init__(self, config: TextCNNConfig) -> None:
        super().__init__(config)
        if not config.widths or min(config.widths) < 1:
            raise LmlabError(f"model.widths must be positive integers, got {config.widths}")
        self.convs = nn.ModuleList(
            nn.Conv1d(config.embed_dim, config.filters, w) for w in config.widths
        )
        self.dropout = nn.Dropout(config.dropout)
        self.out = nn.Linear(config.filters * len(config.widths), config.n_classes)

    @property
    def min_length(self) -> int:
        return max(self.config.widths)

    def classify(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        lengths = mask.sum(1)  # (B,)
        h = x.transpose(1, 2)  # (B, D, T)
        pooled = []
        for conv, w in zip(self.convs, self.config.widths, strict=True):
            c = F.relu(conv(h))  # (B, F, T - w + 1)
            # Windows that run past the text are masked, so a text scores the same however
            # much padding its batch adds (a text shorter than w keeps its one window).
            valid = (lengths - w + 1).clamp_min(1)  # (B,)
            pos = torch.arange(c.shape[2], device=c.device)
            c = c.masked_fill((pos[None, :] >= valid[:, None]).unsqueeze(1), float("-inf"))
            pooled.append(c.max(dim=2).values)  # (B, F): max over time
        return self.out(self.dropout(torch.cat(pooled, dim=1)))


class RNNClassifier(Classifier):
    family = "bilstm"

    def __init__(self, config: RNNEncoderConfig) -> None:
        super().__init__(config)
        if config.cell not in ("lstm", "gru"):
            raise LmlabError(f"model.cell must be 'lstm' or 'gru', got {config.cell!r}")
        if config.pooling not in ("max", "mean", "last"):
            raise LmlabError(f"model.pooling must be max, mean or last, got {config.pooling!r}")
        rnn = nn.LSTM if config.cell == "lstm" else nn.GRU
        self.rnn = rnn(
            config.embed_dim, config.hidden, num_layers=config.n_layer, batch_first=True,
            bidirectional=True, dropout=config.dropout if config.n_layer > 1 else 0.0,
        )  # fmt: skip
        self.dropout = nn.Dropout(config.dropout)
        self.out = nn.Linear(2 * config.hidden, config.n_classes)

    def classify(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        lengths = mask.sum(1).clamp_min(1)
        packed = nn.utils.rnn.pack_padded_sequence(
            self.dropout(x), lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        out, h = self.rnn(packed)
        if self.config.pooling == "last":
            h = h[0] if isinstance(h, tuple) else h  # (layers * 2, B, H)
            feat = torch.cat([h[-2], h[-1]], dim=1)
        else:
            y, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True)  # (B, T', 2H)
            m = mask[:, : y.shape[1]].unsqueeze(-1)
            if self.config.pooling == "max":
                feat = y.masked_fill(~m, float("-inf")).max(dim=1).values
            else:
                feat = (y * m).sum(1) / lengths[:, None].to(y.dtype)
        return self.out(self.dropout(feat))


# family -> (config class, model class, defaults that differ from the config class's)
FAMILIES: dict[str, tuple[type, type[Classifier], dict[str, Any]]] = {
    "bow": (BowConfig, BowClassifier, {}),
    "textcnn": (TextCNNConfig, TextCNN, {}),
    "bilstm": (RNNEncoderConfig, RNNClassifier, {"cell": "lstm"}),
    "bigru": (RNNEncoderConfig, RNNClassifier, {"cell": "gru"}),
}


def build_classifier(family: str, config: dict[str, Any]) -> Classifier:
    """A classifier of ``family`` from a config dict (unknown keys are errors). ``lm`` and
    ``prompt`` come without weights: see :mod:`lmlab.tasks.classify.lm`."""
    if family not in FAMILIES:
        raise LmlabError(f"unknown classifier {family!r}; choose one of {', '.join(FAMILIES)}")
    cfg_cls, model_cls, defaults = FAMILIES[family]
    cfg = from_dict(cfg_cls, {**defaults, **config}, where=f"[model] of {family}")
    model = model_cls(cfg)
    model.family = family
    return model


def config_dict(model: Classifier) -> dict[str, Any]:
    return {"family": model.family, **asdict(model.config)}


# The pretrained-Transformer families subclass Classifier, so they join the table last.
from lmlab.tasks.classify.lm import (  # noqa: E402
    LMClassifier,
    LMConfig,
    PromptClassifier,
    PromptConfig,
)

FAMILIES["lm"] = (LMConfig, LMClassifier, {})
FAMILIES["prompt"] = (PromptConfig, PromptClassifier, {})
