"""Exercises of the Modern LLMs chapter (``notebooks/llm/modern-llms.ipynb``).

``modern-llms.moe-params`` compares the candidate with published sizes (GPT-OSS-20B's model card),
with :func:`companion.models.configs.param_count` on dense configurations, and with ``sum(p.numel())``
of small models assembled from torch modules and :class:`companion.nn.moe.MoE` — an independent count.
``modern-llms.registry`` compares the learner's entries with the registry, field by field, and checks
that categorical values are enum members and that every field cites a source.
``modern-llms.pretrained-parity`` checks the RoPE un-permutation against llama.cpp's permutation,
against ``transformers``' GGUF loader, and by loading SmolLM2 with it and comparing the logits with the
stored ``transformers`` reference (``experiments/results/smollm2_hf_reference.json``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from enum import Enum
from typing import Any

import torch
from torch import nn

from companion.grading.checks import expect, expect_close
from companion.grading.registry import Exercise, register
from companion.models.configs import (
    CATEGORICAL_FIELDS,
    CITED_FIELDS,
    REGISTRY,
    Activation,
    ArchConfig,
    Attention,
    Bias,
    Layout,
    Norm,
    NormPosition,
    Position,
    param_count,
    param_count_moe,
)
from companion.models.llama import permute_rope_rows, unpermute_rope_rows
from companion.nn.moe import MoE

# --------------------------------------------------------------------------------------------------
# modern-llms.moe-params
# --------------------------------------------------------------------------------------------------

MOE_PARAMS = register(
    Exercise(
        id="modern-llms.moe-params",
        title="Total and active parameters of a mixture-of-experts decoder",
        names=("param_count_moe",),
        references=(param_count_moe,),
        signature='''def param_count_moe(cfg):
    """(total, active) parameters, two ints, of a decoder-only companion.models.configs.ArchConfig.

    d = cfg.d_model, H = cfg.n_heads, G = cfg.n_kv_heads, d_h = cfg.head_dim, V = cfg.vocab_size,
    L = cfg.n_layers, E = cfg.n_experts, k = cfg.top_k. Per layer:
      attention  d·H·d_h + 2·d·G·d_h + H·d_h·d
                 + (H + 2G)·d_h biases if cfg.bias is Bias.QKV or Bias.ALL, + d more for Bias.ALL
                 + H sink logits if cfg.attention_sinks
      each FFN   m·d·w with m = 3 if cfg.gated else 2, w = cfg.expert_d_ff (cfg.d_ff if dense),
                 + (m - 1)·w + d biases if cfg.bias is Bias.ALL
      MoE        E such FFNs + a router d·E (+ E if cfg.router_bias); a dense layer has one FFN
      norms      2 per layer (1 if cfg.norm_position is NormPosition.PRE_PARALLEL), each d
                 (RMSNorm) or 2d (LayerNorm with cfg.norm_bias)
    Plus V·d token embedding, V·d more for an untied output layer, and a final norm.
    total  counts everything (tied weights once); a dense config gives configs.param_count(cfg).
    active counts what one token's forward pass multiplies by: total minus the (E − k) unused
           experts per layer, minus the input embedding when untied (a lookup; a tied matrix is
           the output layer and stays active).
    """''',
        hint="GPT-OSS-20B per expert: 3·2880² + 2·2880 + 2880 biases; the router is in every token's path; "
        "the input embedding is a table lookup, the output layer a matrix product.",
    )
)


def _counts(fn: Any, cfg: ArchConfig) -> tuple[int, int]:
    result = fn(cfg)
    expect(
        isinstance(result, tuple) and len(result) == 2,
        f"param_count_moe must return a tuple (total, active), got {type(result).__name__}",
    )
    ok = all(isinstance(x, int) and not isinstance(x, bool) for x in result)
    expect(ok, f"{cfg.name}: total and active must be ints, got {result!r}")
    return result


def _moe_tiny(**changes: Any) -> ArchConfig:
    base = {
        "name": "tiny-moe", "year": 2025, "layout": Layout.DECODER, "pos": Position.ROPE,
        "norm": Norm.RMSNORM, "norm_position": NormPosition.PRE, "act": Activation.SWIGLU,
        "attn": Attention.GQA, "bias": Bias.QKV, "tied_embeddings": False, "attention_sinks": True,
        "n_layers": 3, "d_model": 24, "n_heads": 4, "n_kv_heads": 2, "head_dim": 8, "vocab_size": 50,
        "context": 64, "norm_eps": 1e-5, "d_ff": 0, "n_experts": 6, "top_k": 2, "expert_d_ff": 20,
    }  # fmt: skip
    return ArchConfig(**{**base, **changes})


def _torch_counts(cfg: ArchConfig) -> tuple[int, int]:
    """(total, active) of a decoder assembled from torch modules in ``cfg``'s shape: sum(p.numel())."""
    d, h, g, dh = cfg.d_model, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
    qkv_bias, o_bias = cfg.bias is not Bias.NONE, cfg.bias is Bias.ALL

    def norm() -> nn.Module:
        return nn.LayerNorm(d, bias=cfg.norm_bias) if cfg.norm is Norm.LAYERNORM else nn.RMSNorm(d)

    model = nn.Module()
    model.embed = nn.Embedding(cfg.vocab_size, d)
    model.layers = nn.ModuleList()
    for _ in range(cfg.n_layers):
        layer = nn.Module()
        layer.q, layer.o = nn.Linear(d, h * dh, bias=qkv_bias), nn.Linear(h * dh, d, bias=o_bias)
        layer.k, layer.v = nn.Linear(d, g * dh, bias=qkv_bias), nn.Linear(d, g * dh, bias=qkv_bias)
        layer.norm_1, layer.norm_2 = norm(), norm()
        kind = "swiglu" if cfg.gated else "mlp"  # companion's swiglu experts have no biases, its mlp has
        layer.moe = MoE(d, cfg.expert_d_ff, cfg.n_experts, cfg.top_k, expert_kind=kind)
        if cfg.attention_sinks:
            layer.sinks = nn.Parameter(torch.zeros(h))
        if cfg.router_bias:
            layer.router_bias = nn.Parameter(torch.zeros(cfg.n_experts))
        model.layers.append(layer)
    model.norm_f = norm()
    if not cfg.tied_embeddings:
        model.head = nn.Linear(d, cfg.vocab_size, bias=False)
    total = sum(p.numel() for p in model.parameters())
    per_expert = sum(p.numel() for p in model.layers[0].moe.experts[0].parameters())
    idle = cfg.n_layers * (cfg.n_experts - cfg.top_k) * per_expert
    return total, total - idle - (0 if cfg.tied_embeddings else model.embed.weight.numel())


