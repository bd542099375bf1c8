"""Fine-tuning: a run that starts from a pretrained model (``lmlab train --init-from``).

The base is anything :func:`lmlab.run.load_run` accepts: a run directory, a ``.gguf`` file,
a Hugging Face folder or ``builtin:NAME``. Its model config and tokenizer are the run's (a
setting that contradicts them is an error), the corpus is tokenised with its tokenizer, and
the weights start from it; the optimizer starts fresh. The run's ``[init]`` section records
the base (``source`` as given, resolved ``path``, ``format``, ``name``, a ``fingerprint`` of
its weights) and, for LoRA, the adapter settings in ``[init.lora]``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lmlab.config import from_dict, to_dict
from lmlab.errors import LmlabError
from lmlab.tokenize import Tokenizer
from lmlab.train.lora import LoraSettings

INIT_KEYS = {"source", "path", "format", "name", "fingerprint", "lora"}
# Training defaults for a pretrained model, where the user set none: a short window (not the
# model's maximum, e.g. 8192), small batches, and learning rates that keep what it knows.
CONTEXT = 256
BATCH_SIZE = 8
LR_FULL, LR_LORA = 5e-5, 5e-4
# Settings that may differ from the base's: they change training, not the model's shape.
MODEL_FREE_KEYS = {"dropout"}
# The flag behind a config key, for error messages.
FLAGS = {
    "tokenizer.kind": "--tokenizer",
    "tokenizer.vocab_size": "--vocab-size",
    "tokenizer.max_vocab": "--vocab-size",
    "tokenizer.lowercase": "--lowercase",
    "model.family": "--model",
    "model.depth": "--depth",
    "model.block": "--block",
}


@dataclass
class Base:
    """A pretrained model to start from, read into memory."""

    family: str
    config: Any  # the model's config dataclass
    tensors: dict[str, torch.Tensor]
    tokenizer: Tokenizer
    tokenizer_config: dict[str, Any]  # the run's [tokenizer] section
    chat: dict[str, Any] | None  # chat template (chat_template.json), if the base has one
    record: dict[str, Any]  # source, path, format, name, fingerprint

    @property
    def spec(self) -> str:
        return str(self.record["source"])


def fingerprint(tensors: dict[str, torch.Tensor]) -> str:
    """A short hash of the weights' names, shapes and first tensor (cheap, even for a large
    model): a base that changed after a LoRA run was trained is noticed."""
    h = hashlib.sha256()
    for k in sorted(tensors):
        h.update(f"{k}:{tuple(tensors[k].shape)};".encode())
    first = tensors[min(tensors)].detach().float().contiguous().cpu()
    h.update(first.numpy().tobytes())
    return h.hexdigest()[:16]


def read_base(spec: str | Path) -> Base:
    """Read a base model: pretrained (GGUF, HF folder, built-in) or an lmlab run directory."""
    from lmlab.interop.sources import chat_template_of, is_pretrained, read_pretrained

    spec = str(spec)
    if is_pretrained(spec):
        imp = read_pretrained(spec)
        template = chat_template_of(imp)
        chat = None
        if template is not None:
            chat = {
                k: v
                for k, v in template.to_dict().items()
                if k in ("jinja", "bos_token", "eos_token", "stop")
            }
        record = {
            "source": spec,
            "path": str(imp.source.get("path", spec)),
            "format": str(imp.source.get("format", "?")),
            "name": str(imp.source.get("name", Path(spec).name)),
        }
        tensors = imp.tensors
        return Base(
            "transformer",
            imp.config,
            tensors,
            imp.tokenizer,
            {"kind": imp.tokenizer.kind},
            chat,
            {**record, "fingerprint": fingerprint(tensors)},
        )
    p = Path(spec)
    if not p.is_dir():
        raise LmlabError(
            f"--init-from {spec}: not found; pass a run directory, a .gguf file, a Hugging Face "
            "folder or builtin:NAME"
        )
    from lmlab.run import load_run
    from lmlab.serve.chat_template import TEMPLATE_FILE

    run = load_run(p)
    if run.family not in ("transformer", "rnn", "nplm"):
        raise LmlabError(
            f"--init-from {spec}: a {run.family} model is not trained by gradient descent; "
            "start from a transformer, rnn or nplm run"
        )
    chat = None
    if (p / TEMPLATE_FILE).is_file():
        try:
            chat = json.loads((p / TEMPLATE_FILE).read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise LmlabError(
                f"{p / TEMPLATE_FILE} is not valid JSON ({e}); fix or delete it"
            ) from None
    elif isinstance(run.config.get("chat"), dict):
        chat = dict(run.config["chat"])
    tensors = run.model.tensors_for_save()
    record = {
        "source": spec,
        "path": str(p.resolve()),
        "format": "run",
        "name": p.resolve().name,
        "fingerprint": fingerprint(tensors),
    }
    return Base(
        run.family,
        run.model.config,
        tensors,
        run.tokenizer,
        dict(run.config.get("tokenizer", {"kind": run.tokenizer.kind})),
        chat,
        record,
    )


def lora_settings(init: dict[str, Any]) -> LoraSettings | None:
    lora = init.get("lora")
    if lora is None:
        return None
    if not isinstance(lora, dict):
        raise LmlabError("[init] lora must be a table of LoRA settings (rank, alpha, ...)")
    return from_dict(LoraSettings, lora, where="[init.lora]")


def validate_init(init: Any) -> None:
    """The ``[init]`` section's shape, checked before anything is read."""
    if not isinstance(init, dict) or not isinstance(init.get("source"), str) or not init["source"]:
        raise LmlabError("[init] needs source = a run directory, .gguf, HF folder or builtin:NAME")
    bad = sorted(set(init) - INIT_KEYS)
    if bad:
        raise LmlabError(
            f"unknown config key {bad[0]!r} in [init]; valid keys: {', '.join(sorted(INIT_KEYS))}"
        )
    lora_settings(init)


