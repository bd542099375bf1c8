"""Chat templates: how a list of chat messages becomes one prompt for a plain language model.

lmlab's models are trained on plain text, so a chat is rendered as text with role markers
and the reply is whatever the model writes after the assistant's marker, up to the next
role marker (a stop string). A run can carry its own template in ``chat_template.json``
(or a ``[chat]`` table in ``config.toml``); every other run gets :data:`DEFAULT`:

    System: You are terse.
    User: Hello
    Assistant: Hi there.
    User: How are you?
    Assistant:

Each role's text is a pattern in which ``{content}`` is replaced by the message (plain
string replacement, so braces in messages are safe).

A pretrained model brings its own template as Jinja2 source (``jinja``, from the GGUF
metadata or ``tokenizer_config.json``); it is rendered exactly as ``transformers`` renders
it (sandboxed, ``trim_blocks``, ``lstrip_blocks``, ``raise_exception``, ``tojson``), and the
reply ends at the model's end-of-turn token instead of a stop string.

A conversation becomes token ids through :func:`encode_chat` (or :func:`fit_chat`): the
template's own markers (``<|im_start|>``...) become the model's special ids, while each
message's content stays ordinary text, so typing ``<|im_end|>`` cannot close a turn.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lmlab.errors import LmlabError

TEMPLATE_FILE = "chat_template.json"
ROLES = ("system", "user", "assistant")


@dataclass
class ChatTemplate:
    system: str = "System: {content}\n"
    user: str = "User: {content}\n"
    assistant: str = "Assistant: {content}\n"
    generation_prompt: str = "Assistant:"  # appended after the history; the reply follows it
    stop: list[str] = field(default_factory=lambda: ["\nUser:", "\nSystem:", "\nAssistant:"])
    prefix: str = ""  # text before the first message (e.g. a document separator)
    default_system: str = ""  # system message used when a chat has none
    strip_reply: bool = True  # drop the reply's leading/trailing whitespace in chat replies
    jinja: str = ""  # a pretrained model's own template (Jinja2); replaces the role patterns
    bos_token: str = ""  # the strings a Jinja template may refer to
    eos_token: str = ""

    def __post_init__(self) -> None:
        if self.jinja:
            self._compiled = _compile_jinja(self.jinja)
        for role in ROLES if not self.jinja else ():
            if "{content}" not in getattr(self, role):
                raise LmlabError(
                    f"chat template role {role!r} needs a '{{content}}' placeholder; fix {TEMPLATE_FILE}"
                )
        if isinstance(self.stop, str):
            self.stop = [self.stop]
        if not all(isinstance(s, str) for s in self.stop):
            raise LmlabError(f"chat template 'stop' must be a list of strings; fix {TEMPLATE_FILE}")

    def render(self, messages: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        """The prompt text for ``messages`` (dicts with ``role`` and ``content``)."""
        return self.render_spans(messages, add_generation_prompt)[0]

    def render_spans(
        self, messages: list[dict[str, str]], add_generation_prompt: bool = True
    ) -> tuple[str, list[tuple[int, int] | None]]:
        """The prompt text and, per message, the character span its content fills (None if
        a Jinja template rewrote the content so that it cannot be found). Special-token
        strings inside those spans are the user's text, never markers (:func:`encode_chat`)."""
        if self.jinja:
            return _render_jinja_spans(self, messages, add_generation_prompt)
        parts = [self.prefix]
        spans: list[tuple[int, int] | None] = []
        at = len(self.prefix)

        def fill(pattern: str, content: str) -> tuple[int, int]:
            nonlocal at
            pieces = pattern.split("{content}")
            start = at + len(pieces[0])
            for k, piece in enumerate(pieces):
                if k:
                    parts.append(content)
                    at += len(content)
                parts.append(piece)
                at += len(piece)
            return start, start + len(content)

        if self.default_system and not any(m["role"] == "system" for m in messages):
            fill(self.system, self.default_system)
        for m in messages:
            role = m["role"]
            if role == "developer":  # OpenAI's newer name for the system role
                role = "system"
            if role not in ROLES:
                raise LmlabError(
                    f"chat role {m['role']!r} is not supported; use system, user or assistant"
                )
            spans.append(fill(getattr(self, role), m.get("content") or ""))
        if add_generation_prompt:
            parts.append(self.generation_prompt)
        return "".join(parts), spans

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


DEFAULT = ChatTemplate()


def _compile_jinja(source: str):
    from jinja2 import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str):
        raise LmlabError(f"the chat template refused the conversation: {message}")

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)  # fmt: skip

    def strftime_now(fmt: str) -> str:
        import datetime

        return datetime.datetime.now().strftime(fmt)

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    try:
        return env.from_string(source)
    except TemplateError as e:
        raise LmlabError(f"the model's chat template is not valid Jinja2 ({e})") from None


def _render_jinja(t: ChatTemplate, messages: list[dict[str, str]], add_generation_prompt: bool):
    from jinja2 import TemplateError

    msgs = [{**m, "role": "system" if m["role"] == "developer" else m["role"]} for m in messages]
    try:
        return t._compiled.render(
            messages=msgs,
            add_generation_prompt=add_generation_prompt,
            bos_token=t.bos_token,
            eos_token=t.eos_token,
        )
    except TemplateError as e:
        raise LmlabError(f"the chat template failed on this conversation ({e})") from None


