#!/usr/bin/env bash
# Grokking on modular addition (Power et al. 2022; Nanda et al. 2023).
#
# lmlab's 1-layer Transformer (width 128, 4 heads, MLP 512) learns (a + b) mod 113 from 30%
# of the pairs, full batch, AdamW lr 1e-3, betas (0.9, 0.98), weight decay 1; then the same
# with weight decay 0 as the control. Training accuracy reaches 100% within ~100 steps, test
# accuracy stalls near 30%, then jumps above 95% around step 1,250; the control stays near
# 33% for the whole budget. The curves it produced here: docs/lab/grokking.png.
#
#   bash examples/grokking.sh                 # LMLAB=.venv/bin/lmlab if not activated
#   bash examples/grokking.sh --steps 1500    # extra flags go to `lmlab lab grok`
set -euo pipefail
LMLAB=${LMLAB:-lmlab}
OUT=${OUT:-runs/grok}
"$LMLAB" lab grok --out "$OUT" --overwrite "$@"
echo "compare $OUT/grokking.png with docs/lab/grokking.png"
