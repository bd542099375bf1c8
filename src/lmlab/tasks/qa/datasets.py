"""QA data for a run: the built-in data sets with their fixed splits, or your own files.

The data spec (``[task.data]`` of the run's ``config.toml``) is ``{"builtin": NAME}`` or
``{"train": FILE, "validation": FILE?, "test": FILE?}`` (SQuAD-format ``.json`` or
``.json.zip``). Held-out parts are cut from the training file *by paragraph* (questions on
one passage stay together, so a validation score is not inflated by passages seen in
training), with a seeded shuffle of the distinct passages: without ``validation`` 10% of
the training passages; without ``test`` too, 80/10/10.

Built-in data sets (read in place from the shared data folder, see
:func:`lmlab.tasks.datasets.data_root`):

* ``squad-xquad`` (English): SQuAD v1.1 dev questions whose paragraph text does not appear
  exactly in XQuAD-en are the training part (90/10 train/validation by paragraph); XQuAD-en
  (1,190 questions, all SQuAD v1.1 dev questions themselves) is the test, scored with SQuAD's
  official EM/F1;
* ``cmrc`` (Chinese): CMRC 2018 trial (1,002 questions) 90/10 by paragraph for training and
  validation, CMRC 2018 dev (3,219 questions) for the test, scored with CMRC's official
  character-level EM/F1.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lmlab.errors import LmlabError
from lmlab.tasks.data import language_of
from lmlab.tasks.datasets import DEFAULT_SPLIT_SEED, data_root
from lmlab.tasks.qa.data import QAExample, contexts, read_squad

SPLITS = ("train", "validation", "test")
VALIDATION_SHARE = 0.1


@dataclass(frozen=True)
class QABuiltin:
    name: str
    language: str
    description: str
    split: str


BUILTINS: dict[str, QABuiltin] = {
    "squad-xquad": QABuiltin(
        "squad-xquad", "en",
        "SQuAD v1.1 dev minus XQuAD's paragraphs for training, XQuAD-en for the score",
        "squad_dev-v1.1 without XQuAD paragraphs 90/10 by paragraph; test xquad.en.json",
    ),
    "cmrc": QABuiltin(
        "cmrc", "zh", "CMRC 2018: trial for training, dev for the score (character F1/EM)",
        "cmrc2018_trial 90/10 by paragraph; test cmrc2018_dev.json",
    ),
}  # fmt: skip


@dataclass
class QAData:
    name: str
    train: list[QAExample]
    validation: list[QAExample]
    test: list[QAExample] | None
    language: str
    spec: dict[str, Any]
    seed: int
    notes: list[str]

    def split(self, name: str) -> list[QAExample]:
        if name not in SPLITS:
            raise LmlabError(f"unknown split {name!r}; choose one of {', '.join(SPLITS)}")
        part = getattr(self, name)
        if part is None:
            raise LmlabError(f"{self.name} has no {name} split; use --split validation")
        return part

    def sizes(self) -> str:
        t = len(self.test) if self.test is not None else 0
        return (f"{len(self.train):,} train / {len(self.validation):,} validation / "
                f"{t:,} test questions")  # fmt: skip


def split_by_paragraph(
    examples: list[QAExample], fractions: list[float], seed: int
) -> list[list[QAExample]]:
    """Parts of ``examples`` with the given shares of the distinct passages (seeded); each
    part keeps the file's order."""
    order = list(dict.fromkeys(e.context for e in examples))
    perm = np.random.default_rng(seed).permutation(len(order))
    cuts = np.round(np.cumsum([0.0, *fractions]) * len(order)).astype(int)
    part_of = {}
    for k in range(len(fractions)):
        for i in perm[cuts[k] : cuts[k + 1]]:
            part_of[order[i]] = k
    parts: list[list[QAExample]] = [[] for _ in fractions]
    for e in examples:
        parts[part_of[e.context]].append(e)
    return parts


def _shared(*parts: str) -> Path:
    p = data_root().joinpath(*parts)
    if not p.is_file():
        raise LmlabError(
            f"built-in data file {p} not found; set LMLAB_SHARED_DATA to the shared data folder"
        )
    return p


