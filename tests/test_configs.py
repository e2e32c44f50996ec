"""companion.models.configs: the architecture registry against published counts, the local GGUF
checkpoint, Hugging Face models built from tiny configs (an independent count of the same rules), and the
chapter's component table."""

from __future__ import annotations

import dataclasses
import math
import re

import pytest

from companion.models import configs
from companion.models.configs import (
    CITED_FIELDS,
    REGISTRY,
    Activation,
    ArchConfig,
    Attention,
    Norm,
    NormPosition,
    Position,
    component_table,
    ffn_matrices,
    param_count,
    param_count_moe,
)

# Exact counts published for the full checkpoints (or transformers' count of the model it loads).
PUBLISHED = {
    "gpt-2": 124_439_808,  # GPT2LMHeadModel("gpt2"), tied head and learned positions
    "llama-7b": 6_738_415_616,  # LlamaForCausalLM, untied
    "llama-2-7b": 6_738_415_616,
    "llama-2-70b": 68_976_648_192,
    "llama-3-8b": 8_030_261_248,
    "bloom-176b": 176_247_271_424,  # bigscience/bloom model card
    "t5-base": 222_903_552,  # T5ForConditionalGeneration("t5-base")
    "bert-base": 109_482_240 - (768 * 768 + 768),  # BertModel("bert-base-uncased") less its pooler
    "roberta-base": 124_645_632 - (768 * 768 + 768),  # RobertaModel("roberta-base") less its pooler
    "albert-base-v2": 11_683_584 - (768 * 768 + 768),  # AlbertModel("albert-base-v2") less its pooler
    "smollm2-135m": 134_515_008,  # the local GGUF's tensors (test_smollm2_agrees_with_the_local_gguf)
}
# Rounded counts the papers and READMEs state: (claim, relative tolerance).
CLAIMED = {
    "transformer-base": (65e6, 0.05),  # Table 3; the vocabulary is only "about 37000"
    "gpt-3-175b": (175.0e9, 0.005),
    "palm-540b": (540.35e9, 2e-5),  # Table 1 (ours: 540.356B)
    "glm-130b": (130e9, 0.02),
    "chatglm-6b": (6.2e9, 0.01),
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_param_count_equals_the_published_count(name):
    assert param_count(REGISTRY[name]) == PUBLISHED[name]


@pytest.mark.parametrize("name", sorted(CLAIMED))
def test_param_count_is_near_the_claimed_size(name):
    claim, rtol = CLAIMED[name]
    assert param_count(REGISTRY[name]) == pytest.approx(claim, rel=rtol)


def test_every_entry_is_counted():
    dense = [n for n, c in REGISTRY.items() if not c.is_moe]
    assert set(dense) == set(PUBLISHED) | set(CLAIMED) | {"chatglm2-6b", "baichuan2-7b", "baichuan2-13b"}
    # ChatGLM2-6B (6.24B), Baichuan 2 (7.51B, 13.90B): the counts their configs give, fixed here
    assert param_count(REGISTRY["chatglm2-6b"]) == 6_243_584_000
    assert param_count(REGISTRY["baichuan2-7b"]) == 7_505_973_248
    assert param_count(REGISTRY["baichuan2-13b"]) == 13_896_668_160


def test_smollm2_agrees_with_the_local_gguf():
    from companion import hub
    from companion.gguf import GGUFFile

    cfg = REGISTRY["smollm2-135m"]
    with GGUFFile(hub.path("smollm2", hub.SMOLLM2_GGUF)) as f:
        meta = f.metadata
        n_values = sum(math.prod(t.shape) for t in f.tensors.values())
        embd_shape = f.tensors["token_embd.weight"].shape
        has_output = "output.weight" in f.tensors
    assert meta["general.architecture"] == "llama"
    assert meta["llama.block_count"] == cfg.n_layers == 30
    assert meta["llama.embedding_length"] == cfg.d_model == 576
    assert meta["llama.attention.head_count"] == cfg.n_heads == 9
    assert meta["llama.attention.head_count_kv"] == cfg.n_kv_heads == 3
    assert meta["llama.rope.dimension_count"] == cfg.head_dim == 64
    assert meta["llama.feed_forward_length"] == cfg.d_ff == 1536
    assert meta["llama.context_length"] == cfg.context == 8192
    assert meta["llama.rope.freq_base"] == cfg.rope_theta == 100_000
    assert math.isclose(meta["llama.attention.layer_norm_rms_epsilon"], cfg.norm_eps, rel_tol=1e-6)
    assert embd_shape == (cfg.vocab_size, cfg.d_model) == (49_152, 576)
    assert not has_output and cfg.tied_embeddings  # the output layer reuses token_embd
    assert n_values == param_count(cfg) == 134_515_008


# --------------------------------------------------------------------------------------------------
# The counting rules against Hugging Face models of the same (tiny) shape
# --------------------------------------------------------------------------------------------------

TINY = {"n_layers": 2, "d_model": 32, "n_heads": 4, "head_dim": 8, "vocab_size": 100}


def _tiny(name: str, **sizes) -> ArchConfig:
    return dataclasses.replace(REGISTRY[name], **{**TINY, **sizes})


def _hf_cases():
    t = pytest.importorskip("transformers")
    small = {"vocab_size": 100, "num_hidden_layers": 2, "hidden_size": 32, "num_attention_heads": 4}
    llama = {**small, "intermediate_size": 48, "head_dim": 8}
    yield (
        _tiny("llama-2-70b", n_kv_heads=2, d_ff=48),
        t.LlamaForCausalLM(t.LlamaConfig(**llama, num_key_value_heads=2, tie_word_embeddings=False)),
    )
    yield (
        _tiny("smollm2-135m", n_kv_heads=2, d_ff=48),
        t.LlamaForCausalLM(t.LlamaConfig(**llama, num_key_value_heads=2, tie_word_embeddings=True)),
    )
    yield (
        _tiny("gpt-2", n_kv_heads=4, d_ff=128, context=64),
        t.GPT2LMHeadModel(t.GPT2Config(vocab_size=100, n_layer=2, n_embd=32, n_head=4, n_positions=64)),
    )
    yield (
        _tiny("bloom-176b", n_kv_heads=4, d_ff=128, tokenizer_vocab=None),
        t.BloomForCausalLM(t.BloomConfig(vocab_size=100, n_layer=2, hidden_size=32, n_head=4)),
    )
    yield (
        _tiny("bert-base", n_kv_heads=4, d_ff=48, context=64),
        t.BertModel(
            t.BertConfig(**small, intermediate_size=48, max_position_embeddings=64), add_pooling_layer=False
        ),
    )
    t5 = t.T5Config(vocab_size=100, d_model=32, d_kv=8, d_ff=48, num_layers=2, num_heads=4,
                    relative_attention_num_buckets=8, feed_forward_proj="relu")  # fmt: skip
    yield _tiny("t5-base", n_kv_heads=4, d_ff=48, n_position_buckets=8), t.T5ForConditionalGeneration(t5)
    oss = t.GptOssConfig(**llama, num_key_value_heads=2, num_local_experts=4, num_experts_per_tok=2,
                         layer_types=["sliding_attention", "full_attention"])  # fmt: skip
    yield _tiny("gpt-oss-20b", n_kv_heads=2, n_experts=4, top_k=2, expert_d_ff=48), t.GptOssForCausalLM(oss)


def test_counting_rules_equal_transformers_parameter_counts():
    """Each family's rule (biases, norms, tied heads, learned and relative position tables, embedding
    LayerNorm, sinks, router bias, experts), checked on a Hugging Face model of the same tiny shape."""
    for cfg, model in _hf_cases():
        n_hf = sum(p.numel() for p in model.parameters())  # shared (tied) tensors counted once
        ours = param_count_moe(cfg)[0] if cfg.is_moe else param_count(cfg)
        assert ours == n_hf, f"{cfg.name}: ours {ours:,} vs transformers {type(model).__name__} {n_hf:,}"


# --------------------------------------------------------------------------------------------------
# Mixture of experts: total and active
# --------------------------------------------------------------------------------------------------


def test_gpt_oss_total_and_active_parameters():
    total, active = param_count_moe(REGISTRY["gpt-oss-20b"])
    assert (total, active) == (20_914_757_184, 3_608_307_264)
    assert total == pytest.approx(20.9e9, rel=0.02)  # the model card: 20.9B total, 3.6B active
    assert active == pytest.approx(3.6e9, rel=0.02)
    parts = configs.param_breakdown(REGISTRY["gpt-oss-20b"])
    assert parts["experts"] == (24 * 32 * 24_891_840, 24 * 4 * 24_891_840)  # 3·2880² + 2·2880 + 2880 each
    assert parts["router"][0] == 24 * (2880 * 32 + 32)
    assert parts["embedding"] == (201_088 * 2880, 0) and parts["output"] == (201_088 * 2880,) * 2


def test_param_count_refuses_a_mixture_of_experts():
    with pytest.raises(ValueError, match=r"gpt-oss-20b is a mixture of experts.*use param_count_moe"):
        param_count(REGISTRY["gpt-oss-20b"])


def test_routing_to_every_expert_makes_all_but_the_input_embedding_active():
    cfg = dataclasses.replace(REGISTRY["gpt-oss-20b"], top_k=32)
    total, active = param_count_moe(cfg)
    assert total == param_count_moe(REGISTRY["gpt-oss-20b"])[0]
    assert active == total - cfg.vocab_size * cfg.d_model


@pytest.mark.parametrize("name", [n for n, c in REGISTRY.items() if not c.is_moe])
def test_a_dense_config_reduces_to_param_count(name):
    cfg = REGISTRY[name]
    total, active = param_count_moe(cfg)
    assert total == param_count(cfg)
    width = cfg.embedding_dim or cfg.d_model  # ALBERT's tables are E wide (its E → d projection is a product)
    lookups = cfg.n_token_types * width
    lookups += (2 if cfg.layout is configs.Layout.ENCODER_DECODER else 1) * (
        cfg.context * width if cfg.pos is Position.LEARNED else 0
    )
    if cfg.layout is configs.Layout.ENCODER or not cfg.tied_embeddings:
        lookups += cfg.vocab_size * width  # an untied input embedding is only looked up
    assert active == total - lookups


def test_active_counts_for_tied_and_untied_heads():
    assert param_count_moe(REGISTRY["llama-2-7b"]) == (6_738_415_616, 6_738_415_616 - 32_000 * 4096)
    assert param_count_moe(REGISTRY["smollm2-135m"]) == (134_515_008,) * 2  # the shared matrix is the head
    assert param_count_moe(REGISTRY["gpt-2"]) == (124_439_808, 124_439_808 - 1024 * 768)


# --------------------------------------------------------------------------------------------------
# Citations, enums and the chapter's table
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(REGISTRY))
def test_every_field_cites_a_paper_or_an_official_config(name):
    cfg = REGISTRY[name]
    assert configs.missing_sources(cfg) == []
    assert set(cfg.sources) == set(CITED_FIELDS)
    for field_name, citation in cfg.sources.items():
        # a paper (title in quotes and a year) or an official file
        paper = re.search(r'".+", .*(19|20)\d\d', citation)
        official = re.search(r"\b(config\.json|params\.json|README|\w+\.py|\w+\.sh)\b", citation)
        assert paper or official, f"{name}.{field_name}: {citation!r} is not a paper or an official file"


