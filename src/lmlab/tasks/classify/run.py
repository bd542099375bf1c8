"""A classification run: train one into a run directory, open it, predict, evaluate, explain.

The config dict has the sections of ``config.toml``: ``[task]`` (``kind = "classify"``,
``data`` spec, ``split_seed``, optional ``embeddings = {path, freeze}``), ``[tokenizer]``
(``kind`` and its options), ``[model]`` (``family`` and overrides) and ``[train]``
(:class:`ClassifyTrainConfig`). Training fills in what it learns (labels, language,
vocabulary size, the vectors' coverage) and saves the completed config.
"""

from __future__ import annotations

import shutil
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from lmlab.config import from_dict, save_toml
from lmlab.errors import LmlabError
from lmlab.run import CONFIG_FILE, MODEL_FILE, TOKENIZER_FILE, load_tensors_checked
from lmlab.tasks.classify.batches import encode_texts
from lmlab.tasks.classify.explain import explain
from lmlab.tasks.classify.models import Classifier, build_classifier, config_dict
from lmlab.tasks.classify.pretrained import (
    PRETRAINED,
    build_pretrained,
    card_lines,
    open_pretrained_model,
    train_defaults,
)
from lmlab.tasks.classify.trainer import (
    METRICS_FILE,
    ClassifyTrainConfig,
    TrainOutcome,
    predict_logits,
    train_classifier,
)
from lmlab.tasks.data import Examples
from lmlab.tasks.datasets import DEFAULT_SPLIT_SEED, TaskData, load_task_data
from lmlab.tasks.metrics import Report, evaluate_predictions
from lmlab.tasks.plots import plot_confusion, plot_learning_curve
from lmlab.tasks.rundir import task_config, write_card, write_results
from lmlab.tasks.splits import stratified_split
from lmlab.tokenize import Tokenizer, WordTokenizer, load_tokenizer, train_tokenizer

# Tokenizer options unless the config says otherwise: words lower-cased, a large vocabulary
# (a classifier sees each training word), no newline tokens.
TOKENIZER_DEFAULTS: dict[str, dict[str, Any]] = {
    "word": {"lowercase": True, "max_vocab": 50000, "min_count": 1, "newlines": False},
    "char": {},
    "bpe": {"vocab_size": 8000},
}


@dataclass
class ClassifierRun:
    path: Path
    config: dict[str, Any]
    model: Classifier
    tokenizer: Tokenizer

    @property
    def labels(self) -> list[str]:
        return list(self.config["task"]["labels"])

    @property
    def max_len(self) -> int:
        return int(self.config["train"].get("max_len", 256))

    def encode(self, texts: list[str]) -> list[np.ndarray]:
        c = self.model.config
        if hasattr(c, "template"):  # a pretrained Transformer reads a prompt
            return encode_texts(self.tokenizer, texts, self.max_len, c.template, c.prefix)[0]
        return encode_texts(self.tokenizer, texts, self.max_len)[0]

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        """Class probabilities ``(N, C)``; columns follow :attr:`labels`."""
        logits = predict_logits(self.model, self.encode(texts))
        return torch.softmax(torch.from_numpy(logits), dim=-1).numpy()

    def evaluate(self, examples: Examples, n_boot: int = 1000, seed: int = 0) -> Report:
        index = {n: i for i, n in enumerate(self.labels)}
        unknown = sorted({lab for lab in examples.labels if lab not in index})
        if unknown:
            raise LmlabError(
                f"{examples.source or 'the data'} has label(s) {unknown[:3]} this run was not "
                f"trained on ({', '.join(self.labels)})"
            )
        y = np.array([index[lab] for lab in examples.labels])
        logits = predict_logits(self.model, self.encode(examples.texts))
        loss = float(F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(y)).item())
        return evaluate_predictions(y, logits.argmax(1), self.labels, n_boot, seed, loss)

    def explain(self, text: str, method: str = "grad", target: int | None = None):
        """``(pieces, scores, target)``: one score per token for class ``target`` (default:
        the predicted class)."""
        ids = self.encode([text])[0]
        if target is None:
            target = int(self.predict_proba([text])[0].argmax())
        return (
            token_pieces(self.tokenizer, text, ids),
            explain(self.model, ids, target, method),
            target,
        )

    def task_data(self) -> TaskData:
        t = self.config["task"]
        return load_task_data(t["data"], t.get("split_seed", DEFAULT_SPLIT_SEED))


def token_pieces(tokenizer: Tokenizer, text: str, ids: np.ndarray) -> list[str]:
    """Readable text of each token (the original word behind a word tokenizer's ``<unk>``)."""
    if isinstance(tokenizer, WordTokenizer):
        words = tokenizer.tokens(text)
        if len(words) >= len(ids):
            return words[: len(ids)]
    return [tokenizer.id_to_piece(int(i)).strip() or "␣" for i in ids]


