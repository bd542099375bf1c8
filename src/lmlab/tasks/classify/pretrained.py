"""Task runs on a pretrained Transformer (``--model lm`` and ``--model prompt``): building the
model from its base, and opening such a run again.

The base is anything :func:`lmlab.train.finetune.read_base` reads (``builtin:smollm2``, a
``.gguf``, a Hugging Face folder, an lmlab Transformer run). The run keeps the base's
tokenizer (``tokenizer.json``) and records the base in ``[task.base]`` (source, resolved path,
format, name and a fingerprint of its weights), as ``lmlab train --init-from`` does. What
``model.safetensors`` holds:

* ``lm``, fully fine-tuned: every weight (the run stands alone; the base is not read again);
* ``lm`` with LoRA: the head and the adapters; the base is read again from ``[task.base]``
  when the run is opened (an error if it is gone, a warning if its fingerprint changed);
* ``prompt``: nothing is trained, so there is no ``model.safetensors``; the base is read again.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from lmlab.config import to_dict
from lmlab.errors import LmlabError
from lmlab.tasks.classify.lm import (
    LMClassifier,
    PretrainedClassifier,
    PromptClassifier,
    label_word_ids,
)
from lmlab.tasks.classify.models import build_classifier
from lmlab.tasks.datasets import TaskData
from lmlab.tasks.prompting import draw_demonstrations, render_prefix, resolve_prompt

PRETRAINED = ("lm", "prompt")
# [train] defaults for fine-tuning a pretrained Transformer, where the config sets none.
LM_TRAIN = {
    "epochs": 1, "batch_size": 32, "warmup": 30, "grad_clip": 1.0, "weight_decay": 0.01,
    "max_len": 128, "eval_every": 100, "patience": 5, "max_validation": 1000,
}  # fmt: skip
LR_FULL, LR_LORA = 3e-5, 5e-4
# [model] keys that shape the prompt rather than the network.
PROMPT_KEYS = ("instruction", "template", "label_words")


def train_defaults(family: str, model_cfg: dict[str, Any]) -> dict[str, Any]:
    if family == "prompt":  # the validation split is only reported: a sample is enough
        return {"max_validation": LM_TRAIN["max_validation"]}
    return {**LM_TRAIN, "lr": LR_LORA if model_cfg.get("lora") else LR_FULL}


def build_pretrained(
    family: str,
    model_cfg: dict[str, Any],
    task: dict[str, Any],
    data: TaskData,
    log: Callable[[str], None],
) -> tuple[PretrainedClassifier, Any, dict[str, Any]]:
    """The classifier with the base's weights (and fresh LoRA adapters, a head initialised
    from the label words, or k demonstrations, as ``model_cfg`` says), the base's tokenizer,
    and the ``[task.base]`` record."""
    from lmlab.train.finetune import read_base

    spec = task.get("base")
    if not isinstance(spec, str) or not spec:
        raise LmlabError(
            f"--model {family} needs --base: builtin:smollm2, a .gguf, an HF folder or a run"
        )
    try:
        base = read_base(spec)
    except LmlabError as e:  # read_base speaks of lmlab train's flag
        raise LmlabError(str(e).replace("--init-from", "--base")) from None
    if base.family != "transformer":
        raise LmlabError(
            f"--base {spec} is a {base.family} model; --model {family} needs a Transformer"
        )
    cfg = dict(model_cfg)
    given = {k: cfg.pop(k, None) for k in PROMPT_KEYS}
    prompt = resolve_prompt(data.name, data.labels, *given.values())
    if family == "lm":  # the instruction only where one is asked for: it costs tokens per text
        cfg["prefix"] = given["instruction"] or ""
    cfg.update(vocab_size=base.config.vocab_size, n_classes=len(data.labels), base=to_dict(base.config),
               template=prompt.template, label_words=prompt.label_words)  # fmt: skip
    if family == "prompt":
        shots, seed = int(cfg.get("shots", 0)), int(cfg.get("shot_seed", 1))
        demos = draw_demonstrations(data.train, data.labels, shots, seed)
        cfg.update(prefix=render_prefix(prompt, data.labels, demos), shots=shots, shot_seed=seed,
                   demonstrations=[list(d) for d in demos])  # fmt: skip
    model = build_classifier(family, cfg)
    model.load_base(base.tensors)
    words = label_word_ids(base.tokenizer, prompt.label_words)
    if isinstance(model, PromptClassifier):
        model.set_label_words(words, prefix_ids(base.tokenizer, model.config.prefix))
    elif isinstance(model, LMClassifier):
        model.init_head(words if model.config.head_init == "label_words" else None)
        if model.lora:
            model.add_lora()
    record = dict(base.record)
    log(f"base {record['name']} ({record['format']}, fingerprint {record['fingerprint']}): "
        f"{base.config.n_layer} layers, d_model {base.config.d_model}, vocabulary {base.config.vocab_size:,}")  # fmt: skip
    return model, base.tokenizer, record


def prefix_ids(tokenizer: Any, prefix: str) -> list[int]:
    """The prefix's tokens, as :func:`lmlab.tasks.classify.batches.encode_texts` puts them."""
    return [int(i) for i in tokenizer.encode(prefix)] if prefix else []


