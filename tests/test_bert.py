"""companion.models.bert against Hugging Face ``transformers.BertModel`` on the same all-MiniLM-L6-v2
files (the companion.hub asset)."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from companion.models.bert import (
    BertConfig,
    BertForPreTraining,
    BertModel,
    batch_encode,
    load_bert,
    mean_pool,
    mlm_mask,
    nsp_pairs,
    sentence_embeddings,
)

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def minilm():
    return load_bert()


@pytest.fixture(scope="module")
def hf_minilm():
    from companion import hub

    folder = hub.fetch("minilm")
    model = transformers.BertModel.from_pretrained(str(folder)).eval()
    tokenizer = transformers.BertTokenizerFast.from_pretrained(str(folder))
    return model, tokenizer


@pytest.fixture(scope="module")
def sentences():
    from tests._tokenizer_refs import lines

    picked = [line for line in lines() if line.strip()][:56]
    extra = [
        "The quick brown fox jumps over the lazy dog.",
        "机器学习是人工智能的一个分支。",
        "Emoji: 😀🤖👍🏽 and accents: café, naïve, Ångström",
        "word " * 400,  # longer than max_length: truncated, [SEP] kept
        "a",
    ]
    return picked + extra


def test_wordpiece_batch_equals_hugging_face(minilm, hf_minilm, sentences):
    ids, mask = batch_encode(minilm[1], sentences, max_length=128)
    expected = hf_minilm[1](sentences, padding=True, truncation=True, max_length=128, return_tensors="pt")
    assert torch.equal(ids, expected["input_ids"])
    assert torch.equal(mask, expected["attention_mask"])


@pytest.mark.parametrize("fused", [True, False])
def test_last_hidden_state_and_pooler_equal_hugging_face(minilm, hf_minilm, sentences, fused):
    model = minilm[0] if fused else load_bert(fused_attention=False)[0]
    ids, mask = batch_encode(minilm[1], sentences, max_length=128)
    types = torch.zeros_like(ids)
    types[::2, 5:] = 1  # exercise the segment embeddings too
    with torch.no_grad():
        hidden, pooled = model(ids, mask, types)
        ref = hf_minilm[0](input_ids=ids, attention_mask=mask, token_type_ids=types)
    real = mask.bool()
    # The fused kernel is the one transformers runs too (equal here to the last bit); the explicit
    # softmax sums in another order: 4e-6 at worst on hidden states of size up to ~10.
    tol = 2e-6 if fused else 1e-5
    assert (hidden - ref.last_hidden_state)[real].abs().max().item() < tol
    assert (pooled - ref.pooler_output).abs().max().item() < tol


def test_sentence_embeddings_equal_hugging_face_with_the_pooling_recipe(minilm, hf_minilm, sentences):
    from companion import hub

    pooling = json.loads((hub.fetch("minilm") / "1_Pooling" / "config.json").read_text())
    assert pooling["pooling_mode_mean_tokens"] and not pooling["pooling_mode_cls_token"]
    ours = sentence_embeddings(*minilm, sentences, batch_size=16, max_length=256)
    enc = hf_minilm[1](sentences, padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.no_grad():
        h = hf_minilm[0](**enc).last_hidden_state
    m = enc["attention_mask"][..., None].float()
    expected = F.normalize((h * m).sum(1) / m.sum(1), dim=-1)
    assert (ours - expected).abs().max().item() < 1e-5
    sims = ours @ ours.T
    assert sims.diagonal().sub(1).abs().max() < 1e-5


def test_mean_pool_ignores_padding():
    h = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    assert torch.equal(mean_pool(h, torch.tensor([[1, 1, 0]])), torch.tensor([[2.0, 3.0]]))


def test_bad_inputs_are_named(minilm):
    model, tok = minilm
    with pytest.raises(ValueError, match="input_ids"):
        model(torch.tensor([[0, 30522]]))
    with pytest.raises(ValueError, match="attention_mask: a sequence has no real token"):
        model(torch.tensor([[101, 102]]), torch.tensor([[0, 0]]))
    with pytest.raises(ValueError, match="attention_mask: expected shape"):
        model(torch.tensor([[101, 102]]), torch.tensor([[1, 1, 1]]))
    with pytest.raises(TypeError, match="texts"):
        batch_encode(tok, "one string")
    with pytest.raises(ValueError, match="hidden_act"):
        BertConfig(hidden_act="relu")
    with pytest.raises(ValueError, match="model_type"):
        BertConfig.from_hf_dict({"model_type": "gpt2"})
    assert isinstance(
        BertModel(BertConfig(num_hidden_layers=1, hidden_size=8, num_attention_heads=2)), BertModel
    )


def test_pretraining_heads_and_losses_equal_hugging_face():
    torch.manual_seed(0)
    cfg = transformers.BertConfig(
        vocab_size=97, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=40, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )  # fmt: skip
    hf = transformers.BertForPreTraining(cfg).double().eval()
    ours = BertForPreTraining.from_hf(hf).double()
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, 97, (3, 12), generator=g)
    mask = torch.ones_like(ids)
    mask[0, 9:] = 0
    types = (torch.arange(12) >= 6).long().expand(3, 12)
    inputs, labels = mlm_mask(ids, mask_id=4, vocab_size=97, special_ids=(0, 1, 2), attention_mask=mask,
                              probability=0.3, generator=g)  # fmt: skip
    nsp = torch.tensor([0, 1, 0])
    with torch.no_grad():
        mlm_logits, nsp_logits, loss = ours(inputs, mask, types, mlm_labels=labels, nsp_labels=nsp)
        ref = hf(
            input_ids=inputs,
            attention_mask=mask,
            token_type_ids=types,
            labels=labels,
            next_sentence_label=nsp,
        )
    torch.testing.assert_close(mlm_logits, ref.prediction_logits, rtol=0, atol=1e-6)
    torch.testing.assert_close(nsp_logits, ref.seq_relationship_logits, rtol=0, atol=1e-6)
    torch.testing.assert_close(loss, ref.loss, rtol=0, atol=1e-6)


def test_mlm_mask_is_80_10_10_and_never_touches_special_tokens():
    from scipy.stats import chisquare

    g = torch.Generator().manual_seed(0)
    ids = torch.randint(10, 1000, (200, 128), generator=g)
    ids[:, 0], ids[:, -1] = 1, 2  # [CLS], [SEP]
    mask = torch.ones_like(ids)
    mask[:, 100:] = 0
    inputs, labels = mlm_mask(ids, mask_id=3, vocab_size=1000, special_ids=(1, 2), attention_mask=mask,
                              generator=g)  # fmt: skip
    chosen = labels != -100
    assert not chosen[:, 0].any() and not chosen[:, 100:].any()
    assert torch.equal(labels[chosen], ids[chosen])
    n_maskable = int(mask[:, 1:].sum())
    rate = chosen.sum().item() / n_maskable
    assert abs(rate - 0.15) < 0.01, rate
    as_mask = (inputs[chosen] == 3).sum().item()
    kept = (inputs[chosen] == ids[chosen]).sum().item()
    other = (
        chosen.sum().item() - as_mask - kept
    )  # random ids (a random id equal to the original counts as kept)
    n = chosen.sum().item()
    expected = [0.8 * n, 0.1 * n + 0.1 * n / 1000, 0.1 * n * 999 / 1000]
    assert chisquare([as_mask, kept, other], expected).pvalue > 1e-4
    assert torch.equal(inputs[~chosen], ids[~chosen])


def test_nsp_pairs_are_half_next_half_random():
    docs = [[f"d{d}s{s}" for s in range(5)] for d in range(4)]
    pairs = nsp_pairs(docs, 400, generator=torch.Generator().manual_seed(0))
    # a fair coin per pair: 200 ± 4 standard errors (4·√(400/4) = 40)
    assert abs(sum(label for *_, label in pairs) - 200) < 40
    for a, b, label in pairs:
        da, sa = map(int, a[1:].split("s"))
        db, sb = map(int, b[1:].split("s"))
        assert (label == 0) == (da == db and sb == sa + 1)
        if label == 1:
            assert da != db
    with pytest.raises(ValueError, match="documents"):
        nsp_pairs([["only one"]], 2)


def test_bert_embeddings_module_and_segment_ids(minilm, hf_minilm):
    from companion.models.bert import BertEmbeddings, encode_pair, segment_ids

    model, tokenizer = minilm
    hf_model, hf_tokenizer = hf_minilm
    ids, segments = encode_pair(tokenizer, "The cat sat.", "It slept on the warm mat.")
    ref = hf_tokenizer("The cat sat.", "It slept on the warm mat.")
    assert ids == ref["input_ids"] and segments == ref["token_type_ids"]
    assert segment_ids(3).tolist() == [0] * 5
    assert segment_ids(2, 3).tolist() == [0] * 4 + [1] * 4
    with pytest.raises(ValueError, match="len_b"):
        segment_ids(2, -1)
    x = torch.tensor([ids])
    s = torch.tensor([segments])
    with torch.no_grad():
        torch.testing.assert_close(
            model.embeddings(x, s), hf_model.embeddings(input_ids=x, token_type_ids=s), rtol=0, atol=1e-6
        )
    emb = BertEmbeddings(50, 16, 8)
    with pytest.raises(ValueError, match="token_type_ids: expected segment ids in \\[0, 2\\)"):
        emb(torch.zeros(1, 4, dtype=torch.long), torch.full((1, 4), 2))
    with pytest.raises(ValueError, match="token_type_ids: expected the shape"):
        emb(torch.zeros(1, 4, dtype=torch.long), torch.zeros(1, 3, dtype=torch.long))


def test_a_fresh_bert_is_initialized_like_transformers():
    # N(0, 0.02) weights, zero biases, unit LayerNorms, a zero padding row: logits of order 1, not √d
    model = BertForPreTraining(BertConfig(vocab_size=200, hidden_size=64, num_hidden_layers=2,
                                          num_attention_heads=4, intermediate_size=128))  # fmt: skip
    w = model.bert.embeddings.word_embeddings.weight
    assert abs(w[1:].std().item() - 0.02) < 0.002 and bool((w[0] == 0).all())
    assert all(not b.detach().any() for n, b in model.named_parameters() if n.endswith(".bias"))
    with torch.no_grad():
        logits = model(torch.randint(1, 200, (2, 10)))[0]
    assert logits.std() < 1.0
    with pytest.raises(ValueError, match="initializer_range"):
        BertConfig(initializer_range=0.0)
