"""``lmlab embed``: train word vectors (word2vec CBOW / skip-gram, GloVe) and query them.

lmlab embed train --algo skipgram --corpus FILE --out vectors.txt
lmlab embed eval --vectors vectors.txt --lang en
lmlab embed neighbors WORD --vectors vectors.txt
lmlab embed analogy man king woman --vectors vectors.txt
lmlab embed plot WORD WORD WORD... --vectors vectors.txt --out words.png
"""

from __future__ import annotations

import argparse
import sys
import time


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "embed", help="word embeddings: word2vec (CBOW, skip-gram) and GloVe",
        description="Train word vectors and query them (neighbours, analogies, evaluation, plots).",
    )  # fmt: skip
    sub = p.add_subparsers(dest="embed_command", metavar="ACTION")
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])

    t = sub.add_parser("train", help="train word2vec or GloVe vectors on text files")
    t.add_argument("--corpus", action="append", default=[],
                   help="text file, folder of .txt files or builtin:NAME (repeatable)")  # fmt: skip
    t.add_argument("corpus_pos", nargs="*", metavar="CORPUS",
                   help="deprecated: the old, positional form of --corpus")  # fmt: skip
    t.add_argument("--algo", choices=["cbow", "skipgram", "glove"], default="cbow",
                   help="word2vec CBOW (default), word2vec skip-gram or GloVe")  # fmt: skip
    t.add_argument("--out", required=True, help="vectors file: .txt/.vec (word2vec text), "
                   ".bin (word2vec binary) or .safetensors (+ .vocab.json)")  # fmt: skip
    t.add_argument("--mode", choices=["words", "text8", "chars"], default="words",
                   help="words: regex + jieba for Chinese (default); text8: lower-case a-z runs, "
                   "Gutenberg boilerplate removed; chars: one token per character")  # fmt: skip
    t.add_argument("--keep-case", action="store_true", help="do not lower-case (words/chars)")
    t.add_argument("--size", type=int, default=100, help="vector size (default 100)")
    t.add_argument("--window", type=int, help="context window (default 5; GloVe 10)")
    t.add_argument("--min-count", type=int, default=5, help="drop rarer words (default 5)")
    t.add_argument("--max-vocab", type=int, help="keep at most this many words")
    t.add_argument("--epochs", type=int, help="passes over the corpus (default 5; GloVe 15)")
    t.add_argument("--workers", type=int, default=0, help="threads (default: all cores)")
    t.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    w = t.add_argument_group("word2vec")
    w.add_argument("--negative", type=int, default=5, help="negative samples (0: off)")
    w.add_argument(
        "--per-pair-negatives",
        action="store_true",
        help="a fresh draw of negatives for every prediction (skip-gram: every (centre, "
        "context) pair; CBOW: every centre word), as word2vec's C code and gensim do; about 2x "
        "slower for skip-gram, 1.3x for CBOW (default: one draw serves a skip-gram centre "
        "word's whole window, Ji et al. 2016, or two consecutive CBOW centre words)",
    )
    w.add_argument("--hs", action="store_true", help="hierarchical softmax")
    w.add_argument("--sample", type=float, default=1e-3, help="subsampling threshold (0: off)")
    w.add_argument("--alpha", type=float, default=0.025, help="initial learning rate")
    w.add_argument("--min-alpha", type=float, default=0.0001, help="final learning rate")
    g = t.add_argument_group("GloVe")
    g.add_argument("--x-max", type=float, default=10.0, help="weighting cut-off (default 10)")
    g.add_argument("--weight-power", type=float, default=0.75, help="weighting exponent alpha")
    g.add_argument("--eta", type=float, default=0.05, help="AdaGrad learning rate")
    t.add_argument("--eval", choices=["en", "zh"], help="evaluate on the built-in sets afterwards")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("eval", help="analogy accuracy and word-similarity correlation")
    e.add_argument("--vectors", help="vectors file (.txt/.vec, .bin or .safetensors)")
    e.add_argument("vectors_pos", nargs="?", metavar="VECTORS",
                   help="deprecated: the old, positional form of --vectors")  # fmt: skip
    e.add_argument("--lang", choices=["en", "zh"], default="en", help="built-in sets (default en)")
    e.add_argument("--analogy", nargs="*", help="analogy files instead of the built-in ones")
    e.add_argument("--similarity", nargs="*", help="similarity files instead of the built-in ones")
    e.add_argument("--method", choices=["add", "mul", "both"], default="both",
                   help="analogy scoring: 3CosAdd, 3CosMul or both (default)")  # fmt: skip
    e.add_argument("--restrict-vocab", type=int, default=300_000,
                   help="answer among the N most frequent words (default 300000)")  # fmt: skip
    e.add_argument("--sections", action="store_true", help="print every analogy section")
    e.add_argument("--keep-case", action="store_true", help="case-sensitive lookup")
    e.set_defaults(func=cmd_eval)

    n = sub.add_parser("neighbors", help="nearest words by cosine similarity")
    n.add_argument("word", help="the word whose neighbours to list")
    n.add_argument("--vectors", required=True, help="vectors file")
    n.add_argument("-n", "--topn", type=int, default=10, help="how many (default 10)")
    n.set_defaults(func=cmd_neighbors)

    a = sub.add_parser("analogy", help="A is to B as C is to ?")
    a.add_argument("a", help="A (e.g. man)")
    a.add_argument("b", help="B (e.g. king)")
    a.add_argument("c", help="C (e.g. woman)")
    a.add_argument("--vectors", required=True, help="vectors file")
    a.add_argument("--method", choices=["add", "mul"], default="add", help="3CosAdd or 3CosMul")
    a.add_argument("-n", "--topn", type=int, default=5, help="how many answers (default 5)")
    a.set_defaults(func=cmd_analogy)

    pl = sub.add_parser("plot", help="2-D scatter of words (PCA or t-SNE) as PNG")
    pl.add_argument("words", nargs="+", help="the words to place on the plot")
    pl.add_argument("--vectors", required=True, help="vectors file")
    pl.add_argument("--out", default="words.png", help="PNG file (default words.png)")
    pl.add_argument("--method", choices=["pca", "tsne"], default="pca",
                    help="projection to 2-D: PCA (default) or t-SNE")  # fmt: skip
    pl.add_argument("--seed", type=int, default=0, help="random seed of t-SNE (default 0)")
    pl.set_defaults(func=cmd_plot)


