"""Zero-shot summaries from a chat model (``builtin:smollm2``): the text goes into the
model's own chat template under the instruction, a text too long for the context is cut to
fit (and counted), and ``lmlab summarize --model builtin:smollm2`` prints one line per text."""

from __future__ import annotations

import pytest

from lmlab.errors import LmlabError

pytestmark = pytest.mark.slow  # loads SmolLM2 twice


@pytest.fixture(scope="module")
def summarizer():
    from lmlab.interop.sources import builtin_path
    from lmlab.tasks.summarize.prompted import open_chat_summarizer

    try:
        builtin_path("smollm2")
    except LmlabError as e:
        pytest.skip(f"builtin:smollm2 unavailable ({e})")
    return open_chat_summarizer("builtin:smollm2", max_new_tokens=6)


def test_prompt_is_the_models_chat_template_with_the_text(summarizer):
    text = "Anna: are we still on for lunch?\nBen: yes, 12:30 at the usual place"
    ids, cut = summarizer.prompt_ids(text)
    rendered = summarizer.run.tokenizer.decode(ids)
    assert not cut
    assert "<|im_start|>user" in rendered and rendered.rstrip().endswith("assistant")
    assert text in rendered and "Summarize" in rendered


def test_a_text_longer_than_the_context_is_cut_to_fit(summarizer):
    ctx = summarizer.run.model.context_length
    ids, cut = summarizer.prompt_ids("word " * (ctx + 100))
    assert cut and len(ids) <= ctx - summarizer.max_new_tokens - 1
    assert len(ids) > ctx - summarizer.max_new_tokens - 60  # cut no more than needed


def test_summarize_command_with_a_chat_model(summarizer, capsys):
    from lmlab.cli import main

    capsys.readouterr()
    assert main(["summarize", "--model", "builtin:smollm2", "--max-new-tokens", "6",
                 "The council voted on Tuesday to close the old bridge for repairs.",
                 "Tom: running late\nKate: ok, see you at 8"]) == 0  # fmt: skip
    assert len(capsys.readouterr().out.splitlines()) == 2
    with pytest.raises(LmlabError, match="placeholder"):
        from lmlab.tasks.summarize.prompted import open_chat_summarizer

        open_chat_summarizer("builtin:smollm2", instruction="no placeholder here")
