"""Start-up cost: the parser and the commands that run no network import no heavy library.

``lmlab --help`` builds every sub-command's parser; ``lmlab ngram build`` counts n-grams with
numpy. Neither needs PyTorch (about a second to import), numba or matplotlib.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HEAVY = ("torch", "numpy", "numba", "matplotlib", "scipy", "jieba", "tokenizers")


def _imported_after(code: str) -> dict:
    probe = (
        f"import sys, json\n{code}\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_building_the_parser_imports_no_heavy_library() -> None:
    assert _imported_after("import lmlab.cli; lmlab.cli.build_parser()") == []


def test_ngram_build_runs_without_pytorch(tmp_path: Path) -> None:
    corpus = tmp_path / "c.txt"
    corpus.write_text("the cat sat on the mat\nthe dog sat on the log\n" * 50, encoding="utf-8")
    out = tmp_path / "run"
    code = (
        "import contextlib, io, lmlab.cli\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    rc = lmlab.cli.main(['ngram', 'build', '--corpus', {str(corpus)!r}, '--order', '3',"
        f" '--tokenizer', 'whitespace', '--out', {str(out)!r}])\n"
        "assert rc == 0"
    )
    mods = _imported_after(code)
    assert "torch" not in mods and "numba" not in mods and "matplotlib" not in mods
    assert (out / "model.safetensors").is_file()
    # the saved run is an ordinary n-gram run: it loads and scores with PyTorch
    from lmlab.models.ngram_io import load_run

    model, tok, _ = load_run(out)
    assert model.config.order == 3 and tok.vocab_size > 5
