"""Chat fine-tuning of SmolLM2-135M-Instruct with LoRA (``lmlab task train chat``), measured
against the base model on the same held-out conversations.

    python benchmarks/chat.py --job dailydialog --write   # ~20 min training + ~10 min scoring
    python benchmarks/chat.py --job samsum --write        # the same for SAMSum
    python benchmarks/chat.py --job samsum --reuse        # score an existing run again
    python benchmarks/chat.py --job dailydialog --full --write   # full fine-tuning instead

* ``dailydialog`` (section ``chat``): LoRA SFT on DailyDialog's 2,324 training dialogues
  (loss on the second speaker's turns), held-out response perplexity of the base and the
  tuned model on the 150 test dialogues (assistant tokens only), distinct-1/2 of greedy
  replies to one seeded turn per dialogue (a seeded sample of ``--replies``), and a
  side-by-side table of base and tuned replies. Target: perplexity >= 20% lower.
* ``samsum`` (section ``samsum``): LoRA SFT on SAMSum's validation file (718 dialogues,
  100 held out for validation) as single-turn chat, ROUGE-1/2/L (rouge-score, stemmed) of
  greedy summaries on the test split (all 819, or a seeded ``--samples``), with SmolLM2
  zero-shot (no tuning, the same prompt) and lead-3 on the same sample beside it. Target:
  ROUGE-1 >= 38 (published lead-3 on all of the test: 31.4).

``--full`` trains every weight instead of LoRA adapters (AdamW at the chat trainer's full
fine-tuning learning rate) into ``JOB-full`` and writes section ``chat_full`` /
``samsum_full``.

Run it through ``/work/notes/heavy.sh`` on the shared machine (one thread each).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, results_section, table  # noqa: E402

OUT = ROOT / "benchmarks" / "out" / "chat"
LMLAB = str(Path(sys.executable).with_name("lmlab"))
JOBS = {
    "dailydialog": {"section": "chat", "title": "Chat fine-tuning: DailyDialog (SmolLM2 + LoRA)"},
    "samsum": {"section": "samsum", "title": "SAMSum summaries by chat fine-tuning (SmolLM2 + LoRA)"},
}  # fmt: skip


def cell(text: str, n: int = 90) -> str:
    """A table cell: one line, pipes escaped, cut to ``n`` characters."""
    t = " ".join(text.split()).replace("|", "\\|")
    return t if len(t) <= n else t[: n - 1] + "…"


def tuning(args: argparse.Namespace) -> list[str]:
    """The training command's tuning flag: LoRA unless ``--full``."""
    return [] if args.full else ["--lora"]