def _squad_xquad(seed: int) -> QAData:
    squad = read_squad(_shared("qa_en", "squad_dev-v1.1.json.zip"))
    xquad = read_squad(_shared("qa_en", "xquad.en.json"), for_scoring=True)
    held = contexts(xquad)
    rest = [e for e in squad if e.context not in held]
    train, val = split_by_paragraph(rest, [1 - VALIDATION_SHARE, VALIDATION_SHARE], seed)
    notes = [
        f"SQuAD v1.1 dev: {len(squad):,} questions on {len(contexts(squad)):,} paragraphs; "
        f"{len(squad) - len(rest):,} questions on {len(contexts(squad)) - len(contexts(rest)):,} "
        f"paragraphs that appear exactly in XQuAD-en removed; {len(rest):,} questions on "
        f"{len(contexts(rest)):,} paragraphs remain for training and validation"
    ]
    return QAData("squad-xquad", train, val, xquad, "en", {"builtin": "squad-xquad"}, seed, notes)


def _cmrc(seed: int) -> QAData:
    trial = read_squad(_shared("qa_zh", "cmrc2018_trial.json"))
    dev = read_squad(_shared("qa_zh", "cmrc2018_dev.json"), for_scoring=True)
    train, val = split_by_paragraph(trial, [1 - VALIDATION_SHARE, VALIDATION_SHARE], seed)
    overlap = len(contexts(trial) & contexts(dev))
    notes = [f"CMRC 2018 trial {len(trial):,} questions, dev {len(dev):,}; "
             f"{overlap} paragraphs in both"]  # fmt: skip
    return QAData("cmrc", train, val, dev, "zh", {"builtin": "cmrc"}, seed, notes)


def data_spec(data: str, validation: str | None = None, test: str | None = None) -> dict[str, Any]:
    """The spec for ``--data`` (a built-in name or a SQuAD-format file) and its companions."""
    name = data.removeprefix("builtin:")
    if name in BUILTINS and not Path(data).is_file():
        if validation is not None or test is not None:
            raise LmlabError(f"{name} is a built-in data set with fixed splits; --validation and "
                             "--test are for your own files")  # fmt: skip
        return {"builtin": name}
    if data.startswith("builtin:") or not Path(data).is_file():
        raise LmlabError(
            f"--data {data!r} is neither a SQuAD-format file nor a built-in QA data set "
            f"({', '.join(BUILTINS)})"
        )
    spec: dict[str, Any] = {"train": str(Path(data).resolve())}
    for key, value in (("validation", validation), ("test", test)):
        if value is not None:
            if not Path(value).is_file():
                raise LmlabError(f"--{key} {value}: file not found")
            spec[key] = str(Path(value).resolve())
    return spec


def load_qa_data(spec: dict[str, Any], seed: int = DEFAULT_SPLIT_SEED) -> QAData:
    """The splits a data spec describes (the same ones for the same seed)."""
    if "builtin" in spec:
        name = spec["builtin"]
        if name not in BUILTINS:
            raise LmlabError(
                f"no built-in QA data set {name!r}; choose one of {', '.join(BUILTINS)}"
            )
        return _squad_xquad(seed) if name == "squad-xquad" else _cmrc(seed)
    if "train" not in spec:
        raise LmlabError("[task.data] needs builtin = NAME or train = FILE")
    train = read_squad(spec["train"])
    val = read_squad(spec["validation"]) if spec.get("validation") else None
    test = read_squad(spec["test"], for_scoring=True) if spec.get("test") else None
    notes = []
    if val is None:
        if test is None:
            train, val, test = split_by_paragraph(train, [0.8, 0.1, 0.1], seed)
            notes.append("validation and test: 10% of the passages each, seeded")
        else:
            train, val = split_by_paragraph(train, [1 - VALIDATION_SHARE, VALIDATION_SHARE], seed)
            notes.append("validation: 10% of the training passages, seeded")
        if not train or not val:
            raise LmlabError(
                f"{spec['train']} has too few passages ({len(contexts(train + val))}) to hold "
                "some out; give --validation FILE"
            )
    language = language_of([e.context for e in train[:200]])
    return QAData(Path(spec["train"]).name, train, val, test, language, spec, seed, notes)
