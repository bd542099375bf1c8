#!/usr/bin/env bash
# Induction heads form in a phase change (Olsson et al. 2022).
#
# Attention-only Transformers (2 layers, and 1 layer as the control; width 64, 4 heads) learn
# random tokens that repeat with a random period. Along training: the loss on the repeated
# half of held-out [r1..r32 r1..r32] sequences and each head's prefix-matching score. The
# 2-layer model's repeat loss drops from log 128 = 4.85 nats to nearly 0 within a few
# hundred steps while one layer-2 head's prefix-matching score jumps to about 0.9; the
# 1-layer model stays near 3.9 nats with no induction head. The curves it produced here:
# docs/lab/induction_heads.png.
#
#   bash examples/induction_heads.sh          # LMLAB=.venv/bin/lmlab if not activated
set -euo pipefail
LMLAB=${LMLAB:-lmlab}
OUT=${OUT:-runs/induction}
"$LMLAB" lab induction --out "$OUT" --overwrite "$@"
echo "compare $OUT/induction.png with docs/lab/induction_heads.png"
