"""ROUGE with Google's ``rouge-score``: English with Porter stemming (its default
tokenisation), Chinese on characters (rouge-score's tokenizer drops non-Latin text, so a
character tokenizer is passed: every non-space character is a token, punctuation included).
Figures are mean F1 x 100 over the documents."""

from __future__ import annotations

from lmlab.errors import LmlabError

TYPES = ("rouge1", "rouge2", "rougeL")


class CharTokenizer:
    """rouge-score tokenizer for Chinese: one token per non-space character."""

    def tokenize(self, text: str) -> list[str]:
        return [c for c in text if not c.isspace()]


def rouge(predictions: list[str], references: list[str], lang: str) -> dict[str, float]:
    """Mean ROUGE-1/2/L F1 (x 100) of ``predictions`` against ``references``."""
    try:
        from rouge_score import rouge_scorer
    except ImportError:
        raise LmlabError("ROUGE needs rouge-score: pip install 'lmlab[summarize]'") from None
    if len(predictions) != len(references):
        raise LmlabError(f"{len(predictions)} summaries for {len(references)} references")
    if not predictions:
        raise LmlabError("nothing to score: no summaries")
    if lang == "zh":
        scorer = rouge_scorer.RougeScorer(list(TYPES), tokenizer=CharTokenizer())
    else:
        scorer = rouge_scorer.RougeScorer(list(TYPES), use_stemmer=True)
    total = dict.fromkeys(TYPES, 0.0)
    for p, r in zip(predictions, references, strict=True):
        s = scorer.score(r, p)
        for t in TYPES:
            total[t] += s[t].fmeasure
    return {t: round(100 * v / len(predictions), 2) for t, v in total.items()}
