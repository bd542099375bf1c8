"""The model worker: batched decoding gives exactly the engine's tokens, for every family."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from lmlab.generate import SamplingParams, generate
from lmlab.models import RNNConfig, RNNLanguageModel, Transformer, TransformerConfig
from lmlab.models.ngram import NGramLM
from lmlab.models.nplm import NPLM, NPLMConfig
from lmlab.serve import states
from lmlab.serve.batcher import FINISHED, GenRequest, ModelWorker, complete_all
from lmlab.tokenize import CharTokenizer

TEXT = "abcdefghij klmnop\n"


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """One torch thread here too (as the server's workers on 2 cores): tiny steps on two
    threads crawl when another process holds a core. Restored afterwards."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


@pytest.fixture(scope="module")
def tok() -> CharTokenizer:
    return CharTokenizer.train([TEXT])


def build(family: str, tok: CharTokenizer):
    torch.manual_seed(0)
    v = tok.vocab_size
    if family == "gpt2":
        return Transformer(
            TransformerConfig(vocab_size=v, context_length=16, n_layer=1, n_head=2, d_model=16)
        )
    if family == "llama":
        return Transformer(TransformerConfig(vocab_size=v, context_length=16, n_layer=2, n_head=2,
                                             d_model=16, block="llama"))  # fmt: skip
    if family in ("lstm", "gru"):
        return RNNLanguageModel(RNNConfig(vocab_size=v, embed_dim=8, hidden_size=16, cell=family))
    if family == "nplm":
        return NPLM(NPLMConfig(vocab_size=v, context=3, embed_dim=8, hidden_size=16))
    ids = np.array(tok.encode(TEXT * 20 + "abc abd fgh"))
    return NGramLM.fit(ids, 3, v, tok.eos_id)


PROMPTS = ["abc", "abd", "ghij kl", "ab", "abc"]
PARAMS = [
    SamplingParams(max_new_tokens=40, seed=0, top_p=0.9),
    SamplingParams(max_new_tokens=40, seed=1, temperature=0.7, top_k=5),
    SamplingParams(max_new_tokens=40, seed=2, repetition_penalty=1.3, min_p=0.05),
    SamplingParams(max_new_tokens=40, seed=3, n=2),
    SamplingParams(max_new_tokens=40, seed=4, stop=["k"]),
]


def run_worker(worker: ModelWorker, tok, prompts, params, **kw) -> list[list[str]]:
    outs: list[dict[int, list[str]]] = [{} for _ in prompts]
    done = [threading.Event() for _ in prompts]
    errors: list[Exception] = []

    def emitter(k: int):
        def emit(item) -> None:
            if item == FINISHED:
                done[k].set()
            elif isinstance(item, Exception):
                errors.append(item)
                done[k].set()
            else:
                outs[k].setdefault(item.index, []).append(item.text)

        return emit

    for k, (p, sp) in enumerate(zip(prompts, params, strict=True)):
        worker.submit(GenRequest(tok.encode(p), sp, emitter(k), **kw))
    assert all(d.wait(20) for d in done) and not errors
    return [["".join(outs[k][i]) for i in range(sp.n)] for k, sp in enumerate(params)]


@pytest.mark.parametrize("family", ["gpt2", "llama", "lstm", "gru", "nplm", "ngram"])
@pytest.mark.parametrize("batch", [True, False])
def test_worker_tokens_equal_the_engine(tok, family: str, batch: bool) -> None:
    """Same seeds, same texts: with five concurrent requests (one with n=2, one with a stop
    string, the windows of the 16-token Transformers sliding), batched or not."""
    model = build(family, tok).eval()
    worker = ModelWorker(model, tok, family, batch=batch, window_s=0.05, threads=1)
    try:
        got = run_worker(worker, tok, PROMPTS, PARAMS, logprobs=True, top_logprobs=2)
    finally:
        worker.close()
    want = [
        [c.text for c in generate(model, tok, p, sp)] for p, sp in zip(PROMPTS, PARAMS, strict=True)
    ]
    assert got == want
    if batch:
        assert worker.stats["max_rows"] == 6  # every row of every request in one forward
        if family in ("gpt2", "llama"):  # prompts of 2 to 7 tokens prefilled in one forward
            assert worker.stats["prefills"] == 1
    else:
        assert worker.stats["max_rows"] <= 2  # one request (n=2) per forward


@pytest.mark.parametrize("family", ["gpt2", "llama", "lstm"])
def test_complete_all_gives_each_prompt_its_own_greedy_text(tok, family: str) -> None:
    """Offline batched decoding (more prompts than places, prompts of 1 to 9 tokens, a stop
    string): every text equals the engine's for that prompt alone, in the prompts' order."""
    model = build(family, tok).eval()
    prompts = ["abc", "k", "ghij klmn", "abd", "fgh", "ab", "j kl"]
    params = SamplingParams(max_new_tokens=12, temperature=0.0, stop=["m"])
    done: list[int] = []
    got = complete_all(model, tok, [tok.encode(p) for p in prompts], params, max_batch=3,
                       on_done=done.append)  # fmt: skip
    want = [generate(model, tok, p, params)[0].text for p in prompts]
    assert got == want
    assert sorted(done) == list(range(len(prompts)))


def test_complete_all_raises_the_model_error(tok) -> None:
    model = build("gpt2", tok).eval()
    bad = [tok.encode("abc"), [tok.vocab_size + 5]]  # a token id outside the vocabulary
    with pytest.raises(Exception, match="index"):
        complete_all(model, tok, bad, SamplingParams(max_new_tokens=4, temperature=0.0))


def test_states_join_and_select_rows(tok) -> None:
    lstm = build("lstm", tok).eval()
    ids = torch.tensor([tok.encode("abcd"), tok.encode("ghij")])
    with torch.inference_mode():
        s0, s1 = lstm.new_state(1), lstm.new_state(1)
        lstm(ids[:1], s0), lstm(ids[1:], s1)
        joined = states.join([s0, s1])
        both = lstm(torch.tensor([[3], [4]]), joined)[:, -1]
        second = states.select(joined, [1])
        assert joined.hidden[0].shape[1] == 2 and second.hidden[0].shape[1] == 1
        alone = lstm(torch.tensor([[4]]), s1)[:, -1]
    assert torch.allclose(both[1], alone[0], atol=1e-6)
    assert states.can_join(s0, s1) and not states.can_join(s0, build("gpt2", tok).new_state(1))


@pytest.mark.parametrize("block", ["gpt2", "llama"])
def test_ragged_kv_cache_decodes_each_row_at_its_own_position(tok, block: str) -> None:
    """Rows of different lengths joined into one cache give each row's own logits."""
    model = build(block, tok).eval()
    prompts = [tok.encode(p) for p in ("abc", "ghij kl", "a")]
    with torch.inference_mode():
        alone = []
        for p in prompts:
            st = model.new_state(1)
            model(torch.tensor([p]), st)
            alone.append((st, [model(torch.tensor([[t]]), st)[0, -1] for t in (4, 5, 6)]))
        parts = []
        for p in prompts:
            st = model.new_state(1)
            model(torch.tensor([p]), st)
            parts.append(st)
        assert states.can_join(parts[0], parts[1])  # positions 3 and 7
        joined = states.join(parts)
        assert states.positions(joined) == [3, 7, 1]
        for step, t in enumerate((4, 5, 6)):
            logits = model(torch.full((3, 1), t), joined)[:, -1]
            for r in range(3):
                assert torch.allclose(logits[r], alone[r][1][step], atol=1e-5)
        two = states.select(joined, [2, 0])
        assert states.positions(two) == [4, 6] and two.k[0].shape[0] == 2


def test_full_worker_refuses_and_cancelled_requests_stop(tok) -> None:
    from lmlab.serve.batcher import QueueFull

    model = build("lstm", tok).eval()
    worker = ModelWorker(model, tok, "lstm", max_requests=1, threads=1)
    seen: list = []
    started = threading.Event()

    def emit(item) -> None:
        seen.append(item)
        started.set()

    req = GenRequest(tok.encode("ab"), SamplingParams(max_new_tokens=10**6, ignore_eos=True), emit)
    worker.submit(req)
    assert started.wait(10)
    with pytest.raises(QueueFull):
        worker.submit(GenRequest(tok.encode("ab"), SamplingParams(), emit))
    req.cancelled.set()
    worker.close()
    assert worker.inflight == 0 and worker.stats["cancelled"] == 1
    assert FINISHED not in seen and len(seen) < 10**6


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_chunked_prefill_gives_the_engine_tokens(tok, family: str) -> None:
    """Prompts longer than the chunk are read a few tokens per forward: same texts."""
    model = build(family, tok).eval()
    worker = ModelWorker(model, tok, family, window_s=0.05, threads=1, prefill_chunk=2)
    try:
        got = run_worker(worker, tok, PROMPTS, PARAMS)
    finally:
        worker.close()
    want = [
        [c.text for c in generate(model, tok, p, sp)] for p, sp in zip(PROMPTS, PARAMS, strict=True)
    ]
    assert got == want
    # "ghij kl" (7 tokens) in 4 chunks, the 3-token prompts in 2 each; "ab" in one forward
    assert worker.stats["prefill_chunks"] == 4 + 2 + 2 + 2


def test_a_long_prompt_does_not_hold_the_running_requests(tok) -> None:
    """While a long prompt is read chunk by chunk, the running request keeps decoding."""
    model = build("gpt2", tok).eval()
    worker = ModelWorker(model, tok, "gpt2", window_s=0.3, threads=1, prefill_chunk=2)
    order: list[str] = []
    done = [threading.Event(), threading.Event()]

    def emitter(name: str, k: int):
        def emit(item) -> None:
            if item == FINISHED or isinstance(item, Exception):
                done[k].set()
            else:
                order.append(name)

        return emit

    greedy = SamplingParams(max_new_tokens=12, temperature=0, ignore_eos=True)
    try:  # collected in one turn: "ab" is read at once, the 14-token prompt in 7 chunks
        worker.submit(GenRequest(tok.encode("ab"), greedy, emitter("short", 0)))
        long = SamplingParams(max_new_tokens=1, temperature=0, ignore_eos=True)
        worker.submit(GenRequest(tok.encode("abcdefghij klm"), long, emitter("long", 1)))
        assert all(d.wait(20) for d in done)
    finally:
        worker.close()
    assert order.index("long") >= 7  # the short request's tokens came during the long prefill
    assert worker.stats["prefill_chunks"] == 7
