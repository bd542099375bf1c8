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


def _main_probe(argv: list[str]) -> str:
    return (
        "import contextlib, io, lmlab.cli\n"
        "buf = io.StringIO()\n"
        "with contextlib.redirect_stdout(buf):\n"
        f"    rc = lmlab.cli.main({argv!r})\n"
        "assert rc == 0, rc\n"
        "sys.stderr.write(buf.getvalue())"
    )


def test_info_reads_transformer_and_ngram_runs_without_pytorch(tmp_path: Path) -> None:
    """``lmlab info`` describes float Transformer and n-gram runs from their files (config,
    tokenizer, safetensors header) exactly as from the loaded model, importing no PyTorch."""
    from lmlab.cli import main
    from lmlab.cli.info import describe_from_files, describe_loaded

    corpus = tmp_path / "c.txt"
    corpus.write_text("the cat sat on the mat\nthe dog sat on the log\n" * 50, encoding="utf-8")
    runs = {"ngram": tmp_path / "ngram", "transformer": tmp_path / "tf"}
    assert main(["ngram", "build", "--corpus", str(corpus), "--order", "4", "--tokenizer",
                 "whitespace", "--out", str(runs["ngram"])]) == 0  # fmt: skip
    assert main(["train", "--corpus", str(corpus), "--tokenizer", "char", "--steps", "2",
                 "--context", "16", "--batch-size", "2", "--set", "model.n_layer=1", "--set",
                 "model.d_model=16", "--set", "model.n_head=2", "--set", "model.block=llama",
                 "--out", str(runs["transformer"])]) == 0  # fmt: skip
    for family, run in runs.items():
        cheap = describe_from_files(str(run))
        assert cheap is not None and cheap == describe_loaded(str(run)), family
        assert cheap["parameters"] > 0
        mods = _imported_after(_main_probe(["info", "--run", str(run), "--json"]))
        assert "torch" not in mods and "numba" not in mods, (family, mods)


def test_info_falls_back_to_loading_and_reports_a_broken_run(tmp_path: Path, capsys) -> None:
    from lmlab.cli import main
    from lmlab.cli.info import describe_from_files

    corpus = tmp_path / "c.txt"
    corpus.write_text("the cat sat on the mat\n" * 20, encoding="utf-8")
    run = tmp_path / "ngram"
    assert main(["ngram", "build", "--corpus", str(corpus), "--order", "2", "--tokenizer",
                 "whitespace", "--out", str(run)]) == 0  # fmt: skip
    (run / "model.safetensors").write_bytes(b"\x00" * 5)  # truncated
    assert describe_from_files(str(run)) is None
    capsys.readouterr()
    assert main(["info", "--run", str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "model.safetensors" in err[0], err
