"""From a run config to a trained run directory: data, tokenizer, model, loop, report.

The config is a plain dict with sections ``[data]``, ``[tokenizer]``, ``[model]`` and
``[train]``; it is validated here (unknown keys and wrong types are errors) and saved as
``config.toml`` so a run can be rebuilt, resumed and compared. A run that starts from a
pretrained model has an ``[init]`` section too (:mod:`lmlab.train.finetune`).
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

import torch

from lmlab.config import from_dict, load_toml, save_toml, to_dict
from lmlab.data.shards import open_dataset, prepare_dataset
from lmlab.data.sources import resolve_sources
from lmlab.errors import LmlabError
from lmlab.models import FAMILIES, LanguageModel, build_model, config_from_dict, for_depth
from lmlab.run import CONFIG_FILE, TOKENIZER_FILE
from lmlab.train import distributed as ddp
from lmlab.train import finetune
from lmlab.train.card import write_card
from lmlab.train.config import TrainConfig
from lmlab.train.loop import METRICS_FILE, TrainResult, train
from lmlab.train.plots import plot_losses

SECTIONS = ("data", "tokenizer", "model", "train", "init")
DATA_KEYS = {"corpus", "jsonl_field", "val_fraction", "dataset"}
TOKENIZER_KEYS = {
    "kind",
    "vocab_size",
    "min_frequency",
    "max_vocab",
    "min_count",
    "lowercase",
    "newlines",
    "max_chars",
}


def default_config(init_from: str | None = None) -> dict[str, Any]:
    """Defaults; with ``init_from`` (a pretrained model) the tokenizer and model are its own."""
    if init_from:
        return {
            "init": {"source": str(init_from)},
            "data": {"corpus": [], "val_fraction": 0.1},
            "tokenizer": {},
            "model": {},
            "train": {},
        }
    return {
        "data": {"corpus": [], "val_fraction": 0.1},
        "tokenizer": {"kind": "char"},
        "model": {"family": "transformer", "depth": 4},
        "train": {},
    }


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in base.items()}
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k].update(v)
        else:
            out[k] = v
    return out


def validate(cfg: dict[str, Any]) -> dict[str, Any]:
    """Check sections and keys early, before any data is read, with one-line errors."""
    unknown = sorted(set(cfg) - set(SECTIONS))
    if unknown:
        raise LmlabError(
            f"unknown config section [{unknown[0]}]; valid sections: {', '.join(SECTIONS)}"
        )
    for sec, keys in (("data", DATA_KEYS), ("tokenizer", TOKENIZER_KEYS)):
        bad = sorted(set(cfg.get(sec, {})) - keys)
        if bad:
            raise LmlabError(
                f"unknown config key {bad[0]!r} in [{sec}]; valid keys: {', '.join(sorted(keys))}"
            )
    from_dict(TrainConfig, cfg.get("train", {}), where="[train]")
    if "init" in cfg:  # the model's keys are checked against the base, once it is read
        finetune.validate_init(cfg["init"])
        return cfg
    family = cfg.get("model", {}).get("family", "transformer")
    if family not in FAMILIES:
        raise LmlabError(f"unknown model family {family!r}; choose one of {', '.join(FAMILIES)}")
    if cfg.get("train", {}).get("carry_state") and family != "rnn":
        raise LmlabError(
            f"train.carry_state needs a recurrent model (rnn); the {family} family has a "
            "fixed context, so drop carry_state"
        )
    depth = cfg.get("model", {}).get("depth")
    if depth is not None and (type(depth) is not int or depth < 1):
        raise LmlabError(
            f"model depth must be a whole number of layers >= 1, got {depth!r}; e.g. --depth 4"
        )
    allowed = {f.name for f in dataclasses.fields(FAMILIES[family][0])} | {"family", "depth"}
    bad = sorted(set(cfg.get("model", {})) - allowed)
    if bad:  # caught before any text is read or tokenised
        raise LmlabError(
            f"unknown config key {bad[0]!r} in [model] ({family}); valid keys: {', '.join(sorted(allowed))}"
        )
    return cfg


def model_config(cfg: dict[str, Any], vocab_size: int) -> Any:
    """The model's config dataclass, with the vocabulary and context filled in."""
    m = dict(cfg["model"])
    family = m.pop("family")
    context = TrainConfig(**cfg.get("train", {})).context
    if family == "transformer":
        depth = m.pop("depth", None)
        base = (
            dataclasses.asdict(for_depth(int(depth), vocab_size, context, m.get("block", "gpt2")))
            if depth
            else {}
        )
        base.update(
            {"vocab_size": vocab_size, "context_length": max(context, m.get("context_length", 0))}
        )
        base.update({k: v for k, v in m.items() if k not in ("vocab_size", "context_length")})
        return config_from_dict(family, base)
    m.pop("depth", None)
    m["vocab_size"] = vocab_size
    if family == "rnn":
        m.setdefault("context_length", context)  # the training window, recorded for reference
    return config_from_dict(family, m)