def _expect_counts(fn: Any, cfg: ArchConfig, want: tuple[int, int], what: str) -> None:
    total, active = _counts(fn, cfg)
    expect(total == want[0], f"{what}: expected total {want[0]:,}, got {total:,}")
    expect(active == want[1], f"{what}: expected active {want[1]:,}, got {active:,}")


@MOE_PARAMS.check("GPT-OSS-20B: ≈ 20.9B total and ≈ 3.6B active (within 5%)")
def _moe_gpt_oss(fn):
    total, active = _counts(fn, REGISTRY["gpt-oss-20b"])
    expect(abs(total / 20.9e9 - 1) < 0.05, f"total: expected ≈ 20.9B, got {total / 1e9:.3f}B")
    expect(abs(active / 3.6e9 - 1) < 0.05, f"active: expected ≈ 3.6B, got {active / 1e9:.3f}B")


@MOE_PARAMS.check("routing every token to all experts leaves only the input embedding inactive")
def _moe_all_experts(fn):
    for cfg in (dataclasses.replace(REGISTRY["gpt-oss-20b"], top_k=32), _moe_tiny(top_k=6)):
        total, active = _counts(fn, cfg)
        want = total - cfg.vocab_size * cfg.d_model
        message = f"{cfg.name}, top_k = n_experts: expected active = total − V·d = {want:,}, got {active:,}"
        expect(active == want, message)


@MOE_PARAMS.check("a dense config reduces to configs.param_count (LLaMA-2-7B untied, SmolLM2 tied)")
def _moe_dense(fn):
    for name in ("llama-2-7b", "smollm2-135m"):
        cfg = REGISTRY[name]
        total = param_count(cfg)
        lookup = 0 if cfg.tied_embeddings else cfg.vocab_size * cfg.d_model
        _expect_counts(fn, cfg, (total, total - lookup), name)


@MOE_PARAMS.check("a small MoE of torch modules (GQA, Q/K/V biases, sinks, RMSNorm, untied): exact")
def _moe_torch_swiglu(fn):
    cfg = _moe_tiny()
    _expect_counts(fn, cfg, _torch_counts(cfg), "3 layers, 6 SwiGLU experts, top-2")


@MOE_PARAMS.check("a small MoE of torch modules (biased GELU experts, router bias, LayerNorm, tied): exact")
def _moe_torch_mlp(fn):
    cfg = _moe_tiny(
        act=Activation.GELU,
        norm=Norm.LAYERNORM,
        attn=Attention.MHA,
        n_kv_heads=4,
        bias=Bias.ALL,
        router_bias=True,
        attention_sinks=False,
        tied_embeddings=True,
        top_k=1,
    )
    _expect_counts(fn, cfg, _torch_counts(cfg), "3 layers, 6 GELU experts, top-1, tied")


