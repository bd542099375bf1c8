"""Encoder-decoder Transformer and recurrent seq2seq: the cached decoder gives the
teacher-forced logits, padding does not leak, tied tensors save once and load back."""

from __future__ import annotations

import pytest
import torch

from lmlab.errors import LmlabError
from lmlab.models.encoder_decoder import EncoderDecoder, EncoderDecoderConfig
from lmlab.models.seq2seq_rnn import Seq2SeqRNN, Seq2SeqRNNConfig


def tiny(kind: str, block: str = "gpt2"):
    torch.manual_seed(0)
    if kind == "rnn":
        return Seq2SeqRNN(Seq2SeqRNNConfig(src_vocab_size=23, tgt_vocab_size=19, embed_dim=16,
                                           hidden=24, attn_dim=12, dropout=0.0,
                                           context_length=32)).eval()  # fmt: skip
    copy = kind == "copy"  # a pointer-generator needs one vocabulary
    cfg = EncoderDecoderConfig(src_vocab_size=23, tgt_vocab_size=23 if copy else 19, d_model=32,
                               n_head=4, n_enc_layer=2, n_dec_layer=2, block=block, dropout=0.0,
                               context_length=32, copy=copy)  # fmt: skip
    return EncoderDecoder(cfg).eval()


MODELS = [("transformer", "gpt2"), ("transformer", "llama"), ("copy", "gpt2"), ("rnn", "gpt2")]


def batch():
    g = torch.Generator().manual_seed(1)
    src = torch.randint(1, 23, (3, 7), generator=g)
    mask = torch.ones(3, 7, dtype=torch.bool)
    mask[1, 5:] = False
    mask[2, 3:] = False
    tgt = torch.randint(1, 19, (3, 9), generator=g)
    return src, mask, tgt


