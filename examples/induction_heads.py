"""Induction heads with the library API behind ``lmlab lab induction``.

Trains a 2-layer attention-only Transformer and a 1-layer control on random tokens that
repeat with a random period, then checks the finding: the 2-layer model's loss on the
repeated half falls in a phase change, at the same time as a layer-2 head's prefix-matching
score rises, and the 1-layer model shows neither. Exits 1 if the run does not show it.

    .venv/bin/python examples/induction_heads.py [--out runs/induction] [--docs]

``--docs`` also copies the plot to docs/lab/induction_heads.png (the expected curve).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np

from lmlab.lab.heads import plot_head_scores
from lmlab.lab.induction import InductionConfig, run_induction, summary_lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/induction")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--docs", action="store_true", help="copy the plot to docs/lab/")
    args = ap.parse_args()

    cfg = InductionConfig(steps=args.steps)
    two, one = run_induction(cfg, args.out, layers=(2, 1))
    print("\n".join(summary_lines([two, one], cfg.vocab_size)))
    plot_head_scores(
        np.asarray(two.prefix_scores[-1]),
        Path(args.out) / "heads_2layer.png",
        "2-layer model: prefix-matching score per head",
    )
    ok = (
        two.loss_change is not None
        and two.score_change is not None
        and two.best_head()[0] == 1  # the induction head is in layer 2 (index 1)
        and two.best_head()[2] > 0.5
        # the two changes overlap in time (each window: 10% to 90% of the change)
        and two.score_change.begin <= two.loss_change.finish
        and two.loss_change.begin <= two.score_change.finish
        and one.loss_change is None
    )
    print("phase change reproduced" if ok else "phase change NOT reproduced")
    if args.docs:
        dest = Path(__file__).resolve().parents[1] / "docs" / "lab" / "induction_heads.png"
        shutil.copyfile(Path(args.out) / "induction.png", dest)
        print(f"copied the plot to {dest}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
