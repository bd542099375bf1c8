"""The tutorial harness itself: markers, fast mode, and which commands are lmlab's."""

from __future__ import annotations

import pytest
from tutorials import ROOT, blocks, commands, fast_mode, lmlab_argv, plan

BLOCK = """lmlab train --corpus my_notes/ --steps 3000 --depth 6 \\
    --out runs/x   # a comment --steps 9
lmlab generate --run runs/x --max-new-tokens 200
lmlab serve --run runs/x
lmlab lab sweep add --seeds 0 --db a.sqlite && lmlab lab report --db a.sqlite
"""


def test_fast_mode_replaces_appends_and_leaves_out() -> None:
    p = plan(
        'run except=serve --steps 20 --depth 1 train+="--set train.eval_batches=2" '
        'lab.sweep+="--steps 5"'
    )
    code = fast_mode(BLOCK, p)
    assert "--steps 20 --depth 1" in code and "--steps 3000" not in code
    assert "--out runs/x --set train.eval_batches=2   # a comment --steps 9" in code
    assert "lmlab serve" not in code and "lmlab generate" in code
    assert "--db a.sqlite --steps 5 && lmlab lab report --db a.sqlite\n" in code


def test_a_marker_that_no_longer_matches_its_block_is_an_error() -> None:
    with pytest.raises(ValueError, match="never sets --epochs"):
        fast_mode(BLOCK, plan("run --epochs 1"))
    with pytest.raises(ValueError, match="no lmlab embed train"):
        fast_mode(BLOCK, plan('run embed.train+="--epochs 1"'))
    with pytest.raises(ValueError, match="must say why"):
        plan("skip")
    with pytest.raises(ValueError, match="unknown marker"):
        plan("walk")


def test_commands_split_shell_text_into_lmlab_argv() -> None:
    cmds = commands(
        BLOCK
        + "cat > a.toml <<'T'\nlmlab not a command\nT\n"
        + "torchrun --nproc_per_node 2 -m lmlab train --out r\n"
        + 'sqlite3 db "select 1\n  from t"\n'
    )
    argvs = [lmlab_argv(c) for c in cmds]
    lm = [a for a in argvs if a is not None]
    assert lm[0][:3] == ["train", "--corpus", "my_notes/"] and "--out" in lm[0]
    assert "# a comment" not in " ".join(lm[0])
    assert ["lab", "report", "--db", "a.sqlite"] in lm
    assert ["train", "--out", "r"] in lm
    assert not any(a and a[0] == "not" for a in lm)  # here-document bodies are not commands
    assert ["sqlite3", "db", "select 1\n  from t"] in cmds


def test_markers_are_found_on_the_line_before_a_block() -> None:
    found = blocks(ROOT / "docs" / "getting-started.md")
    runs = [b for b in found if b.marker and b.marker.startswith("run")]
    assert runs and all(b.lang == "bash" for b in runs)
    assert any("lmlab train" in b.code for b in runs)