@pytest.mark.parametrize("name", list(REGISTRY))
def test_categorical_fields_are_enum_members(name):
    cfg = REGISTRY[name]
    for field_name, enum in configs.CATEGORICAL_FIELDS.items():
        assert type(getattr(cfg, field_name)) is enum, (name, field_name)


def test_free_text_is_refused_with_a_hint():
    with pytest.raises(TypeError, match=r"pos: expected a Position member .*got 'rope'; Position\('rope'\)"):
        dataclasses.replace(REGISTRY["llama-2-7b"], pos="rope")


# the chapter's component table (curriculum §17): pos, norm, placement, activation, attention, G
TABLE = {
    "transformer-base": (
        Position.SINUSOIDAL,
        Norm.LAYERNORM,
        NormPosition.POST,
        Activation.RELU,
        Attention.MHA,
        8,
    ),
    "bert-base": (Position.LEARNED, Norm.LAYERNORM, NormPosition.POST, Activation.GELU, Attention.MHA, 12),
    "gpt-2": (Position.LEARNED, Norm.LAYERNORM, NormPosition.PRE, Activation.GELU_TANH, Attention.MHA, 12),
    "t5-base": (Position.RELATIVE_BIAS, Norm.RMSNORM, NormPosition.PRE, Activation.RELU, Attention.MHA, 12),
    "glm-130b": (Position.ROPE, Norm.LAYERNORM, NormPosition.POST, Activation.GEGLU, Attention.MHA, 96),
    "chatglm-6b": (
        Position.ROPE_2D,
        Norm.LAYERNORM,
        NormPosition.POST,
        Activation.GELU_TANH,
        Attention.MHA,
        32,
    ),
    "chatglm2-6b": (Position.ROPE, Norm.RMSNORM, NormPosition.PRE, Activation.SWIGLU, Attention.GQA, 2),
    "bloom-176b": (
        Position.ALIBI,
        Norm.LAYERNORM,
        NormPosition.PRE,
        Activation.GELU_TANH,
        Attention.MHA,
        112,
    ),
    "palm-540b": (
        Position.ROPE,
        Norm.LAYERNORM,
        NormPosition.PRE_PARALLEL,
        Activation.SWIGLU,
        Attention.MQA,
        1,
    ),
    "llama-7b": (Position.ROPE, Norm.RMSNORM, NormPosition.PRE, Activation.SWIGLU, Attention.MHA, 32),
    "llama-2-70b": (Position.ROPE, Norm.RMSNORM, NormPosition.PRE, Activation.SWIGLU, Attention.GQA, 8),
    "baichuan2-7b": (Position.ROPE, Norm.RMSNORM, NormPosition.PRE, Activation.SWIGLU, Attention.MHA, 32),
    "baichuan2-13b": (Position.ALIBI, Norm.RMSNORM, NormPosition.PRE, Activation.SWIGLU, Attention.MHA, 40),
    "gpt-oss-20b": (
        Position.ROPE,
        Norm.RMSNORM,
        NormPosition.PRE,
        Activation.SWIGLU_CLAMPED,
        Attention.GQA,
        8,
    ),
    "smollm2-135m": (Position.ROPE, Norm.RMSNORM, NormPosition.PRE, Activation.SWIGLU, Attention.GQA, 3),
}


