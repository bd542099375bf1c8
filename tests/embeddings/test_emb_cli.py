"""``lmlab embed``: train, eval, neighbors, analogy, plot through the real CLI entry point."""

from __future__ import annotations

from _shared import shared_path

from lmlab.cli import main


def test_embed_train_eval_query_plot(tmp_path, capsys):
    corpus = shared_path("timemachine", "timemachine.txt")
    out = tmp_path / "tm.bin"
    rc = main(["embed", "train", "--corpus", str(corpus), "--algo", "skipgram", "--out", str(out),
               "--size", "32", "--epochs", "3", "--min-count", "3", "--workers", "1"])  # fmt: skip
    assert rc == 0 and out.exists()
    text = capsys.readouterr().out
    assert "words/s" in text and "loss per epoch" in text and str(out) in text

    analogy = tmp_path / "a.txt"
    analogy.write_text(": family\nman woman he she\nman woman time xyzzy\n", encoding="utf-8")
    sim = tmp_path / "s.txt"
    sim.write_text("day night 8\nday said 1\nhand hands 9\nman woman 7\n", encoding="utf-8")
    rc = main(
        [
            "embed",
            "eval",
            "--vectors",
            str(out),
            "--analogy",
            str(analogy),
            "--similarity",
            str(sim),
            "--sections",
        ]
    )
    text = capsys.readouterr().out
    assert rc == 0 and "coverage 50.0%" in text and "Spearman" in text and "family" in text

    assert main(["embed", "neighbors", "time", "--vectors", str(out), "-n", "3"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 3
    assert (
        main(["embed", "analogy", "man", "he", "woman", "--vectors", str(out), "--method", "mul"])
        == 0
    )
    assert "man : he :: woman : ?" in capsys.readouterr().out
    png = tmp_path / "w.png"
    assert (
        main(
            [
                "embed",
                "plot",
                "time",
                "machine",
                "day",
                "night",
                "--vectors",
                str(out),
                "--out",
                str(png),
            ]
        )
        == 0
    )
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_embed_errors_are_one_line(tmp_path, capsys):
    corpus = tmp_path / "c.txt"
    corpus.write_text("a b c\n", encoding="utf-8")
    assert main(["embed", "train", "--corpus", str(corpus), "--out", str(tmp_path / "v.txt")]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("lmlab: error:")]
    assert len(errors) == 1 and "vocabulary is empty" in errors[0] and "Traceback" not in err
    bad = tmp_path / "bad.txt"
    bad.write_text("2 3\nthe 1 2\n", encoding="utf-8")
    assert main(["embed", "neighbors", "the", "--vectors", str(bad)]) == 2
    assert "corrupt" in capsys.readouterr().err
