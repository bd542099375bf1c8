"""A translation run: train one into a run directory, open it, translate, score.

The config dict has the sections of ``config.toml``: ``[task]`` (``kind = "translate"``,
``data`` spec, ``direction`` such as ``"zh-en"``, ``split_seed``), ``[tokenizer]`` (byte-level
BPE: ``src_vocab_size``, ``tgt_vocab_size``, ``shared``), ``[model]`` (``family``:
``transformer`` or ``rnn``, and that family's config fields) and ``[train]``
(:class:`TranslateTrainConfig`). The run directory holds ``src_tokenizer.json`` and
``tgt_tokenizer.json`` (the same tokenizer twice when shared) beside the usual files, and
``test.greedy.txt`` / ``test.beam.txt`` with the test translations.
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
from tqdm import tqdm

from lmlab.config import atomic_write_text, from_dict, save_toml
from lmlab.errors import LmlabError
from lmlab.run import CONFIG_FILE, MODEL_FILE, load_tensors_checked
from lmlab.tasks.rundir import task_config
from lmlab.tasks.translate.data import DEFAULT_SPLIT_SEED, Pairs, load_parallel
from lmlab.tasks.translate.metrics import Scores, score
from lmlab.tasks.translate.trainer import TranslateTrainConfig, make_batch, train_translator
from lmlab.tokenize import EOS, BPETokenizer, Tokenizer, load_tokenizer

SRC_TOKENIZER, TGT_TOKENIZER = "src_tokenizer.json", "tgt_tokenizer.json"
FAMILIES = ("transformer", "rnn")
METHODS = ("beam", "greedy", "sample")


def build_model(family: str, cfg: dict[str, Any]):
    if family == "transformer":
        from lmlab.models.encoder_decoder import EncoderDecoder, EncoderDecoderConfig

        return EncoderDecoder(from_dict(EncoderDecoderConfig, cfg, where="[model]"))
    if family == "rnn":
        from lmlab.models.seq2seq_rnn import Seq2SeqRNN, Seq2SeqRNNConfig

        return Seq2SeqRNN(from_dict(Seq2SeqRNNConfig, cfg, where="[model]"))
    raise LmlabError(f"translation model {family!r} unknown; use {' or '.join(FAMILIES)}")


def build_saved_model(model_cfg: dict[str, Any]):
    """The model a saved run's ``[model]`` table describes (with ``family``); Transformers
    saved before ``scale_embeddings`` existed were trained without it."""
    mcfg = dict(model_cfg)
    family = mcfg.pop("family")
    if family == "transformer":
        mcfg.setdefault("scale_embeddings", False)
    return build_model(family, mcfg)


@dataclass
class TranslationRun:
    path: Path
    config: dict[str, Any]
    model: Any
    src_tok: Tokenizer
    tgt_tok: Tokenizer
    verb = "translate"  # the progress bar's name

    @property
    def direction(self) -> str:
        return self.config["task"]["direction"]

    @property
    def src_lang(self) -> str:
        return self.direction.split("-")[0]

    @property
    def tgt_lang(self) -> str:
        return self.direction.split("-")[1]

    @property
    def eos(self) -> int:
        return self.tgt_tok.special_tokens[EOS]

    @property
    def source_limit(self) -> int:
        """Tokens of a source the model reads; a longer source is cut to this many."""
        return self.model.context_length

    def source_lengths(self, texts: list[str]) -> list[int]:
        """Each text's length in source tokens as the model would read it, before any cut."""
        from lmlab.tasks.translate.data import normalise

        return [len(self.src_tok.encode(normalise(t, self.src_lang))) for t in texts]

    def encode_sources(self, texts: list[str]) -> list[np.ndarray]:
        """Token ids of each (normalised) source, cut to the model's context with a counted
        warning."""
        from lmlab.tasks.translate.data import normalise

        limit = self.source_limit
        ids = [np.asarray(i, dtype=np.int64) for i in
               self.src_tok.encode_batch([normalise(t, self.src_lang) for t in texts])]  # fmt: skip
        cut = sum(len(i) > limit for i in ids)
        if cut:
            warnings.warn(f"{cut:,} source sentence{'s' if cut != 1 else ''} longer than "
                          f"{limit} tokens cut to fit the model", stacklevel=2)  # fmt: skip
        return [i[:limit] if len(i) else np.asarray([self.eos]) for i in ids]

    @torch.no_grad()
    def translate(
        self, texts: list[str], method: str = "beam", beam: int | None = None,
        alpha: float | None = None,
        n_best: int = 1, batch_size: int = 64, temperature: float = 1.0, top_k: int = 0,
        top_p: float = 1.0, seed: int = 0, progress: bool = False, max_len: int | None = None,
        no_repeat_ngram: int = 0,
    ) -> list[list[tuple[str, float]]]:  # fmt: skip
        """``n_best`` (translation, score) pairs per text, best first; ``max_len`` caps the
        output tokens (default: twice the source's, plus 10, within the model's context).
        ``beam`` and ``alpha`` default to the run's own (its ``[train]`` beam and alpha);
        ``no_repeat_ngram`` N > 0 bans a repeated N-gram within an output."""
        from lmlab.generate import beam as dec

        tcfg = self.config.get("train", {})
        beam = int(tcfg.get("beam", 5)) if beam is None else beam
        alpha = float(tcfg.get("alpha", 1.0)) if alpha is None else alpha
        if method not in METHODS:
            raise LmlabError(f"decoding method {method!r} unknown; use {', '.join(METHODS)}")
        self.model.eval()
        ids = self.encode_sources(texts)
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
        out: list[list[tuple[str, float]]] = [[] for _ in texts]
        gen = torch.Generator().manual_seed(seed)
        bar = tqdm(total=len(texts), disable=not progress, unit="sent", file=sys.stderr,
                   desc=f"{self.verb} ({method})")  # fmt: skip
        eos = self.eos
        for k in range(0, len(order), batch_size):
            idx = order[k : k + batch_size]
            src, mask = make_batch([ids[i] for i in idx], None, eos, eos)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                if method == "beam":
                    hyps = dec.beam_search(self.model, src, mask, eos, eos, width=beam,
                                           max_len=max_len, alpha=alpha, n_best=n_best,
                                           no_repeat_ngram=no_repeat_ngram)  # fmt: skip
                elif method == "greedy":
                    hyps = [[h] for h in dec.greedy(self.model, src, mask, eos, eos,
                                                    max_len=max_len, alpha=alpha,
                                                    no_repeat_ngram=no_repeat_ngram)]  # fmt: skip
                else:
                    hyps = [[h] for h in dec.sample(self.model, src, mask, eos, eos,
                            max_len=max_len, temperature=temperature, top_k=top_k, top_p=top_p,
                            generator=gen, no_repeat_ngram=no_repeat_ngram)]  # fmt: skip
            for i, hs in zip(idx, hyps, strict=True):
                out[i] = [(self.decode(h.tokens), h.score) for h in hs]
            bar.update(len(idx))
        bar.close()
        return out

    def decode(self, tokens: list[int]) -> str:
        if tokens and tokens[-1] == self.eos:
            tokens = tokens[:-1]
        return self.tgt_tok.decode(tokens).strip()

    def evaluate(self, pairs: Pairs, method: str = "beam", beam: int | None = None,
                 alpha: float | None = None, progress: bool = False, no_repeat_ngram: int = 0,
                 ) -> tuple[Scores, list[str], float]:  # fmt: skip
        """BLEU and chrF on ``pairs`` (grouped by source: every reference of a source counts),
        the translations, and the decoding speed in target tokens per second."""
        tcfg = self.config.get("train", {})
        beam = int(tcfg.get("beam", 5)) if beam is None else beam
        alpha = float(tcfg.get("alpha", 1.0)) if alpha is None else alpha
        sources, refs = pairs.grouped()
        t0 = time.perf_counter()
        found = self.translate(sources, method, beam, alpha, progress=progress,
                               no_repeat_ngram=no_repeat_ngram)  # fmt: skip
        hyps = [h[0][0] for h in found]
        seconds = time.perf_counter() - t0
        n_tok = sum(len(self.tgt_tok.encode(h)) + 1 for h in hyps)
        return score(hyps, refs, self.tgt_lang), hyps, n_tok / max(seconds, 1e-9)

    def task_data(self):
        t = self.config["task"]
        return load_parallel(t["data"], t["direction"], t.get("split_seed", DEFAULT_SPLIT_SEED))


