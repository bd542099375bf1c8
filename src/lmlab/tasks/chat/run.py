"""A chat run: supervised fine-tuning of a chat model into an ordinary lmlab run directory,
opening it, and measuring it against its base.

The run directory is what every lmlab command opens (``lmlab chat/generate/serve --run``):
``config.toml`` (``[task]`` with ``kind = "chat"``, the data spec and split seed; ``[init]``
the base and, for LoRA, ``[init.lora]``; ``[tokenizer]``; ``[model]`` the base's shape;
``[train]``), ``tokenizer.json``, ``chat_template.json`` (the base's), and the weights:
``model.safetensors`` (full fine-tuning) or peft's ``adapter_model.safetensors`` +
``adapter_config.json`` (LoRA; merged into the base when the run is loaded). Beside them
``metrics.jsonl``, ``results.json``, ``learning_curve.png`` and ``card.md``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import platform
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import tomli_w

from lmlab.config import atomic_write_text, from_dict, save_toml, to_dict
from lmlab.errors import LmlabError
from lmlab.run import CONFIG_FILE, MODEL_FILE, TOKENIZER_FILE, save_tensors_atomic
from lmlab.tasks.chat.data import SPLIT_SEED, ChatData, load_chat_data
from lmlab.tasks.chat.loss import Encoded, encode_conversations, response_loss
from lmlab.tasks.chat.trainer import METRICS_FILE, ChatTrainConfig, train_chat

DEFAULT_BASE = "builtin:smollm2"
TASK_DEFAULTS: dict[str, Any] = {"max_len": 1024}
LR_FULL, LR_LORA = 5e-5, 5e-4
RESULTS_FILE = "results.json"
CARD_FILE = "card.md"
MAX_NEW_TOKENS = 64


@dataclass
class ChatRun:
    path: Path
    config: dict[str, Any]
    model: Any
    tokenizer: Any
    template: Any
    kind: ClassVar[str] = "chat"

    @property
    def task(self) -> dict[str, Any]:
        return {**TASK_DEFAULTS, **self.config["task"]}

    def task_data(self) -> ChatData:
        t = self.config["task"]
        return load_chat_data(t["data"], int(t.get("split_seed", SPLIT_SEED)))

    def encode(self, conversations: list, where: str) -> list[Encoded]:
        return encode_conversations(self.template, conversations, self.tokenizer,
                                    int(self.task["max_len"]), where)  # fmt: skip

    def base_model(self):
        """The base model the run was tuned from (read again), for comparisons."""
        from lmlab.models.transformer import Transformer
        from lmlab.train.finetune import base_source, read_base

        base = read_base(base_source(self.config["init"]))
        model = Transformer.from_tensors(
            base.config, {k: v.float() for k, v in base.tensors.items()}
        )
        return model.eval()

    def reply(self, messages: list[dict[str, str]], model=None,
              max_new_tokens: int = MAX_NEW_TOKENS) -> str:  # fmt: skip
        """The greedy reply of ``model`` (default: the tuned one) to ``messages``."""
        from lmlab.generate.engine import generate
        from lmlab.generate.sampling import SamplingParams
        from lmlab.serve.chat_template import encode_chat

        ids = encode_chat(self.template, messages, self.tokenizer, add_generation_prompt=True)
        params = SamplingParams(max_new_tokens=max_new_tokens, temperature=0.0,
                                stop=list(self.template.stop))  # fmt: skip
        out = generate(model or self.model, self.tokenizer, ids, params)[0].text
        return out.strip() if self.template.strip_reply else out

    def replies(self, conversations: list[list[dict[str, str]]], model=None,
                max_new_tokens: int = MAX_NEW_TOKENS, batch: int = 16,
                on_done: Callable[[int], None] | None = None) -> list[str]:  # fmt: skip
        """:meth:`reply` to each of ``conversations``, decoded ``batch`` at a time
        (continuous batching through the server's worker); the same greedy replies."""
        from lmlab.generate.sampling import SamplingParams
        from lmlab.serve.batcher import complete_all
        from lmlab.serve.chat_template import encode_chat

        prompts = [encode_chat(self.template, m, self.tokenizer, add_generation_prompt=True)
                   for m in conversations]  # fmt: skip
        params = SamplingParams(max_new_tokens=max_new_tokens, temperature=0.0,
                                stop=list(self.template.stop))  # fmt: skip
        outs = complete_all(model or self.model, self.tokenizer, prompts, params, batch, on_done)
        return [o.strip() for o in outs] if self.template.strip_reply else outs


def load_run(path: str | Path) -> ChatRun:
    """Open a chat run (its model through :func:`lmlab.run.load_run`, adapters merged)."""
    from lmlab.run import load_run as load_lm_run
    from lmlab.serve.chat_template import load_chat_template
    from lmlab.tasks.rundir import task_config

    p = Path(path)
    task_config(p)
    r = load_lm_run(p)
    return ChatRun(p, r.config, r.model, r.tokenizer, load_chat_template(p, r.config))


def _subset(items: list, n: int | None, seed: int) -> list:
    if not n or n >= len(items):
        return items
    keep = np.sort(np.random.default_rng(seed).permutation(len(items))[:n])
    return [items[i] for i in keep]


def _model_from_base(init: dict[str, Any]):
    from lmlab.models.transformer import Transformer
    from lmlab.serve.chat_template import template_from_dict
    from lmlab.train.finetune import base_source, lora_settings, read_base
    from lmlab.train.lora import LoraWeights, apply_lora, resolve_targets

    base = read_base(init["source"])
    if base.family != "transformer":
        raise LmlabError(f"--base {init['source']} is a {base.family} model; chat fine-tuning "
                         "needs a Transformer (builtin:smollm2, a GGUF, an HF folder or a "
                         "transformer run)")  # fmt: skip
    if not base.chat:
        raise LmlabError(f"--base {init['source']} has no chat template; start from an instruct "
                         "model (builtin:smollm2) or a run with chat_template.json")  # fmt: skip
    template = template_from_dict(dict(base.chat), init["source"])
    model = Transformer.from_tensors(base.config, {k: v.float() for k, v in base.tensors.items()})
    settings = lora_settings(init)
    init = {**{k: v for k, v in init.items() if k != "lora"}, **base.record}
    lora = None
    if settings is not None:
        targets = resolve_targets(model, settings)
        apply_lora(model, settings, targets)
        lora = LoraWeights(settings, targets, base_source(init))
        init["lora"] = to_dict(dataclasses.replace(settings, targets=targets))
    return base, template, model, init, lora


def train_run(
    config: dict[str, Any],
    out: str | Path,
    overwrite: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> tuple[ChatRun, dict[str, dict[str, float]]]:
    """Fine-tune a chat model as ``config`` says into run directory ``out``; returns the
    opened run and its validation figures (response loss and perplexity, base and tuned)."""
    from lmlab.train.finetune import save_chat_template
    from lmlab.train.runner import prepare_run_dir

    log = log or (lambda s: print(s, file=sys.stderr, flush=True))
    out = Path(out)
    task = {**TASK_DEFAULTS, **dict(config.get("task", {}))}
    init = dict(config.get("init") or {"source": DEFAULT_BASE})
    tcfg = from_dict(ChatTrainConfig, dict(config.get("train", {})), where="[train]")
    seed = int(task.get("split_seed", SPLIT_SEED))
    data = load_chat_data(task["data"], seed)
    for note in data.notes:
        log(note)
    base, template, model, init, lora = _model_from_base(init)
    if "max_len" not in config.get("task", {}):  # the default, within the base's context
        task["max_len"] = min(int(task["max_len"]), base.config.context_length)
    if int(task["max_len"]) > base.config.context_length:
        raise LmlabError(f"--max-len {task['max_len']} exceeds the context length of "
                         f"{init['source']} ({base.config.context_length})")  # fmt: skip
    tok, max_len = base.tokenizer, int(task["max_len"])
    train_c = _subset(data.train, tcfg.max_conversations, tcfg.seed)
    val_c = _subset(data.validation, tcfg.val_conversations, tcfg.seed)
    train = encode_conversations(template, train_c, tok, max_len, f"{data.name} train")
    val = encode_conversations(template, val_c, tok, max_len, f"{data.name} validation")
    log(f"data: {data.name}, {data.sizes()} conversations; training on {len(train):,} "
        f"({sum(e.targets for e in train):,} assistant tokens of "
        f"{sum(len(e.ids) for e in train):,}), validating on {len(val):,}")  # fmt: skip
    lr = tcfg.lr or (LR_LORA if lora else LR_FULL)
    task.update(kind="chat", split_seed=seed)
    full = {"task": task, "init": init, "tokenizer": dict(base.tokenizer_config),
            "model": {"family": "transformer", **to_dict(base.config)},
            "train": {**to_dict(tcfg), "lr": lr}}  # fmt: skip
    backup = prepare_run_dir(out, overwrite, resume=False)
    try:
        save_toml(out / CONFIG_FILE, full)
        tok.save(out / TOKENIZER_FILE)
        save_chat_template(out, dict(base.chat))
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        if backup is not None:
            backup.rename(out)
        raise
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)
    how = "LoRA" if lora else "fully"
    log(f"fine-tuning {init.get('name') or init['source']} {how} ({model.num_params():,} "
        f"parameters, {model.num_params(trainable_only=True):,} trainable) into {out}; loss on "
        "assistant tokens only")  # fmt: skip

    def save(step: int) -> None:
        meta = {"step": str(step)}
        if lora is not None:
            lora.save(out, model, meta)
        else:
            save_tensors_atomic(model.tensors_for_save(), out / MODEL_FILE, meta)

    outcome = train_chat(model, train, val, tok.eos_id, tcfg, lr, out, save, progress)
    tok_s = outcome.tokens / max(outcome.elapsed - outcome.eval_seconds, 1e-9)
    log(f"{outcome.stopped} after {outcome.steps:,} steps ({outcome.epochs:.2f} epochs, "
        f"{outcome.elapsed:.1f} s, {tok_s:.0f} training tokens/s); validation response "
        f"perplexity (bf16) {math.exp(outcome.start_val_loss):.3f} (base) -> "
        f"{math.exp(outcome.best_val_loss):.3f} (best, step {outcome.best_step:,})")  # fmt: skip
    run = load_run(out)  # the run as every command opens it (adapters merged)
    # measured as in training (bf16 autocast moves perplexity by about 1%; task eval: float32)
    v_loss, v_n = response_loss(run.model, val, tok.eos_id, tcfg.batch_size, tcfg.bf16)
    b_loss = outcome.start_val_loss
    figures = {"validation": {"base_loss": b_loss, "base_ppl": math.exp(b_loss),
                              "loss": v_loss, "ppl": math.exp(v_loss), "tokens": v_n}}  # fmt: skip
    summary = {
        "data": data.name, "train_seconds": round(outcome.elapsed, 2), "steps": outcome.steps,
        "epochs": round(outcome.epochs, 3), "best_step": outcome.best_step,
        "stopped": outcome.stopped, "train_tokens_per_s": round(tok_s, 1),
        "parameters": run.model.num_params(), "lora": init.get("lora"),
        "train_conversations": len(train), "validation_conversations": len(val),
        "sizes": {"train": len(data.train), "validation": len(data.validation),
                  "test": len(data.test or [])},
    }  # fmt: skip
    write_results(out, {**summary, **figures})
    plot_learning_curve(out / METRICS_FILE, out / "learning_curve.png",
                        f"{data.name}: {how} on {init.get('name') or init['source']}")  # fmt: skip
    lines = [
        f"- task: **chat** (supervised fine-tuning, loss on assistant tokens only), data "
        f"**{data.name}**: {data.sizes()} conversations, split seed {seed}",
        *[f"- {n}" for n in data.notes],
        f"- base: `{init['source']}` ({init.get('format')}, fingerprint {init.get('fingerprint')}), "
        f"fine-tuned {how}",
        f"- training: {len(train):,} conversations of <= {max_len} tokens, {outcome.steps:,} steps "
        f"({outcome.epochs:.2f} epochs) in {outcome.elapsed:.1f} s ({tok_s:.0f} tokens/s), "
        f"{outcome.stopped}; kept step {outcome.best_step:,} (best validation response loss)",
        f"- validation response perplexity ({len(val):,} conversations, {v_n:,} assistant "
        f"tokens{', bf16' if tcfg.bf16 else ''}): base {math.exp(b_loss):.3f}, tuned "
        f"{math.exp(v_loss):.3f}",
    ]
    write_card(out, lines, full, ["learning_curve.png"])
    return run, figures


def write_results(run_dir: Path, data: dict[str, Any]) -> None:
    atomic_write_text(run_dir / RESULTS_FILE, json.dumps(data, indent=1, ensure_ascii=False))


def write_card(run_dir: Path, summary: list[str], config: dict[str, Any],
               pictures: list[str]) -> None:  # fmt: skip
    from lmlab.train.card import git_revision, package_versions

    lines = [f"# Chat run: {run_dir.name}", "", *summary, "", "Use it: `lmlab chat --run "
             f"{run_dir}`, `lmlab serve --run {run_dir}`; scores: `lmlab task eval --run "
             f"{run_dir}`.", "", "## Environment", ""]  # fmt: skip
    lines += [f"- {k} {v}" for k, v in package_versions().items()]
    lines.append(f"- platform: {platform.platform()}")
    if rev := git_revision():
        lines.append(f"- lmlab git revision: {rev}")
    lines += ["", "## Config", "", "```toml", tomli_w.dumps(config).strip(), "```", ""]
    lines += [f"![{Path(p).stem}]({p})" for p in pictures if (run_dir / p).is_file()]
    atomic_write_text(run_dir / CARD_FILE, "\n".join(lines) + "\n")


def plot_learning_curve(metrics: Path, out: Path, title: str) -> None:
    """Training and validation response loss against steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recs = [json.loads(x) for x in metrics.read_text("utf-8").splitlines() if x.strip()]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    tr = [r for r in recs if "train_loss" in r]
    ax.plot([r["step"] for r in recs], [r["val_loss"] for r in recs], "o-", label="validation")
    if tr:
        ax.plot([r["step"] for r in tr], [r["train_loss"] for r in tr], "s--", label="training")
    ax.set_xlabel("step")
    ax.set_ylabel("response loss (nats/token)")
    ax.set_title(title, fontsize=9)
    ax.legend()
    fig.tight_layout()
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(out)
