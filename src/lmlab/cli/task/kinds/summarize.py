"""``lmlab task train summarize``: options and config of summarisation runs; the
summarisation commands of ``lmlab task eval`` and ``lmlab task predict`` for such runs.

lmlab task train summarize --data lcsts --out runs/lcsts             # Chinese, characters
lmlab task train summarize --data csl --model rnn --out runs/csl-rnn
lmlab task train summarize --data pairs.tsv --out runs/mine          # text<TAB>summary
lmlab task eval --run runs/lcsts --beam 5            # ROUGE-1/2/L on the run's test split
lmlab task predict --run runs/lcsts "一段新闻……"

``task eval`` and ``task predict`` share their decoding options (``--decode``, ``--beam``,
``--length-penalty``, ``--no-repeat-ngram``, ``--limit``, ``--hyp-out``) with translation
runs.
"""

from __future__ import annotations

import argparse

HELP = "abstractive summarisation (encoder-decoder Transformer or GRU seq2seq)"
TRAIN_FLAGS = {  # option -> [train] key
    "epochs": "epochs", "batch_size": "batch_size", "lr": "lr", "max_len": "max_len",
    "summary_max_len": "summary_max_len", "eval_every": "eval_every", "patience": "patience",
    "max_steps": "max_steps", "time_limit": "time_limit", "seed": "seed", "threads": "threads",
    "label_smoothing": "label_smoothing", "train_beam": "beam", "valid_rouge": "valid_rouge",
    "select": "select",
}  # fmt: skip


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``lmlab task train summarize``."""
    p.description = (
        "Train an abstractive summariser (text -> summary). DATA is lcsts (LCSTS part II, "
        "fixed 500/500 validation/test split), csl (CSL abstract -> title), samsum, or a TSV "
        "file of text<TAB>summary lines. Chinese is tokenized by characters by default."
    )
    d = p.add_argument_group("data")
    d.add_argument("--data", required=True, help="lcsts, csl, samsum or a text<TAB>summary TSV")
    d.add_argument("--text-column", type=int, help="TSV column of the text (0)")
    d.add_argument("--summary-column", type=int, help="TSV column of the summary (1)")
    d.add_argument("--validation", help="validation TSV (default: held out of --data)")
    d.add_argument("--test", help="test TSV (default: held out of --data)")
    d.add_argument("--lang", choices=["zh", "en"],
                   help="language of a TSV (default: guessed from its characters)")  # fmt: skip
    d.add_argument("--split-seed", type=int, help="seed of the held-out splits (1)")
    m = p.add_argument_group("model")
    m.add_argument("--model", choices=["transformer", "rnn"],
                   help="transformer (encoder-decoder, default) or rnn (GRU seq2seq with "
                   "additive attention)")  # fmt: skip
    m.add_argument("--tokenizer", choices=["char", "bpe"],
                   help="char (default for Chinese) or bpe (default for English); one "
                   "vocabulary for texts and summaries")  # fmt: skip
    m.add_argument("--vocab-size", type=int, help="vocabulary size (char 5000, bpe 8000)")
    m.add_argument("--d-model", type=int, help="transformer width (256)")
    m.add_argument("--layers", type=int, help="encoder and decoder layers each (3)")
    m.add_argument("--heads", type=int, help="attention heads (4)")
    m.add_argument("--block", choices=["gpt2", "llama"],
                   help="gpt2: LayerNorm, GELU, learned positions (default); llama: RMSNorm, "
                   "SwiGLU, RoPE")  # fmt: skip
    m.add_argument("--hidden", type=int, help="rnn: decoder state size (512)")
    m.add_argument("--dropout", type=float, help="dropout (0.1 transformer, 0.2 rnn)")
    t = p.add_argument_group("training")
    t.add_argument("--epochs", type=int, help="passes over the training texts (100)")
    t.add_argument("--batch-size", type=int, help="texts per step (96)")
    t.add_argument("--lr", type=float, help="peak learning rate (1e-3)")
    t.add_argument("--label-smoothing", type=float, help="label smoothing (0.1)")
    t.add_argument("--max-len", type=int, help="text tokens kept; longer texts are cut with a "
                   "counted warning (160)")  # fmt: skip
    t.add_argument("--summary-max-len", type=int,
                   help="summary tokens kept in training and generated at most (48)")  # fmt: skip
    t.add_argument("--eval-every", type=int, help="steps between validations (400)")
    t.add_argument("--valid-rouge", type=int,
                   help="validation texts summarised (greedy) for ROUGE-L at each validation "
                   "(200; 0 off)")  # fmt: skip
    t.add_argument("--select", choices=["loss", "rougeL"],
                   help="keep the model of the best validation loss (default) or ROUGE-L")  # fmt: skip
    t.add_argument("--patience", type=int, help="validations without improvement before "
                   "stopping (0: never)")  # fmt: skip
    t.add_argument("--max-steps", type=int, help="stop after this many steps")
    t.add_argument("--time-limit", type=float, help="stop after this many seconds")
    t.add_argument("--seed", type=int, help="initialisation and shuffling seed (1)")
    t.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    t.add_argument("--train-beam", type=int, help="beam width of the final test scores (5)")
    p.add_argument("--config", help="TOML file with [task] [tokenizer] [model] [train] sections")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any setting, e.g. --set model.d_ff=512 "
                   "--set train.warmup=500")  # fmt: skip
    p.add_argument("--out", required=True, help="run directory to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run directory")


def build_config(args: argparse.Namespace) -> dict:
    from lmlab.config import apply_overrides, load_toml
    from lmlab.errors import LmlabError
    from lmlab.tasks.summarize.data import DATASETS

    cfg = load_toml(args.config) if args.config else {}
    cfg = {k: dict(v) if isinstance(v, dict) else v for k, v in cfg.items()}
    task = cfg.setdefault("task", {})
    task["kind"] = args.kind
    if args.data in DATASETS:
        if args.validation or args.test or args.text_column is not None:
            raise LmlabError(f"{args.data} is built in with its own split; drop "
                             "--validation/--test/--text-column")  # fmt: skip
        task["data"] = {"name": args.data}
    else:
        spec: dict = {"path": args.data}
        for key, val in (("validation", args.validation), ("test", args.test),
                         ("text_column", args.text_column),
                         ("summary_column", args.summary_column), ("lang", args.lang)):  # fmt: skip
            if val is not None:
                spec[key] = val
        task["data"] = spec
    if args.lang:
        task["lang"] = args.lang
    if args.split_seed is not None:
        task["split_seed"] = args.split_seed
    tok = cfg.setdefault("tokenizer", {})
    if args.tokenizer:
        tok["kind"] = args.tokenizer
    if args.vocab_size is not None:
        tok["vocab_size"] = args.vocab_size
    model = cfg.setdefault("model", {})
    model["family"] = args.model or model.get("family", "transformer")
    rnn = model["family"] == "rnn"
    if args.layers is not None:
        if rnn:
            model["n_layer"] = args.layers
        else:
            model["n_enc_layer"] = model["n_dec_layer"] = args.layers
    if args.dropout is not None:
        model["dropout"] = args.dropout
    if rnn:
        if args.d_model or args.heads or args.block:
            raise LmlabError("--d-model/--heads/--block are transformer options; the rnn "
                             "takes --hidden and --layers")  # fmt: skip
        if args.hidden is not None:
            model["hidden"] = args.hidden
    else:
        if args.hidden is not None:
            raise LmlabError("--hidden is an rnn option; the transformer takes --d-model")
        for flag, key in (("d_model", "d_model"), ("heads", "n_head"), ("block", "block")):
            if getattr(args, flag) is not None:
                model[key] = getattr(args, flag)
    train = cfg.setdefault("train", {})
    for flag, key in TRAIN_FLAGS.items():
        if getattr(args, flag) is not None:
            train[key] = getattr(args, flag)
    return apply_overrides(cfg, args.set)


def _format(scores: dict) -> str:
    return (f"ROUGE-1 {scores['rouge1']:.2f}  ROUGE-2 {scores['rouge2']:.2f}  "
            f"ROUGE-L {scores['rougeL']:.2f}")  # fmt: skip


def report(args: argparse.Namespace, reports: dict) -> None:
    """What ``task train summarize`` prints once the run is written."""
    for method, s in reports.items():
        print(f"test ({method}): {_format(s)}")
    print(f"run: {args.out}  (card.md, results.json, metrics.jsonl, test.beam.txt)")


def evaluate(args: argparse.Namespace, run) -> int:
    """``lmlab task eval`` on a summarisation run: ROUGE on its test (or validation) split or
    on a text<TAB>summary file."""
    import json
    from pathlib import Path

    from lmlab.config import atomic_write_text
    from lmlab.errors import LmlabError
    from lmlab.tasks.summarize.data import Docs, read_pairs_tsv

    if getattr(args, "wmt", None):
        raise LmlabError("--wmt scores translation runs; this is a summarisation run")
    if args.data:
        if args.split:
            raise LmlabError("--split chooses among the run's own splits; drop it with --data")
        docs, where = read_pairs_tsv(args.data), args.data
    else:
        data = run.task_data()
        split = args.split or "test"
        docs, where = data.split(split), f"{data.name} {split}"
    limit = getattr(args, "limit", None)
    if limit:
        docs = Docs(docs.texts[:limit], docs.summaries[:limit])
    from lmlab.cli.task.kinds.translate import no_repeat

    method = getattr(args, "decode", None) or "beam"
    scores, hyps, tps = run.evaluate(docs, method, getattr(args, "beam", None),
                                     getattr(args, "length_penalty", None), progress=True,
                                     no_repeat_ngram=no_repeat(args))  # fmt: skip
    if getattr(args, "hyp_out", None):
        atomic_write_text(args.hyp_out, "\n".join(hyps) + "\n")
    rouge_note = "Chinese on characters" if run.lang == "zh" else "English, stemmed"
    if args.json:
        print(json.dumps({"data": where, "decode": method, "n": len(hyps), **scores,
                          "rouge": rouge_note, "decode_tokens_per_second": round(tps, 1)},
                         ensure_ascii=False))  # fmt: skip
    else:
        print(f"{Path(args.run).name} ({run.lang}, {method}) on {where} ({len(hyps):,} texts):")
        print(f"  {_format(scores)}  (rouge-score F1 x 100, {rouge_note})")
        print(f"  decoding: {tps:,.0f} summary tokens/s")
    return 0


def predict(args: argparse.Namespace, run) -> int:
    """``lmlab task predict`` on a summarisation run: one summary per text."""
    import json

    from lmlab.cli.task.kinds.translate import no_repeat
    from lmlab.cli.task.predict import _read_texts

    texts = _read_texts(args)
    method = getattr(args, "translate_decode", "beam")
    if method == "sample":
        from lmlab.errors import LmlabError

        raise LmlabError("summarisation runs decode with beam or greedy")
    out = run.summarize(texts, method, getattr(args, "translate_beam", None),
                        getattr(args, "translate_alpha", None), progress=len(texts) > 20,
                        no_repeat_ngram=no_repeat(args))  # fmt: skip
    for text, summary in zip(texts, out, strict=True):
        if args.json:
            print(json.dumps({"text": text, "summary": summary}, ensure_ascii=False))
        else:
            print(summary)
    return 0