@pytest.mark.parametrize("name", sorted(TABLE))
def test_entries_match_the_component_table(name):
    c = REGISTRY[name]
    assert (c.pos, c.norm, c.norm_position, c.act, c.attn, c.n_kv_heads) == TABLE[name]


def test_model_specific_facts():
    bloom, palm, oss = REGISTRY["bloom-176b"], REGISTRY["palm-540b"], REGISTRY["gpt-oss-20b"]
    assert bloom.embedding_norm and bloom.tokenizer_vocab == 250_680 and bloom.vocab_size == 250_880
    assert palm.bias is configs.Bias.NONE and not palm.norm_bias and palm.vocab_size == 256_000
    assert palm.head_dim * palm.n_heads != palm.d_model and palm.tied_embeddings
    assert REGISTRY["baichuan2-13b"].vocab_size == REGISTRY["baichuan2-7b"].vocab_size == 125_696
    assert (oss.n_layers, oss.d_model, oss.n_heads, oss.head_dim, oss.vocab_size) == (
        24,
        2880,
        64,
        64,
        201_088,
    )
    assert (oss.n_experts, oss.top_k, oss.expert_d_ff, oss.sliding_window) == (32, 4, 2880, 128)
    assert oss.attention_sinks and oss.rope_theta == 150_000 and oss.rope_factor == 32
    assert oss.rope_scaling is configs.RopeScaling.YARN and oss.context == 131_072
    assert REGISTRY["gpt-3-175b"].attn_pattern is configs.AttentionPattern.ALTERNATING_BANDED
    assert REGISTRY["llama-3-8b"].rope_theta == 500_000 and REGISTRY["llama-3-8b"].vocab_size == 128_256


