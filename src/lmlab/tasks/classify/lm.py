"""Classifiers on a pretrained Transformer: fine-tuned with a head (``lm``), or prompted (``prompt``).

Both read the same prompt: ``prefix + template(text)`` (``template`` holds ``{text}``; for
``prompt`` the prefix is an instruction and k demonstrations), through the base's own
tokenizer, padded on the right. The Transformer is causal, so a real token never sees the
padding after it and no attention mask is needed.

* ``lm``: the final hidden states pooled (``last``: the last real token, which in a causal
  model is the only one that has read the whole text; or ``mean`` over the real tokens) and
  a linear head. The head can start from the language model's output rows of the label
  words (``head_init = "label_words"``): at step 0 the classifier then *is* the zero-shot
  prompt classifier on the label words' first tokens, and fine-tuning starts from there
  (prompt-based fine-tuning, Gao et al. 2021, "LM-BFF"). The Transformer is fine-tuned fully
  or through LoRA adapters (``lora = {rank, alpha, dropout, targets}``; peft).
* ``prompt``: no training. A class's score is the log-likelihood of its label word after the
  prompt (the sum over the word's tokens), so the class probabilities are the model's
  probabilities of the label words, renormalised.

CPU runs use bfloat16 autocast (the attention itself stays float32, see
:mod:`lmlab.models.transformer`); logits come back float32.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lmlab.errors import LmlabError
from lmlab.tasks.classify.models import Classifier

POOLING = ("last", "mean")
HEAD_INIT = ("label_words", "random")


@dataclass
class LMConfig:
    vocab_size: int = 0
    n_classes: int = 2
    base: dict[str, Any] = field(default_factory=dict)  # the base's TransformerConfig
    pooling: str = "last"  # last | mean
    dropout: float = 0.1  # before the head
    head_init: str = "label_words"  # label_words | random
    lora: dict[str, Any] = field(default_factory=dict)  # {} = full fine-tuning
    bf16: bool = True  # bfloat16 autocast on CPU
    prefix: str = ""  # text before every example's prompt
    template: str = "{text}"
    label_words: list[str] = field(default_factory=list)  # one per class, in label order


@dataclass
class PromptConfig:
    vocab_size: int = 0
    n_classes: int = 2
    base: dict[str, Any] = field(default_factory=dict)
    bf16: bool = True
    prefix: str = ""  # the instruction and the demonstrations
    template: str = "{text}"
    label_words: list[str] = field(default_factory=list)
    shots: int = 0
    shot_seed: int = 1
    demonstrations: list[list[str]] = field(default_factory=list)  # [text, label] pairs


def label_word_ids(tokenizer: Any, words: list[str]) -> list[list[int]]:
    """Token ids of each label word as it follows the prompt (a leading space is added when
    the word has none, as a word after ``Sentiment:`` is written)."""
    out = []
    for w in words:
        if not w.strip():
            raise LmlabError("a label word is empty; give one word per class with --label-words")
        ids = [int(i) for i in tokenizer.encode(w if w[0].isspace() else " " + w)]
        if not ids:
            raise LmlabError(f"label word {w!r} encodes to no tokens")
        out.append(ids)
    return out


class PretrainedClassifier(Classifier):
    """A Transformer read from a base model; :meth:`load_base` gives it its weights."""

    def __init__(self, config: Any) -> None:
        nn.Module.__init__(self)
        from lmlab.models.transformer import Transformer, TransformerConfig

        if config.vocab_size < 1 or config.n_classes < 2:
            raise LmlabError("a classifier needs a vocabulary and at least two classes")
        if "{text}" not in config.template:
            raise LmlabError(f"the prompt template must contain {{text}}, got {config.template!r}")
        self.config = config
        self.pad_id = config.vocab_size  # clamped to a real id in embed(); never attended to
        self.base_config = TransformerConfig(**config.base)
        with torch.device("meta"):  # the weights come from load_base
            self.lm = Transformer(self.base_config)

    def load_base(self, tensors: dict[str, torch.Tensor]) -> None:
        """Adopt the base Transformer's weights (no copy)."""
        from lmlab.models.transformer import Transformer

        try:
            self.lm = Transformer.from_tensors(self.base_config, tensors)
        except (RuntimeError, KeyError) as e:
            raise LmlabError(
                f"the base weights do not fit the run's [model.base] ({str(e).splitlines()[0][:100]})"
            ) from None

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.lm.tok_emb(ids.clamp_max(self.config.vocab_size - 1))

    def _autocast(self, x: torch.Tensor):
        return torch.autocast(
            "cpu", dtype=torch.bfloat16, enabled=self.config.bf16 and x.device.type == "cpu"
        )

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """Final normalised hidden states ``(B, T, d)`` from input vectors ``(B, T, d)``."""
        lm, T = self.lm, x.shape[1]
        if self.base_config.context_length < T:
            raise LmlabError(
                f"a prompt of {T} tokens exceeds the base's context length "
                f"{self.base_config.context_length}; lower train.max_len or the shots"
            )
        rope = None
        if lm.pos_emb is not None:
            x = x + lm.pos_emb.weight[:T]
        else:
            rope = (lm.rope_cos[:T], lm.rope_sin[:T])
        x = lm.drop(x)
        for i, block in enumerate(lm.blocks):
            x = block(x, rope, None, i)
        return lm.ln_f(x)

    def num_params(self, trainable_only: bool = False) -> int:
        seen: set[int] = set()
        n = 0
        for p in self.parameters():
            if id(p) not in seen and (p.requires_grad or not trainable_only):
                seen.add(id(p))
                n += p.numel()
        return n


