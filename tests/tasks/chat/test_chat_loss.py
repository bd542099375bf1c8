"""The assistant-only loss: exactly the assistant's tokens are scored, each from the tokens
before it; the user and system turns never enter the loss."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from chat_synth import conversations

from lmlab.models.transformer import Transformer, TransformerConfig
from lmlab.serve.chat_template import ChatTemplate
from lmlab.tasks.chat.loss import encode_conversations, pad, response_loss, response_nll
from lmlab.tokenize import BPETokenizer

CHATML = ChatTemplate(system="<|im_start|>system\n{content}<|im_end|>\n",
                      user="<|im_start|>user\n{content}<|im_end|>\n",
                      assistant="<|im_start|>assistant\n{content}<|im_end|>\n",
                      generation_prompt="<|im_start|>assistant\n")  # fmt: skip


@pytest.fixture(scope="module")
def setup():
    text = [" ".join(m["content"] for m in c) for c in conversations(40, 0)]
    tok = BPETokenizer.train(text, vocab_size=300)
    torch.manual_seed(0)
    cfg = TransformerConfig(vocab_size=tok.vocab_size, context_length=256, n_layer=2, n_head=2,
                            d_model=32, block="llama")  # fmt: skip
    return tok, Transformer(cfg).eval()


def test_loss_is_the_mean_over_assistant_tokens_only(setup):
    tok, model = setup
    enc = encode_conversations(CHATML, conversations(3, 1), tok, 256, "t")
    ids, mask = pad(enc, tok.eos_id)
    with torch.no_grad():
        nll, n = response_nll(model, ids, mask)
        logits = model(ids)
    every = F.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:], reduction="none")
    take = mask[:, 1:]
    assert n == int(take.sum()) == sum(e.targets for e in enc)
    assert float(nll) == pytest.approx(float(every[take].sum()), rel=1e-5)
    # the scored targets are the assistant replies (and their end markers), nothing else
    scored = tok.decode(ids[0, 1:][take[0]].tolist())
    assert "The" in scored and "What is" not in scored and "Answer in" not in scored
    assert float(every[~take & (ids[:, 1:] != tok.eos_id)].sum()) > 0  # other tokens had loss


def test_user_and_system_tokens_do_not_change_the_loss(setup):
    tok, model = setup
    conv = conversations(1, 2)[0]
    # a later user turn (after the last reply) and another system message change only
    # tokens that are not scored and come after (user) or are not part of any target
    longer = [*conv, {"role": "user", "content": "And the zebra?"}]
    a = encode_conversations(CHATML, [conv], tok, 256, "t")
    b = encode_conversations(CHATML, [longer], tok, 256, "t")
    la, na = response_loss(model, a, tok.eos_id)
    lb, nb = response_loss(model, b, tok.eos_id)
    assert na == nb and la == pytest.approx(lb, rel=1e-6)


def test_long_conversations_are_cut_with_a_counted_warning(setup):
    tok, _ = setup
    full = encode_conversations(CHATML, conversations(3, 3), tok, 256, "t")
    first_reply_end = max(e.mask.index(1) for e in full) + 3
    with pytest.warns(UserWarning, match="3 of 3 conversations longer than"):
        enc = encode_conversations(CHATML, conversations(3, 3), tok, first_reply_end, "t")
    assert len(enc) == 3 and all(len(e.ids) == first_reply_end for e in enc)
    assert all(0 < e.targets < f.targets for e, f in zip(enc, full, strict=True))
    with pytest.warns(UserWarning, match="3 conversations left out: no assistant token"):
        assert encode_conversations(CHATML, conversations(3, 3), tok, 10, "t") == []
