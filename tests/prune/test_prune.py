"""Structured MLP pruning: slicing is exact, the Taylor criterion finds channels that do
nothing, it beats random choice on a real trained run, and ``lmlab prune`` end to end
(the new run opens everywhere; bad input is one line, exit 2, nothing overwritten)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from lmlab.cli import main
from lmlab.errors import LmlabError
from lmlab.evaluate.perplexity import stream_loss
from lmlab.models import Transformer, TransformerConfig
from lmlab.prune import choose_channels, mlp_importance, prune_mlp
from lmlab.prune.channels import kept_width
from lmlab.run import load_run

TINY = ["--steps", "150", "--batch-size", "8", "--context", "64", "--eval-every", "150",
        "--set", "train.eval_batches=2", "--set", "train.sample_tokens=20"]  # fmt: skip


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A float run (llama block, width 128, 2 layers, characters of the sonnets)."""
    out = tmp_path_factory.mktemp("prune") / "fp32"
    assert main(["train", "--out", str(out), "--corpus", "builtin:shakespeare-sonnets", *TINY,
                 "--depth", "2", "--block", "llama"]) == 0  # fmt: skip
    return out


def _sonnets() -> Path:
    from lmlab.data.builtin import builtin_files

    return builtin_files("shakespeare-sonnets")[0]


@pytest.mark.parametrize("block", ["gpt2", "llama"])
def test_removing_dead_channels_changes_nothing(block: str) -> None:
    """Channels whose output weights are zero contribute nothing: the Taylor and magnitude
    criteria score them 0 and pruning exactly them leaves every logit as it was."""
    torch.manual_seed(0)
    cfg = TransformerConfig(vocab_size=50, context_length=32, n_layer=2, n_head=2, d_model=32,
                            d_ff=64, block=block)  # fmt: skip
    model = Transformer(cfg).eval()
    dead = [torch.randperm(64)[:16].sort().values for _ in range(2)]
    with torch.no_grad():
        for blk, idx in zip(model.blocks, dead, strict=True):
            blk.mlp.proj.weight[:, idx] = 0.0
    ids = torch.randint(0, 50, (3, 24))
    scores = mlp_importance(model, ids.flatten().numpy(), "taylor", window=24)
    for s, idx in zip(scores, dead, strict=True):
        assert torch.all(s[idx] == 0) and (s > 0).sum() == 48
    assert all(torch.all(s[i] == 0) for s, i in
               zip(mlp_importance(model, criterion="magnitude"), dead, strict=True))  # fmt: skip
    act = mlp_importance(model, ids.flatten().numpy(), "activation", window=24)
    assert all(torch.all(s[i] == 0) and (s > 0).sum() == 48 for s, i in zip(act, dead, strict=True))
    keep = choose_channels(scores, 48)
    assert all(not set(k.tolist()) & set(d.tolist()) for k, d in zip(keep, dead, strict=True))
    small = prune_mlp(model, keep)
    assert small.config.d_ff == 48 and model.config.d_ff == 64  # the original is untouched
    assert small.num_params() == model.num_params() - 2 * 16 * 32 * (
        3 if block == "llama" else 2
    ) - (2 * 16 if block == "gpt2" else 0)  # fc/gate+up rows, proj columns (and gpt2's fc biases)
    with torch.no_grad():
        torch.testing.assert_close(small(ids), model(ids), rtol=1e-5, atol=1e-5)


def test_kept_width_rounds_to_the_multiple_and_refuses_nothing_to_do() -> None:
    assert kept_width(1536, 0.25) == 1152 and kept_width(1536, 0.5, 64) == 768
    assert kept_width(100, 0.99, 32) == 32  # at least one multiple
    for bad in (0.0, 1.0, -0.1):
        with pytest.raises(LmlabError, match="between 0 and 1"):
            kept_width(1536, bad)
    with pytest.raises(LmlabError, match="keeps all"):
        kept_width(64, 0.1, 32)


def test_data_driven_criteria_beat_random_on_a_trained_run(trained: Path) -> None:
    """Half of every MLP removed from a trained model: the channels chosen by Taylor
    importance or by activations on the sonnets lose less held-out perplexity than seeded
    random choices."""
    run = load_run(trained)
    text = run.tokenizer.encode(_sonnets().read_text(encoding="utf-8"))
    calib, held = np.asarray(text[:6000]), np.asarray(text[-3000:])
    base = stream_loss(run.model, held, window=64)[0]
    keep = kept_width(run.model.config.ff_dim, 0.5, 8)
    taylor = prune_mlp(
        run.model, choose_channels(mlp_importance(run.model, calib, window=64), keep)
    )
    t_loss = stream_loss(taylor, held, window=64)[0]
    act = mlp_importance(run.model, calib, "activation", window=64)
    a_loss = stream_loss(prune_mlp(run.model, choose_channels(act, keep)), held, window=64)[0]
    r_losses = []
    for seed in range(3):
        scores = mlp_importance(run.model, criterion="random", seed=seed)
        r_losses.append(stream_loss(prune_mlp(run.model, choose_channels(scores, keep)), held,
                                    window=64)[0])  # fmt: skip
    assert base < t_loss < min(r_losses), (base, t_loss, r_losses)
    assert base < a_loss < min(r_losses), (base, a_loss, r_losses)


