"""Consistency across commands (issue 16, item 7): file modes, argument checks, input
encodings with a useful hint, one flag name per concept, help text everywhere, honest
resume messages; and quiet logs when stderr is not a terminal (item 10)."""

from __future__ import annotations

import argparse
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from lmlab.cli import build_parser, main

TINY = ["--depth", "1", "--steps", "4", "--batch-size", "2", "--context", "16",
        "--eval-every", "2", "--set", "train.eval_batches=1", "--set", "train.sample_tokens=0",
        "--set", "train.threads=1"]  # fmt: skip
LMLAB = [sys.executable, "-m", "lmlab"]


@pytest.fixture
def corpus(tmp_path) -> Path:
    p = tmp_path / "text.txt"
    p.write_text("Shall I compare thee to a summer's day? Thou art more lovely.\n" * 60, "utf-8")
    return p


# -- file modes --------------------------------------------------------------------------


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_every_written_file_gets_the_umask_mode(tmp_path, corpus, umask) -> None:
    old = os.umask(umask)
    try:
        assert main(["train", "--corpus", str(corpus), "--out", str(tmp_path / "run"), *TINY]) == 0
        assert main(["ngram", "build", "--corpus", str(corpus), "--order", "2",
                     "--out", str(tmp_path / "kn")]) == 0  # fmt: skip
        assert main(["ngram", "export-arpa", "--run", str(tmp_path / "kn")]) == 0
        assert main(["embed", "train", "--corpus", str(corpus), "--min-count", "1", "--size",
                     "8", "--epochs", "1", "--workers", "1", "--out", str(tmp_path / "v.txt")]) == 0  # fmt: skip
    finally:
        os.umask(old)
    files = [p for p in tmp_path.rglob("*") if p.is_file() and p != corpus]
    names = {p.name for p in files}
    assert {"model.safetensors", "config.toml", "tokenizer.json", "model.arpa", "v.txt"} <= names
    modes = {str(p.relative_to(tmp_path)): oct(stat.S_IMODE(p.stat().st_mode)) for p in files}
    assert set(modes.values()) == {oct(0o666 & ~umask)}, modes


# -- argument checks ---------------------------------------------------------------------


@pytest.mark.parametrize("bad", [["--depth", "0"], ["--depth", "-2"], ["--set", "model.depth=0"]])
def test_depth_below_one_is_refused(tmp_path, corpus, capsys, bad) -> None:
    args = ["train", "--corpus", str(corpus), "--out", str(tmp_path / "r"), "--steps", "1", *bad]
    assert main(args) == 2
    assert "depth must be a whole number of layers >= 1" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


# -- input that is not UTF-8 -------------------------------------------------------------

ZH = "八戒道：“我说你也！”天地玄黄，宇宙洪荒。日月盈昃，辰宿列张。\n今天天气很好，我们去公园散步吧。\n"
ZH_TW = "天地玄黃，宇宙洪荒。日月盈昃，辰宿列張。\n今天天氣很好，我們去公園散步吧。\n"
FR = "Le café était très chaud, et l'élève a répondu: « déjà vu »! Où est la gare?\n"


