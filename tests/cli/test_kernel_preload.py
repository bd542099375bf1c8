"""The decoding kernel starts loading at command start only for runs it can decode."""

from __future__ import annotations

from pathlib import Path

import pytest

from lmlab.cli._kernel_preload import start_kernel_preload

FLOAT = '[model]\nfamily = "transformer"\nn_layer = 2\n'


def _run(tmp_path: Path, text: str) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.toml").write_text(text, encoding="utf-8")
    return run


def test_float_transformer_runs_preload(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("LMLAB_FAST_DECODE", raising=False)
    assert start_kernel_preload(_run(tmp_path, FLOAT)) is True


@pytest.mark.parametrize(
    "text",
    [
        '[model]\nfamily = "rnn"\n',  # no Transformer kernel
        FLOAT + "[quantization]\nbits = 4\n",  # quantised weights: another kernel
        FLOAT + '[source]\nformat = "gguf"\n',  # decodes from the file's blocks
        "not = [toml",  # unreadable: the engine handles it
    ],
)
def test_other_runs_do_not(tmp_path: Path, text: str, monkeypatch) -> None:
    monkeypatch.delenv("LMLAB_FAST_DECODE", raising=False)
    assert start_kernel_preload(_run(tmp_path, text)) is False


def test_missing_run_pretrained_names_and_switch_off(tmp_path: Path, monkeypatch) -> None:
    assert start_kernel_preload(tmp_path / "absent") is False
    assert start_kernel_preload("builtin:smollm2") is False
    monkeypatch.setenv("LMLAB_FAST_DECODE", "0")
    assert start_kernel_preload(_run(tmp_path, FLOAT)) is False


def test_the_preload_loads_the_kernel_without_importing_pytorch(tmp_path: Path) -> None:
    """It runs beside the command's own import of PyTorch, not after it."""
    import subprocess
    import sys

    code = (
        "import sys, threading\n"
        "from lmlab.cli._kernel_preload import start_kernel_preload\n"
        f"assert start_kernel_preload({str(_run(tmp_path, FLOAT))!r})\n"
        "[t.join() for t in threading.enumerate() if t.name == 'lmlab-kernel-preload']\n"
        "from lmlab.generate._fastdecode_kernels import WARM\n"
        "print('torch' in sys.modules, sorted(WARM))\n"
    )
    env = {k: v for k, v in __import__("os").environ.items() if k != "LMLAB_FAST_DECODE"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=300, check=True)  # fmt: skip
    assert (
        out.stdout.split("\n")[0] == "False [('float32', 'float32', 'float32', 'float32', "
        "'float32', 'float32')]"
    ), out.stdout + out.stderr