def test_the_chatglm_misconceptions_are_visible():
    glm, v1, v2 = REGISTRY["glm-130b"], REGISTRY["chatglm-6b"], REGISTRY["chatglm2-6b"]
    # M17.1: ChatGLM-6B keeps LayerNorm with a DeepNorm-style residual α = √(2N); ChatGLM2 is RMSNorm pre-norm
    assert v1.norm is Norm.LAYERNORM and v1.residual_alpha == pytest.approx(math.sqrt(2 * 28))
    assert glm.residual_alpha == pytest.approx(math.sqrt(2 * 70))
    assert (v2.norm, v2.norm_position, v2.residual_alpha) == (Norm.RMSNORM, NormPosition.PRE, None)
    # M17.2: GeGLU (3 matrices) → an ungated GELU MLP named "GLU" (2) → SwiGLU (3)
    assert [ffn_matrices(c) for c in (glm, v1, v2)] == [3, 2, 3]
    assert not v1.gated and "GLU" in v1.notes
    # ChatGLM2: GQA with 2 KV groups, 32K context; M17.3 as a margin note
    assert (v2.n_kv_heads, v2.context, v2.bias) == (2, 32_768, configs.Bias.QKV)
    assert "gMASK" in v2.notes and "unverified" in v2.notes


def test_component_table_rows():
    rows = component_table()
    assert [r["Model"] for r in rows] == list(REGISTRY)
    assert set(rows[0]) == {"Model", "Positions", "Norm (placement)", "FFN activation", "Attention"}
    oss, smol, v1 = component_table(["gpt-oss-20b", "smollm2-135m", "chatglm-6b"])
    assert oss["Positions"] == "RoPE, θ = 150 000 + YaRN ×32"
    assert oss["FFN activation"] == "SwiGLU (clamped), MoE 32 experts, top-4"
    assert oss["Attention"] == "GQA 64/8; sliding window 128 alternating with full; sinks"
    assert (smol["Positions"], smol["Norm (placement)"], smol["Attention"]) == (
        "RoPE, θ = 100 000",
        "RMSNorm (pre)",
        "GQA 9/3",
    )
    assert v1["Norm (placement)"] == "LN (post), DeepNorm-style α = √(2N) = 7.48"
    assert component_table(["bloom-176b"])[0]["Norm (placement)"] == "LN (pre + embedding LN)"


