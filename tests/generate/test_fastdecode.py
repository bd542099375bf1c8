from __future__ import annotations

import numpy as np
import pytest
import torch

from lmlab.errors import LmlabError
from lmlab.generate import SamplingParams, generate, generate_stream
from lmlab.generate.fastdecode import MAX_ROWS, fast_decoder, kernel_ready
from lmlab.models import RNNConfig, RNNLanguageModel, Transformer, TransformerConfig
from lmlab.tokenize import CharTokenizer

VOCAB, CTX = 40, 24

CONFIGS = {
    "gpt2": {},
    "gpt2-tanh-nobias-untied": {"gelu_approximate": "tanh", "bias": False, "tie_embeddings": False},
    "gpt2-attention-only": {"mlp": False},
    "llama-gqa": {"block": "llama", "n_kv_head": 2},
    "llama-mqa-untied-attention-only": {
        "block": "llama",
        "n_kv_head": 1,
        "tie_embeddings": False,
        "mlp": False,
    },
    "llama-bias-mha": {"block": "llama", "bias": True},
}


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny models: PyTorch's thread pool only adds stalls on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_model(seed: int = 0, **kw) -> Transformer:
    """A tiny Transformer with weights perturbed away from init (biases and norm gains
    non-trivial, so a missing term in the fast step would show)."""
    torch.manual_seed(seed)
    cfg = TransformerConfig(
        vocab_size=VOCAB, context_length=CTX, n_layer=2, n_head=4, d_model=32, **kw
    )
    m = Transformer(cfg).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    return m