def load_run(path: str | Path) -> TranslationRun:
    p = Path(path)
    cfg = task_config(p)
    model = build_saved_model(cfg["model"])
    try:
        model.load_tensors(load_tensors_checked(p / MODEL_FILE))
    except RuntimeError as e:
        raise LmlabError(f"{p / MODEL_FILE} does not match {p / CONFIG_FILE} "
                         f"({str(e).splitlines()[0][:100]})") from None  # fmt: skip
    model.eval()
    return TranslationRun(p, cfg, model, load_tokenizer(p / SRC_TOKENIZER),
                          load_tokenizer(p / TGT_TOKENIZER))  # fmt: skip


def _encode(tok: Tokenizer, texts: list[str], max_len: int) -> tuple[list[np.ndarray], int]:
    ids = [np.asarray(i, dtype=np.int64) for i in tok.encode_batch(texts)]
    cut = sum(len(i) > max_len for i in ids)
    return [i[:max_len] for i in ids], cut


def train_run(
    config: dict[str, Any], out: str | Path, overwrite: bool = False, progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> tuple[TranslationRun, dict[str, Scores]]:  # fmt: skip
    """Train a translation model as ``config`` says into run directory ``out``; returns the
    opened run and its test scores (``beam`` and ``greedy``)."""
    from lmlab.train.runner import prepare_run_dir

    log = log or (lambda s: print(s, file=sys.stderr, flush=True))
    out = Path(out)
    task = dict(config.get("task", {}))
    if "direction" not in task:
        raise LmlabError("a translation run needs a direction, e.g. --direction zh-en")
    tcfg = from_dict(TranslateTrainConfig, dict(config.get("train", {})), where="[train]")
    tok_cfg = {"kind": "bpe", "src_vocab_size": 6000, "tgt_vocab_size": 6000, "shared": False,
               **dict(config.get("tokenizer", {}))}  # fmt: skip
    if tok_cfg["kind"] != "bpe":
        raise LmlabError(
            "translation runs use the byte-level BPE tokenizer (tokenizer.kind = 'bpe')"
        )
    model_cfg = dict(config.get("model", {}))
    family = model_cfg.pop("family", "transformer")
    if family not in FAMILIES:
        raise LmlabError(f"translation model {family!r} unknown; use {' or '.join(FAMILIES)}")
    seed = int(task.get("split_seed", DEFAULT_SPLIT_SEED))
    data = load_parallel(task["data"], task["direction"], seed)
    log(f"data: {data.name} {data.src_lang}->{data.tgt_lang}: {data.sizes()} pairs; "
        + "; ".join(data.notes))  # fmt: skip
    if tok_cfg["shared"]:
        src_tok = tgt_tok = BPETokenizer.train(data.train.src + data.train.tgt,
                                               vocab_size=int(tok_cfg["src_vocab_size"]))  # fmt: skip
        tok_cfg["tgt_vocab_size"] = tok_cfg["src_vocab_size"]
    else:
        src_tok = BPETokenizer.train(data.train.src, vocab_size=int(tok_cfg["src_vocab_size"]))
        tgt_tok = BPETokenizer.train(data.train.tgt, vocab_size=int(tok_cfg["tgt_vocab_size"]))
    enc, cut = {}, 0
    for split in ("train", "validation"):
        p = data.split(split)
        s, c1 = _encode(src_tok, p.src, tcfg.max_len)
        t, c2 = _encode(tgt_tok, p.tgt, tcfg.max_len - 1)
        enc[split], cut = (s, t), cut + c1 + c2
    if cut:
        warnings.warn(f"{cut:,} sentences cut to {tcfg.max_len} tokens; raise train.max_len "
                      "to keep more", stacklevel=2)  # fmt: skip
    model_cfg.update(src_vocab_size=src_tok.vocab_size, tgt_vocab_size=tgt_tok.vocab_size)
    if family == "transformer":
        model_cfg.setdefault("shared_embeddings", bool(tok_cfg["shared"]))
    model_cfg.setdefault("context_length", tcfg.max_len + 1)
    torch.manual_seed(tcfg.seed)
    model = build_model(family, model_cfg)
    task.update(kind="translate", split_seed=seed, normalisation=data.notes[0])
    full = {
        "task": task,
        "tokenizer": tok_cfg,
        "model": {
            "family": family,
            **{k: v for k, v in asdict(model.config).items() if v is not None},
        },
        "train": {k: v for k, v in asdict(tcfg).items() if v is not None},
    }
    backup = prepare_run_dir(out, overwrite, resume=False)
    try:
        save_toml(out / CONFIG_FILE, full)
        src_tok.save(out / SRC_TOKENIZER)
        tgt_tok.save(out / TGT_TOKENIZER)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        if backup is not None:
            backup.rename(out)
        raise
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)
    log(f"training {family} ({model.num_params():,} parameters; BPE vocabularies "
        f"{src_tok.vocab_size:,} / {tgt_tok.vocab_size:,}{' shared' if tok_cfg['shared'] else ''}) into {out}")  # fmt: skip
    eos = tgt_tok.special_tokens[EOS]
    outcome = train_translator(model, enc["train"], enc["validation"], tcfg, out, eos, eos,
                               progress=progress)  # fmt: skip
    log(f"{outcome.stopped} after {outcome.steps:,} steps ({outcome.epochs:.2f} epochs, "
        f"{outcome.elapsed:.1f} s, {outcome.tokens_per_second:,.0f} tokens/s); best validation "
        f"loss {outcome.best_loss:.3f} at step {outcome.best_step:,}")  # fmt: skip
    run = load_run(out)
    reports, extra = {}, {}
    for method in ("greedy", "beam"):
        s, hyps, tps = run.evaluate(data.test, method, progress=progress)
        reports[method] = s
        extra[method] = {"decode_tokens_per_second": round(tps, 1)}
        atomic_write_text(out / f"test.{method}.txt", "\n".join(hyps) + "\n")
    summary = {
        "train_seconds": round(outcome.elapsed, 1), "steps": outcome.steps,
        "epochs": round(outcome.epochs, 3), "best_step": outcome.best_step,
        "best_valid_loss": round(outcome.best_loss, 4), "stopped": outcome.stopped,
        "train_tokens_per_second": round(outcome.tokens_per_second, 1),
        "parameters": model.num_params(), "data": data.name, "direction": task["direction"],
        "sizes": {s: len(data.split(s)) for s in ("train", "validation", "test")},
        "notes": data.notes,
    }  # fmt: skip
    write_outputs(out, full, summary, reports, extra)
    return run, reports


