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