# --------------------------------------------------------------------------------------------------
# modern-llms.registry
# --------------------------------------------------------------------------------------------------

ENTRIES = ("bloom-176b", "palm-540b", "chatglm2-6b", "baichuan2-13b")


def _reference_registry_entry(name: str) -> ArchConfig:
    return dataclasses.replace(REGISTRY[name])  # a copy: the check below refuses the registry's own object


REGISTRY_ENTRY = register(
    Exercise(
        id="modern-llms.registry",
        title="Registry entries from published configs: BLOOM, PaLM, ChatGLM2-6B, Baichuan2-13B",
        names=("registry_entry",),
        references=(_reference_registry_entry,),
        signature='''def registry_entry(name):
    """The entry for name, one of "bloom-176b", "palm-540b", "chatglm2-6b", "baichuan2-13b", written
    from the paper and the official config — not read from configs.REGISTRY.

    Return a companion.models.configs.ArchConfig (or a dict with its field names). Categorical fields
    are enum members (Position.ALIBI, not "alibi"); sizes follow the official config (vocab_size =
    rows of the embedding matrix, head_dim may differ from d_model / n_heads); sources maps every
    field in configs.CITED_FIELDS to a citation, e.g.
    configs.cite({'Chowdhery et al., "PaLM: ...", 2022': "*"}).
    """''',
        hint="PaLM: MQA (n_kv_heads=1), parallel block, no biases anywhere; ChatGLM2: multi_query_group_num "
        "= 2 and RMSNorm; Baichuan 2: the 13B uses ALiBi, the 7B RoPE; BLOOM: LayerNorm after the embedding.",
    )
)


def _entry(fn: Any, name: str) -> tuple[Any, dict[str, Any]]:
    entry = fn(name)
    if dataclasses.is_dataclass(entry) and not isinstance(entry, type):
        fields = {f.name: getattr(entry, f.name) for f in dataclasses.fields(entry)}
    else:
        expect(
            isinstance(entry, Mapping),
            f"{name}: expected an ArchConfig or a dict, got {type(entry).__name__}",
        )
        fields = dict(entry)
    missing = [f for f in (*CITED_FIELDS, "sources") if f not in fields]
    expect(not missing, f"{name}: the entry has no field(s) {missing}")
    return entry, fields


def _show(value: Any) -> str:
    return f"{type(value).__name__}.{value.name}" if isinstance(value, Enum) else repr(value)


def _expect_fields(fn: Any, name: str, names: str, why: str) -> None:
    _, got = _entry(fn, name)
    want = REGISTRY[name]
    for f in names.split():
        expect(got[f] == getattr(want, f),
               f"{name}.{f}: expected {_show(getattr(want, f))} ({why}), got {_show(got[f])}")  # fmt: skip


_TABLE = "pos norm norm_position act attn n_kv_heads"


@REGISTRY_ENTRY.check("BLOOM-176B: ALiBi, pre-LN plus an embedding LayerNorm, GELU, MHA, biases, tied")
def _reg_bloom(fn):
    _expect_fields(
        fn, "bloom-176b", _TABLE + " embedding_norm bias tied_embeddings", "BLOOM paper, config.json"
    )


@REGISTRY_ENTRY.check("PaLM-540B: RoPE, parallel block, SwiGLU, MQA, no biases, shared embeddings")
def _reg_palm(fn):
    _expect_fields(fn, "palm-540b", _TABLE + " bias norm_bias tied_embeddings", "PaLM paper §2")


@REGISTRY_ENTRY.check("ChatGLM2-6B: RMSNorm pre-norm, SwiGLU, GQA with 2 KV groups, Q/K/V biases, 32K")
def _reg_chatglm2(fn):
    fields = _TABLE + " bias context residual_alpha tied_embeddings"
    _expect_fields(fn, "chatglm2-6b", fields, "THUDM/chatglm2-6b config.json / modeling_chatglm.py")


@REGISTRY_ENTRY.check("Baichuan2-13B: ALiBi (the 7B uses RoPE), RMSNorm pre-norm, SwiGLU, MHA")
def _reg_baichuan(fn):
    _expect_fields(fn, "baichuan2-13b", _TABLE + " bias", "Baichuan 2 paper, 13B config.json")
    _, got = _entry(fn, "baichuan2-13b")
    expect(
        got["pos"] != REGISTRY["baichuan2-7b"].pos, "Baichuan2-13B: the 13B and the 7B differ in positions"
    )


@REGISTRY_ENTRY.check("sizes follow the official configs (and give their parameter counts)")
def _reg_sizes(fn):
    sizes = "n_layers d_model n_heads n_kv_heads head_dim d_ff vocab_size context"
    for name in ENTRIES:
        _expect_fields(fn, name, sizes, f"{param_count(REGISTRY[name]):,} parameters")


