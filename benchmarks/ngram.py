"""lmlab's Kneser-Ney n-gram vs KenLM on Penn Treebank (Mikolov's split), one run.

For orders 3 and 5: lmlab's build time and perplexity on valid/test; the same model exported
to ARPA and scored by KenLM's Python module (``pip install kenlm``) sentence by sentence; and
KenLM ``lmplz``'s own figures, which the Python module cannot build, quoted from issue 4 as
a labelled reference. Prints a Markdown table.

    .venv/bin/python benchmarks/ngram.py [--data /work/shared/data] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from lmlab.models.ngram import NGramLM
from lmlab.models.ngram_io import export_arpa
from lmlab.models.pretokenized import encode_lines, read_text, whitespace_tokenizer

# KenLM lmplz -o N on the same files (issue 4; "<unk>" an ordinary word, </s> per line).
LMPLZ = {3: {"valid": 157.77, "test": 148.28}, 5: {"valid": 148.01, "test": 141.19, "build_s": 1.5}}


def kenlm_perplexity(path: Path, lines: list[str]) -> tuple[float, float]:
    import kenlm

    model = kenlm.Model(str(path))
    t0 = time.perf_counter()
    total = sum(model.score(line, bos=True, eos=True) for line in lines)
    seconds = time.perf_counter() - t0
    n = sum(len(line.split()) + 1 for line in lines)
    return 10.0 ** (-total / n), seconds


def main() -> None:
    default = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.environ.get("LMLAB_SHARED_DATA", str(default)))
    ap.add_argument("--repeats", type=int, default=3, help="builds per order (best time kept)")
    args = ap.parse_args()
    d = Path(args.data) / "ptb"
    train_text = read_text(d / "ptb.train.txt")
    tok = whitespace_tokenizer([train_text])
    train = encode_lines(tok, train_text)
    texts = {s: read_text(d / f"ptb.{s}.txt") for s in ("valid", "test")}
    ids = {s: encode_lines(tok, t) for s, t in texts.items()}
    lines = {s: [ln.strip() for ln in t.split("\n")[:-1]] for s, t in texts.items()}
    try:
        import kenlm  # noqa: F401

        have_kenlm = True
    except ImportError:
        have_kenlm = False

    print(
        f"Penn Treebank: {len(train):,} training tokens, vocabulary {tok.vocab_size:,}; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs\n"
    )
    print(
        "| order | split | lmlab ppl | KenLM module on lmlab ARPA | lmplz (issue reference) "
        "| lmlab / lmplz | lmlab build s | lmplz build s (reference) | lmlab score s | KenLM score s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for order in (3, 5):
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            model = NGramLM.fit(train, order, tok.vocab_size, tok.eos_id)
            times.append(time.perf_counter() - t0)
        build = min(times)
        arpa = None
        tmp = tempfile.TemporaryDirectory()
        if have_kenlm:
            arpa = Path(tmp.name) / f"ptb{order}.arpa"
            export_arpa(model, tok, arpa)
        for split in ("valid", "test"):
            t0 = time.perf_counter()
            scores = model.score(ids[split])
            score_s = time.perf_counter() - t0
            ppl = float(10.0 ** (-np.mean(scores)))
            if arpa is not None:
                k_ppl, k_s = kenlm_perplexity(arpa, lines[split])
                k_cell, k_time = f"{k_ppl:.2f}", f"{k_s:.2f}"
            else:
                k_cell, k_time = "not installed", "-"
            ref = LMPLZ[order][split]
            ref_build = LMPLZ[order].get("build_s")
            print(
                f"| {order} | {split} | {ppl:.2f} | {k_cell} | {ref:.2f} | {ppl / ref:.4f} "
                f"| {build:.2f} | {ref_build if ref_build else '-'} | {score_s:.2f} | {k_time} |"
            )
        tmp.cleanup()


if __name__ == "__main__":
    main()
