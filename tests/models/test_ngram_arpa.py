"""ARPA export and import: exact round trip, KenLM agreement, one-line errors."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from lmlab.errors import LmlabError
from lmlab.models.arpa import arpa_names
from lmlab.models.ngram import NGramLM
from lmlab.models.ngram_io import export_arpa, import_arpa
from lmlab.models.pretokenized import encode_lines, read_text, whitespace_tokenizer

DATA = Path(
    os.environ.get(
        "LMLAB_SHARED_DATA", Path(__file__).resolve().parents[2].parent / "shared" / "data"
    )
)


@pytest.fixture(scope="module")
def corpus():
    path = DATA / "timemachine" / "timemachine.txt"
    if not path.is_file():
        pytest.skip(f"shared data not found at {path} (set LMLAB_SHARED_DATA)")
    lines = [ln.strip() for ln in read_text(path).lower().splitlines() if ln.strip()]
    tok = whitespace_tokenizer(["\n".join(lines[:2500])])
    train = encode_lines(tok, "\n".join(lines[:2500]) + "\n")
    return tok, train, lines[2500:2700]


@pytest.fixture(scope="module")
def model(corpus) -> NGramLM:
    tok, train, _ = corpus
    return NGramLM.fit(train, 4, tok.vocab_size, tok.eos_id)


def test_round_trip_is_exact(corpus, model, tmp_path) -> None:
    tok, _, held_out = corpus
    path = export_arpa(model, tok, tmp_path / "m.arpa")
    head = path.read_text().splitlines()[:6]
    assert head[1] == "\\data\\" and head[2] == f"ngram 1={tok.vocab_size + 1}"
    back, tok2 = import_arpa(path, tok)
    for name, t in model.tensors_for_save().items():
        if name != "discounts":  # ARPA files do not record discounts
            torch.testing.assert_close(back.tensors_for_save()[name], t, rtol=0, atol=0)
    # Without a tokenizer: a word tokenizer of the ARPA vocabulary gives the same scores.
    back2, tok3 = import_arpa(path)
    text = "\n".join(held_out) + "\n"
    s1 = model.score(encode_lines(tok, text))
    s2 = back2.score(encode_lines(tok3, text))
    np.testing.assert_allclose(s1, s2, rtol=0, atol=0)


def test_kenlm_scores_the_export_identically(corpus, model, tmp_path) -> None:
    kenlm = pytest.importorskip("kenlm", reason="kenlm Python module not installed")
    tok, _, held_out = corpus
    path = export_arpa(model, tok, tmp_path / "m.arpa")
    km = kenlm.Model(str(path))
    for line in held_out[:100]:
        ours = model.score(encode_lines(tok, line + "\n")).sum()
        assert km.score(line, bos=True, eos=True) == pytest.approx(ours, abs=1e-4)


def test_names_escape_what_arpa_cannot_hold() -> None:
    names = arpa_names(["<eos>", "a", " ", "\n", "", "a", "<s>"], eos_id=0, unk_id=None)
    assert names == ["</s>", "a", "<0x20>", "<0x0A>", "<id:4>", "<id:5>", "<id:6>", "<s>"]


@pytest.mark.parametrize(
    "text, message",
    [
        ("hello\n", "no \\\\data\\\\ header"),
        ("\\data\\\nngram 1=2\n\n\\1-grams:\n-1\t</s>\n", "fewer lines"),
        ("\\data\\\nngram 1=1\n\n\\1-grams:\n-x\t</s>\n\n\\end\\\n", "non-number"),
        (
            "\\data\\\nngram 1=1\nngram 2=1\n\n\\1-grams:\n-1\t</s>\n\n\\2-grams:\n-1\tq </s>\n\n\\end\\\n",
            "not in the vocabulary",
        ),
    ],
)
def test_corrupt_arpa_is_a_user_error(tmp_path, text: str, message: str) -> None:
    path = tmp_path / "bad.arpa"
    path.write_text(text)
    with pytest.raises(LmlabError, match=message):
        import_arpa(path)


def test_missing_context_is_reported(tmp_path) -> None:
    path = tmp_path / "ctx.arpa"
    path.write_text(
        "\\data\\\nngram 1=3\nngram 2=1\nngram 3=1\n\n\\1-grams:\n-1\t</s>\n-1\ta\t0\n-1\tb\t0\n\n"
        "\\2-grams:\n-1\ta a\t0\n\n\\3-grams:\n-1\ta b a\n\n\\end\\\n"
    )
    with pytest.raises(LmlabError, match="context of 'a b a'"):
        import_arpa(path)
    with pytest.raises(LmlabError, match="not found"):
        import_arpa(tmp_path / "nope.arpa")


HAND = """
\\data\\
ngram 1=4
ngram 2=2

\\1-grams:
-1.0\t</s>
-99\t<s>\t-0.5
-0.5\ta\t-0.25
-2.0\t<unk>

\\2-grams:
-0.2\t<s> a
-0.3\ta </s>

\\end\\
"""


def test_imported_backoff_semantics_by_hand(tmp_path) -> None:
    path = tmp_path / "hand.arpa"
    path.write_text(HAND)
    model, tok = import_arpa(path)
    ids = encode_lines(tok, "a a\n")
    # p(a|<s>) listed; p(a|a) backs off: bow(a) + p(a); p(</s>|a) listed.
    np.testing.assert_allclose(model.score(ids), [-0.2, -0.25 - 0.5, -0.3], atol=1e-6)
    kenlm = pytest.importorskip("kenlm", reason="kenlm Python module not installed")
    assert kenlm.Model(str(path)).score("a a") == pytest.approx(-1.25, abs=1e-5)