def prepare_run_dir(out: Path, overwrite: bool, resume: bool) -> Path | None:
    """Check (and create) the run directory. With ``--overwrite`` the old run is moved aside,
    not deleted; the returned backup path is removed once the new run is under way, or moved
    back if setting it up fails, so a failed start never loses a saved run."""
    if resume:
        if not (out / CONFIG_FILE).is_file():
            raise LmlabError(
                f"nothing to resume in {out} (no {CONFIG_FILE}); drop --resume to start a run"
            )
        return None
    backup = None
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise LmlabError(
                f"run directory {out} already exists; pass --overwrite to replace it or --resume to continue it"
            )
        if not (out / CONFIG_FILE).is_file() and not (out / METRICS_FILE).is_file():
            raise LmlabError(
                f"{out} exists and does not look like an lmlab run; refusing to delete it"
            )
        backup = out.with_name(f".{out.name}.replaced")
        if backup.exists():
            shutil.rmtree(backup)
        out.rename(backup)
    out.mkdir(parents=True, exist_ok=True)
    return backup


def load_or_prepare_data(cfg: dict[str, Any], out: Path, dist: ddp.DistInfo, tokenizer: Any = None):
    """The run's dataset, tokenised into ``out/data`` on first use (with ``tokenizer`` if
    given, e.g. a pretrained model's, else one trained on the corpus)."""
    data_dir = Path(cfg["data"]["dataset"]) if cfg["data"].get("dataset") else out / "data"
    if not cfg["data"].get("dataset") and not (data_dir / "meta.json").is_file():
        if dist.is_main:
            tok_opts = {k: v for k, v in cfg["tokenizer"].items() if k != "kind"}
            sources = resolve_sources(
                list(cfg["data"].get("corpus", [])), cfg["data"].get("jsonl_field") or None
            )
            prepare_dataset(
                sources,
                data_dir,
                tokenizer=tokenizer,
                tokenizer_kind=cfg["tokenizer"]["kind"],
                tokenizer_options=tok_opts,
                val_fraction=float(cfg["data"].get("val_fraction", 0.1)),
            )
        if dist.enabled:
            torch.distributed.barrier()
    return open_dataset(data_dir)


def _device_name(cfg: dict[str, Any], out: Path, resume: bool) -> str:
    """The configured device (of the saved run when resuming), before anything is opened."""
    if resume:
        try:
            cfg = load_toml(out / CONFIG_FILE)
        except (LmlabError, OSError):
            return "auto"  # the run directory's own checks report the problem
    return str(cfg.get("train", {}).get("device", "auto"))