def write_outputs(out: Path, config: dict, summary: dict, reports: dict[str, Scores],
                  extra: dict) -> None:  # fmt: skip
    """``results.json`` and ``card.md``."""
    import json
    import platform

    import tomli_w

    from lmlab.train.card import git_revision, package_versions

    results = {**summary, "test": {m: {**s.to_dict(), **extra.get(m, {})}
                                   for m, s in reports.items()}}  # fmt: skip
    atomic_write_text(out / "results.json", json.dumps(results, indent=1, ensure_ascii=False))
    t = config["train"]
    lines = [f"# Translation run: {out.name}", "",
             f"- task: **translate {summary['direction']}**, data **{summary['data']}**: "
             + ", ".join(f"{k} {v:,}" for k, v in summary["sizes"].items()) + " pairs",
             *[f"- {n}" for n in summary["notes"]],
             f"- model: **{config['model']['family']}**, {summary['parameters']:,} parameters",
             f"- training: {summary['steps']:,} steps ({summary['epochs']:.2f} epochs) in "
             f"{summary['train_seconds']:.0f} s, {summary['stopped']}; best validation loss "
             f"{summary['best_valid_loss']:.3f} at step {summary['best_step']:,}",
             "", "## Test scores", "", "| decoding | BLEU | chrF | target tok/s |",
             "|---|---|---|---|"]  # fmt: skip
    for m, s in reports.items():
        name = f"beam {t.get('beam', 5)}, alpha {t.get('alpha', 1.0)}" if m == "beam" else m
        tps = extra.get(m, {}).get("decode_tokens_per_second", 0)
        lines.append(f"| {name} | {s.bleu:.2f} | {s.chrf:.2f} | {tps:,.0f} |")
    if reports:
        s = next(iter(reports.values()))
        lines += ["", f"BLEU signature: `{s.bleu_signature}`", "",
                  f"chrF signature: `{s.chrf_signature}`"]  # fmt: skip
    lines += ["", "## Environment", ""]
    lines += [f"- {k} {v}" for k, v in package_versions().items()]
    lines.append(f"- platform: {platform.platform()}")
    if rev := git_revision():
        lines.append(f"- lmlab git revision: {rev}")
    lines += ["", "## Config", "", "```toml", tomli_w.dumps(config).strip(), "```", ""]
    atomic_write_text(out / "card.md", "\n".join(lines) + "\n")