def open_pretrained_model(cfg: dict[str, Any], run_dir: Path) -> PretrainedClassifier:
    """The run's model, from ``model.safetensors`` alone (full fine-tuning) or from its base
    read again plus what the run trained (LoRA) or chose (prompt)."""
    from lmlab.run import MODEL_FILE, load_tensors_checked
    from lmlab.train.finetune import reopen_base

    model_cfg = dict(cfg["model"])
    family = model_cfg.pop("family")
    model = build_classifier(family, model_cfg)
    base_rec = cfg["task"].get("base")
    if not isinstance(base_rec, dict):
        raise LmlabError(f"{run_dir}: [task.base] is missing; the run is damaged (train it again)")
    needs_base = family == "prompt" or bool(model_cfg.get("lora"))
    base = reopen_base(base_rec, run_dir) if needs_base else None
    if base is not None:
        model.load_base(base.tensors)
    words = label_word_ids(base.tokenizer, model.config.label_words) if base is not None else None
    if isinstance(model, PromptClassifier) and base is not None:
        model.set_label_words(words or [], prefix_ids(base.tokenizer, model.config.prefix))
    elif isinstance(model, LMClassifier):
        if model.lora:
            model.add_lora()
        model.load_weights(load_tensors_checked(run_dir / MODEL_FILE))
    model.eval()
    return model


def card_lines(model: PretrainedClassifier, base: dict[str, Any], n_train: int | None) -> list[str]:
    c = model.config
    lines = [
        f"- base: `{base['source']}` ({base['name']}, {base['format']}, fingerprint {base['fingerprint']})"
    ]
    lines.append(f"- prompt: template {c.template!r}, label words {', '.join(c.label_words)}")
    if isinstance(model, PromptClassifier):
        lines.append(f"- {c.shots} demonstration(s) drawn with seed {c.shot_seed} (balanced over labels); "
                     "nothing trained: scores are the label words' log-likelihoods")  # fmt: skip
    else:
        how = (f"LoRA rank {c.lora.get('rank', 8)}, alpha {c.lora.get('alpha', 16.0)} on "
               f"{', '.join(c.lora.get('targets', []))}") if c.lora else "fully fine-tuned"  # fmt: skip
        lines.append(f"- {how}; pooling {c.pooling}; head from {c.head_init.replace('_', ' ')}; "
                     f"bf16 autocast {'on' if c.bf16 else 'off'}")  # fmt: skip
        if n_train is not None:
            lines.append(f"- trained on a seeded, stratified sample of {n_train:,} training texts")
    return lines