def run_training(
    cfg: dict[str, Any],
    out: str | Path,
    overwrite: bool = False,
    resume: bool = False,
    steps: int | None = None,
    init_model: Any = None,
    quiet: bool = False,
    should_stop: Any = None,
    progress: bool = True,
) -> tuple[LanguageModel, TrainResult]:
    """Prepare (or reopen) a run directory and train it; returns the model and result.

    ``init_model`` is an optional callable ``(model, tokenizer) -> None`` run before
    training (e.g. to load pre-trained word vectors into the embedding layer). A config
    with ``[init] source = ...`` fine-tunes that pretrained model (``[init.lora]``: LoRA).
    ``quiet`` drops the opening line; ``progress=False`` hides the progress bar.
    """
    out = Path(out)
    dist = ddp.setup(_device_name(cfg, out, resume))
    created = not out.exists()
    backup: Path | None = None
    started = False
    base: finetune.Base | None = None
    try:
        if resume:
            prepare_run_dir(out, overwrite, resume=True)
            cfg = load_toml(out / CONFIG_FILE)
            if steps is not None:
                cfg["train"]["steps"] = steps
            if cfg.get("init", {}).get("lora") is not None:  # the adapters need their base
                base = finetune.reopen_base(cfg["init"], out)
        else:
            validate(cfg)
            if cfg.get("init"):
                base = finetune.read_base(cfg["init"]["source"])
                cfg = finetune.fill_config(cfg, base)
            if dist.is_main:
                backup = prepare_run_dir(out, overwrite, resume=False)
            if dist.enabled:
                torch.distributed.barrier()
        data = load_or_prepare_data(cfg, out, dist, base.tokenizer if base else None)
        if base is not None and not resume and cfg["data"].get("dataset"):
            finetune.check_dataset(data.tokenizer, base, data.path)
        tcfg = from_dict(TrainConfig, cfg.get("train", {}), where="[train]")
        if resume:
            mcfg = config_from_dict(
                cfg["model"]["family"], {k: v for k, v in cfg["model"].items() if k != "family"}
            )
        elif base is not None:
            mcfg = finetune.model_config(cfg, base)
        else:
            mcfg = model_config(cfg, data.tokenizer.vocab_size)
        family = cfg["model"]["family"]
        torch.manual_seed(tcfg.seed)  # the same initial weights for the same seed, on every process
        model = build_model(family, mcfg)
        weights = None
        if base is not None:
            weights = finetune.start_from(model, base, cfg)
        if init_model is not None and not resume:
            init_model(model, data.tokenizer)
        full = {
            **({"init": cfg["init"]} if cfg.get("init") else {}),
            "data": cfg["data"],
            "tokenizer": cfg["tokenizer"],
            "model": {"family": family, **to_dict(mcfg)},
            "train": to_dict(tcfg),
        }
        if dist.is_main:
            save_toml(out / CONFIG_FILE, full)
            data.tokenizer.save(out / TOKENIZER_FILE)
            if base is not None and base.chat and not resume:
                finetune.save_chat_template(out, base.chat)
            if not quiet:
                what = f"{family} ({model.num_params():,} parameters)"
                if base is not None:
                    what = finetune.describe(model, cfg["init"])
                print(
                    f"lmlab: training {what} on "
                    f"{data.meta.train_tokens:,} tokens ({data.meta.tokenizer} tokenizer, vocabulary "
                    f"{data.meta.vocab_size:,}) into {out}",
                    flush=True,
                )
            if backup is not None:
                shutil.rmtree(backup, ignore_errors=True)
                backup = None
        started = True
        result = train(
            model,
            data,
            tcfg,
            out,
            resume=resume,
            dist=dist,
            should_stop=should_stop,
            progress=progress,
            weights=weights,
            announce=not quiet,
        )
        if result.already_complete:
            return model, result
        if dist.is_main:
            plot_losses(out / METRICS_FILE, out / "loss.png", title=f"{out.name}: {family}")
            if not result.interrupted:
                write_card(
                    out,
                    full,
                    model.num_params(),
                    dataclasses.asdict(data.meta),
                    result.final,
                    dataclasses.asdict(result),
                    trainable=model.num_params(trainable_only=True),
                )
        return model, result
    except BaseException:
        if not started and not resume and dist.is_main:  # undo a failed start
            if created or backup is not None:
                shutil.rmtree(out, ignore_errors=True)
            if backup is not None:
                backup.rename(out)
        raise
    finally:
        ddp.teardown(dist)
