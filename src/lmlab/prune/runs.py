"""``lmlab prune``: a Transformer run (or a pretrained model) into a new run with fewer MLP
channels in every layer, chosen by their importance on calibration text.

The new run is an ordinary float run (``[model] d_ff`` is the new width, ``[pruning]``
records what was done), so every command opens it, ``lmlab quantize`` quantises it and
``lmlab train --init-from`` can fine-tune it to recover what pruning cost. It is written in
a temporary folder and renamed; an existing ``--out`` is never touched.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lmlab.errors import LmlabError
from lmlab.prune.channels import choose_channels, kept_width, prune_mlp
from lmlab.prune.importance import mlp_importance

SECTION = "pruning"


@dataclass
class PruneReport:
    out: Path
    d_ff: int
    kept: int
    params_before: int
    params_after: int
    calibration_tokens: int


def calibration_ids(spec: str, tokenizer, tokens: int) -> np.ndarray:
    """The first ``tokens`` tokens of the text ``spec`` names (a file, folder, glob or
    ``builtin:NAME``, as ``--corpus`` takes)."""
    from lmlab.data.sources import iter_documents, resolve_sources

    parts: list[str] = []
    size = 0
    for doc in iter_documents(resolve_sources([spec])):
        for chunk in doc:
            parts.append(chunk)
            size += len(chunk)
            if size >= 12 * tokens:  # enough characters for ``tokens`` tokens of any script
                break
        if size >= 12 * tokens:
            break
    text = "".join(parts).strip()
    if not text:
        raise LmlabError(f"calibration text {spec} is empty; give a file with some text in it")
    ids = tokenizer.encode(text[: 12 * tokens])[:tokens]
    return np.asarray(ids, dtype=np.int64)


def prune_run(
    source: str | Path,
    out: str | Path,
    fraction: float,
    text: str | None = None,
    tokens: int = 16384,
    criterion: str = "taylor",
    multiple: int = 32,
    seed: int = 0,
    progress: bool = True,
) -> PruneReport:
    """Prune ``fraction`` of every layer's MLP channels of ``source`` into the new run ``out``."""
    from lmlab.config import atomic_write_text, save_toml
    from lmlab.quantize.runs import SECTION as QUANT
    from lmlab.quantize.runs import link_tree
    from lmlab.run import CONFIG_FILE, MODEL_FILE, TOKENIZER_FILE, load_run, save_tensors_atomic
    from lmlab.serve.chat_template import TEMPLATE_FILE

    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise LmlabError(f"{out} already exists; choose a new --out (nothing was overwritten)")
    if criterion in ("taylor", "activation") and not text:
        raise LmlabError(f"the {criterion} criterion needs calibration text: pass --text FILE")
    if tokens < 2:
        raise LmlabError(f"--tokens must be at least 2, got {tokens}")
    src_dir = Path(str(source))
    if src_dir.is_dir() and (src_dir / CONFIG_FILE).is_file():
        from lmlab.config import load_toml

        if QUANT in load_toml(src_dir / CONFIG_FILE):
            raise LmlabError(f"{source} is quantised; prune its float source run, then quantise")
    run = load_run(source, quantized=False)  # a LoRA run: its adapters merged
    if run.family != "transformer":
        raise LmlabError(f"{source} is a {run.family} run; pruning needs a Transformer")
    model = run.model.float()
    d_ff = model.config.ff_dim
    keep = kept_width(d_ff, fraction, multiple)
    needs_text = criterion in ("taylor", "activation")
    ids = calibration_ids(text, run.tokenizer, tokens) if needs_text else None
    scores = mlp_importance(model, ids, criterion, seed=seed, progress=progress)
    pruned = prune_mlp(model, choose_channels(scores, keep))
    cfg = {k: v for k, v in run.config.items() if k not in ("chat", "source", "init")}
    cfg["model"] = {**run.config["model"], "d_ff": keep}
    record = {"from": str(source), "criterion": criterion, "fraction": fraction,
              "d_ff_before": d_ff, "d_ff_after": keep, "multiple": multiple,
              "parameters_before": model.num_params(), "parameters_after": pruned.num_params()}  # fmt: skip
    if ids is not None:
        where = text if str(text).startswith("builtin:") else str(Path(text).resolve())
        record |= {"calibration": where, "calibration_tokens": int(len(ids))}
    if criterion == "random":
        record["seed"] = seed
    cfg[SECTION] = record
    tmp = out.with_name(f".{out.name}.pruning")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        save_toml(tmp / CONFIG_FILE, cfg)
        run.tokenizer.save(tmp / TOKENIZER_FILE)
        save_tensors_atomic(pruned.tensors_for_save(), tmp / MODEL_FILE, {"format": "pt"})
        if src_dir.is_dir() and (src_dir / TEMPLATE_FILE).is_file():
            shutil.copy2(src_dir / TEMPLATE_FILE, tmp / TEMPLATE_FILE)
        elif "chat" in run.config:
            text_ = json.dumps(run.config["chat"], ensure_ascii=False, indent=1)
            atomic_write_text(tmp / TEMPLATE_FILE, text_)
        if src_dir.is_dir() and (src_dir / "data").is_dir():  # its prepared splits, for eval
            link_tree(src_dir / "data", tmp / "data")
        atomic_write_text(tmp / "card.md", _card(out.name, record))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():
        out.rmdir()  # empty (checked above)
    tmp.rename(out)
    return PruneReport(out, d_ff, keep, record["parameters_before"], record["parameters_after"],
                       record.get("calibration_tokens", 0))  # fmt: skip


def _card(name: str, r: dict) -> str:
    how = {"taylor": "first-order Taylor importance on calibration text",
           "activation": "mean activation x output-weight norm on calibration text",
           "magnitude": "weight magnitude", "random": "at random (a control)"}[r["criterion"]]  # fmt: skip
    lines = [
        f"# Run card: {name}",
        "",
        f"- pruned from `{r['from']}`: every layer's MLP keeps {r['d_ff_after']} of "
        f"{r['d_ff_before']} channels, chosen by {how}",
        f"- parameters: {r['parameters_before']:,} -> {r['parameters_after']:,}",
    ]
    if "calibration" in r:
        lines.append(f"- calibration: {r['calibration_tokens']:,} tokens of `{r['calibration']}`")
    lines += ["- not fine-tuned after pruning: `lmlab train --init-from` recovers quality", ""]
    return "\n".join(lines)