def cmd_train(args: argparse.Namespace) -> int:
    from lmlab.cli._common import deprecated_alias
    from lmlab.embeddings.corpus import encode_corpus, iter_sentences, list_files
    from lmlab.errors import LmlabError

    deprecated_alias(args, "corpus_pos", "corpus", "a positional CORPUS", "--corpus")
    if not args.corpus:
        raise LmlabError("no training text: pass --corpus FILE|FOLDER|builtin:NAME")
    files = list_files(args.corpus)
    print(f"reading {len(files)} file(s) ({args.mode} mode) ...", file=sys.stderr)
    t0 = time.perf_counter()
    corpus = encode_corpus(iter_sentences(files, args.mode, lowercase=not args.keep_case))
    print(f"{corpus.n_tokens:,} tokens, {len(corpus.words):,} distinct words "
          f"({time.perf_counter() - t0:.1f} s)", file=sys.stderr)  # fmt: skip
    common = dict(vector_size=args.size, min_count=args.min_count, max_vocab=args.max_vocab,
                  workers=args.workers, seed=args.seed)  # fmt: skip
    try:
        if args.algo == "glove":  # each trainer imports only what it needs (GloVe: SciPy)
            from lmlab.embeddings.glove import GloveConfig, train_glove

            cfg = GloveConfig(window=args.window or 10, epochs=args.epochs or 15, x_max=args.x_max,
                              alpha=args.weight_power, eta=args.eta, **common)  # fmt: skip
            result = train_glove(corpus, cfg)
        else:
            from lmlab.embeddings.word2vec import Word2VecConfig, train_word2vec

            cfg = Word2VecConfig(
                sg=args.algo == "skipgram", hs=args.hs, negative=args.negative,
                shared_negatives=not args.per_pair_negatives,
                window=args.window or 5, epochs=args.epochs or 5, sample=args.sample,
                alpha=args.alpha, min_alpha=args.min_alpha, **common,
            )  # fmt: skip
            result = train_word2vec(corpus, cfg)
    finally:
        corpus.close()
    losses = " ".join(f"{x:.4f}" for x in result.epoch_losses)
    print(f"{args.algo}: {len(result.vectors):,} words x {args.size}, {result.seconds:.1f} s "
          f"training, {result.words_per_sec:,.0f} words/s; loss per epoch: {losses}")  # fmt: skip
    path = result.vectors.save(args.out)
    if args.eval:
        _print_eval(result.vectors, args.eval, None, None, "add", 300_000, False, True)
    print(f"vectors: {path}")
    return 0


