"""Translation scores with sacrebleu: BLEU (``tokenize="zh"`` for Chinese targets, ``13a``
otherwise) and chrF, each with sacrebleu's signature so that a figure says how it was made.

References may be several per source (Tatoeba has up to six Chinese translations of one
English sentence); sources with fewer references than the most are padded with ``None``,
which sacrebleu skips (its signature then says ``nrefs:var``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from lmlab.errors import LmlabError


@dataclass
class Scores:
    bleu: float
    chrf: float
    bleu_signature: str
    chrf_signature: str
    bleu_detail: str  # sacrebleu's one-line BLEU (n-gram precisions, brevity penalty)
    n: int

    def to_dict(self) -> dict:
        return asdict(self)

    def format(self) -> str:
        return (f"BLEU {self.bleu:.2f}  chrF {self.chrf:.2f}  ({self.n:,} sentences)\n"
                f"  {self.bleu_detail}\n  BLEU: {self.bleu_signature}\n"
                f"  chrF: {self.chrf_signature}")  # fmt: skip


def bleu_tokenize(tgt_lang: str) -> str:
    return "zh" if tgt_lang == "zh" else "13a"


def ref_streams(refs: list[list[str]]) -> list[list[str | None]]:
    """sacrebleu's layout: one stream per reference slot, ``None`` where a source has fewer."""
    most = max((len(r) for r in refs), default=0)
    return [[r[i] if i < len(r) else None for r in refs] for i in range(most)]


def score(hyps: list[str], refs: list[list[str]], tgt_lang: str) -> Scores:
    """Corpus BLEU and chrF of ``hyps`` against ``refs`` (a list of references per source)."""
    try:
        from sacrebleu.metrics import BLEU, CHRF
    except ImportError:
        raise LmlabError(
            "translation scores need sacrebleu: pip install 'lmlab[translate]'"
        ) from None
    if len(hyps) != len(refs):
        raise LmlabError(f"{len(hyps)} translations for {len(refs)} sources")
    if not hyps:
        raise LmlabError("nothing to score: no sentences")
    streams = ref_streams(refs)
    bleu = BLEU(tokenize=bleu_tokenize(tgt_lang))
    chrf = CHRF()
    b = bleu.corpus_score(hyps, streams)
    c = chrf.corpus_score(hyps, streams)
    return Scores(round(b.score, 2), round(c.score, 2), str(bleu.get_signature()),
                  str(chrf.get_signature()), str(b), len(hyps))  # fmt: skip