def load_run(path: str | Path) -> ClassifierRun:
    p = Path(path)
    cfg = task_config(p)
    if cfg.get("model", {}).get("family") in PRETRAINED:
        model = open_pretrained_model(cfg, p)
        return ClassifierRun(p, cfg, model, load_tokenizer(p / TOKENIZER_FILE))
    model_cfg = dict(cfg["model"])
    model = build_classifier(model_cfg.pop("family"), model_cfg)
    tensors = load_tensors_checked(p / MODEL_FILE)
    try:
        model.load_state_dict(tensors)
    except RuntimeError as e:
        raise LmlabError(
            f"{p / MODEL_FILE} does not match {p / CONFIG_FILE} ({str(e).splitlines()[0][:100]})"
        ) from None
    model.eval()
    return ClassifierRun(p, cfg, model, load_tokenizer(p / TOKENIZER_FILE))


def train_run(
    config: dict[str, Any],
    out: str | Path,
    overwrite: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> tuple[ClassifierRun, dict[str, Report]]:
    """Train a classifier as ``config`` says into run directory ``out``; returns the opened
    run and its reports (validation, and test where the data has one)."""
    from lmlab.embeddings.vectors import Vectors
    from lmlab.tasks.classify.vectors import init_from_vectors
    from lmlab.train.runner import prepare_run_dir

    log = log or (lambda s: print(s, file=sys.stderr, flush=True))
    out = Path(out)
    task = dict(config.get("task", {}))
    tcfg = from_dict(ClassifyTrainConfig, dict(config.get("train", {})), where="[train]")
    tok_cfg = dict(config.get("tokenizer", {"kind": "word"}))
    tok_kind = tok_cfg.pop("kind", "word")
    if tok_kind not in TOKENIZER_DEFAULTS:
        raise LmlabError(f"tokenizer {tok_kind!r} cannot be trained here; use word, char or bpe")
    tok_opts = {**TOKENIZER_DEFAULTS[tok_kind], **tok_cfg}
    model_cfg = dict(config.get("model", {}))
    family = model_cfg.pop("family", "textcnn")
    emb = dict(task.get("embeddings") or {})
    if emb and not emb.get("path"):
        raise LmlabError("[task.embeddings] needs a path to word vectors")
    if emb and tok_kind not in ("word", "char"):
        raise LmlabError(
            "word vectors need the word or char tokenizer; drop --vectors or change --tokenizer"
        )

    seed = int(task.get("split_seed", DEFAULT_SPLIT_SEED))
    data = load_task_data(task["data"], seed)
    log(f"data: {data.name} ({data.language}), {data.sizes()}; {len(data.labels)} classes: "
        f"{', '.join(data.labels[:10])}{' ...' if len(data.labels) > 10 else ''}")  # fmt: skip
    pretrained = family in PRETRAINED
    if pretrained:
        if emb:
            raise LmlabError(
                f"--vectors is for the word-level models; --model {family} has its base's"
            )
        defaults = train_defaults(family, model_cfg)
        tcfg = from_dict(
            ClassifyTrainConfig, {**defaults, **dict(config.get("train", {}))}, where="[train]"
        )
        torch.manual_seed(tcfg.seed)
        model, tokenizer, base_record = build_pretrained(family, model_cfg, task, data, log)
        task["base"] = base_record
        tok_entry: dict[str, Any] = {"kind": tokenizer.kind}
    parts = {"train": data.train, "validation": data.validation, "test": data.test}
    sampled = {}
    for split in ("train", "validation") if tcfg.min_words else ():
        ex = parts[split]
        keep = [i for i, t in enumerate(ex.texts) if len(t.split()) >= tcfg.min_words]
        if len(set(ex.subset(keep).labels)) < len(set(ex.labels)):
            raise LmlabError(f"train.min_words={tcfg.min_words} leaves a label of the {split} "
                             "split without texts; lower it")  # fmt: skip
        parts[split] = sampled[split] = ex.subset(keep)
        log(f"{split}: {len(keep):,} of {len(ex):,} texts have {tcfg.min_words}+ words")
    for split, limit in (("train", tcfg.max_train), ("validation", tcfg.max_validation)):
        ex = parts[split]
        if limit is not None and limit < len(ex) and ex is not None:
            idx = stratified_split(ex.labels, [limit / len(ex), 1 - limit / len(ex)], tcfg.seed)[0]
            parts[split] = sampled[split] = ex.subset(idx)
            log(
                f"{split}: a stratified sample of {len(idx):,} of {len(ex):,} texts (seed {tcfg.seed})"
            )
    if not pretrained:
        tokenizer = train_tokenizer(tok_kind, parts["train"].texts, **tok_opts)
        tok_entry = {"kind": tok_kind, **tok_opts}
    prompt = (
        {
            "template": getattr(model.config, "template", None),
            "prefix": getattr(model.config, "prefix", ""),
        }
        if pretrained
        else {}
    )
    encoded, cut = {}, {}
    for split, ex in parts.items():
        if ex is not None:
            encoded[split], cut[split] = encode_texts(tokenizer, ex.texts, tcfg.max_len, **prompt)
    n_cut = sum(cut.values())
    if n_cut:
        where = ", ".join(f"{k} {v:,}" for k, v in cut.items() if v)
        warnings.warn(f"{n_cut:,} texts cut to {tcfg.max_len} tokens ({where}); raise "
                      "train.max_len to keep more", stacklevel=2)  # fmt: skip
    if not pretrained:
        vectors = Vectors.load(emb["path"]) if emb else None
        if vectors is not None:
            model_cfg.setdefault("embed_dim", vectors.vector_size)
            model_cfg["freeze_embeddings"] = bool(emb.get("freeze", False))
        model_cfg.update(vocab_size=tokenizer.vocab_size, n_classes=len(data.labels))
        torch.manual_seed(tcfg.seed)
        model = build_classifier(family, model_cfg)
        if vectors is not None:
            cover = init_from_vectors(
                model.embedding, tokenizer, vectors, bool(emb.get("freeze", False))
            )
            emb.update(path=str(Path(emb["path"]).resolve()), freeze=bool(emb.get("freeze", False)),
                       coverage=round(cover["coverage"], 4), found=cover["found"])  # fmt: skip
            log(f"word vectors {emb['path']}: {cover['found']:,} of {cover['words']:,} words "
                f"({cover['coverage']:.1%}), {'frozen' if emb['freeze'] else 'fine-tuned'}")  # fmt: skip
    task.update(kind="classify", split_seed=seed, labels=data.labels, language=data.language)
    if emb:
        task["embeddings"] = emb
    full = {
        "task": task,
        "tokenizer": tok_entry,
        "model": config_dict(model),
        "train": {k: v for k, v in asdict(tcfg).items() if v is not None},
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
    log(f"{'training' if family != 'prompt' else 'prompting'} {family} ({model.num_params():,} "
        f"parameters, {model.num_params(True) if family != 'prompt' else 0:,} trainable; "
        f"{tok_entry['kind']} tokenizer, vocabulary {tokenizer.vocab_size:,}) into {out}")  # fmt: skip
    y = {s: np.array(data.ids(ex)) for s, ex in parts.items() if ex is not None}
    if family == "prompt":  # nothing to train
        outcome = TrainOutcome(0, 0.0, 0.0, 0, {}, "not trained (prompting)")
    else:
        outcome = train_classifier(
            model, (encoded["train"], y["train"]), (encoded["validation"], y["validation"]), tcfg,
            out, progress=progress,
        )  # fmt: skip
        log(f"{outcome.stopped} after {outcome.steps:,} steps ({outcome.epochs:.2f} epochs, "
            f"{outcome.elapsed:.1f} s); best validation at step {outcome.best_step:,}")  # fmt: skip
    run = ClassifierRun(out, full, model, tokenizer)
    reports = {}
    t_eval = time.perf_counter()
    for split in ("validation", "test"):
        if split in encoded:
            reports[split] = run.evaluate(parts[split], tcfg.n_boot, 0)  # type: ignore[arg-type]
    eval_seconds = time.perf_counter() - t_eval
    summary = {
        "train_seconds": round(outcome.elapsed, 2), "steps": outcome.steps,
        "epochs": round(outcome.epochs, 3), "best_step": outcome.best_step,
        "stopped": outcome.stopped, "parameters": model.num_params(),
        "trainable_parameters": model.num_params(True), "data": data.name,
        "sizes": {s: len(ex) for s, ex in parts.items() if ex is not None},
        "eval_seconds": round(eval_seconds, 2),
    }  # fmt: skip
    write_results(out, reports, summary)
    last = "test" if "test" in reports else "validation"
    plot_confusion(reports[last].confusion, data.labels, out / "confusion.png",
                   title=f"{data.name} {last}: {family}, accuracy {reports[last].accuracy:.3f}")  # fmt: skip
    if (out / METRICS_FILE).is_file():
        plot_learning_curve(out / METRICS_FILE, out / "learning_curve.png",
                            title=f"{data.name}: {family}", select=tcfg.select)  # fmt: skip
    lines = [
        f"- task: **classify**, data **{data.name}** ({data.language}): {data.sizes()}, "
        f"split seed {seed}",
        f"- labels: {', '.join(data.labels)}",
        f"- model: **{family}**, {model.num_params():,} parameters "
        f"({model.num_params(True):,} trainable)",
        f"- tokenizer: {tok_entry['kind']}, vocabulary {tokenizer.vocab_size:,}",
    ]
    if pretrained:
        lines += card_lines(
            model, task["base"], len(parts["train"]) if "train" in sampled else None
        )
    if emb:
        lines.append(f"- word vectors: `{emb['path']}` ({emb['coverage']:.1%} of the words), "
                     f"{'frozen' if emb['freeze'] else 'fine-tuned'}")  # fmt: skip
    if family != "prompt":
        lines.append(f"- training: {outcome.steps:,} steps ({outcome.epochs:.2f} epochs) in "
                 f"{outcome.elapsed:.1f} s, {outcome.stopped}; model selected at step "
                     f"{outcome.best_step:,} by validation {tcfg.select}; seed {tcfg.seed}")  # fmt: skip
    write_card(out, lines, reports, full, ["learning_curve.png", "confusion.png"])
    return run, reports
