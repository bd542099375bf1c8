#!/usr/bin/env bash
# Emergence or mirage? Addition across model sizes (Wei et al. 2022; Schaeffer et al. 2023).
#
# Trains 8 Transformer sizes from about 400 to 100k parameters (2 seeds each) on 20,000
# three-digit addition problems for 1,500 steps, twice: answers written most significant
# digit first (plain) and reversed (least significant first, the order carries flow).
# Every run is measured by exact match beside per-token accuracy, token edit distance and
# the answer's log-likelihood on 500 held-out problems; the report gives the plots, the
# power-law fit of the loss and the emergence and mirage verdicts in words.
# The first sweep's sizes change depth too (1 layer up to 32x1, 2 layers for 48x2 and 64x2),
# so a third sweep holds depth at 2 layers and varies only the width (4x2 to 64x2), into
# its own database and report: does the jump survive without the change of depth?
# About 11 minutes on 2 busy CPU cores; a re-run reuses finished runs.
# The pictures it produced here are docs/lab/emergence_addition.png and
# docs/lab/emergence_addition_depth2.png.
#
#   bash examples/emergence_addition.sh        # LMLAB=.venv/bin/lmlab if not activated
set -euo pipefail
LMLAB=${LMLAB:-lmlab}
OUT=${OUT:-runs/lab}
SIZES=4x1,8x1,12x1,16x1,24x1,32x1,48x2,64x2
DEPTH2_SIZES=4x2,8x2,12x2,16x2,24x2,32x2,48x2,64x2

for TASK in add:digits=3 add:digits=3,reversed=true; do
    "$LMLAB" lab sweep "$TASK" --sizes "$SIZES" --data 20000 --steps 1500 --seeds 0,1 \
        --db "$OUT/addition.sqlite"
done
"$LMLAB" lab report --db "$OUT/addition.sqlite" --out "$OUT/addition_report"

# Fixed depth: 2 layers at every size, only the width varies.
"$LMLAB" lab sweep add:digits=3 --sizes "$DEPTH2_SIZES" --data 20000 --steps 1500 --seeds 0,1 \
    --db "$OUT/addition_depth2.sqlite"
"$LMLAB" lab report --db "$OUT/addition_depth2.sqlite" --out "$OUT/addition_depth2_report"
echo "open $OUT/addition_report/report.html $OUT/addition_depth2_report/report.html"
