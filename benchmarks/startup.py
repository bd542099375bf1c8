"""CLI start-up: whole processes of lmlab commands that run no network, against the target.

Issue 17: ``lmlab --help`` and any command that does not train or run a network start in
<= 0.3 s (PyTorch, numba and the lab imported only where used). Each command runs as a fresh
process, interleaved with the others, several repeats; the table gives the median and spread
of wall time and whether the command imports PyTorch (``python -X importtime``). Python's
own start and ``import torch`` are timed beside them as the floor and the cost avoided.

    python benchmarks/startup.py [--repeats 7] [--write]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import results_section  # noqa: E402
from _procs import load_note, time_interleaved  # noqa: E402

LMLAB = [str(Path(sys.executable).with_name("lmlab"))]  # the console script users run
TARGET_S = 0.3


def make_runs(work: Path) -> dict[str, Path]:
    """A small n-gram run and a small Transformer run to describe (not timed)."""
    corpus = work / "tiny.txt"
    corpus.write_text("the cat sat on the mat\nthe dog sat on the log\n" * 200, encoding="utf-8")
    runs = {"ngram": work / "ngram-run", "transformer": work / "transformer-run"}
    steps = [
        [*LMLAB, "ngram", "build", "--corpus", str(corpus), "--order", "3", "--tokenizer",
         "whitespace", "--out", str(runs["ngram"]), "--overwrite"],
        [*LMLAB, "train", "--corpus", str(corpus), "--tokenizer", "char", "--model",
         "transformer", "--steps", "2", "--context", "16", "--batch-size", "2", "--set",
         "model.n_layer=1", "--set", "model.d_model=16", "--set", "model.n_head=2", "--out",
         str(runs["transformer"])],
    ]  # fmt: skip
    for cmd in steps:
        subprocess.run(cmd, check=True, capture_output=True)
    return runs


def imports_torch(cmd: list[str]) -> bool:
    if cmd[:1] == LMLAB:
        cmd = [sys.executable, "-m", "lmlab", *cmd[1:]]
    out = subprocess.run([cmd[0], "-X", "importtime", *cmd[1:]], capture_output=True, text=True)
    return any(line.rstrip().endswith("| torch") for line in out.stderr.splitlines())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=7, help="interleaved runs per command")
    ap.add_argument("--write", action="store_true", help="put the table into RESULTS.md")
    args = ap.parse_args()
    with results_section("startup", args.write, "CLI start-up"):
        run(args)


def run(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="lmlab-startup-"))
    runs = make_runs(work)
    commands = {
        "python -c pass (the floor)": [sys.executable, "-c", "pass"],
        "python -c 'import torch' (avoided)": [sys.executable, "-c", "import torch"],
        "lmlab --help": [*LMLAB, "--help"],
        "lmlab train --help": [*LMLAB, "train", "--help"],
        "lmlab task train --help": [*LMLAB, "task", "train", "--help"],
        "lmlab data list": [*LMLAB, "data", "list"],
        "lmlab info --run NGRAM_RUN": [*LMLAB, "info", "--run", str(runs["ngram"])],
        "lmlab info --run TRANSFORMER_RUN": [*LMLAB, "info", "--run", str(runs["transformer"])],
    }
    t = time_interleaved(commands, repeats=args.repeats)
    print(f"Whole processes, {args.repeats} interleaved repeats, median (min–max) wall "
          f"seconds; {load_note(t)}. Target (issue 17): <= {TARGET_S} s for every lmlab "
          "command that trains or runs no network.\n")  # fmt: skip
    print("| command | wall s | imports PyTorch | <= 0.3 s |")
    print("|---|---|---|---|")
    for name, cmd in commands.items():
        ok = "-" if name.startswith("python") else ("yes" if t[name].median <= TARGET_S else "no")
        torch_ = "yes" if imports_torch(cmd) else "no"
        print(f"| `{name}` | {t[name].cell()} | {torch_} | {ok} |")
    print()


if __name__ == "__main__":
    main()