# --------------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------------


def test_unknown_names_suggest_close_ones():
    with pytest.raises(KeyError, match=r"no registry entry 'llama2-7b'; did you mean llama-2-7b"):
        REGISTRY["llama2-7b"]
    with pytest.raises(KeyError, match=r"did you mean gpt-oss-20b"):
        component_table(["gpt-oss"])
    with pytest.raises(TypeError, match="names: expected an iterable of registry names, got the str"):
        component_table("gpt-2")


def test_the_registry_is_read_only():
    with pytest.raises(TypeError):
        REGISTRY["gpt-2"] = REGISTRY["llama-7b"]  # type: ignore[index]
    with pytest.raises(TypeError):
        REGISTRY["gpt-2"].sources["pos"] = "made up"  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        REGISTRY["gpt-2"].n_layers = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"d_model": 0}, "d_model: expected a positive int, got 0"),
        ({"n_layers": -2}, "n_layers: expected a positive int, got -2"),
        ({"d_ff": 0}, "d_ff: expected a positive int, got 0"),
        ({"n_kv_heads": 5}, "n_kv_heads: expected a divisor of n_heads=32, got 5"),
        ({"n_kv_heads": 8}, r"attn: MHA needs G = H, got n_heads=32, n_kv_heads=8"),
        ({"attn": Attention.MQA}, r"attn: MQA needs G = 1"),
        (
            {"n_experts": 8, "top_k": 9, "expert_d_ff": 64, "d_ff": 0},
            "top_k: expected 1 <= top_k <= n_experts=8",
        ),
        ({"n_experts": 8, "top_k": 2, "expert_d_ff": 64}, "d_ff: expected 0"),
        ({"top_k": 2}, "a dense model"),
        ({"pos": Position.LEARNED, "context": None}, "context: learned positions need a table size"),
        ({"norm_eps": -1.0}, "norm_eps: expected None or a finite number > 0"),
        ({"rope_factor": 0.5}, "rope_factor: expected a finite number >= 1"),
        ({"sources": {"colour": "x"}}, r"sources: cites unknown fields \['colour'\]"),
    ],
)
def test_bad_fields_name_the_field_the_expectation_and_the_value(change, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(REGISTRY["llama-2-7b"], **change)


def test_bad_types_and_citations():
    with pytest.raises(TypeError, match=r"tied_embeddings: expected a bool, got 'no'"):
        dataclasses.replace(REGISTRY["gpt-2"], tied_embeddings="no")
    with pytest.raises(TypeError, match=r"cfg: expected an ArchConfig .*got str"):
        param_count("gpt-2")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"unknown field 'n_layer'; did you mean 'n_layers'"):
        configs.cite({"a paper, 2020": "n_layer"})
    with pytest.raises(ValueError, match=r"field 'pos' is cited twice"):
        configs.cite({"a paper, 2020": "pos", "a config.json": "pos"})
    cited = configs.cite({"paper, 2020": "pos norm", "config.json": "*"})
    assert (
        set(cited) == set(CITED_FIELDS)
        and cited["pos"] == "paper, 2020"
        and cited["d_model"] == "config.json"
    )
    uncited = dataclasses.replace(REGISTRY["gpt-2"], sources={"pos": "paper, 2019"})
    assert "pos" not in configs.missing_sources(uncited) and "d_model" in configs.missing_sources(uncited)


