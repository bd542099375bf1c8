"""SQuAD-format question-answering data: reading ``.json`` / ``.json.zip`` files into
:class:`QAExample` records, with bad input reported, never dropped silently.

The format (SQuAD v1.1, XQuAD, CMRC 2018): ``{"data": [{"paragraphs": [{"context": ...,
"qas": [{"id", "question", "answers": [{"text", "answer_start"}]}]}]}]}``.

Bad input:

* an answer whose ``answer_start`` does not point at its text in the context: that answer
  is skipped and counted ("12 answers skipped: offset mismatch"); a question left with no
  answer is skipped and counted too;
* an empty question or an empty context: the question is skipped and counted;
* a file that is not SQuAD-format JSON, or that holds no usable question: a one-line error.

Data read for scoring only (``for_scoring``: test files) keeps an answer with a mismatched
offset as a reference text (offset -1; the official scripts score texts, not offsets),
counted in a warning of its own. Questions without answers are kept only where
``need_answers`` is false (text to answer).
"""

from __future__ import annotations

import json
import warnings
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lmlab.errors import LmlabError


@dataclass(frozen=True)
class Answer:
    text: str
    start: int  # character offset into the context

    @property
    def end(self) -> int:
        return self.start + len(self.text)


@dataclass
class QAExample:
    id: str
    question: str
    context: str
    answers: list[Answer] = field(default_factory=list)
    title: str = ""

    @property
    def answer_texts(self) -> list[str]:
        return [a.text for a in self.answers]

    @property
    def located(self) -> Answer | None:
        """The first answer whose offset is known (the one training learns)."""
        return next((a for a in self.answers if a.start >= 0), None)


def _load_json(path: Path) -> Any:
    """The JSON of ``path``: a ``.json`` file, or the single ``.json`` inside a ``.zip``."""
    if not path.is_file():
        raise LmlabError(f"QA data file {path} not found")
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                names = [n for n in z.namelist() if n.endswith(".json") and "__MACOSX" not in n]
                if len(names) != 1:
                    raise LmlabError(
                        f"{path}: a zip of QA data must hold exactly one .json file, found "
                        f"{len(names)}"
                    )
                raw = z.read(names[0])
        else:
            raw = path.read_bytes()
        return json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise LmlabError(f"{path} is not UTF-8 text; convert it to UTF-8") from None
    except json.JSONDecodeError as e:
        raise LmlabError(f"{path} is not valid JSON ({e.msg} at line {e.lineno})") from None
    except zipfile.BadZipFile as e:
        raise LmlabError(f"{path} is a damaged zip file ({e})") from None


def _warn_counts(counts: Counter, where: str) -> None:
    for what, n in sorted(counts.items()):
        noun = "answer" if what.startswith("answer") else "question"
        reason = what.split(":", 1)[1]
        warnings.warn(f"{where}: {n:,} {noun}{'s' if n != 1 else ''} skipped: {reason}",
                      stacklevel=3)  # fmt: skip


def parse_squad(
    data: Any, where: str, need_answers: bool = True, for_scoring: bool = False
) -> list[QAExample]:
    """Examples from SQuAD-format JSON already parsed; bad items counted and warned about."""
    articles = data.get("data") if isinstance(data, dict) else None
    if not isinstance(articles, list):
        raise LmlabError(
            f'{where} is not SQuAD-format JSON (no top-level "data" list of articles with '
            "paragraphs/qas)"
        )
    out: list[QAExample] = []
    skipped: Counter = Counter()
    seen_ids: set[str] = set()
    kept_text_only = 0
    for a_i, article in enumerate(articles):
        paragraphs = article.get("paragraphs") if isinstance(article, dict) else None
        if not isinstance(paragraphs, list):
            raise LmlabError(f'{where}: article {a_i} has no "paragraphs" list')
        title = str(article.get("title", ""))
        for p_i, para in enumerate(paragraphs):
            if not isinstance(para, dict) or not isinstance(para.get("qas"), list):
                raise LmlabError(f'{where}: article {a_i} paragraph {p_i} has no "qas" list')
            context = para.get("context")
            if not isinstance(context, str):
                raise LmlabError(f"{where}: article {a_i} paragraph {p_i} has no context text")
            for q_i, qa in enumerate(para["qas"]):
                qid = str(qa.get("id", f"{a_i}-{p_i}-{q_i}"))
                if qid in seen_ids:
                    qid = f"{qid}#{a_i}-{p_i}-{q_i}"
                seen_ids.add(qid)
                question = str(qa.get("question") or "").strip()
                if not question:
                    skipped["question:empty question"] += 1
                    continue
                if not context.strip():
                    skipped["question:empty context"] += 1
                    continue
                answers = []
                for ans in qa.get("answers") or []:
                    text, start = ans.get("text"), ans.get("answer_start")
                    if not isinstance(text, str) or not text.strip():
                        skipped["answer:empty answer text"] += 1
                        continue
                    if isinstance(start, str) and start.lstrip("-").isdigit():
                        start = int(start)
                    if not isinstance(start, int) or context[start : start + len(text)] != text:
                        if for_scoring:
                            kept_text_only += 1
                            answers.append(Answer(text, -1))
                        else:
                            skipped["answer:offset mismatch"] += 1
                        continue
                    answers.append(Answer(text, start))
                if need_answers and not answers:
                    skipped["question:no answer left"] += 1
                    continue
                out.append(QAExample(qid, question, context, answers, title))
    _warn_counts(skipped, where)
    if kept_text_only:
        warnings.warn(f"{where}: {kept_text_only:,} answers with an offset mismatch kept as "
                      "reference texts only (scoring compares texts)", stacklevel=2)  # fmt: skip
    if not out:
        raise LmlabError(f"{where} holds no usable question (see the warnings above)")
    return out


def read_squad(
    path: str | Path, need_answers: bool = True, for_scoring: bool = False
) -> list[QAExample]:
    """Examples of a SQuAD-format ``.json`` or ``.json.zip`` file."""
    p = Path(path)
    return parse_squad(_load_json(p), str(p), need_answers, for_scoring)


def contexts(examples: list[QAExample]) -> set[str]:
    return {e.context for e in examples}


def paragraphs(examples: list[QAExample]) -> int:
    return len(contexts(examples))
