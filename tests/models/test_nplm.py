"""NPLM: windows and state, hand-written numpy gradients vs autograd, training on real text."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lmlab.errors import LmlabError
from lmlab.models import build_model
from lmlab.models.nplm import NPLM, NPLMConfig
from lmlab.models.nplm_numpy import NumpyNPLM
from lmlab.tokenize import WordTokenizer

DATA = Path(
    os.environ.get(
        "LMLAB_SHARED_DATA", Path(__file__).resolve().parents[2].parent / "shared" / "data"
    )
)


def timemachine(max_vocab: int = 2000) -> tuple[WordTokenizer, np.ndarray]:
    path = DATA / "timemachine" / "timemachine.txt"
    if not path.is_file():
        pytest.skip(f"shared data not found at {path} (set LMLAB_SHARED_DATA)")
    text = path.read_text(encoding="utf-8").lower()
    tok = WordTokenizer.train([text], max_vocab=max_vocab)
    return tok, tok.encode_array(text)


def test_each_position_sees_only_its_window() -> None:
    torch.manual_seed(0)
    m = NPLM(NPLMConfig(vocab_size=50, context=3, embed_dim=8, hidden_size=16, direct=True)).eval()
    ids = torch.randint(1, 50, (2, 12))
    full = m(ids)
    # Position 7 depends on ids[5..7] only: changing ids[4] or ids[8] leaves it alone.
    changed = ids.clone()
    changed[:, 4] = (changed[:, 4] % 49) + 1
    changed[:, 8] = (changed[:, 8] % 49) + 1
    torch.testing.assert_close(m(changed)[:, 7], full[:, 7])
    assert not torch.allclose(m(changed)[:, 6], full[:, 6])
    # The first positions are padded with <eos> (id 0) on the left.
    padded = m(torch.cat([torch.zeros(2, 3, dtype=torch.long), ids], 1))[:, 3:]
    torch.testing.assert_close(padded, full)
    # Incremental decoding with the state reproduces the full forward pass.
    state = m.new_state(2)
    steps = torch.cat([m(ids[:, i : i + 5], state) for i in range(0, 12, 5)], 1)
    torch.testing.assert_close(steps, full)


@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid"])
@pytest.mark.parametrize("direct", [False, True])
def test_numpy_gradients_match_autograd(activation: str, direct: bool) -> None:
    cfg = NPLMConfig(
        vocab_size=40, context=3, embed_dim=5, hidden_size=7, activation=activation, direct=direct
    )
    net = NumpyNPLM.init(cfg, seed=1)
    rng = np.random.default_rng(2)
    if direct:  # the init zeroes W; give it values so its gradient path is exercised
        net.params["direct.weight"] = rng.standard_normal(net.params["direct.weight"].shape) * 0.1
    X = rng.integers(0, 40, (32, 3))
    X[0] = X[1] = [4, 4, 9]  # repeated words: the embedding gradient must accumulate
    y = rng.integers(0, 40, 32)
    loss, cache = net.forward(X, y)
    grads = net.backward(cache, y)

    ref = NPLM(cfg).double()
    ref.load_tensors({k: torch.tensor(v) for k, v in net.params.items()})
    # Feed the windows as sequences of length 1 whose state is the preceding context.
    state = ref.new_state(32)
    state.history = torch.tensor(np.concatenate([np.zeros((32, 1), dtype=np.int64), X[:, :-1]], 1))
    logits = ref(torch.tensor(X[:, -1:]), state)[:, 0]
    torch_loss = F.cross_entropy(logits, torch.tensor(y))
    torch_loss.backward()
    assert loss == pytest.approx(torch_loss.item(), abs=1e-12)
    named = dict(ref.named_parameters())
    assert set(grads) == set(named)
    for k, g in grads.items():
        np.testing.assert_allclose(g, named[k].grad.numpy(), atol=1e-6, rtol=0, err_msg=k)


def test_numpy_sgd_training_lowers_loss_on_real_text() -> None:
    tok, ids = timemachine(500)
    net = NumpyNPLM.init(
        NPLMConfig(vocab_size=tok.vocab_size, context=3, embed_dim=16, hidden_size=32), seed=0
    )
    valid = ids[-2000:]
    before = net.evaluate(valid)
    losses = net.train_sgd(ids[:-2000], steps=300, batch_size=64, lr=0.5)
    assert np.mean(losses[-50:]) < np.mean(losses[:50]) - 0.5
    assert net.evaluate(valid) < before - 0.5
    # The trained weights work as a torch model through the common protocol.
    logits = net.to_torch()(torch.from_numpy(valid[:100]).view(1, -1))
    torch_loss = F.cross_entropy(logits[0, :-1], torch.from_numpy(valid[1:100]))
    assert np.isfinite(torch_loss.item())


def test_torch_nplm_trains_end_to_end_on_real_text() -> None:
    tok, ids = timemachine(2000)
    torch.manual_seed(0)
    model = build_model(
        "nplm",
        {
            "vocab_size": tok.vocab_size,
            "context": 4,
            "embed_dim": 32,
            "hidden_size": 64,
            "direct": True,
        },
    )
    assert isinstance(model, NPLM) and model.num_params() > 0
    train, valid = torch.from_numpy(ids[:-3000]), torch.from_numpy(ids[-3000:])

    def val_loss() -> float:
        model.eval()
        with torch.no_grad():
            logits = model(valid[:-1].view(1, -1))[0]
        model.train()
        return F.cross_entropy(logits, valid[1:]).item()

    before = val_loss()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(150):
        starts = torch.randint(0, len(train) - 65, (16,), generator=g)
        batch = torch.stack([train[s : s + 65] for s in starts.tolist()])
        logits = model(batch[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, tok.vocab_size), batch[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = val_loss()
    assert after < before - 1.0, (before, after)
    # Save and reload through the tensors hook.
    clone = build_model("nplm", dict(model.config.__dict__))
    clone.load_tensors(model.tensors_for_save())
    model.eval()
    clone.eval()
    torch.testing.assert_close(clone(valid[:50].view(1, -1)), model(valid[:50].view(1, -1)))


def test_bad_config_is_a_user_error() -> None:
    with pytest.raises(LmlabError, match="activation"):
        NPLMConfig(activation="gelu")
    with pytest.raises(LmlabError, match="context"):
        NPLMConfig(context=0)
