"""companion.models.bert against Hugging Face ``transformers.BertModel`` on the same all-MiniLM-L6-v2
files (the companion.hub asset)."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from companion.models.bert import (
    BertConfig,
    BertModel,
    batch_encode,
    load_bert,
    mean_pool,
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
