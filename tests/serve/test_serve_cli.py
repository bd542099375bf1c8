"""``lmlab serve`` and ``lmlab chat`` as users run them, and chat templates."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import httpx
import pytest

from lmlab.errors import LmlabError
from lmlab.serve.chat_template import DEFAULT, ChatTemplate, fit_messages, load_chat_template

LMLAB = [sys.executable, "-m", "lmlab"]
ENV = {**os.environ, "LMLAB_API_KEY": "", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}


def test_default_template_renders_roles_and_stops() -> None:
    msgs = [{"role": "system", "content": "Be {brief}."}, {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"}, {"role": "developer", "content": "x"}]  # fmt: skip
    text = DEFAULT.render(msgs)
    assert text == "System: Be {brief}.\nUser: Hi\nAssistant: Hello\nSystem: x\nAssistant:"
    assert "\nUser:" in DEFAULT.stop
    with pytest.raises(LmlabError, match="role"):
        DEFAULT.render([{"role": "tool", "content": "x"}])
    with pytest.raises(LmlabError, match="content"):
        ChatTemplate(user="no placeholder")


def test_template_from_run_files(tmp_path) -> None:
    assert load_chat_template(tmp_path) is DEFAULT
    t = load_chat_template(tmp_path, {"chat": {"user": "<u>{content}</u>", "stop": "<u>"}})
    assert t.render([{"role": "user", "content": "a"}]) == "<u>a</u>Assistant:" and t.stop == [
        "<u>"
    ]
    (tmp_path / "chat_template.json").write_text(json.dumps({"default_system": "Terse."}))
    t = load_chat_template(tmp_path, {"chat": {"user": "ignored {content}"}})
    assert t.render([{"role": "user", "content": "a"}]).startswith("System: Terse.\nUser: a")
    (tmp_path / "chat_template.json").write_text(json.dumps({"colour": "red"}))
    with pytest.raises(LmlabError, match="unknown chat template keys"):
        load_chat_template(tmp_path)
    (tmp_path / "chat_template.json").write_text("{broken")
    with pytest.raises(LmlabError, match="not valid JSON"):
        load_chat_template(tmp_path)


def test_fit_messages_drops_oldest_turns_but_keeps_the_system_message() -> None:
    msgs = [{"role": "system", "content": "S"}] + [
        {"role": r, "content": str(i) * 10} for i, r in enumerate(["user", "assistant"] * 3)
    ]
    prompt, dropped = fit_messages(DEFAULT, msgs, len, 60)
    assert len(prompt) <= 60 and prompt.startswith("System: S\n") and dropped >= 3
    assert "5555555555" in prompt and "0000000000" not in prompt
    with pytest.raises(LmlabError, match="shorter message"):
        fit_messages(DEFAULT, msgs, len, 10)


def test_serve_refuses_a_missing_or_corrupt_run(tmp_path, serve_runs, capsys) -> None:
    from lmlab.cli import main

    assert main(["serve", "--run", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not found" in err
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("config.toml", "tokenizer.json"):
        (broken / name).write_bytes((serve_runs["tiny"] / name).read_bytes())
    (broken / "model.safetensors").write_bytes(b"\x00garbage")
    assert main(["serve", "--run", str(broken)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "corrupt" in err
    (tmp_path / "notes.md").write_text("hello")
    assert main(["serve", "--run", str(tmp_path / "notes.md")]) == 2
    assert "neither a run directory" in capsys.readouterr().err
    assert main(["serve", "--run", str(serve_runs["tiny"]), "--prefill-chunk", "-1"]) == 2
    assert "--prefill-chunk must be 0 or more" in capsys.readouterr().err


def test_serve_prints_where_it_listens_and_answers(serve_runs, classifier_run) -> None:
    cmd = [*LMLAB, "serve", "--run", f"tiny={serve_runs['tiny']}", "--run", str(serve_runs["vec"]),
           "--run", f"sent={classifier_run}", "--max-task-chars", "100",
           "--port", "0", "--api-key", "s3cret", "--threads", "1"]  # fmt: skip
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        lines = []
        until = time.monotonic() + 60
        while time.monotonic() < until:
            line = proc.stderr.readline()
            lines.append(line)
            if "listening on" in line or not line:
                break
        listen = lines[-1]
        assert "listening on http://127.0.0.1:" in listen, lines
        url = listen.split("listening on ")[1].split()[0]
        assert any("'words'" in line and "word vectors" in line for line in lines)
        assert any("'sent'" in line and "classify task run" in line and "/v1/classify" in line
                   for line in lines)  # fmt: skip
        health = httpx.get(url + "/health", timeout=10).json()
        assert health["models"] == ["tiny", "words", "sent"]
        assert httpx.get(url + "/v1/models", timeout=10).status_code == 401
        r = httpx.post(url + "/v1/completions", headers={"Authorization": "Bearer s3cret"},
                       json={"model": "tiny", "prompt": "a", "max_tokens": 3}, timeout=30)  # fmt: skip
        assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 3
        auth = {"Authorization": "Bearer s3cret"}
        r = httpx.post(
            url + "/v1/classify", headers=auth, json={"input": "a fine film"}, timeout=30
        )
        assert r.status_code == 200 and r.json()["model"] == "sent"
        r = httpx.post(url + "/v1/classify", headers=auth, json={"input": "x" * 101}, timeout=30)
        assert r.status_code == 400 and "at most 100" in r.json()["error"]["message"]
    finally:
        proc.terminate()
        proc.wait(20)


def test_chat_in_the_terminal(serve_runs) -> None:
    script = "\n".join(["Hello there", "/params temperature=0 max_new_tokens=8", "How are you",
                        "/system Be brief.", "/history", "/params nonsense", "/reset", "/history",
                        "Again", "/quit", "never read"]) + "\n"  # fmt: skip
    r = subprocess.run([*LMLAB, "chat", "--run", str(serve_runs["lstm"]), "--max-new-tokens", "6",
                        "--seed", "1"], input=script, capture_output=True, text=True, env=ENV,
                       timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    assert "temperature=0.0" in out[1] and "max_new_tokens=8" in out[1]
    assert "(system message: 'Be brief.')" in out
    hist = out.index("(system message: 'Be brief.')") + 1
    assert out[hist] == "user: Hello there" and out[hist + 2] == "user: How are you"
    assert any(line.startswith("(error: cannot set 'nonsense'") for line in out)
    assert "(conversation cleared)" in out
    # after /reset, /history prints nothing: the next line is the reply to "Again"
    cleared = out.index("(conversation cleared)")
    assert not out[cleared + 1].startswith("user:")
    assert "lmlab chat with lstm" in r.stderr
