"""A summarisation run: an encoder-decoder (or GRU seq2seq) trained text -> summary, with the
translation run's model, trainer and decoders; only the data, the tokenizer (characters for
Chinese) and the metric (ROUGE) differ.

The config has the sections of ``config.toml``: ``[task]`` (``kind = "summarize"``, ``data``
spec, ``lang``, ``split_seed``), ``[tokenizer]`` (``kind`` ``char`` or ``bpe``,
``vocab_size``; one vocabulary for text and summary, so the embedding table is shared and a
summary can copy the text's pieces), ``[model]`` and ``[train]``
(:class:`SummarizeTrainConfig`: the translation trainer's settings plus the summary length
and the validation ROUGE-L). The run directory holds ``src_tokenizer.json`` and
``tgt_tokenizer.json`` (the same tokenizer), ``test.greedy.txt``/``test.beam.txt``, and
``results.json`` with test ROUGE-1/2/L (Chinese on characters).
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

from lmlab.config import atomic_write_text, from_dict, save_toml
from lmlab.errors import LmlabError
from lmlab.run import CONFIG_FILE, MODEL_FILE, load_tensors_checked
from lmlab.tasks.rundir import task_config
from lmlab.tasks.summarize.data import SPLIT_SEED, Docs, SummaryData, load_task_data
from lmlab.tasks.summarize.metrics import rouge
from lmlab.tasks.translate.run import (
    FAMILIES,
    SRC_TOKENIZER,
    TGT_TOKENIZER,
    TranslationRun,
    build_model,
    build_saved_model,
)
from lmlab.tasks.translate.trainer import TranslateTrainConfig, train_translator
from lmlab.tokenize import EOS, BPETokenizer, CharTokenizer, Tokenizer, load_tokenizer

TOKENIZERS = ("char", "bpe")


@dataclass
class SummarizeTrainConfig(TranslateTrainConfig):
    max_len: int = 160  # text tokens kept (longer texts are cut, counted and warned about)
    summary_max_len: int = 48  # summary tokens kept in training, and generated at most
    valid_rouge: int = 200  # validation texts summarised (greedy) for ROUGE-L at each validation
    select: str = "loss"  # best model by validation "loss" or "rougeL"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.summary_max_len < 1:
            raise LmlabError("train.summary_max_len must be at least 1")
        if self.select not in ("loss", "rougeL"):
            raise LmlabError(f"train.select must be 'loss' or 'rougeL', got {self.select!r}")


class SummarizationRun(TranslationRun):
    """A :class:`TranslationRun` from a language to itself, scored with ROUGE."""

    verb = "summarize"

    @property
    def direction(self) -> str:
        lang = self.config["task"]["lang"]
        return f"{lang}-{lang}"

    @property
    def lang(self) -> str:
        return self.config["task"]["lang"]

    @property
    def train_config(self) -> dict[str, Any]:
        return self.config.get("train", {})

    @property
    def source_limit(self) -> int:
        """Tokens of a text the model reads (``train.max_len``, within its context)."""
        return min(int(self.train_config.get("max_len", 160)), self.model.context_length)

    @property
    def summary_limit(self) -> int:
        """Tokens a summary may take, its end token included."""
        return int(self.train_config.get("summary_max_len", 48)) + 1

    def encode_sources(self, texts: list[str]) -> list[np.ndarray]:
        """Token ids of each text, cut to the run's text length (``train.max_len``) with a
        counted warning."""
        from lmlab.tasks.translate.data import normalise

        limit = self.source_limit
        ids = [np.asarray(self.src_tok.encode(normalise(t, self.lang)), dtype=np.int64)
               for t in texts]  # fmt: skip
        cut = sum(len(i) > limit for i in ids)
        if cut:
            warnings.warn(f"{cut:,} of {len(ids):,} text{'s' if len(ids) != 1 else ''} longer "
                          f"than {limit} tokens cut to their first {limit} (the model's "
                          "length)", stacklevel=2)  # fmt: skip
        return [i[:limit] if len(i) else np.asarray([self.eos]) for i in ids]

    def summarize(self, texts: list[str], method: str = "beam", beam: int | None = None,
                  alpha: float | None = None, batch_size: int = 64,
                  progress: bool = False, no_repeat_ngram: int = 0) -> list[str]:  # fmt: skip
        """One summary per text (beam search with the run's width and length penalty by
        default); ``no_repeat_ngram`` N > 0: no n-gram of N tokens twice in a summary."""
        beam = int(self.train_config.get("beam", 5)) if beam is None else beam
        alpha = float(self.train_config.get("alpha", 1.0)) if alpha is None else alpha
        out = self.translate(texts, method, beam, alpha, batch_size=batch_size,
                             progress=progress, max_len=self.summary_limit,
                             no_repeat_ngram=no_repeat_ngram)  # fmt: skip
        return [h[0][0] for h in out]

    def evaluate(self, docs: Docs, method: str = "beam", beam: int | None = None,
                 alpha: float | None = None, progress: bool = False, no_repeat_ngram: int = 0,
                 ) -> tuple[dict[str, float], list[str], float]:  # fmt: skip
        """ROUGE-1/2/L F1 x 100 (Chinese on characters) of the summaries of ``docs``, the
        summaries, and the decoding speed in summary tokens per second."""
        t0 = time.perf_counter()
        hyps = self.summarize(docs.texts, method, beam, alpha, progress=progress,
                              no_repeat_ngram=no_repeat_ngram)  # fmt: skip
        seconds = time.perf_counter() - t0
        n_tok = sum(len(self.tgt_tok.encode(h)) + 1 for h in hyps)
        return rouge(hyps, docs.summaries, self.lang), hyps, n_tok / max(seconds, 1e-9)

    def task_data(self) -> SummaryData:
        t = self.config["task"]
        return load_task_data(t["data"], t.get("split_seed", SPLIT_SEED))


def load_run(path: str | Path) -> SummarizationRun:
    p = Path(path)
    cfg = task_config(p)
    model = build_saved_model(cfg["model"])
    try:
        model.load_tensors(load_tensors_checked(p / MODEL_FILE))
    except RuntimeError as e:
        raise LmlabError(f"{p / MODEL_FILE} does not match {p / CONFIG_FILE} "
                         f"({str(e).splitlines()[0][:100]})") from None  # fmt: skip
    model.eval()
    tok = load_tokenizer(p / SRC_TOKENIZER)
    return SummarizationRun(p, cfg, model, tok, tok)


def train_tokenizer(kind: str, texts: list[str], vocab_size: int) -> Tokenizer:
    """One tokenizer for texts and summaries: ``char`` keeps the ``vocab_size`` most frequent
    characters (the rest are spelled as UTF-8 bytes), ``bpe`` is lmlab's byte-level BPE."""
    if kind == "char":
        return CharTokenizer.train(texts, max_chars=max(1, vocab_size - 257))
    if kind == "bpe":
        return BPETokenizer.train(texts, vocab_size=vocab_size)
    raise LmlabError(f"summarisation tokenizer {kind!r} unknown; use {' or '.join(TOKENIZERS)}")