def _contradiction(key: str, value: Any, spec: str, has: Any) -> LmlabError:
    what = FLAGS.get(key, key)
    return LmlabError(
        f"{what} {value} contradicts --init-from {spec} ({key.split('.')[-1]} {has}): the model "
        f"and its tokenizer come from there; drop {what}"
    )


def fill_config(cfg: dict[str, Any], base: Base) -> dict[str, Any]:
    """The run's config with the base's tokenizer and model filled in and fine-tuning's
    training defaults; an error for any setting that contradicts the base."""
    spec = base.spec
    for k, v in cfg.get("tokenizer", {}).items():
        if base.tokenizer_config.get(k) != v:
            raise _contradiction(f"tokenizer.{k}", v, spec, base.tokenizer_config.get(k, "none"))
    shape = {"family": base.family, **to_dict(base.config)}
    model = {}
    for k, v in cfg.get("model", {}).items():
        if k == "depth":
            raise _contradiction("model.depth", v, spec, getattr(base.config, "n_layer", "fixed"))
        if k not in shape:
            raise LmlabError(
                f"unknown config key {k!r} in [model] ({base.family}, from --init-from {spec})"
            )
        if k in MODEL_FREE_KEYS:
            model[k] = v
        elif shape[k] != v:
            raise _contradiction(f"model.{k}", v, spec, shape[k])
    lora = lora_settings(cfg["init"])
    train = dict(cfg.get("train", {}))
    max_context = base.config.context_length if base.family == "transformer" else None
    if max_context:
        train.setdefault("context", min(CONTEXT, max_context))
        if train["context"] > max_context:
            raise LmlabError(
                f"--context {train['context']} exceeds the context length of {spec} "
                f"({max_context}); use at most {max_context}"
            )
    train.setdefault("batch_size", BATCH_SIZE)
    train.setdefault("lr", LR_LORA if lora else LR_FULL)
    init = {**{k: v for k, v in cfg["init"].items() if k != "lora"}, **base.record}
    if lora is not None:
        init["lora"] = to_dict(lora)
    return {
        **cfg,
        "init": init,
        "tokenizer": dict(base.tokenizer_config),
        "model": {"family": base.family, **model},
        "train": train,
    }


