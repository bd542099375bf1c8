#!/usr/bin/env bash
# Emergence or mirage? Addition across model sizes (Wei et al. 2022; Schaeffer et al. 2023).
#
# Trains 8 Transformer sizes from about 400 to 100k parameters (2 seeds each) on 20,000
# three-digit addition problems for 1,500 steps, twice: answers written most significant
# digit first (plain) and reversed (least significant first, the order carries flow).
# Every run is measured by exact match beside per-token accuracy, token edit distance and
# the answer's log-likelihood on 500 held-out problems; the report gives the plots, the
# power-law fit of the loss and the emergence and mirage verdicts in words.
# About 8 minutes on 2 busy CPU cores; a re-run reuses finished runs.
# The picture it produced here is docs/lab/emergence_addition.png.
#
#   bash examples/emergence_addition.sh        # LMLAB=.venv/bin/lmlab if not activated
set -euo pipefail
LMLAB=${LMLAB:-lmlab}
OUT=${OUT:-runs/lab}
SIZES=4x1,8x1,12x1,16x1,24x1,32x1,48x2,64x2

for TASK in add:digits=3 add:digits=3,reversed=true; do
    "$LMLAB" lab sweep "$TASK" --sizes "$SIZES" --data 20000 --steps 1500 --seeds 0,1 \
        --db "$OUT/addition.sqlite"
done
"$LMLAB" lab report --db "$OUT/addition.sqlite" --out "$OUT/addition_report"
echo "open $OUT/addition_report/report.html"