def test_albert_and_roberta_counts_equal_transformers_models():
    """ALBERT's factorized embedding and cross-layer sharing, and RoBERTa's tables, against the models
    transformers builds from the same configurations (on the meta device: no memory)."""
    transformers = pytest.importorskip("transformers")
    import torch

    with torch.device("meta"):
        albert = transformers.AlbertModel(
            transformers.AlbertConfig(
                vocab_size=30000, embedding_size=128, hidden_size=768, num_hidden_layers=12,
                num_attention_heads=12, intermediate_size=3072,
            ),
            add_pooling_layer=False,
        )  # fmt: skip
        roberta = transformers.RobertaModel(
            transformers.RobertaConfig(vocab_size=50265, max_position_embeddings=514, type_vocab_size=1),
            add_pooling_layer=False,
        )
    for name, model in (("albert-base-v2", albert), ("roberta-base", roberta)):
        assert param_count(REGISTRY[name]) == sum(p.numel() for p in model.parameters()), name
    unshared = dataclasses.replace(REGISTRY["albert-base-v2"], shared_layers=False)
    layer = 4 * (768 * 768 + 768) + 2 * (2 * 768) + (768 * 3072 + 3072) + (3072 * 768 + 768)
    assert param_count(unshared) - param_count(REGISTRY["albert-base-v2"]) == 11 * layer