def model_config(cfg: dict[str, Any], base: Base) -> Any:
    """The base's model config, with the settings fine-tuning may change (dropout)."""
    extra = {k: v for k, v in cfg["model"].items() if k in MODEL_FREE_KEYS}
    return dataclasses.replace(base.config, **extra) if extra else base.config


def check_dataset(tokenizer: Tokenizer, base: Base, where: Path) -> None:
    """A prepared dataset (``--data``) must be tokenised with the base's own tokenizer."""
    if tokenizer.to_dict() != base.tokenizer.to_dict():
        raise LmlabError(
            f"the dataset {where} was tokenised with another tokenizer ({tokenizer.kind}, "
            f"{tokenizer.vocab_size} tokens) than {base.spec}; pass --corpus instead of --data"
        )


def base_source(init: dict[str, Any]) -> str:
    """Where to read a run's base from now: ``builtin:NAME`` by name, anything else at the
    resolved path recorded when the run started."""
    src = str(init.get("source", ""))
    return src if src.startswith("builtin:") else str(init.get("path") or src)


def reopen_base(init: dict[str, Any], run_dir: Path) -> Base:
    """The base of a LoRA run, read again (to resume it or to load it); a one-line error if
    it is gone, a warning if it changed."""
    from lmlab.interop.sources import PREFIX

    src = base_source(init)
    if not src.startswith(PREFIX) and not Path(src).exists():
        raise LmlabError(
            f"the base model of {run_dir} is gone: {src} not found; put it back there (the LoRA "
            "run holds only adapters) or train the run again"
        )
    base = read_base(src)
    if init.get("fingerprint") and base.record["fingerprint"] != init["fingerprint"]:
        warnings.warn(
            f"the base model {src} is not the one {run_dir} was trained on (its weights "
            "changed); the adapters may not fit it",
            stacklevel=2,
        )
    return base


def start_from(model: Any, base: Base, cfg: dict[str, Any]) -> Any:
    """Load the base's weights into ``model``; with ``[init.lora]``, wrap it in fresh
    adapters (their targets recorded in ``cfg``). Returns how checkpoints save the weights:
    None (every tensor) or :class:`lmlab.train.lora.LoraWeights` (the adapters only)."""
    from lmlab.train import lora

    try:
        model.load_tensors(base.tensors)
    except (RuntimeError, KeyError) as e:
        raise LmlabError(
            f"the weights of {base.spec} do not fit its config ({str(e).splitlines()[0][:100]})"
        ) from None
    settings = lora_settings(cfg["init"])
    if settings is None:
        return None
    targets = lora.resolve_targets(model, settings)
    lora.apply_lora(model, settings, targets)
    cfg["init"]["lora"] = to_dict(dataclasses.replace(settings, targets=targets))
    return lora.LoraWeights(settings, targets, base_source(cfg["init"]))


def describe(model: Any, init: dict[str, Any]) -> str:
    """``transformer (N parameters)`` for the opening line, with what is trained and from what."""
    n, trainable = model.num_params(), model.num_params(trainable_only=True)
    how = "fully" if init.get("lora") is None else f"LoRA, {trainable:,} trainable"
    return f"{model.family} ({n:,} parameters; {how}) from {init.get('name') or init['source']}"


def save_chat_template(run_dir: Path, chat: dict[str, Any]) -> None:
    """Keep the base's chat template, so ``lmlab chat`` / ``serve`` talk to the fine-tuned
    model the way its base expects."""
    from lmlab.config import atomic_write_text
    from lmlab.serve.chat_template import TEMPLATE_FILE

    atomic_write_text(run_dir / TEMPLATE_FILE, json.dumps(chat, ensure_ascii=False, indent=1))