@pytest.mark.parametrize(("kind", "block"), MODELS)
def test_cached_step_by_step_logits_equal_teacher_forced(kind, block):
    model = tiny(kind, block)
    src, mask, tgt = batch()
    with torch.no_grad():
        full = model(src, mask, tgt)
        state = model.start(src, mask)
        steps = [model.step(tgt[:, i : i + 1], state) for i in range(tgt.shape[1])]
        # a chunk after cached tokens, too
        state2 = model.start(src, mask)
        chunks = [model.step(tgt[:, :4], state2), model.step(tgt[:, 4:], state2)]
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(torch.cat(chunks, 1), full, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(("kind", "block"), MODELS)
def test_padding_does_not_change_a_row(kind, block):
    model = tiny(kind, block)
    src, mask, tgt = batch()
    with torch.no_grad():
        padded = model(src, mask, tgt)[2]
        alone = model(src[2:3, :3], mask[2:3, :3], tgt[2:3])[0]
        garbage = src.clone()
        garbage[2, 3:] = 5  # other tokens behind the mask
        changed = model(garbage, mask, tgt)[2]
    torch.testing.assert_close(padded, alone, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(padded, changed, atol=1e-5, rtol=1e-4)


def test_select_reorders_state_rows():
    model = tiny("transformer")
    src, mask, tgt = batch()
    with torch.no_grad():
        state = model.start(src, mask)
        model.step(tgt[:, :3], state)
        rows = torch.tensor([2, 2, 0])
        picked = state.select(rows)
        a = model.step(tgt[rows, 3:4], picked)
        b = model(src[rows], mask[rows], tgt[rows, :4])[:, 3:4]
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_shared_embeddings_saved_once_and_loaded():
    cfg = EncoderDecoderConfig(src_vocab_size=30, tgt_vocab_size=30, d_model=32, n_head=2,
                               n_enc_layer=1, n_dec_layer=1, shared_embeddings=True)  # fmt: skip
    model = EncoderDecoder(cfg)
    saved = model.tensors_for_save()
    assert "src_emb.weight" in saved
    assert "tgt_emb.weight" not in saved and "head.weight" not in saved
    other = EncoderDecoder(cfg)
    other.load_tensors(saved)
    assert torch.equal(other.head.weight, model.src_emb.weight)


def test_runs_saved_before_scaled_embeddings_load_as_they_were_trained():
    """A ``[model]`` table without ``scale_embeddings`` is an older run: unscaled embeddings."""
    from dataclasses import asdict

    from lmlab.tasks.translate.run import build_saved_model

    torch.manual_seed(0)
    old_cfg = EncoderDecoderConfig(src_vocab_size=23, tgt_vocab_size=19, d_model=32, n_head=4,
                                   n_enc_layer=1, n_dec_layer=1, dropout=0.0,
                                   context_length=32, scale_embeddings=False)  # fmt: skip
    old = EncoderDecoder(old_cfg).eval()
    table = {"family": "transformer", **asdict(old_cfg)}
    del table["scale_embeddings"]
    loaded = build_saved_model(table).eval()
    loaded.load_tensors(old.tensors_for_save())
    src, mask, tgt = batch()
    assert torch.allclose(loaded(src, mask, tgt), old(src, mask, tgt))
    rescaled = build_saved_model({**table, "scale_embeddings": True}).eval()
    rescaled.load_tensors(old.tensors_for_save())
    assert not torch.allclose(rescaled(src, mask, tgt), old(src, mask, tgt), atol=1e-3)


def test_scaled_embeddings_start_at_unit_scale():
    """Vaswani's scheme: token embeddings N(0, 1/d) times sqrt(d); GPT-2's: N(0, 0.02)."""
    model = EncoderDecoder(EncoderDecoderConfig(src_vocab_size=500, tgt_vocab_size=500,
                                                d_model=64, n_head=4, n_enc_layer=1,
                                                n_dec_layer=1, dropout=0.0))  # fmt: skip
    tok = model.src_emb.weight * model.embed_scale
    assert 0.9 < float(tok.std()) < 1.1
    gpt2 = EncoderDecoder(EncoderDecoderConfig(src_vocab_size=500, tgt_vocab_size=500,
                                               d_model=64, n_head=4, n_enc_layer=1,
                                               n_dec_layer=1, scale_embeddings=False))  # fmt: skip
    assert gpt2.embed_scale == 1.0 and float(gpt2.src_emb.weight.std()) < 0.03


def test_copy_output_is_a_distribution_that_can_only_copy_when_the_gate_closes():
    model = tiny("copy")
    src, mask, tgt = batch()
    with torch.no_grad():
        lp = model(src, mask, tgt)
        torch.testing.assert_close(lp.exp().sum(-1), torch.ones(3, 9), atol=1e-5, rtol=0)
        model.copy_head.gate.bias.fill_(-40.0)  # all mass to the copy distribution
        copied = model(src, mask, tgt).exp()
        model.copy_head.gate.bias.fill_(40.0)  # all mass to the vocabulary
        generated = model(src, mask, tgt)
        state = model.start(src, mask)
        head = model.head(model.dec_ln(model.decoder_states(tgt, state)))
    for row in range(3):  # only the row's unmasked source tokens can be copied
        ids = src[row][mask[row]].unique()
        torch.testing.assert_close(copied[row][:, ids].sum(-1), torch.ones(9), atol=1e-5, rtol=0)
    torch.testing.assert_close(generated, head.log_softmax(-1), atol=1e-4, rtol=0)


def test_bad_configs_are_one_line_errors():
    with pytest.raises(LmlabError, match="one vocabulary"):
        EncoderDecoderConfig(src_vocab_size=10, tgt_vocab_size=11, shared_embeddings=True)
    with pytest.raises(LmlabError, match="one vocabulary"):
        EncoderDecoderConfig(src_vocab_size=10, tgt_vocab_size=11, copy=True)
    with pytest.raises(LmlabError, match="divisible"):
        EncoderDecoderConfig(d_model=30, n_head=4)
    model = tiny("transformer")
    src = torch.ones(1, 40, dtype=torch.long)
    with pytest.raises(LmlabError, match="context length"):
        model.start(src, torch.ones(1, 40, dtype=torch.bool))


@pytest.mark.parametrize(("kind", "block"), MODELS)
def test_cross_attention_weights_are_distributions_over_real_source_tokens(kind, block):
    model = tiny(kind, block)
    src, mask, tgt = batch()
    a = model.cross_attention(src, mask, tgt)
    assert a.shape[0] == 3 and a.shape[2:] == (9, 7)
    torch.testing.assert_close(a.sum(-1), torch.ones(a.shape[:-1]))
    assert float(a[2, :, :, 3:].abs().sum()) == 0.0  # padding gets no attention
    assert float(a[0].std()) > 0
