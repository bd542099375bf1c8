"""The span model: a pretrained causal Transformer with a start/end head on its hidden
states, and how its weights are saved and read back.

``SpanModel(body)`` maps ids ``(B, T)`` to logits ``(B, T, 2)`` (start, end) from the body's
final normalised hidden states. ``freeze_layers = k`` keeps the embeddings and the lowest
``k`` blocks fixed and runs them without gradients (a cheaper step: no backward through
them; the trainer computes their output once, see :meth:`SpanModel.frozen_features`).
``bidirectional = n`` lets the top ``n`` blocks attend both ways: a causal model's start
logit is computed before the model has read the answer it starts, and fine-tuning the top
blocks without the causal mask lets them read on (as LLM2Vec does to make decoders encode). Weights on disk (beside ``config.toml``):

* ``qa_head.safetensors``: the head (``weight`` (2, d), ``bias`` (2,));
* full fine-tuning: ``model.safetensors``, every tensor of the body, so the run stands alone;
* LoRA: ``adapter_model.safetensors`` + ``adapter_config.json`` (peft's format, see
  :mod:`lmlab.train.lora`); loading reads the base again (``[init]``, checked by its
  fingerprint) and merges the adapters into it, without peft.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from lmlab.config import from_dict
from lmlab.errors import LmlabError
from lmlab.models.transformer import Transformer, TransformerConfig
from lmlab.run import MODEL_FILE, load_tensors_checked, save_tensors_atomic

HEAD_FILE = "qa_head.safetensors"


class SpanModel(nn.Module):
    def __init__(self, body: Transformer, freeze_layers: int = 0, bidirectional: int = 0) -> None:
        super().__init__()
        if not isinstance(body, Transformer):
            raise LmlabError(
                f"a span model needs a Transformer base, not a {getattr(body, 'family', '?')} model"
            )
        self.body = body
        self.qa = nn.Linear(body.config.d_model, 2)
        nn.init.normal_(self.qa.weight, std=0.02)
        nn.init.zeros_(self.qa.bias)
        n_layer = body.config.n_layer
        if not 0 <= freeze_layers <= n_layer:
            raise LmlabError(f"--freeze-layers must be 0..{n_layer}, got {freeze_layers}")
        if not 0 <= bidirectional <= n_layer - freeze_layers:
            raise LmlabError(f"--bidirectional must be 0..{n_layer - freeze_layers} (the blocks "
                             f"that are trained), got {bidirectional}")  # fmt: skip
        self.freeze_layers = freeze_layers
        self.bidirectional = bidirectional

    def freeze_lower(self) -> None:
        """Stop gradients to the embeddings and the lowest ``freeze_layers`` blocks."""
        if self.freeze_layers == 0:
            return
        for p in self.body.tok_emb.parameters():
            p.requires_grad_(False)
        if self.body.pos_emb is not None:
            self.body.pos_emb.requires_grad_(False)
        for block in self.body.blocks[: self.freeze_layers]:
            block.requires_grad_(False)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Start/end logits ``(B, T, 2)``; ``lengths`` (B,) marks right padding, which the
        bidirectional blocks must not read."""
        frozen = self.freeze_layers if self.training else 0
        with torch.set_grad_enabled(torch.is_grad_enabled() and frozen == 0):
            x = self._blocks(self._embed(ids), 0, frozen, lengths)
        return self._head(self._blocks(x, frozen, self.body.config.n_layer, lengths))

    def frozen_features(self, ids: torch.Tensor) -> torch.Tensor:
        """The frozen blocks' output ``(B, T, d)``: fixed during training, so computed once."""
        with torch.no_grad():
            return self._blocks(self._embed(ids), 0, self.freeze_layers, None)

    def from_features(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Logits from :meth:`frozen_features` (the trained blocks and the head)."""
        return self._head(self._blocks(x, self.freeze_layers, self.body.config.n_layer, lengths))

    def _embed(self, ids: torch.Tensor) -> torch.Tensor:
        body = self.body
        T = ids.shape[1]
        if body.config.context_length < T:
            raise LmlabError(f"{T} tokens exceed the base's context length "
                             f"{body.config.context_length}; lower --max-len")  # fmt: skip
        x = body.tok_emb(ids)
        if body.pos_emb is not None:
            x = x + body.pos_emb.weight[:T]
        return body.drop(x)

    def _blocks(self, x: torch.Tensor, lo: int, hi: int, lengths) -> torch.Tensor:
        body = self.body
        B, T = x.shape[:2]
        rope = None if body.pos_emb is not None else (body.rope_cos[:T], body.rope_sin[:T])
        first_bi = body.config.n_layer - self.bidirectional
        mask = None
        for i in range(lo, hi):
            if i >= first_bi and mask is None:
                keys = torch.arange(T, device=x.device)
                n = lengths if lengths is not None else torch.full((B,), T)
                mask = (keys[None, :] < n.to(x.device)[:, None])[:, None, None, :]
            x = body.blocks[i](x, rope, None, i, mask if i >= first_bi else None)
        return x

    def _head(self, x: torch.Tensor) -> torch.Tensor:
        return self.qa(self.body.ln_f(x)).float()

    def num_params(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)


def body_from_tensors(model_cfg: dict[str, Any], tensors: dict[str, torch.Tensor]) -> Transformer:
    cfg = {k: v for k, v in model_cfg.items() if k != "family"}
    config = from_dict(TransformerConfig, cfg, where="[model]")
    try:
        return Transformer.from_tensors(config, tensors)
    except RuntimeError as e:
        raise LmlabError(f"the weights do not fit the run's [model] ({str(e)[:100]})") from None


def save_head(model: SpanModel, run_dir: Path, metadata: dict[str, str]) -> None:
    tensors = {k: v.detach().contiguous() for k, v in model.qa.state_dict().items()}
    save_tensors_atomic(tensors, run_dir / HEAD_FILE, metadata)


def load_head(model: SpanModel, run_dir: Path) -> None:
    tensors = load_tensors_checked(run_dir / HEAD_FILE)
    try:
        model.qa.load_state_dict(tensors)
    except RuntimeError as e:
        raise LmlabError(
            f"{run_dir / HEAD_FILE} does not fit the run's model ({str(e)[:80]})"
        ) from None


def save_full_body(model: SpanModel, run_dir: Path, metadata: dict[str, str]) -> None:
    tensors = {k: v.detach().contiguous() for k, v in model.body.tensors_for_save().items()}
    save_tensors_atomic(tensors, run_dir / MODEL_FILE, metadata)


def load_span_model(run_dir: Path, config: dict[str, Any]) -> SpanModel:
    """The run's span model, ready for inference (adapters merged for a LoRA run)."""
    init = config.get("init", {})
    if init.get("lora") is not None:
        from lmlab.train.finetune import reopen_base
        from lmlab.train.lora import merge_adapter

        base = reopen_base(init, run_dir)
        body = body_from_tensors(config["model"], {k: v.float() for k, v in base.tensors.items()})
        merge_adapter(body, run_dir)
    else:
        path = run_dir / MODEL_FILE
        if not path.is_file():
            raise LmlabError(f"{path} not found; the run is incomplete (train it again)")
        body = body_from_tensors(config["model"], load_tensors_checked(path))
    model = SpanModel(body, bidirectional=int(config.get("task", {}).get("bidirectional", 0)))
    load_head(model, run_dir)
    model.eval()
    return model
