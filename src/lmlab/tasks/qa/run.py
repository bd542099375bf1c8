"""A QA run: fine-tune a span model into a run directory, open it, answer, evaluate.

The config dict has the sections of ``config.toml``: ``[task]`` (``kind = "qa"``, the data
spec, ``split_seed``, the window settings ``max_len``/``stride``, decoding's
``max_answer_tokens``/``n_best``, ``freeze_layers``, ``bidirectional``), ``[init]`` (the base model: ``source``
and, for LoRA, ``lora = {rank, alpha, ...}``) and ``[train]`` (:class:`QATrainConfig`).
Training fills in the base's record (resolved path, format, name, weight fingerprint, as
:mod:`lmlab.train.finetune` does), its ``[tokenizer]`` and ``[model]``, and saves the
completed config.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from lmlab.config import from_dict, save_toml, to_dict
from lmlab.errors import LmlabError
from lmlab.run import CONFIG_FILE, TOKENIZER_FILE
from lmlab.tasks.datasets import DEFAULT_SPLIT_SEED
from lmlab.tasks.qa.data import QAExample
from lmlab.tasks.qa.datasets import QAData, load_qa_data
from lmlab.tasks.qa.infer import answer_examples
from lmlab.tasks.qa.metrics import QAReport, metric_for, score_answers
from lmlab.tasks.qa.model import SpanModel, load_span_model, save_full_body, save_head
from lmlab.tasks.qa.report import plot_learning_curve, write_card, write_results
from lmlab.tasks.qa.trainer import METRICS_FILE, QATrainConfig, train_span_model
from lmlab.tasks.qa.windows import make_windows
from lmlab.tasks.rundir import task_config
from lmlab.tokenize import Tokenizer, load_tokenizer

DEFAULT_BASE = "builtin:smollm2"
TASK_DEFAULTS: dict[str, Any] = {
    "max_len": 256,  # tokens per window: question prompt + passage
    "stride": 64,  # tokens consecutive windows share
    "max_answer_tokens": 30,
    "n_best": 20,
    "freeze_layers": 0,
    "bidirectional": 0,  # top blocks fine-tuned to attend both ways
}
LR_FULL, LR_LORA = 5e-5, 5e-4


@dataclass
class QARun:
    path: Path
    config: dict[str, Any]
    model: SpanModel
    tokenizer: Tokenizer
    kind: ClassVar[str] = "qa"

    @property
    def task(self) -> dict[str, Any]:
        return {**TASK_DEFAULTS, **self.config["task"]}

    @property
    def metric(self) -> str:
        return self.task.get("metric") or metric_for(self.task.get("language", "en"))

    def answer_many(self, examples: list[QAExample], top: int = 1,
                    progress: bool = False) -> list[list[dict]]:  # fmt: skip
        t = self.task
        return answer_examples(self.model, self.tokenizer, examples, int(t["max_len"]),
                               int(t["stride"]), top, int(t["n_best"]),
                               int(t["max_answer_tokens"]), progress=progress)  # fmt: skip

    def answer(self, question: str, context: str, top: int = 1) -> list[dict]:
        """The ``top`` answers to ``question`` in ``context``: dicts with ``text``, ``start``
        and ``end`` (character offsets into ``context``) and ``score`` (a probability)."""
        if not isinstance(question, str) or not question.strip():
            raise LmlabError("the question is empty; ask something about the passage")
        if not isinstance(context, str) or not context.strip():
            raise LmlabError("the context is empty; give the passage to answer from")
        if top < 1:
            raise LmlabError(f"top must be at least 1, got {top}")
        found = self.answer_many([QAExample("q", question.strip(), context)], top)[0]
        if not found:
            raise LmlabError(
                f"the question is too long for this run's windows ({self.task['max_len']} "
                "tokens with the passage); shorten it"
            )
        return found

    def evaluate(self, examples: list[QAExample], n_boot: int = 1000, seed: int = 0,
                 progress: bool = False) -> tuple[QAReport, list[str]]:  # fmt: skip
        """EM/F1 (official metric of the run's language) and the predicted answers."""
        answers = self.answer_many(examples, 1, progress)
        preds = [a[0]["text"] if a else "" for a in answers]
        report = score_answers(preds, [e.answer_texts for e in examples], self.metric, n_boot, seed)
        return report, preds

    def task_data(self) -> QAData:
        t = self.config["task"]
        return load_qa_data(t["data"], t.get("split_seed", DEFAULT_SPLIT_SEED))


def load_run(path: str | Path) -> QARun:
    p = Path(path)
    cfg = task_config(p)
    model = load_span_model(p, cfg)
    return QARun(p, cfg, model, load_tokenizer(p / TOKENIZER_FILE))


def _subset(examples: list[QAExample], n: int | None, seed: int) -> list[QAExample]:
    if n is None or n <= 0 or n >= len(examples):
        return examples
    keep = np.sort(np.random.default_rng(seed).permutation(len(examples))[:n])
    return [examples[i] for i in keep]


def _base_and_model(init: dict[str, Any], task: dict[str, Any], log):
    from lmlab.tasks.qa.model import body_from_tensors
    from lmlab.train.finetune import base_source, lora_settings, read_base
    from lmlab.train.lora import LoraWeights, apply_lora, resolve_targets

    base = read_base(init["source"])
    if base.family != "transformer":
        raise LmlabError(f"--base {init['source']} is a {base.family} model; a span model needs "
                         "a Transformer (builtin:smollm2, a GGUF, an HF folder or a transformer run)")  # fmt: skip
    model_cfg = {"family": "transformer", **to_dict(base.config)}
    if int(task["max_len"]) > base.config.context_length:
        raise LmlabError(f"--max-len {task['max_len']} exceeds the context length of "
                         f"{init['source']} ({base.config.context_length})")  # fmt: skip
    body = body_from_tensors(model_cfg, {k: v.float() for k, v in base.tensors.items()})
    model = SpanModel(body, int(task["freeze_layers"]), int(task["bidirectional"]))
    settings = lora_settings(init)
    lora = None
    if settings is not None:
        import dataclasses

        targets = resolve_targets(body, settings)
        apply_lora(body, settings, targets)
        lora = LoraWeights(settings, targets, base_source({**init, **base.record}))
        init = {**init, "lora": to_dict(dataclasses.replace(settings, targets=targets))}
    model.freeze_lower()
    init = {**{k: v for k, v in init.items() if k != "lora"}, **base.record,
            **({"lora": init["lora"]} if "lora" in init else {})}  # fmt: skip
    return base, model, model_cfg, init, lora


def train_run(
    config: dict[str, Any],
    out: str | Path,
    overwrite: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> tuple[QARun, dict[str, QAReport]]:
    """Fine-tune a span model as ``config`` says into run directory ``out``; returns the
    opened run and its reports (validation, and test where the data has one)."""
    from lmlab.train.runner import prepare_run_dir

    log = log or (lambda s: print(s, file=sys.stderr, flush=True))
    out = Path(out)
    task = {**TASK_DEFAULTS, **dict(config.get("task", {}))}
    init = dict(config.get("init") or {"source": DEFAULT_BASE})
    tcfg = from_dict(QATrainConfig, dict(config.get("train", {})), where="[train]")
    seed = int(task.get("split_seed", DEFAULT_SPLIT_SEED))
    data = load_qa_data(task["data"], seed)
    for note in data.notes:
        log(note)
    train_q = _subset(data.train, tcfg.max_questions, tcfg.seed)
    val_q = _subset(data.validation, tcfg.val_questions, tcfg.seed)
    log(f"data: {data.name} ({data.language}), {data.sizes()}; training on {len(train_q):,} "
        f"questions, validating on {len(val_q):,}")  # fmt: skip
    base, model, model_cfg, init, lora = _base_and_model(init, task, log)
    tokenizer = base.tokenizer
    windows = make_windows(train_q, tokenizer, int(task["max_len"]), int(task["stride"]),
                           labels=True, where=f"{data.name} train")  # fmt: skip
    if tcfg.negatives < 1.0:
        rng = np.random.default_rng(tcfg.seed)
        n_all = len(windows)
        windows = [w for w in windows if w.start > 0 or rng.random() < tcfg.negatives]
        log(f"{n_all - len(windows):,} of {n_all:,} windows without the answer left out "
            f"(train.negatives {tcfg.negatives})")  # fmt: skip
    lr = tcfg.lr or (LR_LORA if lora else LR_FULL)
    task.update(kind="qa", split_seed=seed, language=data.language,
                metric=metric_for(data.language))  # fmt: skip
    full = {
        "task": task,
        "init": init,
        "tokenizer": dict(base.tokenizer_config),
        "model": model_cfg,
        "train": {**to_dict(tcfg), "lr": lr},
    }
    backup = prepare_run_dir(out, overwrite, resume=False)
    try:
        save_toml(out / CONFIG_FILE, full)
        tokenizer.save(out / TOKENIZER_FILE)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        if backup is not None:
            backup.rename(out)
        raise
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)
    how = "with LoRA" if lora else "fully" if not task["freeze_layers"] else "in part"
    frozen = f", lowest {task['freeze_layers']} blocks frozen" if task["freeze_layers"] else ""
    if task["bidirectional"]:
        frozen += f", top {task['bidirectional']} blocks attending both ways"
    log(f"fine-tuning {init.get('name') or init['source']} {how} ({model.num_params():,} "
        f"parameters, {model.num_params(True):,} trainable{frozen}) on {len(windows):,} windows "
        f"of <= {task['max_len']} tokens into {out}")  # fmt: skip

    def save(step: int) -> None:
        meta = {"step": str(step)}
        save_head(model, out, meta)
        if lora is not None:
            lora.save(out, model.body, meta)
        else:
            save_full_body(model, out, meta)

    outcome = train_span_model(model, tokenizer, windows, val_q, task, tcfg, lr, out, save,
                               full["task"]["metric"], progress)  # fmt: skip
    tok_s = outcome.tokens / max(outcome.elapsed, 1e-9)
    cached = (
        f" after {outcome.cache_seconds:.1f} s on the frozen blocks"
        if outcome.cache_seconds
        else ""
    )
    log(f"{outcome.stopped} after {outcome.steps:,} steps ({outcome.epochs:.2f} epochs, "
        f"{outcome.elapsed:.1f} s{cached}, {tok_s:.0f} training tokens/s); best validation F1 "
        f"{outcome.best_f1:.2f} at step {outcome.best_step:,}")  # fmt: skip
    if lora is not None:  # answer with merged adapters, as a loaded run does
        model = load_span_model(out, full)
    run = QARun(out, full, model, tokenizer)
    reports = {}
    test_q = _subset(data.test, tcfg.test_questions, tcfg.seed) if data.test else None
    parts = {"validation": val_q, "test": test_q}
    for split, ex in parts.items():
        if ex:
            log(f"scoring {split}: {len(ex):,} questions")
            reports[split] = run.evaluate(ex, tcfg.n_boot, 0, progress and sys.stderr.isatty())[0]
    summary = {
        "train_seconds": round(outcome.elapsed + outcome.cache_seconds, 2),
        "frozen_cache_seconds": round(outcome.cache_seconds, 2), "steps": outcome.steps,
        "epochs": round(outcome.epochs, 3), "best_step": outcome.best_step,
        "stopped": outcome.stopped, "train_tokens_per_s": round(tok_s, 1),
        "parameters": model.num_params(), "trainable_parameters": outcome_trainable(init, model),
        "data": data.name, "train_questions": len(train_q), "train_windows": len(windows),
        "windows_seen": min(outcome.steps * tcfg.batch_size, round(outcome.epochs * len(windows))),
        "validation_questions": len(val_q), "test_questions": len(test_q or []),
        "sizes": {"train": len(data.train), "validation": len(data.validation),
                  "test": len(data.test or [])},
        "notes": data.notes,
    }  # fmt: skip
    write_results(out, reports, summary)
    plot_learning_curve(out / METRICS_FILE, out / "learning_curve.png",
                        title=f"{data.name}: span model on {init.get('name') or init['source']}")  # fmt: skip
    lines = [
        f"- task: **qa**, data **{data.name}** ({data.language}): {data.sizes()}, split seed {seed}",
        *[f"- {n}" for n in data.notes],
        f"- base: `{init['source']}` ({init.get('format')}, fingerprint {init.get('fingerprint')}), "
        f"fine-tuned {how}{frozen}",
        f"- windows: {task['max_len']} tokens, {task['stride']} shared; answers up to "
        f"{task['max_answer_tokens']} tokens, {task['n_best']}-best search",
        f"- training: {len(train_q):,} questions ({len(windows):,} windows), {outcome.steps:,} "
        f"steps ({outcome.epochs:.2f} epochs) in {outcome.elapsed:.1f} s{cached} ({tok_s:.0f} "
        "tokens/s), "
        f"{outcome.stopped}; selected at step {outcome.best_step:,} by validation F1 "
        f"({len(val_q):,} questions); seed {tcfg.seed}",
    ]
    write_card(out, lines, reports, full)
    return run, reports


def outcome_trainable(init: dict[str, Any], model: SpanModel) -> int:
    """Trainable parameters as trained (the merged LoRA model has none marked)."""
    if init.get("lora") is None:
        return model.num_params(True)
    lora = init["lora"]
    n = 0
    for name, m in model.body.named_modules():
        if isinstance(m, torch.nn.Linear) and any(
            name == t or name.endswith("." + t) for t in lora.get("targets") or []
        ):
            n += int(lora["rank"]) * (m.in_features + m.out_features)
    return n + sum(p.numel() for p in model.qa.parameters())