@REGISTRY_ENTRY.check("categorical fields are enum members, not free text")
def _reg_enums(fn):
    for name in ENTRIES:
        _, got = _entry(fn, name)
        for f, enum in CATEGORICAL_FIELDS.items():
            what = f"{got[f]!r} ({type(got[f]).__name__})"
            expect(isinstance(got[f], enum), f"{name}.{f}: expected a {enum.__name__} member, got {what}")


@REGISTRY_ENTRY.check("every field cites a paper or a config")
def _reg_sources(fn):
    for name in ENTRIES:
        _, got = _entry(fn, name)
        sources = got["sources"]
        expect(
            isinstance(sources, Mapping), f"{name}.sources: expected a mapping, got {type(sources).__name__}"
        )
        bare = [f for f in CITED_FIELDS if not (isinstance(sources.get(f), str) and sources[f].strip())]
        expect(not bare, f"{name}: no citation for {bare}")


@REGISTRY_ENTRY.check("the entries are written, not configs.REGISTRY's own objects")
def _reg_own(fn):
    for name in ENTRIES:
        entry, _ = _entry(fn, name)
        expect(entry is not REGISTRY[name], f"{name}: returned configs.REGISTRY[{name!r}] itself")


# --------------------------------------------------------------------------------------------------
# modern-llms.pretrained-parity
# --------------------------------------------------------------------------------------------------

PRETRAINED_PARITY = register(
    Exercise(
        id="modern-llms.pretrained-parity",
        title="Undo llama.cpp's RoPE row permutation, and run SmolLM2 like Hugging Face does",
        names=("unpermute_rope_rows",),
        references=(unpermute_rope_rows,),
        signature='''def unpermute_rope_rows(w, n_heads):
    """Undo the row permutation llama.cpp's converter applies to W_Q and W_K.

    w: (n_heads·D, d_in) as stored in a GGUF file, where within each head of D rows the rows are in
    the order 0, D/2, 1, D/2 + 1, …, D/2 − 1, D − 1 (interleaved pairs). Return the (n_heads·D, d_in)
    matrix with each head's rows back in the order 0, 1, …, D − 1 (half-split pairs, as Hugging Face
    rotates them). n_heads is H for W_Q and G (the KV heads) for W_K. Do not modify w.
    """''',
        hint="per head, the stored rows are (D/2, 2) pairs read row by row: reshape to "
        "(heads, D/2, 2, d_in), swap the middle two axes, reshape back.",
    )
)


def _permuted(heads: int, d: int, d_in: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    w = torch.randn(heads * d, d_in, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return w, permute_rope_rows(w, heads)


@PRETRAINED_PARITY.check("inverts llama.cpp's permutation for H = 9 query heads and G = 3 KV heads (D = 64)")
def _parity_round_trip(fn):
    for heads, seed in ((9, 0), (3, 1)):
        w, stored = _permuted(heads, 64, 576, seed)
        expect_close(fn(stored, heads), w, f"unpermute_rope_rows(stored, {heads})", atol=0)


@PRETRAINED_PARITY.check("equals transformers' own GGUF loader (reverse_permute_weights), D = 8 and 128")
def _parity_hf(fn):
    try:
        from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor
    except ImportError:  # the reference is optional; the round trip above already pins the answer
        return
    reverse = LlamaTensorProcessor()._reverse_permute_weights
    for heads, d in ((4, 8), (2, 128)):
        _, stored = _permuted(heads, d, 5, heads)
        expected = torch.from_numpy(reverse(stored.numpy(), heads, heads))
        expect_close(fn(stored, heads), expected, f"unpermute_rope_rows(w, {heads}) with D = {d}", atol=0)


@PRETRAINED_PARITY.check("SmolLM2 loaded with it matches the stored transformers logits (2e-4) and argmax")
def _parity_smollm2(fn):
    from companion.files import committed_result
    from companion.models.llama import load_llama_gguf

    model, _ = load_llama_gguf(unpermute_rope=fn)
    ref = committed_result("smollm2_hf_reference.json")["chat"]
    with torch.inference_mode():
        logits = model(torch.tensor([ref["ids"]]))[0][0]
    argmax = logits.argmax(-1).tolist()
    agree = sum(a == b for a, b in zip(argmax, ref["argmax"], strict=True)) / len(argmax)
    ours = logits[torch.tensor(ref["positions"]), torch.tensor(ref["tokens"])]
    err = float((ours - torch.tensor(ref["logits"])).abs().max())
    expect(
        err < 2e-4 and agree == 1.0,
        f"logits differ from transformers' by up to {err:.3g} (allowed 2e-4) and the next-token argmax "
        f"agrees at {agree:.0%} of positions (expected 100%): are the rows of W_Q / W_K in the right order?",
    )
