"""API fidelity: ``echo`` with ``logprobs`` scores the prompt, ``max_tokens`` beyond the cap is
a 400 naming it, and ``lmlab generate`` and the server treat an over-long prompt alike."""

from __future__ import annotations

import openai
import pytest
import torch


def model_logprobs(run, ids: list[int]) -> list[float]:
    """log p(ids[i] | ids[:i]) for i >= 1, straight from the model."""
    model = run.model
    with torch.inference_mode():
        logits = model(torch.tensor([ids]), model.new_state(1, torch.device("cpu")))[0]
    logp = logits.float().log_softmax(-1)
    return [float(logp[i - 1, t]) for i, t in enumerate(ids) if i]


@pytest.mark.parametrize("name", ["tiny", "lstm", "kn"])
def test_echo_with_max_tokens_0_scores_the_prompt(client, server, name) -> None:
    run = server[1].models[name].run
    prompt = "Shall I compare thee"
    r = client.completions.create(model=name, prompt=prompt, echo=True, max_tokens=0, logprobs=2)
    c = r.choices[0]
    ids = run.tokenizer.encode(prompt)
    assert c.text == prompt and c.finish_reason == "length" and r.usage.completion_tokens == 0
    lp = c.logprobs
    assert lp.tokens == [run.tokenizer.id_to_piece(i) for i in ids]
    assert lp.token_logprobs[0] is None and lp.top_logprobs[0] is None
    assert lp.token_logprobs[1:] == pytest.approx(model_logprobs(run, ids), abs=1e-4)
    assert lp.text_offset == list(range(len(prompt)))  # one character per token
    for chosen, tops in zip(lp.token_logprobs[1:], lp.top_logprobs[1:], strict=True):
        assert len(tops) == 2 and max(tops.values()) >= chosen - 1e-5


def test_echo_scores_equal_the_generated_tokens_logprobs(client, server) -> None:
    """Scoring a generated text through echo gives back the log-probabilities it was
    generated with: what clients rely on to score text through the API."""
    tok = server[1].models["kn"].run.tokenizer
    gen = client.completions.create(model="kn", prompt="Shall I", max_tokens=8, logprobs=0,
                                    seed=11, extra_body={"top_k": 5})  # fmt: skip
    text = gen.choices[0].text
    assert len(tok.encode("Shall I" + text)) == len(tok.encode("Shall I")) + 8
    scored = client.completions.create(model="kn", prompt="Shall I" + text, echo=True,
                                       max_tokens=0, logprobs=0)  # fmt: skip
    lp = scored.choices[0].logprobs
    assert lp.tokens[-8:] == gen.choices[0].logprobs.tokens
    assert lp.token_logprobs[-8:] == pytest.approx(gen.choices[0].logprobs.token_logprobs, abs=1e-4)


def test_echo_logprobs_stream_and_continue(client, server) -> None:
    prompt = "When I do"
    kw = dict(model="tiny", prompt=prompt, echo=True, max_tokens=3, logprobs=1, seed=2)
    whole = client.completions.create(**kw).choices[0]
    assert whole.text.startswith(prompt) and len(whole.logprobs.tokens) == len(prompt) + 3
    assert whole.logprobs.token_logprobs[0] is None
    assert whole.logprobs.text_offset[len(prompt)] == len(prompt)  # the first new token
    chunks = [c.choices[0] for c in client.completions.create(**kw, stream=True) if c.choices]
    assert "".join(c.text for c in chunks) == whole.text
    tokens = [t for c in chunks if c.logprobs for t in c.logprobs.tokens]
    offsets = [o for c in chunks if c.logprobs for o in c.logprobs.text_offset]
    assert tokens == whole.logprobs.tokens and offsets == whole.logprobs.text_offset
    # without logprobs, echo costs no scoring and returns none
    plain = client.completions.create(model="tiny", prompt=prompt, echo=True, max_tokens=0)
    assert plain.choices[0].text == prompt and plain.choices[0].logprobs is None


def test_max_tokens_above_the_cap_is_refused_naming_it(client) -> None:
    for call in (
        lambda: client.completions.create(model="kn", prompt="a", max_tokens=65),
        lambda: client.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": "x"}], max_tokens=10_000
        ),
    ):
        with pytest.raises(openai.BadRequestError) as e:
            call()
        assert e.value.body["param"] == "max_tokens" and "at most 64" in e.value.body["message"]
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "x"}],
                                       max_completion_tokens=65)  # fmt: skip
    assert e.value.body["param"] == "max_completion_tokens"


def test_cli_and_server_treat_an_over_long_prompt_alike(client, serve_runs, capsys) -> None:
    """The tiny Transformer's context is 96: a prompt of 95 tokens fits (one is left to
    generate), 96 are refused by both, and --crop-prompt keeps the last 95."""
    from lmlab.cli import main

    run = str(serve_runs["tiny"])
    fits, too_long = "x" * 95, "x" * 96
    r = client.completions.create(model="tiny", prompt=fits, max_tokens=1, seed=1)
    assert r.usage.prompt_tokens == 95
    args = ["generate", "--run", run, "--max-new-tokens", "1", "--seed", "1"]
    assert main([*args, "--prompt", fits]) == 0
    capsys.readouterr()
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model="tiny", prompt=too_long, max_tokens=1)
    assert e.value.body["code"] == "context_length_exceeded"
    assert "96 tokens" in e.value.body["message"]
    assert main([*args, "--prompt", too_long]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "96 tokens" in err and "--crop-prompt" in err
    assert main([*args, "--prompt", too_long, "--crop-prompt"]) == 0
    assert "keeping its last 95 tokens" in capsys.readouterr().err