@pytest.mark.parametrize("name", list(CONFIGS))
def test_fast_step_matches_torch_forward_with_kv_cache(name: str) -> None:
    m = make_model(**CONFIGS[name])
    fast = fast_decoder(m)
    assert fast is not None
    ids = torch.randint(0, VOCAB, (3, 16), generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        ref_state, state = m.new_state(3), fast.new_state(3)
        m(ids[:, :5], ref_state)
        m(ids[:, :5], state)  # the torch prefill writes into the shared cache
        for t in range(5, 16):
            ref = m(ids[:, t : t + 1], ref_state)[:, -1]
            got = fast.step(ids[:, t], state)
            assert got.shape == ref.shape
            assert (got - ref).abs().max().item() < 1e-4, (name, t)
            assert state.pos == ref_state.pos == t + 1
        for a, b in zip(ref_state.k + ref_state.v, state.k + state.v, strict=True):
            assert torch.allclose(a, b, atol=1e-5)
        # and the torch forward continues from what the fast steps wrote
        tail = torch.randint(0, VOCAB, (3, 3), generator=torch.Generator().manual_seed(2))
        ref = m(tail, ref_state)
        assert (m(tail, state) - ref).abs().max().item() < 1e-4


@pytest.mark.parametrize("name", ["gpt2", "llama-gqa"])
def test_chunk_prefill_matches_torch_after_cached_tokens(name: str) -> None:
    m = make_model(**CONFIGS[name])
    fast = fast_decoder(m, rows=2)
    ids = torch.randint(0, VOCAB, (2, 12), generator=torch.Generator().manual_seed(4))
    with torch.inference_mode():
        ref_state, state = m.new_state(2), fast.new_state(2)
        for lo, hi in ((0, 5), (5, 12)):  # from an empty cache, then after 5 cached tokens
            ref = m(ids[:, lo:hi], ref_state)[:, -1]
            got = fast.prefill(ids[:, lo:hi], state)
            assert (got - ref).abs().max().item() < 1e-4
            assert state.pos == ref_state.pos == hi
        for a, b in zip(ref_state.k + ref_state.v, state.k + state.v, strict=True):
            assert torch.allclose(a, b, atol=1e-5)
        with pytest.raises(LmlabError, match="context length"):
            fast.prefill(torch.cat([ids, ids[:, :1]], 1), state)  # 12 + 13 > 24


def test_ragged_rows_match_the_torch_ragged_path() -> None:
    m = make_model(block="llama", n_kv_head=2)
    fast = fast_decoder(m)
    g = torch.Generator().manual_seed(3)
    with torch.inference_mode():
        ref_state, state = m.new_state(2), fast.new_state(2)
        prompt = torch.randint(0, VOCAB, (2, 6), generator=g)
        m(prompt, ref_state)
        m(prompt, state)
        lengths = torch.tensor([6, 3])  # row 1 pretends its prompt was 3 tokens
        ref_state.lengths, state.lengths = lengths.clone(), lengths.clone()
        ref_state.pos = state.pos = 6
        for _ in range(5):
            ids = torch.randint(0, VOCAB, (2,), generator=g)
            ref = m(ids[:, None], ref_state)[:, -1]
            got = fast.step(ids, state)
            assert (got - ref).abs().max().item() < 1e-4
            assert state.lengths.tolist() == ref_state.lengths.tolist()
            assert state.pos == ref_state.pos


@pytest.fixture(scope="module")
def tok() -> CharTokenizer:
    return CharTokenizer.train(["the quick brown fox jumps over the lazy dog\n"])


@pytest.mark.parametrize(
    "kw, params",
    [
        ({}, SamplingParams(max_new_tokens=60, seed=5)),  # slides the 24-token window
        (
            {"block": "llama", "n_kv_head": 2},
            SamplingParams(max_new_tokens=40, seed=9, n=3, top_p=0.9, repetition_penalty=1.3),
        ),
        ({"mlp": False}, SamplingParams(max_new_tokens=30, temperature=0)),
    ],
)
def test_generate_gives_identical_tokens_with_fast_path_on_and_off(
    tok, kw, params, monkeypatch
) -> None:
    torch.manual_seed(0)
    cfg = TransformerConfig(
        vocab_size=tok.vocab_size, context_length=CTX, n_layer=2, n_head=4, d_model=32, **kw
    )
    m = Transformer(cfg)
    on = generate(m, tok, "the ", params, fast_decode=True)
    off = generate(m, tok, "the ", params, fast_decode=False)
    assert [c.token_ids for c in on] == [c.token_ids for c in off]
    assert [c.text for c in on] == [c.text for c in off]
    assert all(len(c.token_ids) == params.max_new_tokens for c in on)
    monkeypatch.setenv("LMLAB_FAST_DECODE", "0")
    assert fast_decoder(m) is None
    env_off = generate(m, tok, "the ", params)
    assert [c.token_ids for c in env_off] == [c.token_ids for c in on]


def test_auto_mode_decodes_with_torch_until_the_kernel_is_loaded_then_switches(tok) -> None:
    torch.manual_seed(0)
    cfg = TransformerConfig(
        vocab_size=tok.vocab_size, context_length=CTX, n_layer=2, n_head=4, d_model=32
    )
    m = Transformer(cfg)
    params = SamplingParams(max_new_tokens=50, seed=3, top_k=10)
    auto = generate(m, tok, "the ", params)  # switches whenever the kernel is ready
    off = generate(m, tok, "the ", params, fast_decode=False)
    assert auto[0].token_ids == off[0].token_ids
    fast = fast_decoder(m)
    fast.step(torch.tensor([1]), fast.new_state(1))  # a direct call waits for the kernel
    assert fast.ready and kernel_ready()


def test_a_short_prompt_is_prefilled_by_the_loaded_kernel(tok, monkeypatch) -> None:
    """Up to FAST_PREFILL_TOKENS prompt tokens skip PyTorch's forward (whose first call in a
    process costs many decoding steps); the tokens are the PyTorch path's."""
    from lmlab.generate import engine
    from lmlab.generate.fastdecode import FastDecoder

    torch.manual_seed(0)
    cfg = TransformerConfig(
        vocab_size=tok.vocab_size, context_length=CTX, n_layer=2, n_head=4, d_model=32
    )
    m = Transformer(cfg)
    params = SamplingParams(max_new_tokens=12, temperature=0)
    off = generate(m, tok, "th", params, fast_decode=False)
    seen = []
    prefill = FastDecoder.prefill
    monkeypatch.setattr(FastDecoder, "prefill", lambda self, ids, st: seen.append(ids.shape)
                        or prefill(self, ids, st))  # fmt: skip
    fast = fast_decoder(m)
    fast.step(torch.tensor([1]), fast.new_state(1))  # the kernel is loaded
    on = generate(m, tok, "th", params)
    assert on[0].token_ids == off[0].token_ids
    assert seen == [torch.Size([1, len(tok.encode("th"))])]
    long = "the quick brown fox"
    assert len(tok.encode(long)) > engine.FAST_PREFILL_TOKENS
    assert generate(m, tok, long, params)[0].token_ids == generate(
        m, tok, long, params, fast_decode=False)[0].token_ids  # fmt: skip
    assert len(seen) == 1  # a long prompt: one PyTorch forward


def test_streamed_logprobs_agree_with_the_torch_path(tok) -> None:
    torch.manual_seed(0)
    cfg = TransformerConfig(
        vocab_size=tok.vocab_size, context_length=CTX, n_layer=2, n_head=4, d_model=32
    )
    m = Transformer(cfg)
    p = SamplingParams(max_new_tokens=30, seed=2, stop=["fox"])
    on = list(generate_stream(m, tok, "the ", p, top_logprobs=3, fast_decode=True))
    off = list(generate_stream(m, tok, "the ", p, top_logprobs=3, fast_decode=False))
    assert [(e.token_id, e.text, e.finish_reason) for e in on] == [
        (e.token_id, e.text, e.finish_reason) for e in off
    ]
    for a, b in zip(on, off, strict=True):
        assert abs(a.logprob - b.logprob) < 1e-4
        assert [i for i, _ in a.top] == [i for i, _ in b.top]


def test_fast_path_applies_only_where_it_is_exact() -> None:
    m = make_model()
    assert fast_decoder(m) is not None
    assert fast_decoder(m, allow=False) is None
    assert fast_decoder(m, rows=MAX_ROWS) is not None
    assert fast_decoder(m, rows=MAX_ROWS + 1) is None  # batched PyTorch wins there
    assert fast_decoder(m.train()) is None
    m.eval()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert fast_decoder(m) is None
    handle = m.blocks[0].attn.register_forward_pre_hook(lambda mod, args: None)
    assert fast_decoder(m) is None  # a hook (probes, head ablation) would be bypassed
    handle.remove()
    assert fast_decoder(make_model().to(torch.bfloat16)) is not None  # bf16 weights: yes
    assert fast_decoder(make_model().to(torch.float16)) is None
    rnn = RNNLanguageModel(RNNConfig(vocab_size=VOCAB, embed_dim=8, hidden_size=8)).eval()
    assert fast_decoder(rnn) is None


def test_export_is_cached_and_redone_when_weights_change() -> None:
    m = make_model()
    fast = fast_decoder(m)
    assert fast_decoder(m) is fast
    with torch.no_grad():
        m.blocks[1].mlp.fc.weight.mul_(2.0)
    fast2 = fast_decoder(m)
    assert fast2 is not fast
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.inference_mode():
        ref_state, state = m.new_state(1), fast2.new_state(1)
        m(ids[:, :3], ref_state)
        m(ids[:, :3], state)
        ref = m(ids[:, 3:], ref_state)[:, -1]
        assert (fast2.step(ids[:, 3], state) - ref).abs().max().item() < 1e-4
    m.blocks[0].attn.proj.weight = torch.nn.Parameter(m.blocks[0].attn.proj.weight * 0.5)
    assert fast_decoder(m) is not fast2  # a replaced parameter: exported again
    fast3 = fast_decoder(m)
    m.to(torch.bfloat16)  # the cache is checked before the dtypes: it must not serve these
    fast4 = fast_decoder(m)
    assert fast4 is not fast3 and fast4.kinds != fast3.kinds
    m.to(torch.float16)
    assert fast_decoder(m) is None


@pytest.mark.parametrize("name", ["gpt2", "llama-gqa", "gpt2-attention-only"])
def test_bf16_weights_step_is_float32_arithmetic_on_the_bf16_values(name: str) -> None:
    """With bfloat16 weights the kernel widens each weight to float32: the reference is
    the float32 model whose weights are the bfloat16 values."""
    mb = make_model(**CONFIGS[name]).to(torch.bfloat16)
    ref_model = make_model(**CONFIGS[name])
    ref_model.load_state_dict({k: v.float() for k, v in mb.state_dict().items()})
    fast = fast_decoder(mb)
    assert fast is not None and fast.kinds == ("bfloat16",) * 5
    ids = torch.randint(0, VOCAB, (2, 12), generator=torch.Generator().manual_seed(5))
    with torch.inference_mode():
        ref_state, state = ref_model.new_state(2), fast.new_state(2)
        ref_model(ids[:, :4], ref_state)
        fast.prefill(ids[:, :4], state)
        for t in range(4, 12):
            ref = ref_model(ids[:, t : t + 1], ref_state)[:, -1]
            got = fast.step(ids[:, t], state)
            assert (got - ref).abs().max().item() < 1e-4, (name, t)


def test_bf16_model_generates_through_the_engine_with_float32_attention(tok) -> None:
    """A bfloat16 model on CPU: PyTorch prefill (bf16 products, float32 attention and KV
    cache) then the kernel; greedy tokens agree with PyTorch-only decoding."""
    torch.manual_seed(0)
    cfg = TransformerConfig(vocab_size=tok.vocab_size, context_length=CTX, n_layer=2,
                            n_head=4, d_model=32, block="llama", n_kv_head=2)  # fmt: skip
    m = Transformer(cfg).eval().to(torch.bfloat16)
    assert m.rope_cos.dtype == torch.float32  # positions stay exact under .to(bf16)
    assert m.new_state(1).k[0].dtype == torch.float32
    p = SamplingParams(max_new_tokens=20, temperature=0, ignore_eos=True)
    on = generate(m, tok, "the ", p, fast_decode=True)[0].token_ids
    off = generate(m, tok, "the ", p, fast_decode=False)[0].token_ids
    assert len(on) == 20
    assert on[:5] == off[:5]  # bf16 rounding of activations may part them later


@pytest.mark.parametrize("qtype", ["Q4_0", "Q4_1", "Q8_0"])
@pytest.mark.parametrize("rows", [1, 3, 9])
def test_block_matrix_product_is_the_dequantised_product(qtype: str, rows: int) -> None:
    """One row and several (batched decoding: four rows share each widened block, then the
    rest): each row within 1e-4 of float64 on the dequantised weights, and several rows give
    each row's single-row product to float32 rounding."""
    gguf = pytest.importorskip("gguf")
    from lmlab.generate._fastdecode_kernels import matmul
    from lmlab.generate.gguf_blocks import _split_blocks

    rng = np.random.default_rng(0)
    w = rng.standard_normal((100, 96)).astype(np.float32)  # 100 outputs: a partial tile
    t = getattr(gguf.GGMLQuantizationType, qtype)
    raw = gguf.quants.quantize(w, t)
    deq = gguf.quants.dequantize(raw, t).reshape(w.shape)
    qs, d, m = _split_blocks(raw, qtype)
    x = rng.standard_normal((rows, 96)).astype(np.float32)
    bias = rng.standard_normal(100).astype(np.float32)
    out = np.empty((rows, 100), np.float32)
    matmul(x, qs, d, m, bias, out)
    ref = x.astype(np.float64) @ deq.T.astype(np.float64) + bias
    assert np.abs(out - ref).max() < 1e-4
    for r in range(rows):
        one = np.empty((1, 100), np.float32)
        matmul(x[r : r + 1], qs, d, m, bias, one)
        np.testing.assert_allclose(out[r], one[0], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("qtype", ["Q4_1", "Q8_0"])
def test_block_products_on_two_threads_give_the_same_bits(qtype: str) -> None:
    """The decoding step's float32 products on 4- and 8-bit blocks share a large matrix's
    tiles among threads: each tile is the single-threaded kernel's, bit for bit."""
    gguf = pytest.importorskip("gguf")
    import numba

    from lmlab.generate._fastdecode_kernels import (
        PARALLEL_BYTES,
        _q4_threads,
        _q8_threads,
        matmul,
        prange_only,
    )
    from lmlab.generate.gguf_blocks import _split_blocks

    rng = np.random.default_rng(2)
    w = rng.standard_normal((700, 384)).astype(np.float32)
    qs, d, m = _split_blocks(
        gguf.quants.quantize(w, getattr(gguf.GGMLQuantizationType, qtype)), qtype
    )
    assert qs.size >= PARALLEL_BYTES
    threaded = numba.njit(parallel=prange_only())(_q4_threads if qtype == "Q4_1" else _q8_threads)
    x = rng.standard_normal((1, 384)).astype(np.float32)
    bias = rng.standard_normal(700).astype(np.float32)
    one, two = np.empty((1, 700), np.float32), np.empty((1, 700), np.float32)
    matmul(x, qs, d, m, bias, one)
    before = numba.get_num_threads()
    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
    try:
        threaded(x, qs, d, m, bias, two, 2)
    finally:
        numba.set_num_threads(before)
    assert np.array_equal(one, two)


@pytest.mark.parametrize("rows", [1, 2, 4, 7])
@pytest.mark.parametrize("n_in", [96, 70])
def test_per_channel_int8_product_for_one_row_and_several(rows: int, n_in: int) -> None:
    """lmlab's int8 per channel (``W = d*q + m`` per output): one row and several rows, an
    input width that is not a multiple of 32 or of 4 too, against float64."""
    from lmlab.generate._fastdecode_kernels import matmul
    from lmlab.quantize.modules import TILE, _tiles

    rng = np.random.default_rng(1)
    q = rng.integers(-127, 128, (130, n_in)).astype(np.int8)  # 130 outputs: a partial tile
    d = (rng.random(130) * 0.02 + 0.001).astype(np.float16)
    m = (rng.standard_normal(130) * 0.01).astype(np.float16)
    w = q.astype(np.float64) * d.astype(np.float64)[:, None] + m.astype(np.float64)[:, None]
    qt = _tiles(q)
    assert qt.shape == (3, n_in, TILE)
    dt, mt = _tiles(d.view(np.uint16)), _tiles(m.view(np.uint16))
    x = rng.standard_normal((rows, n_in)).astype(np.float32)
    bias = rng.standard_normal(130).astype(np.float32)
    out = np.empty((rows, 130), np.float32)
    matmul(x, qt, dt, mt, bias, out)
    ref = x.astype(np.float64) @ w.T + bias
    assert np.abs(out - ref).max() < 1e-4
    for r in range(rows):
        one = np.empty((1, 130), np.float32)
        matmul(x[r : r + 1], qt, dt, mt, bias, one)
        np.testing.assert_allclose(out[r], one[0], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("block", ["llama", "gpt2"])
def test_gguf_model_decodes_from_its_blocks_until_a_weight_changes(tmp_path, block) -> None:
    """A GGUF of Q8_0 tensors: the fast step reads the blocks (an eighth of the float
    bytes) and gives the float model's logits; once a weight changes, the dense weights."""
    pytest.importorskip("gguf")
    from lmlab.generate.fastdecode import register_gguf
    from lmlab.interop.gguf_export import export_gguf
    from lmlab.run import Run, load_run

    torch.manual_seed(0)
    from lmlab.tokenize.bpe import BPETokenizer

    tok = BPETokenizer.train(["the quick brown fox jumps over the lazy dog\n"] * 5, 300)
    cfg = TransformerConfig(vocab_size=tok.vocab_size, context_length=CTX, n_layer=2,
                            n_head=2, d_model=64, block=block,
                            n_kv_head=1 if block == "llama" else None)  # fmt: skip
    src = Run(tmp_path, {"model": {"family": "transformer"}}, Transformer(cfg).eval(), tok)
    path = export_gguf(src, tmp_path / "m.gguf", "q8_0")
    run = load_run(path)  # registers the file: its weights are the blocks' dequantisation
    m = run.model
    fast = fast_decoder(m)
    assert fast.kinds == ("Q8", "Q8", "Q8", "Q8", "Q8")
    dense_bytes = sum(p.numel() * 4 for n, p in m.named_parameters() if "norm" not in n)
    assert fast.nbytes < dense_bytes / 3
    ids = torch.randint(0, tok.vocab_size, (1, 10), generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        ref_state, state = m.new_state(1), fast.new_state(1)
        m(ids[:, :4], ref_state)
        m(ids[:, :4], state)
        for t in range(4, 10):
            ref = m(ids[:, t : t + 1], ref_state)[:, -1]
            assert (fast.step(ids[:, t], state) - ref).abs().max().item() < 1e-4
    with torch.no_grad():
        m.blocks[0].attn.proj.weight.mul_(1.5)
    assert fast_decoder(m).kinds == ("float32",) * 5  # the blocks no longer describe it
    m2 = Transformer(cfg).eval()
    register_gguf(m2, path)  # a false claim is caught: the blocks are checked
    assert fast_decoder(m2).kinds == ("float32",) * 5


def test_out_of_range_tokens_and_positions_are_refused() -> None:
    m = make_model()
    fast = fast_decoder(m)
    with torch.inference_mode():
        state = fast.new_state(1)
        with pytest.raises(LmlabError, match="out of range"):
            fast.step(torch.tensor([VOCAB]), state)
        assert state.pos == 0
        state.pos = CTX
        with pytest.raises(LmlabError, match="context length"):
            fast.step(torch.tensor([1]), state)
        with pytest.raises(LmlabError, match="rows"):
            fast.step(torch.tensor([1, 2]), fast.new_state(1))
        with pytest.raises(LmlabError, match="new_state"):
            fast.step(torch.tensor([1]), m.new_state(1))


class _FixedWindowText:
    """The previous incremental detokeniser (a fixed window of 4 committed tokens, two
    decodes per token), kept here as the reference for the cheaper one."""

    def __init__(self, tok, prompt_ids) -> None:
        specials = set(tok.special_tokens.values())
        self.tok, self.ids, self.pending = (
            tok,
            [i for i in prompt_ids if i not in specials][-4:],
            [],
        )

    def push(self, token_id: int) -> str:
        self.pending.append(token_id)
        ctx = self.ids[-4:]
        base = self.tok.decode(ctx) if ctx else ""
        full = self.tok.decode(ctx + self.pending)
        piece = full[len(base) :] if full.startswith(base) else full
        if piece.endswith("\ufffd") and len(self.pending) < 4:
            return ""
        self.ids.extend(self.pending)
        self.pending.clear()
        return piece


@pytest.mark.parametrize("kind", ["char", "word", "bpe"])
def test_sample_text_emits_what_the_fixed_window_decoder_did(kind: str) -> None:
    from lmlab.generate.engine import _SampleText
    from lmlab.tokenize import BPETokenizer, WordTokenizer

    text = "To be, or not to be: that is the question.\n天地玄黄，宇宙洪荒。 Whether 'tis nobler\n"
    if kind == "char":
        tok = CharTokenizer.train([text[:60]])  # the Chinese characters fall back to bytes
    elif kind == "word":
        tok = WordTokenizer.train([text])
    else:
        tok = BPETokenizer.train([text] * 20, vocab_size=300)
    g = torch.Generator().manual_seed(0)
    for trial in range(5):
        ids = tok.encode(text * 2)
        if trial:  # random token sequences too: odd byte splits, spacing, specials
            ids = torch.randint(0, tok.vocab_size, (80,), generator=g).tolist()
        prompt, rest = ids[:3], ids[3:]
        new, ref = _SampleText(tok, [], prompt), _FixedWindowText(tok, prompt)
        got = "".join(new.push(i)[0] for i in rest)
        want = "".join(ref.push(i) for i in rest)
        assert got == want, (kind, trial)


@pytest.mark.parametrize("family", ["transformer", "lstm"])
def test_warm_up_readies_decoding_without_changing_samples_or_global_rng(tok, family) -> None:
    """warm_up is part of loading: it builds the fast decoder (Transformers) and decodes one
    throwaway token; later samples and the global random state are as without it."""
    from lmlab.generate import warm_up

    def fresh():
        torch.manual_seed(3)
        if family == "lstm":
            return RNNLanguageModel(RNNConfig(vocab_size=tok.vocab_size, embed_dim=8,
                                              hidden_size=8)).eval()  # fmt: skip
        cfg = TransformerConfig(vocab_size=tok.vocab_size, context_length=CTX, n_layer=2,
                                n_head=4, d_model=32)  # fmt: skip
        return Transformer(cfg).eval()

    params = SamplingParams(max_new_tokens=12, temperature=0.8, top_k=5, seed=4)
    cold = generate(fresh(), tok, "the ", params)[0].text
    warm_model = fresh()
    torch.manual_seed(11)
    before = torch.random.get_rng_state()
    warm_up(warm_model, tok, params)
    assert torch.equal(torch.random.get_rng_state(), before)
    if family == "transformer":
        fast = fast_decoder(warm_model)
        assert fast is not None and fast.ready and fast_decoder(warm_model) is fast
    assert generate(warm_model, tok, "the ", params)[0].text == cold


def test_kernel_exp_is_within_one_ulp_of_exact_on_attention_scores():
    """The kernel's vectorisable float32 ``exp`` (softmax of attention scores, x <= 0)
    against float64's, relative error below 2**-23 (one float32 ulp) wherever the result is
    a normal float32; below -87 it gives the smallest values, not zero."""
    from numba import njit

    from lmlab.generate._fastdecode_kernels import _exp

    @njit
    def fill(x, out):
        for i in range(x.shape[0]):
            out[i] = _exp(x[i])

    rng = np.random.default_rng(0)
    x = -np.abs(rng.standard_normal(100_000) * 20).astype(np.float32)
    x[:4] = [0.0, -1e-7, -87.0, -200.0]
    out = np.empty_like(x)
    fill(x, out)
    exact = np.exp(x.astype(np.float64))
    normal = exact > np.finfo(np.float32).tiny
    rel = np.abs(out[normal] - exact[normal]) / exact[normal]
    assert rel.max() < 2.0**-23
    assert out[0] == 1.0 and 0 < out[3] < 1e-37