class LMClassifier(PretrainedClassifier):
    family = "lm"

    def __init__(self, config: LMConfig) -> None:
        super().__init__(config)
        if config.pooling not in POOLING:
            raise LmlabError(f"model.pooling must be last or mean, got {config.pooling!r}")
        if config.head_init not in HEAD_INIT:
            raise LmlabError(
                f"model.head_init must be label_words or random, got {config.head_init!r}"
            )
        self.drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(self.base_config.d_model, config.n_classes)

    @property
    def lora(self) -> bool:
        return bool(self.config.lora)

    def init_head(self, words: list[list[int]] | None) -> None:
        """The head's rows from the LM's output rows of each label word's first token (the
        zero-shot prompt classifier), else small random weights."""
        with torch.no_grad():
            if words:
                rows = self.lm.head.weight[[w[0] for w in words]].float()
                self.head.weight.copy_(rows)
            else:
                nn.init.normal_(self.head.weight, std=0.02)
            self.head.bias.zero_()

    def add_lora(self) -> None:
        """Wrap the Transformer's linears in fresh adapters (the base frozen, the head not)."""
        from lmlab.config import from_dict
        from lmlab.train.lora import LoraSettings, apply_lora, resolve_targets

        settings = from_dict(LoraSettings, dict(self.config.lora), where="[model.lora]")
        targets = resolve_targets(self.lm, settings)
        apply_lora(self.lm, settings, targets)
        for p in self.lm.parameters():
            if not any(p is q for q in self._adapter_params()):
                p.requires_grad_(False)
        self.config.lora = {**self.config.lora, "targets": targets}

    def _adapter_params(self) -> list[torch.Tensor]:
        return [p for n, p in self.lm.named_parameters() if "lora_" in n]

    def classify(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        with self._autocast(x):
            h = self.hidden(x)
            if self.config.pooling == "last":
                last = (mask.sum(1) - 1).clamp_min(0)
                feat = h[torch.arange(h.shape[0], device=h.device), last]
            else:
                m = mask.unsqueeze(-1).to(h.dtype)
                feat = (h * m).sum(1) / m.sum(1).clamp_min(1.0)
            logits = self.head(self.drop(feat))
        return logits.float()

    def weights(self) -> dict[str, torch.Tensor]:
        """What ``model.safetensors`` holds: with LoRA the head and the adapters only (the
        base is read again from its source); fully fine-tuned, everything (the tied output
        layer once)."""
        if self.lora:
            return {n: p.detach() for n, p in self.named_parameters() if p.requires_grad}
        out = {"lm." + k: v for k, v in self.lm.tensors_for_save().items()}
        out.update({"head." + k: v.detach() for k, v in self.head.state_dict().items()})
        return out

    def load_weights(self, tensors: dict[str, torch.Tensor]) -> None:
        if self.lora:
            want = {n for n, p in self.named_parameters() if p.requires_grad}
            if set(tensors) != want:
                odd = sorted(set(tensors) ^ want)[:2]
                raise LmlabError(f"the saved adapters do not match the run's LoRA settings ({odd})")
            own = dict(self.named_parameters())
            with torch.no_grad():
                for n, t in tensors.items():
                    own[n].copy_(t)
            return
        lm = {k[3:]: v for k, v in tensors.items() if k.startswith("lm.")}
        head = {k[5:]: v for k, v in tensors.items() if k.startswith("head.")}
        if lm:
            self.load_base(lm)
        try:
            self.head.load_state_dict(head)
        except RuntimeError as e:
            raise LmlabError(
                f"the saved head does not fit the run ({str(e).splitlines()[0][:80]})"
            ) from None


class PromptClassifier(PretrainedClassifier):
    family = "prompt"

    def __init__(self, config: PromptConfig) -> None:
        super().__init__(config)
        if len(config.label_words) != config.n_classes:
            raise LmlabError(
                f"{len(config.label_words)} label words for {config.n_classes} classes; give one "
                "word per class, in label order"
            )
        self.set_label_words([])

    def set_label_words(self, words: list[list[int]], prefix_ids: list[int] | None = None) -> None:
        """The label words' token ids; and the prefix's (instruction and demonstrations),
        whose keys and values are then computed once and shared by every text."""
        self.words = words
        self.prefix_ids = torch.tensor(prefix_ids or [], dtype=torch.long)
        self._prefix_kv: tuple[list[torch.Tensor], list[torch.Tensor]] | None = None

    @property
    def single_token(self) -> bool:
        firsts = {w[0] for w in self.words}
        return all(len(w) == 1 for w in self.words) and len(firsts) == len(self.words)

    def classify(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``(B, C)``: log-likelihood of each class's label word after each prompt."""
        return self._score(lambda v: self.hidden(v), x, mask.sum(1), self.lm.tok_emb)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        P = len(getattr(self, "prefix_ids", ()))
        if (P == 0 or torch.is_grad_enabled() or ids.shape[1] <= P
                or not bool((ids[:, :P] == self.prefix_ids).all())):  # fmt: skip
            return self.classify(self.embed(ids), mask)
        # The shared prefix once, then only each text's own tokens (a KV cache per batch).
        q = ids[:, P:].clamp_max(self.config.vocab_size - 1)
        return self._score(self._after_prefix, q, mask.sum(1) - P, lambda t: t)

    def _after_prefix(self, q: torch.Tensor) -> torch.Tensor:
        lm, P = self.lm, len(self.prefix_ids)
        if self._prefix_kv is None:
            st = lm.new_state(1, capacity=P)
            lm.hidden_states(self.prefix_ids[None], st)
            self._prefix_kv = (
                [k[:, :, :P].clone() for k in st.k],
                [v[:, :, :P].clone() for v in st.v],
            )
        kp, vp = self._prefix_kv
        st = lm.new_state(q.shape[0], capacity=P + q.shape[1])
        for i in range(len(st.k)):
            st.k[i][:, :, :P] = kp[i].to(st.k[i].dtype)
            st.v[i][:, :, :P] = vp[i].to(st.v[i].dtype)
        st.pos = P
        return lm.hidden_states(q, st)

    def _score(self, run, x: torch.Tensor, lengths: torch.Tensor, lift) -> torch.Tensor:
        """Label-word log-likelihoods; ``run`` maps ``x`` (ids or vectors, ``(B, T, ...)``) to
        hidden states, ``lift`` maps label-word ids into ``x``'s space."""
        if not self.words:
            raise LmlabError("the prompt classifier has no label words")
        lengths = lengths.clamp_min(1)
        B = x.shape[0]
        rows = torch.arange(B, device=x.device)
        with self._autocast(x):
            if self.single_token:  # one pass: the next-token distribution after the prompt
                h = run(x)[rows, lengths - 1]
                logp = F.log_softmax(self.lm.head(h).float(), dim=-1)
                return logp[:, [w[0] for w in self.words]]
            scores = []
            for word in self.words:  # the word's tokens appended after each prompt
                toks = torch.tensor(word, device=x.device)
                k = len(word)
                pos = lengths[:, None] + torch.arange(k, device=x.device)  # (B, k)
                x2 = torch.cat([x, x.new_zeros(B, k, *x.shape[2:])], dim=1)
                fill = lift(toks).to(x2.dtype).expand(B, k, *x.shape[2:])
                x2 = x2.index_put((rows[:, None].expand(B, k), pos), fill)
                h = run(x2)[rows[:, None], pos - 1]  # (B, k, d): position j predicts token j
                logp = F.log_softmax(self.lm.head(h).float(), dim=-1)
                scores.append(logp.gather(-1, toks.expand(B, k)[..., None]).sum((1, 2)))
        return torch.stack(scores, dim=1)

    def weights(self) -> dict[str, torch.Tensor]:
        return {}

    def load_weights(self, tensors: dict[str, torch.Tensor]) -> None:
        if tensors:
            raise LmlabError("a prompt run has no trained weights")
