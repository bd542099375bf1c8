"""``lmlab task train translate``: options and config of translation runs; the translation
commands of ``lmlab task eval`` and ``lmlab task predict`` for such runs.

lmlab task train translate --data tatoeba --direction zh-en --out runs/zh-en
lmlab task train translate --data pairs.tsv --direction en-zh --model rnn --out runs/rnn
lmlab task eval --run runs/zh-en --beam 5           # BLEU / chrF on the run's test split
lmlab task predict --run runs/zh-en "我们明天去北京。" --n-best 3
"""

from __future__ import annotations

import argparse

HELP = "translation (encoder-decoder Transformer or GRU seq2seq with attention)"
TRAIN_FLAGS = {  # option -> [train] key
    "epochs": "epochs", "batch_size": "batch_size", "lr": "lr", "max_len": "max_len",
    "eval_every": "eval_every", "patience": "patience", "max_steps": "max_steps",
    "time_limit": "time_limit", "seed": "seed", "threads": "threads",
    "label_smoothing": "label_smoothing", "train_beam": "beam",
}  # fmt: skip
MODEL_FLAGS = {"d_model": "d_model", "layers": None, "heads": "n_head", "block": "block",
               "dropout": "dropout"}  # fmt: skip


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``lmlab task train translate``."""
    p.description = (
        "Train a translation model on parallel text. DATA is 'tatoeba' (the built-in "
        "Chinese-English pairs, fixed split by English sentence) or a TSV file of sentence "
        "pairs (or, with --target-data, two aligned plain-text files)."
    )
    d = p.add_argument_group("data")
    d.add_argument("--data", required=True, help="'tatoeba' or a parallel TSV / source file")
    d.add_argument("--direction", required=True, help="SRC-TGT language codes, e.g. zh-en, en-zh "
                   "(Chinese 'zh' is normalised to simplified characters, and its BLEU "
                   "uses sacrebleu's zh tokenizer)")  # fmt: skip
    d.add_argument("--target-data", help="target file aligned line by line with --data")
    d.add_argument("--source-column", type=int, help="TSV column of the source (0)")
    d.add_argument("--target-column", type=int, help="TSV column of the target (1)")
    d.add_argument("--validation", help="validation pairs (TSV; default: held out of --data)")
    d.add_argument("--test", help="test pairs (TSV; default: held out of --data)")
    d.add_argument("--split-seed", type=int, help="seed of the held-out splits (default 1)")
    m = p.add_argument_group("model")
    m.add_argument("--model", choices=["transformer", "rnn"],
                   help="transformer (encoder-decoder, default) or rnn (GRU seq2seq with "
                   "additive attention)")  # fmt: skip
    m.add_argument("--vocab-size", type=int, help="BPE vocabulary per side (6000)")
    m.add_argument("--shared-vocab", action="store_true",
                   help="one BPE vocabulary and embedding table for source and target")  # fmt: skip
    m.add_argument("--d-model", type=int, help="transformer width (256)")
    m.add_argument("--layers", type=int, help="encoder and decoder layers each (3)")
    m.add_argument("--heads", type=int, help="attention heads (4)")
    m.add_argument("--block", choices=["gpt2", "llama"],
                   help="gpt2: LayerNorm, GELU, learned positions (default); llama: RMSNorm, "
                   "SwiGLU, RoPE")  # fmt: skip
    m.add_argument("--hidden", type=int, help="rnn: decoder state size (512)")
    m.add_argument("--dropout", type=float, help="dropout (0.1 transformer, 0.2 rnn)")
    t = p.add_argument_group("training")
    t.add_argument("--epochs", type=int, help="passes over the training pairs (100)")
    t.add_argument("--batch-size", type=int, help="sentence pairs per step (96)")
    t.add_argument("--lr", type=float, help="peak learning rate (1e-3)")
    t.add_argument("--label-smoothing", type=float, help="label smoothing (0.1)")
    t.add_argument("--max-len", type=int, help="tokens kept per sentence (64)")
    t.add_argument("--eval-every", type=int, help="steps between validations (400)")
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
    from lmlab.tasks.translate.data import BUILTINS, parse_direction

    cfg = load_toml(args.config) if args.config else {}
    cfg = {k: dict(v) if isinstance(v, dict) else v for k, v in cfg.items()}
    task = cfg.setdefault("task", {})
    task["kind"] = args.kind
    parse_direction(args.direction)
    task["direction"] = args.direction
    if args.data in BUILTINS:
        if args.target_data or args.validation or args.test:
            raise LmlabError(f"{args.data} is built in with its own split; drop "
                             "--target-data/--validation/--test")  # fmt: skip
        task["data"] = {"name": args.data}
    else:
        spec = {"path": args.data}
        for key, val in (("target_path", args.target_data), ("validation", args.validation),
                         ("test", args.test), ("source_column", args.source_column),
                         ("target_column", args.target_column)):  # fmt: skip
            if val is not None:
                spec[key] = val
        task["data"] = spec
    if args.split_seed is not None:
        task["split_seed"] = args.split_seed
    tok = cfg.setdefault("tokenizer", {})
    tok["kind"] = "bpe"
    if args.vocab_size is not None:
        tok["src_vocab_size"] = tok["tgt_vocab_size"] = args.vocab_size
    if args.shared_vocab:
        tok["shared"] = True
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


def report(args: argparse.Namespace, reports: dict) -> None:
    """What ``task train translate`` prints once the run is written."""
    for method, s in reports.items():
        print(f"test ({method}): {s.format()}")
    print(f"run: {args.out}  (card.md, results.json, metrics.jsonl, test.beam.txt)")


def add_no_repeat_argument(g) -> None:
    """``--no-repeat-ngram N``, shared by the translation and summarisation verbs."""
    g.add_argument("--no-repeat-ngram", type=int, default=0, metavar="N",
                   help="never repeat an N-token n-gram within an output (0: off)")  # fmt: skip


def no_repeat(args: argparse.Namespace) -> int:
    """The checked ``--no-repeat-ngram`` value (0 where the verb has no such option)."""
    from lmlab.errors import LmlabError

    n = getattr(args, "no_repeat_ngram", 0) or 0
    if n < 0:
        raise LmlabError(f"--no-repeat-ngram must be 0 (off) or more, got {n}")
    return n


def add_eval_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("translation runs")
    g.add_argument("--decode", choices=["beam", "greedy"], default=None,
                   help="decoding for the scores (beam)")  # fmt: skip
    g.add_argument("--beam", type=int, default=None, help="beam width (the run's, 5)")
    g.add_argument("--length-penalty", type=float, default=None,
                   help="GNMT length penalty alpha (the run's, 1.0)")  # fmt: skip
    add_no_repeat_argument(g)
    g.add_argument("--wmt", help="score zh->en on a translation_wmt/*.csv news test file")
    g.add_argument("--limit", type=int, help="score only N examples (translation and "
                   "summarisation: the first N sources; chat: a seeded sample of N)")  # fmt: skip
    g.add_argument("--hyp-out", help="write the translations to this file, one per line")


def evaluate(args: argparse.Namespace, run) -> int:
    import json
    from pathlib import Path

    from lmlab.config import atomic_write_text
    from lmlab.errors import LmlabError
    from lmlab.tasks.translate.data import Pairs, read_wmt

    if args.wmt:
        if run.direction != "zh-en":
            raise LmlabError(f"--wmt files are zh->en news tests; this run is {run.direction}")
        if not Path(args.wmt).is_file():
            raise LmlabError(f"{args.wmt} not found")
        pairs, where = read_wmt(args.wmt), Path(args.wmt).name
    elif args.data:
        from lmlab.tasks.translate.data import read_pairs

        src, tgt = run.direction.split("-")
        spec = {"path": args.data}
        pairs, where = read_pairs(spec, "path", src, tgt), args.data
    else:
        data = run.task_data()
        split = args.split or "test"
        pairs, where = data.split(split), f"{data.name} {split}"
    if args.limit:
        keep = set(pairs.grouped()[0][: args.limit])
        rows = [(s, t) for s, t in zip(pairs.src, pairs.tgt, strict=True) if s in keep]
        pairs = Pairs([s for s, _ in rows], [t for _, t in rows])
    method = args.decode or "beam"
    scores, hyps, tps = run.evaluate(pairs, method, args.beam, args.length_penalty,
                                     progress=True, no_repeat_ngram=no_repeat(args))  # fmt: skip
    if args.hyp_out:
        atomic_write_text(args.hyp_out, "\n".join(hyps) + "\n")
    if args.json:
        print(json.dumps({"data": where, "decode": method, **scores.to_dict(),
                          "decode_tokens_per_second": round(tps, 1)}, ensure_ascii=False))  # fmt: skip
    else:
        print(f"{Path(args.run).name} ({run.direction}, {method}) on {where}:")
        print(scores.format())
        print(f"  decoding: {tps:,.0f} target tokens/s")
    return 0


def add_predict_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("translation runs")
    g.add_argument("--decode", dest="translate_decode", choices=["beam", "greedy", "sample"],
                   default="beam", help="decoding (beam)")  # fmt: skip
    g.add_argument("--beam", dest="translate_beam", type=int,
                   help="beam width (default: the run's)")  # fmt: skip
    g.add_argument("--n-best", type=int, default=1, help="translations per text (beam; 1)")
    g.add_argument("--length-penalty", dest="translate_alpha", type=float,
                   help="GNMT length penalty alpha (default: the run's)")  # fmt: skip
    g.add_argument("--temperature", dest="translate_temperature", type=float, default=1.0,
                   help="sampling temperature (1.0)")  # fmt: skip
    g.add_argument("--top-p", dest="translate_top_p", type=float, default=1.0,
                   help="nucleus sampling mass (1.0)")  # fmt: skip
    add_no_repeat_argument(g)
    g.add_argument("--attention", metavar="PNG",
                   help="draw the cross-attention map of the first translation")  # fmt: skip


def predict(args: argparse.Namespace, run) -> int:
    import json
    import sys

    from lmlab.cli.task.predict import _read_texts

    texts = _read_texts(args)
    out = run.translate(texts, args.translate_decode, args.translate_beam, args.translate_alpha,
                        n_best=args.n_best, temperature=args.translate_temperature,
                        top_p=args.translate_top_p, progress=len(texts) > 20,
                        no_repeat_ngram=no_repeat(args))  # fmt: skip
    if args.attention:
        from pathlib import Path

        from lmlab.tasks.translate.plots import plot_attention

        path = plot_attention(run, texts[0], out[0][0][0], Path(args.attention))
        print(f"attention map: {path}", file=sys.stderr)
    for text, hyps in zip(texts, out, strict=True):
        if args.json:
            print(json.dumps({"source": text, "translations": [
                {"text": t, "score": round(s, 4)} for t, s in hyps]}, ensure_ascii=False))  # fmt: skip
        elif len(hyps) == 1:
            print(hyps[0][0])
        else:
            for t, s in hyps:
                print(f"{s:8.3f}  {t}")
            print()
    return 0