def train(args: argparse.Namespace, run: Path) -> None:
    cmd = [LMLAB, "task", "train", "chat", "--data", args.job, "--base", "builtin:smollm2",
           *tuning(args), "--threads", str(args.threads), "--time-limit",
           str(args.minutes * 60), "--seed", "1", "--out", str(run), "--overwrite"]  # fmt: skip
    print(f"training: {' '.join(cmd[1:])}", file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--job", choices=list(JOBS), required=True)
    ap.add_argument("--minutes", type=float, default=20, help="training time limit (20)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--samples", type=int, default=819, help="SAMSum test dialogues scored "
                    "(a seeded sample; 819: all of them)")  # fmt: skip
    ap.add_argument("--replies", type=int, default=60, help="DailyDialog replies generated (60)")
    ap.add_argument("--reuse", action="store_true", help="score the existing run, no training")
    ap.add_argument("--full", action="store_true", help="full fine-tuning instead of LoRA")
    ap.add_argument("--write", action="store_true", help="write the RESULTS.md section")
    args = ap.parse_args()
    job = JOBS[args.job]
    section, title = job["section"], job["title"]
    if args.full:
        section, title = f"{section}_full", title.replace("+ LoRA", "full fine-tuning")
    with results_section(section, args.write, title):
        run_job(args)


def run_job(args: argparse.Namespace) -> None:
    import torch

    from lmlab.tasks.chat import load_run
    from lmlab.tasks.chat.evaluate import evaluate_chat

    torch.set_num_threads(args.threads)
    run_dir = OUT / (args.job + ("-full" if args.full else ""))
    if not args.reuse:
        train(args, run_dir)
    res = json.loads((run_dir / "results.json").read_text("utf-8"))
    run = load_run(run_dir)
    data = run.task_data()
    t0 = time.perf_counter()
    lead3 = None
    if args.job == "dailydialog":
        convs, where = data.test, f"DailyDialog test ({len(data.test)} dialogues)"
        rep = evaluate_chat(run, convs, where, seed=0, reply_limit=args.replies)
    else:
        import numpy as np

        from lmlab.tasks.summarize.data import load_summaries
        from lmlab.tasks.summarize.extractive import lead
        from lmlab.tasks.summarize.metrics import rouge

        keep = np.sort(np.random.default_rng(0).permutation(len(data.test))[: args.samples])
        convs = [data.test[i] for i in keep]
        where = (f"SAMSum test, all {len(convs)} dialogues" if len(convs) == len(data.test) else
                 f"SAMSum test, seeded sample of {len(convs)} of {len(data.test)} (seed 0)")  # fmt: skip
        rep = evaluate_chat(run, convs, where, summaries=True, seed=0)
        test = load_summaries("samsum")["test"]
        lead3 = rouge([lead(test.texts[i], "en", 3) for i in keep],
                      [test.summaries[i] for i in keep], "en")  # fmt: skip
    seconds = time.perf_counter() - t0
    report(args, res, rep, where, seconds, lead3 if rep.rouge else None, run_dir)


def report(args, res: dict, rep, where: str, seconds: float, lead3: dict | None,
           run_dir: Path) -> None:  # fmt: skip
    """The section's text: the run, perplexity, replies' diversity (and ROUGE), examples."""
    lora = res.get("lora")
    how = (f"LoRA rank {lora['rank']}, alpha {lora['alpha']:g} on {', '.join(lora['targets'])}"
           if lora else f"every weight trained, {res['parameters']:,} parameters")  # fmt: skip
    print(f"Run `{run_dir.relative_to(ROOT)}`: `lmlab task train chat --data {args.job} --base "
          f"builtin:smollm2 {' '.join(tuning(args) + ['']) }--threads {args.threads} "
          f"--time-limit {int(args.minutes * 60)}` ({how}; loss on the "
          f"assistant's tokens only; bf16 autocast). Training: {res['train_seconds'] / 60:.1f} "
          f"min with its validations, {res['steps']:,} steps ({res['epochs']:.2f} epochs of "
          f"{res['train_conversations']:,} conversations), {res['train_tokens_per_s']:.0f} "
          f"tokens/s; {res['stopped']}; kept step {res['best_step']:,} (best validation response "
          f"loss on {res['validation_conversations']} conversations). Scored on {where} in "
          f"{seconds / 60:.1f} min, float32, greedy replies of at most 64 tokens.\n")  # fmt: skip
    ppl = [["SmolLM2-135M-Instruct (base)", f"{rep.base_ppl:.2f}"],
           ["+ LoRA SFT (tuned)" if lora else "+ full SFT (tuned)", f"{rep.ppl:.2f}"]]  # fmt: skip
    print(f"Held-out response perplexity (assistant tokens only; {rep.conversations} "
          f"conversations, {rep.tokens:,} tokens): {100 * rep.change:+.1f}% "
          f"(target: at least 20% lower).\n")  # fmt: skip
    print(table(["model", "response perplexity"], ppl))
    print()
    d = rep.distinct
    print(f"Greedy replies ({d['tuned']['n']} {'summaries' if rep.rouge else 'turns'}):\n")
    rows = []
    names = {"base": "base (zero-shot)", "tuned": "tuned", "reference": "reference (human)"}
    for who in ("base", "tuned", "reference"):
        r = [names[who], f"{d[who]['distinct1']:.3f}", f"{d[who]['distinct2']:.3f}",
             f"{d[who]['mean_words']:.1f}"]  # fmt: skip
        if rep.rouge:
            g = rep.rouge.get(who)
            r += [f"{g['rouge1']:.2f}", f"{g['rouge2']:.2f}", f"{g['rougeL']:.2f}"] if g else [
                "", "", ""]  # fmt: skip
        rows.append(r)
    heads = ["replies", "distinct-1", "distinct-2", "words"]
    if rep.rouge:
        heads += ["ROUGE-1", "ROUGE-2", "ROUGE-L"]
        rows.append(["lead-3 (first three turns)", "", "", "", f"{lead3['rouge1']:.2f}",
                     f"{lead3['rouge2']:.2f}", f"{lead3['rougeL']:.2f}"])  # fmt: skip
    print(table(heads, rows))
    print()
    if rep.rouge:
        print("Published on all 819 test dialogues (Gliwa et al. 2019): lead-3 ROUGE-1 31.4, the "
              "best non-pretrained model 42.0; benchmarks/summarize_baselines.py gives lmlab's "
              "lead-3 on all of them. Target: ROUGE-1 >= 38.\n")  # fmt: skip
    print("Side by side (the first 5 of the scored turns):\n")
    rows = [[cell(e["prompt"].split("\n\n", 1)[-1], 120 if rep.rouge else 70), cell(e["reference"]), cell(e["base"]),
             cell(e["tuned"])] for e in rep.examples[:5]]  # fmt: skip
    head = "dialogue (start)" if rep.rouge else "prompt (last user turn)"
    print(table([head, "reference", "base", "tuned"], rows))
    (run_dir / "bench_replies.json").write_text(
        json.dumps(rep.to_dict(), ensure_ascii=False, indent=1), "utf-8"
    )


if __name__ == "__main__":
    main()
