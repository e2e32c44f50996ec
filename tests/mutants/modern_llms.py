"""Plausible wrong answers to the Modern LLMs chapter's exercises: each must fail at least one check."""

from __future__ import annotations

import dataclasses

from companion.models.configs import REGISTRY, Attention, Bias, Norm, Position, param_breakdown

# --- modern-llms.moe-params ------------------------------------------------------------------------


def _parts(cfg):
    return {k: list(v) for k, v in param_breakdown(cfg).items()}


def _sum(parts):
    return sum(t for t, _ in parts.values()), sum(a for _, a in parts.values())


def moe_tied_head_counted_twice(cfg):
    """Counts the output layer as its own V·d matrix even when it is the tied embedding."""
    parts = _parts(cfg)
    if cfg.tied_embeddings:
        parts["output"] = [cfg.vocab_size * cfg.d_model] * 2
    return _sum(parts)


def moe_forgets_the_router(cfg):
    """Leaves the router d·E (+ E) out of both counts."""
    parts = _parts(cfg)
    parts.pop("router", None)
    return _sum(parts)


def moe_all_experts_active(cfg):
    """Counts every expert as active, as if a token ran through all of them."""
    parts = _parts(cfg)
    if "experts" in parts:
        parts["experts"][1] = parts["experts"][0]
    return _sum(parts)


def moe_input_embedding_active(cfg):
    """Counts the input embedding's V·d as active: a lookup reads one row, it multiplies nothing."""
    parts = _parts(cfg)
    parts["embedding"][1] = parts["embedding"][0]
    return _sum(parts)


def moe_no_biases_or_sinks(cfg):
    """Counts weight matrices only: no linear biases, no router bias, no attention sinks."""
    plain = dataclasses.replace(cfg, bias=Bias.NONE, router_bias=False, attention_sinks=False)
    return _sum(_parts(plain))


def moe_active_as_top_k_over_e_of_total(cfg):
    """Scales the whole model by k/E instead of only the experts."""
    total, _ = _sum(_parts(cfg))
    return total, total * cfg.top_k // cfg.n_experts if cfg.n_experts else total


# --- modern-llms.registry --------------------------------------------------------------------------


def _copy(name, **changes):
    return dataclasses.replace(REGISTRY[name], **(changes if changes else {}))


def registry_chatglm2_layernorm(name):
    """ChatGLM2-6B with ChatGLM-6B's LayerNorm (M17.1)."""
    return _copy(name, norm=Norm.LAYERNORM) if name == "chatglm2-6b" else _copy(name)


def registry_baichuan13b_rope(name):
    """Baichuan2-13B with the 7B's RoPE instead of ALiBi."""
    return _copy(name, pos=Position.ROPE, rope_theta=10_000.0) if name == "baichuan2-13b" else _copy(name)


def registry_palm_mha(name):
    """PaLM with multi-head attention (48 KV heads) instead of multi-query."""
    return _copy(name, attn=Attention.MHA, n_kv_heads=48) if name == "palm-540b" else _copy(name)


def registry_bloom_without_embedding_norm(name):
    """BLOOM without the LayerNorm after its word embeddings."""
    return _copy(name, embedding_norm=False) if name == "bloom-176b" else _copy(name)


def registry_free_text(name):
    """A dict whose categorical values are strings ("alibi") rather than enum members."""
    cfg = REGISTRY[name]
    fields = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}
    return {k: (str(v.value) if hasattr(v, "value") else v) for k, v in fields.items()}


def registry_cites_only_the_architecture(name):
    """Cites the architecture fields and leaves the sizes uncited."""
    cfg = REGISTRY[name]
    sources = {k: cfg.sources[k] for k in ("pos", "norm", "norm_position", "act", "attn")}
    return dataclasses.replace(cfg, sources=sources)


def registry_palm_llama_sizes(name):
    """PaLM with LLaMA's 32k vocabulary and a head width of d/H."""
    if name != "palm-540b":
        return _copy(name)
    return _copy(name, vocab_size=32_000, head_dim=384)


def registry_returns_the_table(name):
    """Hands back the registry's own entry instead of writing one."""
    return REGISTRY[name]


MUTANTS = {
    "modern-llms.moe-params": [
        moe_tied_head_counted_twice,
        moe_forgets_the_router,
        moe_all_experts_active,
        moe_input_embedding_active,
        moe_no_biases_or_sinks,
        moe_active_as_top_k_over_e_of_total,
    ],
    "modern-llms.registry": [
        registry_chatglm2_layernorm,
        registry_baichuan13b_rope,
        registry_palm_mha,
        registry_bloom_without_embedding_norm,
        registry_free_text,
        registry_cites_only_the_architecture,
        registry_palm_llama_sizes,
        registry_returns_the_table,
    ],
}


# --- modern-llms.pretrained-parity ----------------------------------------------------------------


def unpermute_identity(w, n_heads):
    """Keeps the stored rows: the classic silent bug (the model runs, raises nothing, and is wrong)."""
    return w.clone()


def unpermute_applies_the_permutation_again(w, n_heads):
    """Runs llama.cpp's permutation instead of its inverse."""
    rows, d_in = w.shape
    return w.reshape(n_heads, 2, rows // n_heads // 2, d_in).transpose(1, 2).reshape(rows, d_in)


def unpermute_ignores_the_heads(w, n_heads):
    """Treats the whole matrix as one head."""
    rows, d_in = w.shape
    return w.reshape(rows // 2, 2, d_in).transpose(0, 1).reshape(rows, d_in)


MUTANTS["modern-llms.pretrained-parity"] = [
    unpermute_identity,
    unpermute_applies_the_permutation_again,
    unpermute_ignores_the_heads,
]