def _print_eval(vectors, lang, analogy, similarity, method, restrict, sections, lowercase) -> None:
    from lmlab.embeddings.evaluate import default_sets, evaluate_analogies, evaluate_similarity

    an_default, sim_default = default_sets(lang)
    analogy = an_default if analogy is None else analogy
    similarity = sim_default if similarity is None else similarity
    methods = ["add", "mul"] if method == "both" else [method]
    for path in analogy:
        for m in methods:
            r = evaluate_analogies(vectors, path, m, restrict, lowercase)
            name = "3CosAdd" if m == "add" else "3CosMul"
            parts = [
                f"{cat.name} {cat.accuracy:.3f}" for cat in (r.semantic, r.syntactic) if cat.total
            ]
            print(f"analogy {name} {path}: {r.accuracy:.3f} ({r.total.correct}/{r.total.seen}, "
                  f"coverage {r.coverage:.1%}); {', '.join(parts)}")  # fmt: skip
            if sections:
                for s in r.sections:
                    print(f"    {s.name:32s} {s.accuracy:.3f}  ({s.correct}/{s.seen} of {s.total})")
    for path in similarity:
        r = evaluate_similarity(vectors, path, lowercase)
        print(f"similarity {path}: Spearman {r.spearman:.3f} ({r.seen}/{r.total} pairs, "
              f"coverage {r.coverage:.1%})")  # fmt: skip


def cmd_eval(args: argparse.Namespace) -> int:
    from lmlab.cli._common import deprecated_alias
    from lmlab.embeddings.vectors import Vectors
    from lmlab.errors import LmlabError

    deprecated_alias(args, "vectors_pos", "vectors", "a positional VECTORS", "--vectors")
    if not args.vectors:
        raise LmlabError("give the vectors to evaluate: lmlab embed eval --vectors FILE")

    v = Vectors.load(args.vectors)
    print(f"{args.vectors}: {len(v):,} words x {v.vector_size}")
    _print_eval(v, args.lang, args.analogy, args.similarity, args.method, args.restrict_vocab,
                args.sections, not args.keep_case)  # fmt: skip
    return 0


def _print_pairs(pairs: list[tuple[str, float]]) -> None:
    for w, s in pairs:
        print(f"{s:7.4f}  {w}")


def cmd_neighbors(args: argparse.Namespace) -> int:
    from lmlab.embeddings.vectors import Vectors

    _print_pairs(Vectors.load(args.vectors).neighbors(args.word, args.topn))
    return 0


def cmd_analogy(args: argparse.Namespace) -> int:
    from lmlab.embeddings.vectors import Vectors

    v = Vectors.load(args.vectors)
    query = v.most_similar if args.method == "add" else v.most_similar_cosmul
    print(f"{args.a} : {args.b} :: {args.c} : ?")
    _print_pairs(query(positive=[args.b, args.c], negative=[args.a], topn=args.topn))
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from lmlab.cli._common import one_line_warnings
    from lmlab.embeddings.plot import plot_words
    from lmlab.embeddings.vectors import Vectors

    one_line_warnings()
    path = plot_words(Vectors.load(args.vectors), args.words, args.out, args.method, seed=args.seed)
    print(f"plot: {path}")
    return 0