_MARK = "\ue000{}\ue001"  # private-use characters standing for a message's content


def _render_jinja_spans(
    t: ChatTemplate, messages: list[dict[str, str]], add_generation_prompt: bool
) -> tuple[str, list[tuple[int, int] | None]]:
    """Render, and find each message's content in the result: first by rendering with
    placeholders (exact when the template copies content as it is), else by searching the
    rendered text in message order."""
    text = _render_jinja(t, messages, add_generation_prompt)
    contents = [m.get("content") or "" for m in messages]
    marks = [_MARK.format(i) for i in range(len(messages))]
    marked = _render_jinja(
        t,
        [{**m, "content": k} for k, m in zip(marks, messages, strict=True)],
        add_generation_prompt,
    )
    if all(marked.count(k) == 1 for k in marks):
        out: list[str] = []
        spans: list[tuple[int, int] | None] = [None] * len(marks)
        pos = length = 0
        for i in sorted(range(len(marks)), key=lambda i: marked.find(marks[i])):
            k = marked.find(marks[i])
            out += [marked[pos:k], contents[i]]
            length += k - pos
            spans[i] = (length, length + len(contents[i]))
            length += len(contents[i])
            pos = k + len(marks[i])
        if "".join(out) + marked[pos:] == text:
            return text, spans
    spans, at = [], 0
    for c in contents:  # the template rewrote something: search in order
        k = text.find(c, at) if c else -1
        spans.append((k, k + len(c)) if k >= 0 else None)
        at = k + len(c) if k >= 0 else at
    return text, spans


def encode_chat(
    template: ChatTemplate,
    messages: list[dict[str, str]],
    tokenizer,
    add_generation_prompt: bool = True,
) -> list[int]:
    """Token ids of a conversation: the template's own markers (``<|im_start|>``...) become
    special ids, while every message's content is ordinary text, so a user who types
    ``<|im_end|>`` or ``<eos>`` cannot end a turn or a document."""
    text, spans = template.render_spans(messages, add_generation_prompt)
    specials = tokenizer.special_texts
    for m, span in zip(messages, spans, strict=True):
        content = m.get("content") or ""
        if span is None and any(s in content for s in specials):
            raise LmlabError(
                "a message contains special-token text that this chat template rewrites, so it "
                "cannot be kept apart from the template's markers; remove it from the message"
            )
    return tokenizer.encode_with_specials(text, [s for s in spans if s is not None])


def fit_chat(
    template: ChatTemplate, messages: list[dict[str, str]], tokenizer, max_tokens: int | None
) -> tuple[list[int], int]:
    """:func:`fit_messages` on token ids from :func:`encode_chat`: (ids, turns dropped)."""
    return fit_messages(
        template, messages, None, max_tokens, encode=lambda ms: encode_chat(template, ms, tokenizer)
    )


def jinja_template(source: str, bos_token: str = "", eos_token: str = "") -> ChatTemplate:
    """A pretrained model's template: Jinja2 source; replies end at its end-of-turn token."""
    return ChatTemplate(jinja=source, bos_token=bos_token, eos_token=eos_token, stop=[])


def template_from_dict(data: dict[str, Any], where: str) -> ChatTemplate:
    known = set(ChatTemplate.__dataclass_fields__)
    unknown = set(data) - known
    if unknown:
        raise LmlabError(
            f"{where}: unknown chat template keys {sorted(unknown)}; known: {sorted(known)}"
        )
    if data.get("jinja") and "stop" not in data:
        data = {**data, "stop": []}
    return ChatTemplate(**data)


def load_chat_template(run_dir: str | Path, config: dict[str, Any] | None = None) -> ChatTemplate:
    """The run's template: ``chat_template.json``, else ``[chat]`` in its config, else the default."""
    p = Path(run_dir) / TEMPLATE_FILE
    if p.is_file():
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise LmlabError(f"{p} is not valid JSON ({e}); fix or delete it") from None
        if not isinstance(data, dict):
            raise LmlabError(f"{p} must hold a JSON object; fix or delete it")
        return template_from_dict(data, str(p))
    if config and isinstance(config.get("chat"), dict):
        return template_from_dict(config["chat"], f"{run_dir}/config.toml [chat]")
    return DEFAULT


def fit_messages(
    template: ChatTemplate,
    messages: list[dict[str, str]],
    count_tokens,
    max_tokens: int | None,
    encode=None,
):
    """Render ``messages``, dropping the oldest non-system turns until the prompt has at most
    ``max_tokens`` tokens (a multi-turn chat outgrowing a small context keeps its latest
    turns). Returns (prompt, turns dropped), the prompt as ids if ``encode(messages)`` is
    given (see :func:`fit_chat`); an error if even the last turn does not fit."""
    msgs = list(messages)
    dropped = 0
    while True:
        prompt = template.render(msgs) if encode is None else encode(msgs)
        n = count_tokens(prompt) if encode is None else len(prompt)
        if max_tokens is None or n <= max_tokens:
            return prompt, dropped
        removable = [i for i, m in enumerate(msgs) if m["role"] not in ("system", "developer")]
        if len(removable) <= 1:
            raise LmlabError(
                f"the chat prompt has {n} tokens but the model takes at most "
                f"{max_tokens}; send a shorter message"
            )
        del msgs[removable[0]]
        dropped += 1
