"""Summarisation: data sets with fixed splits, ROUGE (rouge-score), and the extractive
baselines (lead-k, TextRank) that an abstractive model has to beat.

Only the measuring side exists so far; abstractive models (the encoder-decoder on LCSTS and
CSL, a fine-tuned decoder on SAMSum) and ``lmlab task train summarize`` come later.
"""
