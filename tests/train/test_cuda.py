"""The same code on a CUDA GPU: bf16 and compiled training, exact resume, KV-cache
generation, and NCCL data parallelism (on two or more GPUs: one process per GPU). Skipped where there is no GPU (CI); run them on one
with ``bash benchmarks/gpu_check.sh``."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from test_precision import config as tiny_config  # noqa: E402  (tests/train is on sys.path)

from lmlab.errors import LmlabError
from lmlab.models import RNNConfig, RNNLanguageModel, Transformer, TransformerConfig
from lmlab.train import distributed as ddp
from lmlab.train.runner import run_training

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def config(corpus, **train) -> dict:
    return tiny_config(corpus, device="cuda", **train)


def losses(run) -> dict[int, float]:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


def test_bf16_compiled_training_on_gpu_learns_like_fp32(tmp_path, tiny_corpus) -> None:
    model, ref = run_training(config(tiny_corpus), tmp_path / "fp32", quiet=True)
    assert next(model.parameters()).device.type == "cuda"
    _, res = run_training(
        config(tiny_corpus, precision="bf16", compile=True), tmp_path / "bf16", quiet=True
    )
    assert ref.final["val_loss"] < 2.7  # past the unigram plateau (about 3.05 nats)
    assert abs(res.final["val_loss"] - ref.final["val_loss"]) < 0.05


def test_resume_on_gpu_continues_the_same_losses(tmp_path, tiny_corpus) -> None:
    cfg = config(tiny_corpus, steps=40, checkpoint_every=10)
    cfg["model"]["dropout"] = 0.1  # the GPU's generator must be restored too
    run_training(cfg, tmp_path / "a", quiet=True)
    _, res = run_training(cfg, tmp_path / "b", quiet=True, should_stop=lambda s: s == 20)
    assert res.interrupted
    run_training({}, tmp_path / "b", resume=True, quiet=True)
    a, b = losses(tmp_path / "a"), losses(tmp_path / "b")
    for step in (30, 40):
        assert a[step] == pytest.approx(b[step], rel=1e-4), step


def test_cached_decoding_matches_full_forward_on_gpu() -> None:
    torch.manual_seed(0)
    for block in ("gpt2", "llama"):
        m = (
            Transformer(
                TransformerConfig(
                    vocab_size=50,
                    context_length=32,
                    n_layer=2,
                    n_head=4,
                    d_model=64,
                    block=block,
                    n_kv_head=2 if block == "llama" else None,
                )
            )
            .cuda()
            .eval()
        )
        ids = torch.randint(0, 50, (3, 24), device="cuda")
        full = m(ids)
        state = m.new_state(3, torch.device("cuda"))
        parts = [m(ids[:, :5], state)] + [m(ids[:, i : i + 1], state) for i in range(5, 24)]
        assert torch.allclose(torch.cat(parts, 1), full, atol=1e-4), block
    rnn = RNNLanguageModel(RNNConfig(vocab_size=50, embed_dim=16, hidden_size=32)).cuda().eval()
    ids = torch.randint(0, 50, (2, 20), device="cuda")
    state = rnn.new_state(2, torch.device("cuda"))
    steps = torch.cat([rnn(ids[:, i : i + 1], state) for i in range(20)], 1)
    assert torch.allclose(steps, rnn(ids), atol=1e-4)


def test_generate_and_eval_cli_on_gpu(tmp_path, tiny_corpus) -> None:
    run_training(config(tiny_corpus, steps=100), tmp_path / "r", quiet=True)
    run = str(tmp_path / "r")
    for cmd in (
        ["generate", "--run", run, "--prompt", "The ", "--max-new-tokens", "40", "--seed", "1"],
        ["eval", "--run", run, "--file", str(tiny_corpus)],
    ):
        out = subprocess.run(
            [sys.executable, "-m", "lmlab", *cmd, "--device", "cuda"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert out.returncode == 0, out.stderr[-2000:]
        assert out.stdout.strip()


def test_nccl_data_parallel_matches_one_process(tmp_path, tiny_corpus) -> None:
    n = torch.cuda.device_count()
    if n < 2:  # torchrun's single process would form no process group: nothing of NCCL's runs
        pytest.skip("NCCL data parallelism needs two GPUs (one process per GPU)")
    common = [
        "-m", "lmlab", "train", "--corpus", str(tiny_corpus), "--steps", "12",
        "--batch-size", str(8 * n), "--context", "32", "--device", "cuda",
        "--set", "model.depth=1", "--set", "train.log_every=2",
        "--set", "train.sample_tokens=0", "--set", "train.eval_batches=2",
    ]  # fmt: skip
    one = subprocess.run(
        [sys.executable, *common, "--out", str(tmp_path / "one")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert one.returncode == 0, one.stderr[-2000:]
    many = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone",
         f"--nproc_per_node={n}", *common, "--out", str(tmp_path / "many")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert many.returncode == 0, many.stderr[-2000:]
    a, b = losses(tmp_path / "one"), losses(tmp_path / "many")
    assert sorted(a) == sorted(b)
    assert list(a.values()) == pytest.approx(list(b.values()), rel=1e-3)


def test_more_processes_than_gpus_is_a_clear_error() -> None:
    n = torch.cuda.device_count()
    with pytest.raises(LmlabError, match="--nproc_per_node"):
        ddp.pick_device("auto", ddp.DistInfo(rank=n, world_size=n + 1, local_rank=n))
