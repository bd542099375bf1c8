"""Assistant-only loss: conversations as token ids with a 0/1 mask on the assistant's
tokens (:func:`lmlab.tasks.dialogue.assistant_mask`), and the summed negative
log-likelihood of exactly those tokens.

Token ``k`` is predicted from the hidden state at ``k - 1``; only the positions whose
*target* is an assistant token go through the output layer (the head of a 49,152-token
vocabulary is the largest matrix product of a small model, and the prompt's positions need
none), so the loss and its cost ignore the user and system turns entirely.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lmlab.tasks.dialogue import assistant_mask


@dataclass
class Encoded:
    ids: list[int]
    mask: list[int]  # 1 on assistant tokens

    @property
    def targets(self) -> int:
        return sum(self.mask[1:])


def encode_conversations(
    template, conversations: list[list[dict[str, str]]], tokenizer, max_len: int, where: str
) -> list[Encoded]:
    """Every conversation as ids and mask, cut to ``max_len`` tokens (counted warning);
    one left with no assistant token after the cut is left out (counted warning)."""
    out, cut, dropped = [], 0, 0
    for msgs in conversations:
        ids, mask = assistant_mask(template, msgs, tokenizer)
        if len(ids) > max_len:
            cut += 1
            ids, mask = ids[:max_len], mask[:max_len]
        e = Encoded(ids, mask)
        if e.targets == 0:
            dropped += 1
            continue
        out.append(e)
    if cut:
        warnings.warn(f"{where}: {cut:,} of {len(conversations):,} conversations longer than "
                      f"{max_len} tokens were cut to {max_len}", stacklevel=2)  # fmt: skip
    if dropped:
        warnings.warn(f"{where}: {dropped:,} conversations left out: no assistant token within "
                      f"the first {max_len} tokens", stacklevel=2)  # fmt: skip
    return out


def pad(batch: list[Encoded], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(ids, mask)`` right-padded to the longest (a causal model never sees the padding
    from a real position; the mask is 0 there)."""
    n = max(len(e.ids) for e in batch)
    ids = torch.full((len(batch), n), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), n), dtype=torch.bool)
    for r, e in enumerate(batch):
        ids[r, : len(e.ids)] = torch.tensor(e.ids)
        mask[r, : len(e.mask)] = torch.tensor(e.mask, dtype=torch.bool)
    return ids, mask


def response_nll(
    model, ids: torch.Tensor, mask: torch.Tensor, bf16: bool = False
) -> tuple[torch.Tensor, int]:
    """Summed NLL (nats) of the tokens where ``mask`` is 1, each predicted from the tokens
    before it, and how many there are."""
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        hidden = model.hidden_states(ids)
        take = mask[:, 1:]
        logits = model.head(hidden[:, :-1][take])
    targets = ids[:, 1:][take]
    nll = F.cross_entropy(logits.float(), targets, reduction="sum")
    return nll, int(targets.numel())


@torch.no_grad()
def response_loss(
    model, data: list[Encoded], pad_id: int, batch_size: int = 8, bf16: bool = False
) -> tuple[float, int]:
    """Mean NLL per assistant token over ``data`` and the number of tokens (eval mode;
    batches of similar lengths)."""
    was = model.training
    model.eval()
    order = sorted(range(len(data)), key=lambda i: len(data[i].ids))
    total, n = 0.0, 0
    for s in range(0, len(order), batch_size):
        ids, mask = pad([data[i] for i in order[s : s + batch_size]], pad_id)
        nll, k = response_nll(model, ids, mask, bf16)
        total, n = total + float(nll), n + k
    model.train(was)
    return total / max(n, 1), n
