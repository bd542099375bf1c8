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
        if self.jinja:
            return _render_jinja(self, messages, add_generation_prompt)
        parts = [self.prefix]
        if self.default_system and not any(m["role"] == "system" for m in messages):
            parts.append(self.system.replace("{content}", self.default_system))
        for m in messages:
            role = m["role"]
            if role == "developer":  # OpenAI's newer name for the system role
                role = "system"
            if role not in ROLES:
                raise LmlabError(
                    f"chat role {m['role']!r} is not supported; use system, user or assistant"
                )
            parts.append(getattr(self, role).replace("{content}", m.get("content") or ""))
        if add_generation_prompt:
            parts.append(self.generation_prompt)
        return "".join(parts)

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
) -> tuple[str, int]:
    """Render ``messages``, dropping the oldest non-system turns until the prompt has at most
    ``max_tokens`` tokens (a multi-turn chat outgrowing a small context keeps its latest
    turns). Returns (prompt, turns dropped); an error if even the last turn does not fit."""
    msgs = list(messages)
    dropped = 0
    while True:
        prompt = template.render(msgs)
        if max_tokens is None or count_tokens(prompt) <= max_tokens:
            return prompt, dropped
        removable = [i for i, m in enumerate(msgs) if m["role"] not in ("system", "developer")]
        if len(removable) <= 1:
            raise LmlabError(
                f"the chat prompt has {count_tokens(prompt)} tokens but the model takes at most "
                f"{max_tokens}; send a shorter message"
            )
        del msgs[removable[0]]
        dropped += 1
