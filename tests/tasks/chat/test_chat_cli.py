"""``lmlab task train chat`` on a bad conversations file: one line naming the line, exit 2."""

from __future__ import annotations

import json
import subprocess
import sys


def test_bad_chat_file_is_one_line_exit_2(tmp_path):
    p = tmp_path / "bad.jsonl"
    good = {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}
    bad = {"messages": [{"role": "user", "content": "a"}, {"role": "robot", "content": "b"}]}
    p.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    r = subprocess.run([sys.executable, "-m", "lmlab", "task", "train", "chat", "--data", str(p),
                        "--base", "builtin:none", "--out", str(tmp_path / "run")],
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 2, r.stderr
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and "bad.jsonl line 2: message 2 has unknown role 'robot'" in err[0]
    assert "Traceback" not in r.stderr and not (tmp_path / "run").exists()