@pytest.mark.parametrize(
    "data,hint",
    [
        ((ZH * 30).encode("gb18030"), "GB18030"),
        ((ZH_TW * 30).encode("big5"), "BIG5"),
        ((FR * 30).encode("cp1252"), "WINDOWS-1252"),
        ((ZH * 30).encode("utf-16"), "UTF-16"),
        ((ZH * 30).encode("utf-16-le"), "UTF-16LE"),  # no BOM
    ],
)
def test_not_utf8_names_the_likely_encoding(tmp_path, capsys, data, hint) -> None:
    f = tmp_path / "legacy.txt"
    f.write_bytes(data)
    assert main(["train", "--corpus", str(f), "--out", str(tmp_path / "r"), "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert "is not UTF-8 text" in err and f"it looks like {hint}:" in err
    assert f"iconv -f {hint} -t UTF-8" in err and "Traceback" not in err


def test_embed_train_rejects_a_binary_file_like_every_command(tmp_path, capsys) -> None:
    binary = Path(sys.executable).resolve()  # a real executable, as /bin/ls in the report
    out = tmp_path / "v.txt"
    assert main(["embed", "train", "--corpus", str(binary), "--min-count", "1",
                 "--out", str(out)]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "is not UTF-8 text" in err and "binary file, not text" in err
    assert not out.exists()
    gbk = tmp_path / "gbk.txt"
    gbk.write_bytes((ZH * 30).encode("gb18030"))
    assert main(["embed", "train", "--corpus", str(gbk), "--out", str(out)]) == 2
    assert "GB18030" in capsys.readouterr().err and not out.exists()


# -- flags and help ----------------------------------------------------------------------


def _walk(parser: argparse.ArgumentParser, path: list[str]):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                yield [*path, name], None, helps.get(name)
                yield from _walk(sub, [*path, name])
        elif not isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            yield path, action, action.help


# Flags of ``lmlab serve`` (cli/serve.py, owned by the server's helper in this session);
# remove each from here once it has its help text, so the test then guards it too.
NOT_YET = {"lmlab serve --device", "lmlab serve --log-level"}


def test_every_command_and_flag_has_help_text() -> None:
    missing = [
        name
        for path, a, text in _walk(build_parser(), ["lmlab"])
        if not text
        and (name := " ".join(path) + (f" {'/'.join(a.option_strings) or a.dest}" if a else ""))
        not in NOT_YET
    ]
    assert not missing, f"no help text: {missing}"


def test_help_names_only_actions_that_exist(capsys) -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    ngram = sub.choices["ngram"]
    actions = next(a for a in ngram._actions if isinstance(a, argparse._SubParsersAction))
    helps = {a.dest: a.help for a in sub._choices_actions}
    assert "score" not in helps["ngram"] and "score" not in actions.choices
    verbs = {"build", "evaluate", "export", "import"}
    assert all(v in helps["ngram"] for v in verbs)
    assert {"build", "eval", "export-arpa", "import-arpa"} == set(actions.choices)


def test_one_flag_name_per_concept_with_old_names_kept(tmp_path, corpus, capsys) -> None:
    run = tmp_path / "kn"
    assert main(["ngram", "build", "--corpus", str(corpus), "--order", "2", "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["ngram", "eval", "--run", str(run), "--file", str(corpus)]) == 0  # as lmlab eval
    new = capsys.readouterr()
    assert main(["ngram", "eval", "--run", str(run), "--text", str(corpus)]) == 0  # deprecated
    old = capsys.readouterr()
    assert "--text is deprecated; use --file" in old.err
    assert old.out.split("(scored in")[0] == new.out.split("(scored in")[0]
    assert main(["ngram", "eval", "--run", str(run), "--text", "a", "--file", "b"]) == 2
    vec = tmp_path / "v.txt"
    assert main(["embed", "train", str(corpus), "--min-count", "1", "--size", "8", "--epochs",
                 "1", "--workers", "1", "--out", str(vec)]) == 0  # fmt: skip
    assert "positional CORPUS is deprecated; use --corpus" in capsys.readouterr().err
    assert main(["embed", "eval", "--vectors", str(vec), "--analogy", "--similarity"]) == 0
    assert main(["embed", "eval", str(vec), "--analogy", "--similarity"]) == 0
    assert "positional VECTORS is deprecated; use --vectors" in capsys.readouterr().err
    assert main(["embed", "eval"]) == 2  # neither form: a one-line error
    assert "lmlab embed eval --vectors FILE" in capsys.readouterr().err


# -- resume ------------------------------------------------------------------------------


def test_resume_says_where_it_starts_and_a_finished_run_is_left_alone(tmp_path, corpus, capsys):
    run = tmp_path / "r"
    args = ["train", "--corpus", str(corpus), "--out", str(run), *TINY]
    assert main(args) == 0
    assert "done: 4 steps in" in capsys.readouterr().out
    metrics = (run / "metrics.jsonl").read_text()
    card = (run / "card.md").read_text()
    assert main(["train", "--out", str(run), "--resume"]) == 0
    out = capsys.readouterr().out
    assert "is already complete (step 4 of 4); nothing to do" in out and "done:" not in out
    assert (run / "metrics.jsonl").read_text() == metrics  # no duplicate final record
    assert (run / "card.md").read_text() == card
    assert main(["train", "--out", str(run), "--resume", "--steps", "6"]) == 0
    out = capsys.readouterr().out
    assert f"resuming {run} from step 4 of 6" in out
    assert "done: 2 steps (steps 5-6) in" in out
    steps = [json.loads(ln)["step"] for ln in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps.count(6) == 2 and steps.count(4) == 2  # (a loss and a validation record each)


# -- quiet logs --------------------------------------------------------------------------


def test_progress_in_a_log_is_a_few_plain_lines(tmp_path, corpus) -> None:
    args = [*LMLAB, "train", "--corpus", str(corpus), "--out", str(tmp_path / "r"), *TINY,
            "--steps", "300", "--eval-every", "100"]  # fmt: skip
    r = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "\r" not in r.stderr  # no redraws in a log (tqdm wrote ~300 of them)
    lines = r.stderr.splitlines()
    assert len(lines) <= 3, r.stderr  # seconds of work: at most a line per 10 s
