"""Grokking on modular addition with the library API behind ``lmlab lab grok``.

Trains lmlab's 1-layer Transformer on (a + b) mod 113 from 30% of the pairs with weight
decay 1, then the control with weight decay 0, and checks the finding: the training set is
memorised long before the test set is solved, and only with weight decay. Exits 1 if the
run does not show it.

    .venv/bin/python examples/grokking.py [--out runs/grok] [--steps 3000] [--docs]

``--docs`` also copies the plot to docs/lab/grokking.png (the expected curve).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from lmlab.lab.grokking import GrokConfig, run_grokking, summary_line


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/grok")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--docs", action="store_true", help="copy the plot to docs/lab/")
    args = ap.parse_args()

    cfg = GrokConfig(p=113, train_fraction=0.3, weight_decay=1.0, steps=args.steps)
    grok, control = run_grokking(cfg, args.out, control_weight_decay=0.0)
    for r in (grok, control):
        print(summary_line(r))

    ok = (
        grok.memorised_at is not None
        and grok.grokked_at is not None
        and grok.grokked_at >= 5 * grok.memorised_at  # a long stall between the two
        and control.grokked_at is None
    )
    print("grokking reproduced" if ok else "grokking NOT reproduced")
    if args.docs:
        dest = Path(__file__).resolve().parents[1] / "docs" / "lab" / "grokking.png"
        shutil.copyfile(Path(args.out) / "grokking.png", dest)
        print(f"copied the plot to {dest}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
