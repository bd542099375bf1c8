"""``card.md``: what a run is, in one page: config, data, size, results, seed, versions."""

from __future__ import annotations

import contextlib
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import tomli_w

from lmlab.config import atomic_write_text

PACKAGES = ("lmlab", "torch", "numpy", "tokenizers", "safetensors", "jieba")


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    return out


def git_revision() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        r = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
        )
        return r.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _init_lines(init: dict[str, Any] | None, trainable: int | None) -> list[str]:
    """What a fine-tuned run started from, and what was trained."""
    if not init:
        return []
    lines = [
        f"- fine-tuned from **{init.get('name', '?')}** ({init.get('format', '?')}): "
        f"`{init.get('source')}`"
        + (f" at `{init['path']}`" if init.get("path") not in (None, init.get("source")) else "")
    ]
    lora = init.get("lora")
    if lora is None:
        lines.append("- training: full fine-tuning (every weight; fresh optimizer)")
    else:
        lines.append(
            f"- training: LoRA rank {lora.get('rank')}, alpha {_fmt(lora.get('alpha'))}, dropout "
            f"{_fmt(lora.get('dropout'))} on {', '.join(lora.get('targets') or [])}"
            + (f" ({trainable:,} trainable parameters)" if trainable is not None else "")
        )
        lines.append(
            "- weights: adapters only (adapter_model.safetensors, adapter_config.json, peft's "
            "format); the base is referenced, not copied, and must stay where it is"
        )
    return lines


def write_card(
    run_dir: Path,
    config: dict[str, Any],
    n_params: int,
    data_meta: dict[str, Any],
    final: dict[str, Any],
    result: dict[str, Any],
    trainable: int | None = None,
) -> Path:
    lines = [
        f"# Run card: {run_dir.name}",
        "",
        f"- model: **{config['model']['family']}**, {n_params:,} parameters",
        *_init_lines(config.get("init"), trainable),
        f"- tokenizer: {config['tokenizer']['kind']} (vocabulary {data_meta.get('vocab_size')})",
        f"- data: {', '.join(data_meta.get('sources', [])[:5])}"
        + (" ..." if len(data_meta.get("sources", [])) > 5 else ""),
        f"- tokens: {data_meta.get('train_tokens'):,} train, {data_meta.get('val_tokens'):,} validation",
        f"- seed: {config['train'].get('seed')}",
        f"- steps: {result.get('step')} ({result.get('tokens_seen'):,} tokens) in {result.get('elapsed', 0):.1f} s",
        f"- computed on: {result.get('device', '?')} in {result.get('precision', '?')}",
        "",
        "## Final metrics",
        "",
        "| metric | value |",
        "|---|---|",
    ]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in final.items() if v is not None]
    if "val_unk_rate" in final:
        lines += ["", "val_bpb charges each `<unk>` the spelling of its word, as `lmlab eval` does, "
                  "so it compares across tokenizers; val_bpb_without_spelling is the model's bits "
                  "alone."]  # fmt: skip
    versions = package_versions()
    rev = git_revision()
    lines += ["", "## Environment", ""]
    lines += [f"- {k} {v}" for k, v in versions.items()]
    lines += [f"- platform: {platform.platform()} ({sys.platform})"]
    if rev:
        lines.append(f"- lmlab git revision: {rev}")
    lines += [
        "",
        "## Config",
        "",
        "```toml",
        tomli_w.dumps(config).strip(),
        "```",
        "",
        "![loss](loss.png)",
        "",
    ]
    atomic_write_text(run_dir / "card.md", "\n".join(lines))
    return run_dir / "card.md"
