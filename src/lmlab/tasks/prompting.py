"""Prompts for classifying with a language model: instruction, template, label words, shots.

A prompt is ``instruction + demonstrations + template(text)``. A demonstration is a training
example written in the template and followed by its label word (``Review: ...\\nSentiment:
positive``); k of them, drawn from the training split with a seed and balanced over the
labels (k // C per class, the remainder to classes drawn at random), in a shuffled order.
The model's next word after the query's template is then read as its answer: see
:class:`lmlab.tasks.classify.lm.PromptClassifier`. The built-in data sets have their own
wording (:data:`DEFAULTS`); other data gets a generic one, and every part can be set.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lmlab.errors import LmlabError
from lmlab.tasks.data import Examples


@dataclass
class PromptSpec:
    instruction: str  # before everything, ends with a blank line
    template: str  # holds {text}; the label word follows it
    label_words: list[str]  # one per class, in the data's label order


_SENTIMENT = ["negative", "positive"]
DEFAULTS: dict[str, PromptSpec] = {
    "sst2": PromptSpec(
        "Classify the sentiment of each movie review as positive or negative.\n\n",
        "Review: {text}\nSentiment:", _SENTIMENT,
    ),
    "agnews": PromptSpec(
        "Classify each news article by its topic: World, Sports, Business or Technology.\n\n",
        "Article: {text}\nTopic:", ["World", "Sports", "Business", "Technology"],
    ),
    "chnsenticorp": PromptSpec(
        "Classify the sentiment of each hotel review as positive or negative.\n\n",
        "Review: {text}\nSentiment:", _SENTIMENT,
    ),
    "waimai": PromptSpec(
        "Classify the sentiment of each food delivery review as positive or negative.\n\n",
        "Review: {text}\nSentiment:", _SENTIMENT,
    ),
}  # fmt: skip


def default_prompt(data_name: str, labels: list[str]) -> PromptSpec:
    """The built-in data set's prompt, else a generic one whose label words are the labels."""
    spec = DEFAULTS.get(data_name)
    if spec is not None and len(spec.label_words) == len(labels):
        return PromptSpec(spec.instruction, spec.template, list(spec.label_words))
    names = ", ".join(labels)
    return PromptSpec(
        f"Classify each text as one of: {names}.\n\n", "Text: {text}\nLabel:", list(labels)
    )


def resolve_prompt(
    data_name: str,
    labels: list[str],
    instruction: str | None = None,
    template: str | None = None,
    label_words: list[str] | None = None,
) -> PromptSpec:
    """The default prompt with the parts the user set replaced, checked."""
    spec = default_prompt(data_name, labels)
    if instruction is not None:
        spec.instruction = instruction
    if template is not None:
        spec.template = template
    if label_words is not None:
        spec.label_words = list(label_words)
    if "{text}" not in spec.template:
        raise LmlabError(f"the prompt template must contain {{text}}, got {spec.template!r}")
    if len(spec.label_words) != len(labels):
        raise LmlabError(
            f"{len(spec.label_words)} label words for {len(labels)} labels ({', '.join(labels)}); "
            "give one word per label, in that order"
        )
    if len(set(spec.label_words)) != len(spec.label_words):
        raise LmlabError(f"label words must differ, got {spec.label_words}")
    return spec


def draw_demonstrations(
    train: Examples, labels: list[str], k: int, seed: int
) -> list[tuple[str, str]]:
    """``k`` (text, label) pairs from ``train``, balanced over ``labels``, in a seeded
    random order."""
    if k < 0:
        raise LmlabError(f"--shots must be 0 or more, got {k}")
    if k == 0:
        return []
    rng = np.random.default_rng(seed)
    per = {lab: k // len(labels) for lab in labels}
    for i in rng.choice(len(labels), size=k % len(labels), replace=False):
        per[labels[int(i)]] += 1
    by_label: dict[str, list[int]] = {lab: [] for lab in labels}
    for i, lab in enumerate(train.labels):
        if lab in by_label:
            by_label[lab].append(i)
    picked: list[int] = []
    for lab, n in per.items():
        pool = by_label[lab]
        if n > len(pool):
            raise LmlabError(
                f"{n} demonstrations of {lab!r} wanted, the training split has {len(pool)}"
            )
        picked += [pool[int(j)] for j in rng.choice(len(pool), size=n, replace=False)]
    order = rng.permutation(len(picked))
    return [(train.texts[picked[j]], train.labels[picked[j]]) for j in order]


def render_prefix(spec: PromptSpec, labels: list[str], demos: list[tuple[str, str]]) -> str:
    """The instruction and each demonstration in the template with its label word."""
    word = dict(zip(labels, spec.label_words, strict=True))
    parts = [spec.instruction]
    for text, label in demos:
        parts.append(spec.template.replace("{text}", text) + " " + word[label].strip() + "\n\n")
    return "".join(parts)
