from __future__ import annotations

import torch

from lmlab.models import RNNConfig, RNNLanguageModel, build_model


def test_reference_configuration_size() -> None:
    # Embedding(10000, 16) -> LSTM(64) -> LSTM(64) -> Dense(10000): the classic network
    m = build_model("rnn", {"vocab_size": 10000, "embed_dim": 16, "hidden_size": 64, "n_layer": 2})
    emb = 10000 * 16
    lstm1 = 4 * (64 * (16 + 64) + 2 * 64)  # PyTorch keeps two bias vectors per gate
    lstm2 = 4 * (64 * (64 + 64) + 2 * 64)
    dense = 64 * 10000 + 10000
    assert m.num_params() == emb + lstm1 + lstm2 + dense


def test_carried_state_matches_full_sequence() -> None:
    for cell in ("lstm", "gru"):
        torch.manual_seed(0)
        m = RNNLanguageModel(
            RNNConfig(vocab_size=40, embed_dim=8, hidden_size=16, cell=cell)
        ).eval()
        ids = torch.randint(0, 40, (2, 30))
        full = m(ids)
        state = m.new_state(2)
        steps = torch.cat(
            [m(ids[:, :7], state)] + [m(ids[:, i : i + 1], state) for i in range(7, 30)], 1
        )
        assert torch.allclose(full, steps, atol=1e-5)


def test_weight_tying_with_projection() -> None:
    m = RNNLanguageModel(RNNConfig(vocab_size=40, embed_dim=8, hidden_size=16, tie_embeddings=True))
    assert m.head.weight is m.embed.weight
    assert m(torch.zeros(1, 5, dtype=torch.long)).shape == (1, 5, 40)


def test_adaptive_softmax_is_a_normalised_distribution_and_trains() -> None:
    import torch.nn.functional as F

    torch.manual_seed(0)
    m = RNNLanguageModel(
        RNNConfig(vocab_size=200, embed_dim=16, hidden_size=16, adaptive_cutoffs=[20, 80])
    )
    ids = torch.randint(0, 200, (3, 12))
    logp = m(ids)
    assert torch.allclose(logp.exp().sum(-1), torch.ones(3, 12), atol=1e-5)
    # the loss it computes itself equals cross-entropy on its full log-probabilities
    loss = m(ids[:, :-1], targets=ids[:, 1:])
    assert torch.allclose(
        loss, F.nll_loss(m(ids[:, :-1]).reshape(-1, 200), ids[:, 1:].reshape(-1)), atol=1e-5
    )
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    first = None
    for _ in range(30):
        loss = m(ids[:, :-1], targets=ids[:, 1:])
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first - 1.0
    # carried state matches the full sequence here too
    state = m.new_state(3)
    steps = torch.cat([m(ids[:, i : i + 1], state) for i in range(12)], 1)
    assert torch.allclose(steps, m(ids), atol=1e-5)
