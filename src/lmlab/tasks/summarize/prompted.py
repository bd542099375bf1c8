"""Zero-shot summaries from a chat model: each text goes into one user message under an
instruction, rendered with the model's own chat template (:mod:`lmlab.serve.chat_template`,
as ``lmlab chat`` does), and the model's reply, decoded greedily, is the summary.

This is how a pretrained instruct model (``builtin:smollm2``) or a chat run summarises
SAMSum dialogues and XSum articles without training. A text too long for the model's
context (less the room for the reply) is cut to its first tokens, with a counted warning.
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass
from typing import Any

from lmlab.errors import LmlabError

INSTRUCTIONS = {
    "en": "Summarize the following text in one or two sentences. Reply with the summary only."
    "\n\n{text}",
    "zh": "用一句话概括下面这段文字，只回答摘要。\n\n{text}",
}


@dataclass
class ChatSummarizer:
    """A chat-capable model opened with :func:`lmlab.run.load_run`, and its chat template."""

    run: Any
    template: Any
    instruction: str
    system: str = ""
    max_new_tokens: int = 80

    @property
    def name(self) -> str:
        return self.run.name

    def _messages(self, text: str) -> list[dict[str, str]]:
        user = self.instruction.replace("{text}", text)
        return ([{"role": "system", "content": self.system}] if self.system else []) + [
            {"role": "user", "content": user}
        ]

    def prompt_ids(self, text: str) -> tuple[list[int], bool]:
        """The rendered prompt's token ids, and whether the text had to be cut to fit."""
        from lmlab.serve.chat_template import encode_chat

        tok = self.run.tokenizer
        ctx = self.run.model.context_length
        budget = None if ctx is None else ctx - self.max_new_tokens - 1
        ids = encode_chat(self.template, self._messages(text), tok)
        if budget is None or len(ids) <= budget:
            return ids, False
        text_ids = tok.encode(text)
        keep = len(text_ids) - (len(ids) - budget)
        if keep < 1:
            raise LmlabError(f"the model's context ({ctx} tokens) has no room for a text after "
                             "the instruction and the reply; lower --max-new-tokens")  # fmt: skip
        return encode_chat(self.template, self._messages(tok.decode(text_ids[:keep])), tok), True

    def summarize(self, texts: list[str], progress: bool = False) -> list[str]:
        """One greedy reply per text (texts one at a time: the chat engine decodes one
        prompt per call)."""
        from tqdm import tqdm

        from lmlab.generate import SamplingParams, generate_stream
        from lmlab.serve.stream import Trim

        params = SamplingParams(max_new_tokens=self.max_new_tokens, temperature=0.0,
                                stop=[*self.template.stop, "\n\n"])  # fmt: skip
        out, cut = [], 0
        bar = tqdm(total=len(texts), disable=not progress, unit="text", file=sys.stderr,
                   desc=f"summarize ({self.name})")  # fmt: skip
        for text in texts:
            ids, was_cut = self.prompt_ids(text)
            cut += was_cut
            trim = Trim(True)
            reply = "".join(trim.push(ev.text) for ev in generate_stream(
                self.run.model, self.run.tokenizer, ids, params, logprobs=False))  # fmt: skip
            out.append(" ".join(reply.split()))
            bar.update(1)
        bar.close()
        if cut:
            warnings.warn(f"{cut:,} of {len(texts):,} texts longer than the model's context "
                          f"({self.run.model.context_length} tokens, less the instruction and "
                          f"{self.max_new_tokens} for the reply) cut to their first tokens",
                          stacklevel=2)  # fmt: skip
        return out


def open_chat_summarizer(
    path: str, lang: str = "en", instruction: str | None = None, system: str = "",
    max_new_tokens: int = 80, quantized: bool | None = None,
) -> ChatSummarizer:  # fmt: skip
    """A :class:`ChatSummarizer` on ``path`` (a chat run, a GGUF file or ``builtin:NAME``);
    ``instruction`` holds ``{text}`` (default: :data:`INSTRUCTIONS` of ``lang``)."""
    from lmlab.run import load_run
    from lmlab.serve.chat_template import load_chat_template

    instruction = instruction or INSTRUCTIONS.get(lang, INSTRUCTIONS["en"])
    if "{text}" not in instruction:
        raise LmlabError("the summarisation prompt needs a {text} placeholder")
    run = load_run(path, quantized=quantized)
    template = load_chat_template(run.path, run.config)
    return ChatSummarizer(run, template, instruction, system, max_new_tokens)