def _encode(tok: Tokenizer, texts: list[str], max_len: int) -> tuple[list[np.ndarray], int]:
    ids = [np.asarray(tok.encode(t), dtype=np.int64) for t in texts]
    cut = sum(len(i) > max_len for i in ids)
    return [i[:max_len] if len(i) else np.asarray([tok.special_tokens[EOS]]) for i in ids], cut


def rouge_hook(run: SummarizationRun, docs: Docs, limit: int) -> Callable[[Any], dict]:
    """``on_validate`` for the trainer: ROUGE-L of greedy summaries of the first ``limit``
    validation texts."""
    docs = Docs(docs.texts[:limit], docs.summaries[:limit])

    def hook(model) -> dict[str, float]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the cut texts were counted once already
            hyps = run.summarize(docs.texts, "greedy")
        return {"rougeL": rouge(hyps, docs.summaries, run.lang)["rougeL"]}

    return hook


def train_run(
    config: dict[str, Any], out: str | Path, overwrite: bool = False, progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> tuple[SummarizationRun, dict[str, dict[str, float]]]:  # fmt: skip
    """Train a summariser as ``config`` says into run directory ``out``; returns the opened
    run and its test ROUGE (``beam`` and ``greedy``)."""
    from lmlab.tasks.translate.data import normalise
    from lmlab.train.runner import prepare_run_dir

    log = log or (lambda s: print(s, file=sys.stderr, flush=True))
    out = Path(out)
    task = dict(config.get("task", {}))
    if "data" not in task:
        raise LmlabError("a summarisation run needs data, e.g. --data lcsts")
    tcfg = from_dict(SummarizeTrainConfig, dict(config.get("train", {})), where="[train]")
    seed = int(task.get("split_seed", SPLIT_SEED))
    data = load_task_data(task["data"], seed)
    lang = task.get("lang") or data.lang
    tok_cfg = {"kind": "char" if lang == "zh" else "bpe",
               **dict(config.get("tokenizer", {}))}  # fmt: skip
    tok_cfg.setdefault("vocab_size", 5000 if tok_cfg["kind"] == "char" else 8000)
    model_cfg = dict(config.get("model", {}))
    family = model_cfg.pop("family", "transformer")
    if family not in FAMILIES:
        raise LmlabError(f"summarisation model {family!r} unknown; use {' or '.join(FAMILIES)}")
    log(f"data: {data.name} ({lang}): "
        + ", ".join(f"{k} {v:,}" for k, v in data.sizes().items()) + " texts"
        + "".join(f"; {n}" for n in data.notes))  # fmt: skip
    train_txt = [normalise(t, lang) for t in data.train.texts]
    train_sum = [normalise(t, lang) for t in data.train.summaries]
    tok = train_tokenizer(tok_cfg["kind"], train_txt + train_sum, int(tok_cfg["vocab_size"]))
    tok_cfg["vocab_size"] = tok.vocab_size
    enc, cut_txt, cut_sum = {}, 0, 0
    for split, (txt, sm) in {"train": (train_txt, train_sum),
                             "validation": ([normalise(t, lang) for t in data.validation.texts],
                                            [normalise(t, lang) for t in data.validation.summaries])}.items():  # fmt: skip
        s, c1 = _encode(tok, txt, tcfg.max_len)
        t, c2 = _encode(tok, sm, tcfg.summary_max_len)
        enc[split], cut_txt, cut_sum = (s, t), cut_txt + c1, cut_sum + c2
    n_all = len(data.train) + len(data.validation)
    if cut_txt:
        warnings.warn(f"{cut_txt:,} of {n_all:,} training and validation texts longer than "
                      f"{tcfg.max_len} tokens cut to their first {tcfg.max_len}; raise "
                      "--max-len to keep more", stacklevel=2)  # fmt: skip
    if cut_sum:
        warnings.warn(f"{cut_sum:,} of {n_all:,} training and validation summaries longer than "
                      f"{tcfg.summary_max_len} tokens cut; raise --summary-max-len to keep "
                      "more", stacklevel=2)  # fmt: skip
    model_cfg.update(src_vocab_size=tok.vocab_size, tgt_vocab_size=tok.vocab_size)
    if family == "transformer":  # one vocabulary: shared embeddings, and a pointer-generator
        model_cfg.setdefault("shared_embeddings", True)
        model_cfg.setdefault("copy", True)
    model_cfg.setdefault("context_length", max(tcfg.max_len, tcfg.summary_max_len + 1))
    import torch

    torch.manual_seed(tcfg.seed)
    model = build_model(family, model_cfg)
    task.update(kind="summarize", lang=lang, split_seed=seed)
    full = {
        "task": task,
        "tokenizer": tok_cfg,
        "model": {"family": family,
                  **{k: v for k, v in asdict(model.config).items() if v is not None}},
        "train": {k: v for k, v in asdict(tcfg).items() if v is not None},
    }  # fmt: skip
    backup = prepare_run_dir(out, overwrite, resume=False)
    try:
        save_toml(out / CONFIG_FILE, full)
        tok.save(out / SRC_TOKENIZER)
        tok.save(out / TGT_TOKENIZER)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        if backup is not None:
            backup.rename(out)
        raise
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)
    log(f"training {family} ({model.num_params():,} parameters; {tok_cfg['kind']} vocabulary "
        f"{tok.vocab_size:,}, shared by texts and summaries) into {out}")  # fmt: skip
    eos = tok.special_tokens[EOS]
    live = SummarizationRun(out, full, model, tok, tok)
    hook = rouge_hook(live, data.validation, tcfg.valid_rouge) if tcfg.valid_rouge else None
    select = "rougeL" if tcfg.select == "rougeL" else None
    if select and hook is None:
        raise LmlabError("train.select = 'rougeL' needs train.valid_rouge > 0")
    outcome = train_translator(model, enc["train"], enc["validation"], tcfg, out, eos, eos,
                               progress=progress, on_validate=hook, select=select)  # fmt: skip
    log(f"{outcome.stopped} after {outcome.steps:,} steps ({outcome.epochs:.2f} epochs, "
        f"{outcome.elapsed:.1f} s, {outcome.tokens_per_second:,.0f} tokens/s); best "
        f"validation ({tcfg.select}) at step {outcome.best_step:,}, loss "
        f"{outcome.best_loss:.3f}")  # fmt: skip
    run = load_run(out)
    reports, extra = {}, {}
    for method in ("greedy", "beam"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # test texts cut like the training ones
            scores, hyps, tps = run.evaluate(data.test, method, progress=progress)
        reports[method] = scores
        extra[method] = {"decode_tokens_per_second": round(tps, 1)}
        atomic_write_text(out / f"test.{method}.txt", "\n".join(hyps) + "\n")
    test_cut = sum(len(tok.encode(normalise(t, lang))) > tcfg.max_len for t in data.test.texts)
    summary = {
        "train_seconds": round(outcome.elapsed, 1), "steps": outcome.steps,
        "epochs": round(outcome.epochs, 3), "best_step": outcome.best_step,
        "best_valid_loss": round(outcome.best_loss, 4), "stopped": outcome.stopped,
        "select": tcfg.select, "train_tokens_per_second": round(outcome.tokens_per_second, 1),
        "parameters": model.num_params(), "data": data.name, "lang": lang,
        "tokenizer": f"{tok_cfg['kind']} ({tok.vocab_size:,})",
        "sizes": data.sizes(), "notes": data.notes,
        "cut": {"train_validation_texts": cut_txt, "train_validation_summaries": cut_sum,
                "test_texts": test_cut, "max_len": tcfg.max_len},
        "rouge": "rouge-score F1 x 100; " + ("Chinese on characters (every non-space "
                 "character a token)" if lang == "zh" else "English with Porter stemming"),
    }  # fmt: skip
    write_outputs(out, full, summary, reports, extra)
    return run, reports


def write_outputs(out: Path, config: dict, summary: dict, reports: dict[str, dict],
                  extra: dict) -> None:  # fmt: skip
    """``results.json`` and ``card.md``."""
    import json
    import platform

    import tomli_w

    from lmlab.train.card import git_revision, package_versions

    results = {**summary, "test": {m: {**s, **extra.get(m, {})} for m, s in reports.items()}}
    atomic_write_text(out / "results.json", json.dumps(results, indent=1, ensure_ascii=False))
    t = config["train"]
    lines = [f"# Summarisation run: {out.name}", "",
             f"- task: **summarize ({summary['lang']})**, data **{summary['data']}**: "
             + ", ".join(f"{k} {v:,}" for k, v in summary["sizes"].items()) + " texts",
             *[f"- {n}" for n in summary["notes"]],
             f"- model: **{config['model']['family']}**, {summary['parameters']:,} parameters; "
             f"tokenizer {summary['tokenizer']}",
             f"- texts cut to {t['max_len']} tokens: {summary['cut']['train_validation_texts']:,} "
             f"in training/validation, {summary['cut']['test_texts']:,} in test",
             f"- training: {summary['steps']:,} steps ({summary['epochs']:.2f} epochs) in "
             f"{summary['train_seconds']:.0f} s, {summary['stopped']}; best validation "
             f"({summary['select']}) at step {summary['best_step']:,}, loss "
             f"{summary['best_valid_loss']:.3f}",
             "", f"## Test scores ({summary['rouge']})", "",
             "| decoding | ROUGE-1 | ROUGE-2 | ROUGE-L | summary tok/s |", "|---|---|---|---|---|"]  # fmt: skip
    for m, s in reports.items():
        name = f"beam {t.get('beam', 5)}, alpha {t.get('alpha', 1.0)}" if m == "beam" else m
        tps = extra.get(m, {}).get("decode_tokens_per_second", 0)
        lines.append(f"| {name} | {s['rouge1']:.2f} | {s['rouge2']:.2f} | {s['rougeL']:.2f} | "
                     f"{tps:,.0f} |")  # fmt: skip
    lines += ["", "## Environment", ""]
    lines += [f"- {k} {v}" for k, v in package_versions().items()]
    lines.append(f"- platform: {platform.platform()}")
    if rev := git_revision():
        lines.append(f"- lmlab git revision: {rev}")
    lines += ["", "## Config", "", "```toml", tomli_w.dumps(config).strip(), "```", ""]
    atomic_write_text(out / "card.md", "\n".join(lines) + "\n")