def test_prune_command_writes_a_run_every_command_opens(trained: Path, tmp_path: Path, capsys):
    out = tmp_path / "pruned"
    text = str(_sonnets())
    assert main(["prune", "--run", str(trained), "--mlp", "0.25", "--text", text, "--tokens",
                 "2000", "--multiple", "8", "--out", str(out)]) == 0  # fmt: skip
    from lmlab.config import load_toml

    cfg = load_toml(out / "config.toml")
    before = load_toml(trained / "config.toml")["model"]
    d_ff = Transformer(TransformerConfig(**{k: v for k, v in before.items() if k != "family"}))
    assert cfg["model"]["d_ff"] == 8 * round(d_ff.config.ff_dim * 0.75 / 8)
    assert cfg["pruning"]["criterion"] == "taylor" and cfg["pruning"]["calibration_tokens"] == 2000
    assert (out / "data" / "meta.json").is_file() and (out / "card.md").is_file()
    run = load_run(out)
    assert run.model.num_params() == cfg["pruning"]["parameters_after"]
    assert run.model.num_params() < cfg["pruning"]["parameters_before"]
    capsys.readouterr()
    assert main(["generate", "--run", str(out), "--prompt", "Shall I", "--max-new-tokens", "8",
                 "--seed", "0"]) == 0  # fmt: skip
    assert capsys.readouterr().out.strip()
    assert main(["eval", "--run", str(out)]) == 0
    q = tmp_path / "pruned-int4"
    assert main(["quantize", "--run", str(out), "--to", "int4", "--out", str(q)]) == 0
    assert main(["prune", "--run", str(out), "--mlp", "0.5", "--criterion", "magnitude",
                 "--multiple", "8", "--out", str(tmp_path / "twice")]) == 0  # fmt: skip
    capsys.readouterr()
    # bad input: one line, exit 2, nothing written or overwritten
    stamp = (out / "model.safetensors").stat().st_mtime_ns
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xfe\x00 not text")
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n", encoding="utf-8")
    lstm = tmp_path / "lstm"
    assert main(["train", "--out", str(lstm), "--corpus", "builtin:shakespeare-sonnets",
                 "--model", "rnn", "--steps", "2", "--batch-size", "2", "--context", "16",
                 "--eval-every", "2", "--set", "train.eval_batches=1",
                 "--set", "train.sample_tokens=0"]) == 0  # fmt: skip
    cases = [
        (["--run", str(trained), "--mlp", "0.25", "--text", text, "--out", str(out)], "already exists"),
        (["--run", str(q), "--mlp", "0.25", "--text", text, "--out", str(tmp_path / "a")], "quantised"),
        (["--run", str(trained), "--mlp", "1.5", "--text", text, "--out", str(tmp_path / "b")], "between 0 and 1"),
        (["--run", str(trained), "--mlp", "0.25", "--out", str(tmp_path / "c")], "--text"),
        (["--run", str(trained), "--mlp", "0.25", "--text", str(tmp_path / "no.txt"), "--out", str(tmp_path / "d")], "not found"),
        (["--run", str(trained), "--mlp", "0.25", "--text", str(bad), "--out", str(tmp_path / "e")], "not UTF-8"),
        (["--run", str(trained), "--mlp", "0.25", "--text", str(empty), "--out", str(tmp_path / "f")], "empty"),
        (["--run", str(lstm), "--mlp", "0.25", "--criterion", "magnitude", "--out", str(tmp_path / "g")], "Transformer"),
    ]  # fmt: skip
    for args, words in cases:
        capsys.readouterr()
        assert main(["prune", *args]) == 2, words
        err = capsys.readouterr().err.strip()
        assert words in err and "\n" not in err and "Traceback" not in err, err
    assert (out / "model.safetensors").stat().st_mtime_ns == stamp
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no temp folders left
    assert not any((tmp_path / x).exists() for x in "abcdefg")


def test_pruned_model_keeps_its_config_otherwise() -> None:
    torch.manual_seed(0)
    cfg = TransformerConfig(vocab_size=40, context_length=16, n_layer=1, n_head=2, d_model=16,
                            d_ff=32, block="llama", n_kv_head=1)  # fmt: skip
    small = prune_mlp(Transformer(cfg), [torch.arange(0, 32, 2)])
    assert dataclasses.replace(small.config, d_ff=32) == cfg
