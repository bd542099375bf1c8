"""Running a span model over windows, and answering questions with it."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch

from lmlab.tasks.qa.data import QAExample
from lmlab.tasks.qa.decode import best_answers
from lmlab.tasks.qa.model import SpanModel
from lmlab.tasks.qa.windows import Window, make_windows
from lmlab.tokenize import Tokenizer


def pad_batch(seqs: list[np.ndarray], pad_id: int) -> torch.Tensor:
    """Right-padded ids: a causal model's real positions never see the padding."""
    out = np.full((len(seqs), max(len(s) for s in seqs)), pad_id, dtype=np.int64)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = s
    return torch.from_numpy(out)


def length_batches(lengths: list[int], batch_tokens: int) -> list[list[int]]:
    """Indices grouped by length, at most ``batch_tokens`` padded tokens a batch."""
    order = np.argsort(lengths, kind="stable")
    batches, cur, longest = [], [], 0
    for i in order:
        n = lengths[i]
        if cur and max(longest, n) * (len(cur) + 1) > batch_tokens:
            batches.append(cur)
            cur, longest = [], 0
        cur.append(int(i))
        longest = max(longest, n)
    if cur:
        batches.append(cur)
    return batches


@torch.inference_mode()
def window_logits(
    model: SpanModel,
    windows: list[Window],
    pad_id: int,
    batch_tokens: int = 4096,
    bf16: bool = True,
    progress=None,
) -> list[np.ndarray]:
    """Start/end logits ``(len(ids), 2)`` of each window, in order (bf16 autocast on CPU)."""
    was = model.training
    model.eval()
    out: list[np.ndarray] = [np.zeros((0, 2), np.float32)] * len(windows)
    lengths = [len(w.ids) for w in windows]
    for batch in length_batches(lengths, batch_tokens):
        ids = pad_batch([windows[i].ids for i in batch], pad_id)
        n = torch.tensor([lengths[i] for i in batch])
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(ids, n).float().numpy()
        for row, i in enumerate(batch):
            out[i] = logits[row, : lengths[i]]
        if progress is not None:
            progress(len(batch))
    model.train(was)
    return out


def answer_examples(
    model: SpanModel,
    tokenizer: Tokenizer,
    examples: list[QAExample],
    max_len: int,
    stride: int,
    top: int = 1,
    n_best: int = 20,
    max_answer_tokens: int = 30,
    bf16: bool = True,
    progress: bool = False,
) -> list[list[dict]]:
    """The ``top`` answers of each question (an empty list where no window fits)."""
    from tqdm import tqdm

    windows = make_windows(examples, tokenizer, max_len, stride, labels=False)
    bar = tqdm(total=len(windows), desc="answer", unit="window", disable=not progress,
               dynamic_ncols=True)  # fmt: skip
    logits = window_logits(model, windows, tokenizer.eos_id, bf16=bf16, progress=bar.update)
    bar.close()
    per: dict[int, list[int]] = defaultdict(list)
    for i, w in enumerate(windows):
        per[w.example].append(i)
    out = []
    for k, ex in enumerate(examples):
        idx = per.get(k, [])
        out.append(best_answers([windows[i] for i in idx], [logits[i] for i in idx], ex.context,
                                top, n_best, max_answer_tokens))  # fmt: skip
    return out
