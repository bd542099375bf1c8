"""lmlab's Kneser-Ney n-gram vs KenLM on Penn Treebank (Mikolov's split), one run.

For orders 3 and 5:

1. quality: lmlab's perplexity on valid/test; the same model exported to ARPA and scored by
   KenLM's Python module (``pip install kenlm``) sentence by sentence; and KenLM ``lmplz``'s
   own model of the same text (built live from its public source: ``make bench-peers``),
   scored by the same module;
2. speed, whole processes from start to saved model, interleaved repeats (medians and
   spread, with the load average): ``lmplz -o N -S 1G --text ... --arpa ...`` against
   ``lmlab ngram build --order N --tokenizer whitespace``.

PTB's literal ``<unk>`` is renamed to an ordinary word for lmplz, which refuses it (lmlab
treats it as a word too, so the models agree). Prints Markdown tables.

    .venv/bin/python benchmarks/ngram.py [--data /work/shared/data] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from lmlab.models.ngram import NGramLM
from lmlab.models.ngram_io import export_arpa
from lmlab.models.pretokenized import encode_lines, read_text, whitespace_tokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _procs import load_note, time_interleaved  # noqa: E402
from peers.paths import NOT_BUILT, lmplz  # noqa: E402

LMLAB = Path(sys.executable).with_name("lmlab")


def lmplz_arpa(binary: Path, order: int, text: Path, arpa: Path) -> None:
    cmd = [str(binary), "-o", str(order), "-S", "1G", "-T", str(arpa.parent),
           "--text", str(text), "--arpa", str(arpa)]  # fmt: skip
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


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
    ap.add_argument(
        "--repeats", type=int, default=5, help="whole-process builds per tool and order"
    )
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
    tmp = tempfile.TemporaryDirectory()
    work = Path(tmp.name)
    renamed = work / "ptb.train.txt"  # lmplz refuses a literal <unk> in its input
    renamed.write_text(train_text.replace("<unk>", "unkword"), encoding="utf-8")
    peer = lmplz()
    print("### Quality: perplexity of the same 5-gram/3-gram recipe\n")
    print("| order | split | lmlab ppl | KenLM module on lmlab's ARPA | lmplz's model (KenLM "
          "module) | lmlab / lmplz | lmlab score s | KenLM score s |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for order in (3, 5):
        model = NGramLM.fit(train, order, tok.vocab_size, tok.eos_id)
        arpa = peer_arpa = None
        if have_kenlm:
            arpa = work / f"lmlab{order}.arpa"
            export_arpa(model, tok, arpa)
            if peer is not None:
                peer_arpa = work / f"lmplz{order}.arpa"
                lmplz_arpa(peer, order, renamed, peer_arpa)
        for split in ("valid", "test"):
            t0 = time.perf_counter()
            scores = model.score(ids[split])
            score_s = time.perf_counter() - t0
            ppl = float(10.0 ** (-np.mean(scores)))
            k_cell = k_time = p_cell = ratio = "-"
            if arpa is not None:
                k_ppl, k_s = kenlm_perplexity(arpa, lines[split])
                k_cell, k_time = f"{k_ppl:.2f}", f"{k_s:.2f}"
            if peer_arpa is not None:
                renamed_lines = [ln.replace("<unk>", "unkword") for ln in lines[split]]
                p_ppl, _ = kenlm_perplexity(peer_arpa, renamed_lines)
                p_cell, ratio = f"{p_ppl:.2f}", f"{ppl / p_ppl:.4f}"
            elif have_kenlm:
                p_cell = "lmplz " + NOT_BUILT
            print(f"| {order} | {split} | {ppl:.2f} | {k_cell} | {p_cell} | {ratio} "
                  f"| {score_s:.2f} | {k_time} |")  # fmt: skip
    if not have_kenlm:
        print("\n(kenlm not installed: pip install kenlm)")

    print("\n### Speed: whole processes, text file in, model file out\n")
    if peer is None:
        print(f"lmplz {NOT_BUILT}")
        tmp.cleanup()
        return
    print("| order | lmplz -S 1G (median, spread) | lmlab ngram build | lmlab faster (x) "
          "| lmplz CPU s | lmlab CPU s |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    notes = []
    for order in (3, 5):
        cmds = {
            "lmplz": [str(peer), "-o", str(order), "-S", "1G", "-T", str(work),
                      "--text", str(renamed), "--arpa", str(work / "peer.arpa")],
            "lmlab": [str(LMLAB), "ngram", "build", "--corpus", str(renamed), "--order",
                      str(order), "--tokenizer", "whitespace", "--out", str(work / "run"),
                      "--overwrite"],
        }  # fmt: skip
        t = time_interleaved(cmds, repeats=args.repeats)
        cpu = {k: np.median(v.cpu) for k, v in t.items()}
        print(f"| {order} | {t['lmplz'].cell()} | {t['lmlab'].cell()} "
              f"| {t['lmplz'].median / t['lmlab'].median:.2f} | {cpu['lmplz']:.2f} "
              f"| {cpu['lmlab']:.2f} |")  # fmt: skip
        notes.append(load_note(t))
    print(f"\n{args.repeats} interleaved repeats each; " + "; ".join(notes))
    print(f"commands: {' '.join(cmds['lmplz'])}\n          {' '.join(cmds['lmlab'])}")
    tmp.cleanup()


if __name__ == "__main__":
    main()
