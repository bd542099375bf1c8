"""Distillation: SmolLM2-135M-Instruct into a small lmlab student, against the same student
trained from scratch on the same data for the same steps.

Text: English prose from the Project Gutenberg books in ``../shared/data/gutenberg`` (header
and licence stripped). Training: three Austen novels (*Pride and Prejudice*, *Sense and
Sensibility*, *Persuasion*), capped at ``--train-chars``; validation: the start of a fourth
book, *Northanger Abbey* (``--heldout-chars``), which no student trains on. Both go through
``lmlab distill`` as one corpus whose last ``--val-fraction`` is exactly the held-out text.

Both students are identical (``--student-depth`` x ``--student-width``, GPT-2 blocks, tied
embeddings over SmolLM2's 49,152 tokens), see the same windows in the same order (same seed)
for the same steps, and differ only in the loss: ``--alpha 0`` (cross-entropy: the teacher is
never run) against ``--alpha A`` (KL to the teacher's cached top-k + cross-entropy). The
teacher's targets are cached under ``benchmarks/out/distill/<name>/cache`` and reused by
later runs of this script. Reported: validation perplexity of the teacher and both students
on the same held-out tokens (windows of ``--context`` tokens for all three, fp32), parameter
counts and times; a PNG of both students' validation loss curves. Target (issue 15): the
distilled student's perplexity >= 10% below the from-scratch student's.

Run (a quiet machine; about 25 minutes at the defaults on 2 cores):
    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/distill.py [--write]
``--write`` puts the table into benchmarks/RESULTS.md (section ``distill``) and the figure
into docs/img/distill_curves.png. ``--reuse`` keeps finished runs (trains only the others)
and ``--train-only`` stops before scoring, so the work can be split into shorter jobs.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, results_section, shared, table  # noqa: E402

OUT = ROOT / "benchmarks" / "out" / "distill"
LMLAB = str(Path(sys.executable).with_name("lmlab"))
TRAIN_BOOKS = (
    "austen_pride_and_prejudice.txt",
    "austen_sense_and_sensibility.txt",
    "austen_persuasion.txt",
)
HELDOUT_BOOK = "austen_northanger_abbey.txt"
FIGURE = ROOT / "docs" / "img" / "distill_curves.png"


def book_text(name: str) -> str:
    from lmlab.embeddings.corpus import strip_gutenberg

    raw = shared("gutenberg", name).read_text(encoding="utf-8", errors="replace")
    return strip_gutenberg(raw.replace("\r\n", "\n").replace("\r", "\n")).strip() + "\n"


def cut(text: str, chars: int) -> str:
    """The first ``chars`` characters of ``text``, ended at a line end."""
    if len(text) <= chars:
        return text
    end = text.rfind("\n", 0, chars)
    return text[: end + 1 if end > 0 else chars]


def prepare_corpus(folder: Path, train_chars: int, heldout_chars: int) -> tuple[list[Path], float]:
    """Training books (capped) then the held-out text, as files; the validation fraction that
    makes the held-out text exactly the validation split."""
    folder.mkdir(parents=True, exist_ok=True)
    files, left = [], train_chars
    for i, name in enumerate(TRAIN_BOOKS):
        if left <= 0:
            break
        text = cut(book_text(name), left)
        left -= len(text)
        files.append(folder / f"{i}_{name}")
        files[-1].write_text(text, encoding="utf-8")
    held = cut(book_text(HELDOUT_BOOK), heldout_chars)
    files.append(folder / f"{len(files)}_heldout_{HELDOUT_BOOK}")
    files[-1].write_text(held, encoding="utf-8")
    total = sum(len(p.read_text(encoding="utf-8")) for p in files)
    return files, len(held) / total


def variants(args) -> dict[str, tuple[float, str]]:
    """name -> (alpha, --init-embeddings)."""
    every = {
        "scratch": (0.0, "random"),
        "distilled": (args.alpha, args.init_embeddings),
        "scratch-project": (0.0, "project"),
        "distilled-random": (args.alpha, "random"),
    }
    return {v: every[v] for v in args.variants.split(",")}


def train_student(args, name: str, alpha: float, init: str, files: list[Path], vf: float,
                  work: Path) -> float:  # fmt: skip
    cmd = [LMLAB, "distill", "--teacher", args.teacher, "--out", str(work / "runs" / name),
           "--overwrite", "--val-fraction", repr(vf), "--student-depth", str(args.depth),
           "--student-width", str(args.width), "--steps", str(args.steps),
           "--batch-size", str(args.batch_size), "--context", str(args.context),
           "--lr", str(args.lr), "--eval-every", str(args.eval_every),
           "--threads", str(args.threads), "--seed", str(args.seed), "--alpha", str(alpha),
           "--temperature", str(args.temperature), "--top-k", str(args.top_k),
           "--cache", str(work / "cache"), "--init-embeddings", init]  # fmt: skip
    for f in files:
        cmd += ["--corpus", str(f)]
    print("$ " + " ".join(cmd), file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - t0


def metrics(run: Path) -> list[dict]:
    return [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines() if ln]


def teacher_seconds(run: Path) -> float | None:
    m = re.search(r"teacher pass (\d+) s", (run / "card.md").read_text(encoding="utf-8"))
    return float(m.group(1)) if m else None


def score(model, val, context: int) -> tuple[float, int]:
    from lmlab.evaluate.perplexity import window_loss

    return window_loss(model, val, context, batch_size=8, max_batches=None, autocast=None)


def plot(curves: dict[str, list[tuple[int, float]]], teacher_loss: float, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for label, pts in curves.items():
        s, v = zip(*pts, strict=True)
        ax.plot(s, v, "o-", ms=3, label=label)
    ax.axhline(teacher_loss, color="gray", ls="--", lw=1, label="teacher")
    ax.set_xlabel("step")
    ax.set_ylabel("validation loss (nats/token)")
    ax.set_title("Held-out text: distilled vs from-scratch student (same steps, same data)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--teacher", default="builtin:smollm2")
    ap.add_argument("--name", default="main", help="subfolder of benchmarks/out/distill")
    ap.add_argument("--train-chars", type=int, default=1_900_000)
    ap.add_argument("--heldout-chars", type=int, default=90_000)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--width", type=int, default=192)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--context", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--eval-every", type=int, default=50)
    ap.add_argument("--alpha", type=float, default=0.5)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--top-k", type=int, default=64)
    ap.add_argument("--init-embeddings", default="project", choices=["random", "project"])
    ap.add_argument(
        "--variants",
        default="scratch,distilled",
        help="comma-separated: scratch, distilled, scratch-project, distilled-random",
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--reuse", action="store_true", help="keep finished runs, train the others")
    ap.add_argument("--train-only", action="store_true", help="train, then stop (no scoring)")
    ap.add_argument("--write", action="store_true", help="update RESULTS.md and the docs figure")
    args = ap.parse_args()
    # the load average before and after, the command and the machine go into RESULTS.md
    with results_section("distill", args.write and not args.train_only, "Distillation"):
        run(args)


def run(args: argparse.Namespace) -> None:
    import torch

    from lmlab.data.shards import open_dataset
    from lmlab.run import load_run

    torch.set_num_threads(args.threads)
    work = OUT / args.name
    files, vf = prepare_corpus(work / "corpus", args.train_chars, args.heldout_chars)
    wall: dict[str, float] = {}
    for name, (alpha, init) in variants(args).items():
        if args.reuse and (work / "runs" / name / "card.md").is_file():
            continue
        wall[name] = train_student(args, name, alpha, init, files, vf, work)
    if args.train_only:
        return

    runs = {name: work / "runs" / name for name in variants(args)}
    data = open_dataset(next(iter(runs.values())) / "data")
    val = data.val
    for r in runs.values():  # the same held-out tokens for every model
        assert (open_dataset(r / "data").val == val).all()
    held = cut(book_text(HELDOUT_BOOK), args.heldout_chars)
    assert data.meta.val_chars == len(held), (data.meta.val_chars, len(held))

    print(f"scoring {len(val):,} held-out tokens with the teacher and the students",
          file=sys.stderr, flush=True)  # fmt: skip
    teacher = load_run(args.teacher)
    t0 = time.perf_counter()
    t_loss, n = score(teacher.model, val, args.context)
    t_score = time.perf_counter() - t0
    t_name = ("SmolLM2-135M-Instruct (Q4_1 GGUF, as float)" if args.teacher == "builtin:smollm2"
              else args.teacher)  # fmt: skip
    rows = [[f"teacher: {t_name}",
             f"{teacher.model.num_params() / 1e6:.1f}M", f"{t_loss:.4f}",
             f"{torch.tensor(t_loss).exp():.2f}", "", ""]]  # fmt: skip
    results: dict[str, dict] = {}
    for name, run in runs.items():
        r = load_run(run)
        loss, m = score(r.model, val, args.context)
        assert m == n
        ms = metrics(run)
        cfg = r.config["distill"]
        results[name] = {
            "loss": loss,
            "ppl": float(torch.tensor(loss).exp()),
            "params": r.model.num_params(),
            "train_s": [x for x in ms if "elapsed" in x][-1]["elapsed"],
            "teacher_s": teacher_seconds(run),
            "curve": [(x["step"], x["val_loss"]) for x in ms if "val_loss" in x],
            "alpha": cfg["alpha"],
            "init": cfg.get("init_embeddings", "random"),
        }
    base = results.get("scratch")
    for name, res in results.items():
        how = ("from scratch (alpha 0)" if res["alpha"] == 0
               else f"distilled (alpha {res['alpha']:g}, T {args.temperature:g}, "
                    f"top-{args.top_k})")  # fmt: skip
        label = f"student {how}, embeddings {res['init']}"
        vs = f"{res['ppl'] / base['ppl'] - 1:+.1%}" if base and name != "scratch" else ""
        rows.append([label, f"{res['params'] / 1e6:.2f}M", f"{res['loss']:.4f}",
                     f"{res['ppl']:.2f}", vs, f"{res['train_s']:.0f}"])  # fmt: skip
    headers = ["model", "parameters", "val loss", "val perplexity", "vs from scratch",
               "student training s"]  # fmt: skip
    tab = table(headers, rows)
    teacher_pass = next((r["teacher_s"] for r in results.values() if r["teacher_s"]), None)
    lines = [
        f"Teacher `{args.teacher}`; students {args.depth} layers x {args.width} "
        f"(GPT-2 blocks, tied embeddings), {args.steps} steps x {args.batch_size} windows x "
        f"{args.context} tokens, lr {args.lr:g}, seed {args.seed}, bf16 autocast.",
        f"Training text: {data.meta.train_tokens:,} tokens ({', '.join(TRAIN_BOOKS)}, "
        f"{args.train_chars:,} characters at most); held out: the first {len(held):,} characters "
        f"of {HELDOUT_BOOK} = {n:,} scored tokens, windows of {args.context} tokens for every "
        f"model, fp32.",
        "",
        tab,
        "",
        f"- teacher pass (top-{args.top_k} + remainder over every training position, cached): "
        + (f"{teacher_pass:.0f} s" if teacher_pass else "reused from the cache")
        + f"; scoring the held-out text with the teacher: {t_score:.0f} s.",
    ]
    if base and "distilled" in results:
        gain = 1 - results["distilled"]["ppl"] / base["ppl"]
        lines.append(
            f"- target: distilled perplexity >= 10% below from scratch: {gain:.1%} lower, "
            + ("**met**." if gain >= 0.10 else "**not met**.")
        )
    given = [a for a in sys.argv[1:] if a not in ("--reuse", "--train-only", "--write")]
    cmd = " ".join(["OMP_WAIT_POLICY=PASSIVE python benchmarks/distill.py", *given])
    lines.append(f"- reproduce from nothing (trains every student; the teacher's targets are "
                 f"cached and reused by later runs): `{cmd}`")  # fmt: skip
    text = "\n".join(lines)
    curves = {("distilled" if r["alpha"] else "from scratch") + f", {r['init']} embeddings":
              r["curve"] for r in results.values()}  # fmt: skip
    png = work / "distill_curves.png"
    plot(curves, t_loss, png)
    print(f"figure: {png}", file=sys.stderr)
    (work / "results.json").write_text(
        json.dumps(
            {"teacher_loss": t_loss, "tokens": n, "students": results, "wall_s": wall}, indent=1
        )
    )
    print(text + "\n\nValidation loss curves: `docs/img/distill_curves.png` (shown on the "
          "Compression page of the docs).")  # fmt: skip
    if args.write:
        FIGURE.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(png, FIGURE)
        print(f"written: benchmarks/RESULTS.md (distill section), {FIGURE.relative_to(ROOT)}",
              file=sys.stderr)  # fmt: skip


if __name__ == "__main__":
    main()
