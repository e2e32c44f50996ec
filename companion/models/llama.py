"""A Llama-family decoder (LLaMA, Mistral, SmolLM2, …) built from the companion's one block, and its
loader for GGUF files.

The architecture is the GPT of :mod:`companion.models.gpt` with the choices LLaMA made (Touvron et
al., "LLaMA: Open and Efficient Foundation Language Models", 2023)::

    tokens ──► embed_tokens ──► L × block ──► norm ──► lm_head (= embed_tokensᵀ when tied) ──► logits

    block:  x ← x + attn(RMSNorm(x))      RoPE on q and k, G key/value heads shared by H query heads
            x ← x + mlp(RMSNorm(x))       SwiGLU: W_down (SiLU(x W_gate) ⊙ x W_up); no biases anywhere

Every block is a :class:`companion.nn.block.TransformerBlock` (``norm="rmsnorm"``,
``norm_position="pre"``, ``ffn="swiglu"``) whose attention is the one
:class:`~companion.nn.attention.GroupedQueryAttention`. The options later models added are fields of
:class:`LlamaConfig`: a sliding window on all or some layers (Mistral; GPT-OSS alternates), learned
attention sinks (GPT-OSS), and a mixture-of-experts FFN (Mixtral) from :mod:`companion.nn.moe`.

:func:`load_llama_gguf` reads a llama.cpp GGUF file with :mod:`companion.gguf`: the configuration
from its metadata, the weights dequantized to float, the tokenizer with
:meth:`~companion.tokenizers.bpe.BPETokenizer.from_gguf` (and the chat template). One step is easy to
get wrong: llama.cpp rotates *interleaved* pairs ``(x₀, x₁), (x₂, x₃), …``, so its converter permutes
the rows of ``W_Q`` and ``W_K`` of a Hugging Face checkpoint (which rotates half-split pairs
``(x_i, x_{i+D/2})``). The loader undoes that permutation, head by head::

    W.reshape(heads, D/2, 2, d_in).transpose(1, 2).reshape(heads·D, d_in)

so that the model equals Hugging Face's (tested: logits within 2e-4 of ``transformers`` loading the
same file). Skipping it (``unpermute_rope=False``) gives a model that runs, raises no error and is wrong — the
Modern LLMs chapter's negative control.

The model follows the interface of :class:`~companion.models.gpt.GPT` that ``companion.generate`` and
the trainer use::

    logits, loss = model(idx, targets)            # idx (B, T) -> logits (B, T, V)
    cache = model.new_kv_cache(batch_size, max_len)
    logits, _ = model(idx_new, kv_cache=cache)    # positions continue from cache.length
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from companion._validate import check_positive_int
from companion.losses import lm_loss
from companion.models.decoder_inputs import check_decoder_inputs
from companion.nn.attention import GroupedQueryAttention
from companion.nn.block import TransformerBlock
from companion.nn.kv_cache import KVCache
from companion.nn.masks import sliding_window
from companion.nn.moe import MoE
from companion.nn.norms import make_norm
from companion.nn.rope import RotaryEmbedding

__all__ = [
    "LAYER_TYPES",
    "Llama",
    "LlamaConfig",
    "load_llama_gguf",
    "permute_rope_rows",
    "unpermute_rope_rows",
]

LAYER_TYPES = ("full_attention", "sliding_attention")


@dataclass(frozen=True)
class LlamaConfig:
    """Hyperparameters of a :class:`Llama`. Field names follow Hugging Face's ``LlamaConfig``.

    Attributes:
        vocab_size: ``V``.
        hidden_size: the model width ``d``.
        intermediate_size: the SwiGLU inner width ``d_ff`` (LLaMA: about ``⅔·4d``, rounded).
        num_hidden_layers: ``L``.
        num_attention_heads: query heads ``H``.
        num_key_value_heads: key/value heads ``G`` (None: ``H``, multi-head attention).
        head_dim: per-head width ``D`` (None: ``d / H``).
        max_position_embeddings: the context length the model was trained for (``block_size``).
        rope_theta: RoPE's base θ.
        rope_interleaved: rotate interleaved pairs (llama.cpp's layout) instead of half-split pairs
            (Hugging Face's). Loading a GGUF file un-permutes the weights instead, so this stays False.
        rms_norm_eps: the RMSNorm epsilon.
        tie_word_embeddings: the output layer is the token-embedding matrix.
        sliding_window: the window ``w`` (keys per query, itself included) of sliding-window layers.
        layer_types: per layer ``"full_attention"`` or ``"sliding_attention"``; None: every layer
            slides when ``sliding_window`` is set, else every layer is full.
        attention_sinks: a learned sink logit per head and layer (GPT-OSS).
        num_local_experts: experts ``E`` of a mixture-of-experts FFN (0: a dense SwiGLU).
        num_experts_per_tok: experts ``k`` each token is routed to.
        fused_attention: PyTorch's fused ``scaled_dot_product_attention`` (else the explicit kernel).
    """

    vocab_size: int = 32000
    hidden_size: int = 4096
    intermediate_size: int = 11008
    num_hidden_layers: int = 32
    num_attention_heads: int = 32
    num_key_value_heads: int | None = None
    head_dim: int | None = None
    max_position_embeddings: int = 2048
    rope_theta: float = 10000.0
    rope_interleaved: bool = False
    rms_norm_eps: float = 1e-6
    tie_word_embeddings: bool = False
    sliding_window: int | None = None
    layer_types: tuple[str, ...] | None = None
    attention_sinks: bool = False
    num_local_experts: int = 0
    num_experts_per_tok: int = 2
    fused_attention: bool = True

    def __post_init__(self) -> None:
        for name in (
            "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
            "max_position_embeddings",
        ):  # fmt: skip
            check_positive_int(name, getattr(self, name))
        h, g = self.num_attention_heads, self.kv_heads
        check_positive_int("num_key_value_heads", g)
        if h % g:
            raise ValueError(f"num_attention_heads={h} is not divisible by num_key_value_heads={g}")
        if self.head_dim is None and self.hidden_size % h:
            raise ValueError(
                f"hidden_size={self.hidden_size} is not divisible by num_attention_heads={h}; set head_dim"
            )
        if self.head_width % 2:
            raise ValueError(f"head_dim: RoPE rotates pairs, so it must be even, got {self.head_width}")
        if not self.rope_theta > 1:
            raise ValueError(f"rope_theta: expected a number > 1, got {self.rope_theta!r}")
        if not self.rms_norm_eps > 0:
            raise ValueError(f"rms_norm_eps: expected a number > 0, got {self.rms_norm_eps!r}")
        if self.sliding_window is not None:
            check_positive_int("sliding_window", self.sliding_window)
        if self.layer_types is not None:
            if not isinstance(self.layer_types, tuple) or len(self.layer_types) != self.num_hidden_layers:
                raise ValueError(
                    f"layer_types: expected a tuple of {self.num_hidden_layers} entries (one per layer), "
                    f"got {self.layer_types!r}"
                )
            bad = sorted({t for t in self.layer_types if t not in LAYER_TYPES})
            if bad:
                raise ValueError(f"layer_types: expected entries in {list(LAYER_TYPES)}, got {bad}")
            if "sliding_attention" in self.layer_types and self.sliding_window is None:
                raise ValueError("layer_types: 'sliding_attention' layers need sliding_window to be set")
        if self.num_local_experts:
            check_positive_int("num_local_experts", self.num_local_experts)
            check_positive_int("num_experts_per_tok", self.num_experts_per_tok)
            if self.num_experts_per_tok > self.num_local_experts:
                raise ValueError(
                    f"num_experts_per_tok: must be <= num_local_experts={self.num_local_experts}, "
                    f"got {self.num_experts_per_tok}"
                )

    @property
    def block_size(self) -> int:
        """The trained context length (the name ``companion.generate`` reads)."""
        return self.max_position_embeddings

    @property
    def kv_heads(self) -> int:
        """``G``: ``num_key_value_heads``, or ``H`` when that is None."""
        return self.num_attention_heads if self.num_key_value_heads is None else self.num_key_value_heads

    @property
    def head_width(self) -> int:
        """``D``: ``head_dim``, or ``d / H`` when that is None."""
        return self.hidden_size // self.num_attention_heads if self.head_dim is None else self.head_dim

    def layer_type(self, i: int) -> str:
        """``"full_attention"`` or ``"sliding_attention"`` for layer ``i``."""
        if self.layer_types is not None:
            return self.layer_types[i]
        return "sliding_attention" if self.sliding_window is not None else "full_attention"

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (JSON-serialisable)."""
        d = dataclasses.asdict(self)
        if d["layer_types"] is not None:
            d["layer_types"] = list(d["layer_types"])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LlamaConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error naming them."""
        if not isinstance(d, dict):
            raise TypeError(f"d: expected a dict, got {type(d).__name__}")
        unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"d: unknown LlamaConfig field(s) {unknown}")
        d = dict(d)
        if d.get("layer_types") is not None:
            d["layer_types"] = tuple(d["layer_types"])
        return cls(**d)

    @classmethod
    def from_gguf_metadata(cls, metadata: dict[str, Any], **overrides: Any) -> LlamaConfig:
        """The configuration a GGUF file declares (``general.architecture == "llama"``).

        Reads ``llama.block_count``, ``embedding_length``, ``feed_forward_length``,
        ``attention.head_count`` / ``head_count_kv``, ``rope.freq_base``, ``context_length``,
        ``attention.layer_norm_rms_epsilon`` and ``vocab_size`` (or the token list's length). Whether
        the head is tied is decided by the loader (an ``output.weight`` tensor or not).
        """
        arch = metadata.get("general.architecture")
        if arch != "llama":
            raise ValueError(f"metadata: expected general.architecture 'llama', got {arch!r}")

        def key(name: str, default: Any = None) -> Any:
            value = metadata.get(f"llama.{name}", default)
            if value is None:
                raise ValueError(f"metadata: the GGUF file has no 'llama.{name}' entry")
            return value

        d_model, n_heads = int(key("embedding_length")), int(key("attention.head_count"))
        vocab = metadata.get("llama.vocab_size") or len(metadata.get("tokenizer.ggml.tokens", ()))
        rope_dim = int(key("rope.dimension_count", d_model // n_heads))
        fields: dict[str, Any] = {
            "vocab_size": int(vocab),
            "hidden_size": d_model,
            "intermediate_size": int(key("feed_forward_length")),
            "num_hidden_layers": int(key("block_count")),
            "num_attention_heads": n_heads,
            "num_key_value_heads": int(key("attention.head_count_kv", n_heads)),
            "head_dim": None if rope_dim == d_model // n_heads else rope_dim,
            "max_position_embeddings": int(key("context_length")),
            "rope_theta": float(key("rope.freq_base", 10000.0)),
            # stored as float32 in the file: 1e-5 reads back as 9.99999974e-06
            "rms_norm_eps": float(np.float32(key("attention.layer_norm_rms_epsilon"))),
            "tie_word_embeddings": True,
        }
        fields.update(overrides)
        return cls(**fields)

    @classmethod
    def smollm2_135m(cls, **overrides: Any) -> LlamaConfig:
        """SmolLM2-135M(-Instruct): 30 layers, d = 576, 9 query / 3 KV heads, d_ff 1536, θ = 100 000,
        tied head, 8192 positions, V = 49 152 (its ``config.json`` on the Hugging Face Hub)."""
        base = cls(
            vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
            num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=8192, rope_theta=100000.0,
            rms_norm_eps=1e-5, tie_word_embeddings=True,
        )  # fmt: skip
        return dataclasses.replace(base, **overrides)


def _block(config: LlamaConfig, i: int, rotary: RotaryEmbedding, **kw: Any) -> TransformerBlock:
    """Layer ``i``: a Pre-RMSNorm SwiGLU :class:`~companion.nn.block.TransformerBlock`, no biases."""
    c = config
    kernel = "sdpa" if c.fused_attention else "explicit"
    attention = GroupedQueryAttention(
        c.hidden_size, c.num_attention_heads, c.kv_heads, head_dim=c.head_width, bias=False, rotary=rotary,
        kernel=kernel, sinks=c.attention_sinks, layer_idx=i, **kw,
    )  # fmt: skip
    moe = (
        MoE(c.hidden_size, c.intermediate_size, c.num_local_experts, c.num_experts_per_tok, **kw)
        if c.num_local_experts
        else None
    )
    return TransformerBlock(
        c.hidden_size, c.num_attention_heads, d_hidden=c.intermediate_size, norm="rmsnorm",
        norm_position="pre", ffn="swiglu", bias=False, attention=attention, feed_forward=moe, causal=True,
        eps=c.rms_norm_eps, fused_norm=True, layer_idx=i, **kw,
    )  # fmt: skip


class Llama(nn.Module):
    """A Llama-family decoder-only language model.

    Args:
        config: a :class:`LlamaConfig` (or keyword arguments for one).
        device, dtype: where and how to allocate the parameters (``device="meta"`` allocates nothing:
            the loader then assigns the file's tensors).

    Attributes:
        embed_tokens: ``nn.Embedding(V, d)``.
        rotary: the :class:`~companion.nn.rope.RotaryEmbedding` every layer shares.
        layers: ``L`` :class:`~companion.nn.block.TransformerBlock` s (``ln_1``, ``attn``, ``ln_2``, ``mlp``).
        norm: the final RMSNorm.
        lm_head: ``nn.Linear(d, V, bias=False)``; its weight *is* ``embed_tokens.weight`` when tied.
    """

    def __init__(
        self,
        config: LlamaConfig | None = None,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        if config is None:
            config = LlamaConfig(**kwargs)
        elif kwargs:
            config = dataclasses.replace(config, **kwargs)
        if not isinstance(config, LlamaConfig):
            raise TypeError(f"config: expected a LlamaConfig, got {type(config).__name__}")
        self.config = c = config
        kw = {"device": device, "dtype": dtype}
        self.embed_tokens = nn.Embedding(c.vocab_size, c.hidden_size, **kw)
        self.rotary = RotaryEmbedding(
            c.head_width, base=c.rope_theta, interleaved=c.rope_interleaved,
            max_positions=min(c.max_position_embeddings, 4096),
        )  # fmt: skip
        self.layers = nn.ModuleList(_block(c, i, self.rotary, **kw) for i in range(c.num_hidden_layers))
        self.norm = make_norm("rmsnorm", c.hidden_size, c.rms_norm_eps, fused=True, **kw)
        self.lm_head = nn.Linear(c.hidden_size, c.vocab_size, bias=False, **kw)
        if str(device) != "meta":
            self.reset_parameters()
        self.tie_weights()

    def tie_weights(self) -> None:
        """Make ``lm_head.weight`` the token-embedding matrix when the configuration ties them."""
        if self.config.tie_word_embeddings:
            self.lm_head.weight = self.embed_tokens.weight

    def reset_parameters(self, generator: torch.Generator | None = None, std: float = 0.02) -> None:
        """Hugging Face Llama's initialization: every linear and embedding weight ``~ N(0, std²)``,
        norm gains 1, sinks 0."""
        with torch.no_grad():
            for module in self.modules():
                if isinstance(module, (nn.Linear, nn.Embedding)):
                    module.weight.normal_(0.0, std, generator=generator)
                elif isinstance(module, GroupedQueryAttention) and module.sinks is not None:
                    module.sinks.zero_()
            for name, p in self.named_parameters():
                if name.endswith(("ln_1.weight", "ln_2.weight")) or name == "norm.weight":
                    p.fill_(1.0)

    def num_parameters(self) -> int:
        """Number of parameters, tied weights counted once."""
        return sum(p.numel() for p in self.parameters())

    def new_kv_cache(
        self,
        batch_size: int,
        max_len: int | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> KVCache:
        """An empty :class:`~companion.nn.kv_cache.KVCache`: ``2·L·G·D`` values per token and sequence.

        Args:
            batch_size: ``B`` of the sequences that will be decoded.
            max_len: preallocate this many positions; None grows by concatenation.
            device, dtype: of the cache; default the parameters'.
        """
        p = self.embed_tokens.weight
        c = self.config
        return KVCache(
            c.num_hidden_layers, batch_size, c.kv_heads, c.head_width, max_len,
            dtype=p.dtype if dtype is None else dtype, device=p.device if device is None else device,
        )  # fmt: skip

    def forward(
        self,
        idx: torch.Tensor,
        targets: torch.Tensor | None = None,
        *,
        kv_cache: KVCache | None = None,
        key_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Next-token logits for every position, and the loss when ``targets`` are given.

        Args:
            idx: ``(B, T)`` token ids in ``[0, V)``; with ``kv_cache`` only the new tokens, whose
                positions continue from ``kv_cache.length``.
            targets: ``(B, T)`` next-token ids, ``-100`` where there is none.
            kv_cache: a cache from :meth:`new_kv_cache`.
            key_mask: ``(B, T_k)`` bool, True at real tokens (``T_k`` counts cached and new tokens), for
                right-padded batches.

        Returns:
            ``(logits (B, T, V), loss or None)``; the loss is the mean cross-entropy over the
            non-ignored targets. A MoE's balancing loss is not added: read it from each block's
            ``aux_loss`` and weight it yourself.
        """
        c = self.config
        offset = check_decoder_inputs(idx, c.vocab_size, c.num_hidden_layers, kv_cache)
        t = idx.shape[1]
        window = None
        if c.sliding_window is not None and offset + t > c.sliding_window:
            window = sliding_window(t, offset + t, window=c.sliding_window, offset=offset, device=idx.device)
        x = self.embed_tokens(idx)  # (B, T, d)
        for i, block in enumerate(self.layers):
            mask = window if c.layer_type(i) == "sliding_attention" else None
            x = block(x, attn_mask=mask, key_mask=key_mask, kv_cache=kv_cache)
        logits = self.lm_head(self.norm(x))  # (B, T, V)
        loss = None if targets is None else lm_loss(logits, targets)
        return logits, loss

    @classmethod
    def from_hf(cls, hf_model: Any, **overrides: Any) -> Llama:
        """An equal model from a Hugging Face ``LlamaForCausalLM``, ``MistralForCausalLM`` or
        ``MixtralForCausalLM`` (weights copied; the configuration read from ``hf_model.config``).

        Args:
            hf_model: the Hugging Face model.
            **overrides: :class:`LlamaConfig` fields to change (e.g. ``fused_attention=False``).
        """
        hc = hf_model.config
        kind = getattr(hc, "model_type", None)
        if kind not in ("llama", "mistral", "mixtral"):
            raise ValueError(f"hf_model: expected a llama, mistral or mixtral model, got model_type {kind!r}")
        if getattr(hc, "attention_bias", False) or getattr(hc, "mlp_bias", False):
            raise ValueError("hf_model: biases in the attention or MLP are not part of this Llama")
        rope = getattr(hc, "rope_parameters", None) or {}
        if rope.get("rope_type", "default") != "default":
            raise ValueError(f"hf_model: RoPE scaling {rope.get('rope_type')!r} is not supported")
        fields: dict[str, Any] = {
            "vocab_size": hc.vocab_size,
            "hidden_size": hc.hidden_size,
            "intermediate_size": hc.intermediate_size,
            "num_hidden_layers": hc.num_hidden_layers,
            "num_attention_heads": hc.num_attention_heads,
            "num_key_value_heads": hc.num_key_value_heads,
            "head_dim": getattr(hc, "head_dim", None),
            "max_position_embeddings": hc.max_position_embeddings,
            "rope_theta": float(rope.get("rope_theta", getattr(hc, "rope_theta", 10000.0))),
            "rms_norm_eps": hc.rms_norm_eps,
            "tie_word_embeddings": bool(hc.tie_word_embeddings),
            "sliding_window": getattr(hc, "sliding_window", None) if kind != "llama" else None,
        }
        if kind == "mixtral":
            fields["num_local_experts"] = hc.num_local_experts
            fields["num_experts_per_tok"] = hc.num_experts_per_tok
        fields.update(overrides)
        w = hf_model.model.embed_tokens.weight
        model = cls(LlamaConfig(**fields), device="meta", dtype=w.dtype)
        sd = hf_model.state_dict()
        state = {
            "embed_tokens.weight": sd["model.embed_tokens.weight"],
            "norm.weight": sd["model.norm.weight"],
        }
        if not model.config.tie_word_embeddings:
            state["lm_head.weight"] = sd["lm_head.weight"]
        names = {"q_proj": "q_proj", "k_proj": "k_proj", "v_proj": "v_proj", "o_proj": "out_proj"}
        for i, layer in enumerate(model.layers):
            src, dst = f"model.layers.{i}.", f"layers.{i}."
            state[dst + "ln_1.weight"] = sd[src + "input_layernorm.weight"]
            state[dst + "ln_2.weight"] = sd[src + "post_attention_layernorm.weight"]
            for theirs, ours in names.items():
                state[f"{dst}attn.{ours}.weight"] = sd[f"{src}self_attn.{theirs}.weight"]
            if isinstance(layer.mlp, MoE):
                state[dst + "mlp.router.weight"] = sd[src + "mlp.gate.weight"]
                gate_up, down = sd[src + "mlp.experts.gate_up_proj"], sd[src + "mlp.experts.down_proj"]
                for e in range(layer.mlp.n_experts):
                    gate, up = gate_up[e].chunk(2, dim=0)
                    state[f"{dst}mlp.experts.{e}.w_gate.weight"] = gate
                    state[f"{dst}mlp.experts.{e}.w_up.weight"] = up
                    state[f"{dst}mlp.experts.{e}.w_down.weight"] = down[e]
            else:
                for part in ("gate", "up", "down"):
                    state[f"{dst}mlp.w_{part}.weight"] = sd[f"{src}mlp.{part}_proj.weight"]
        model.load_state_dict({k: v.detach().clone() for k, v in state.items()}, strict=False, assign=True)
        model.tie_weights()
        meta = [name for name, p in model.named_parameters() if p.is_meta]
        if meta:
            raise ValueError(f"hf_model: no weights found for {meta[:5]}")
        return model.to(w.device).eval()


# ------------------------------------------------------------------------------------------------
# loading a GGUF file
# ------------------------------------------------------------------------------------------------
def permute_rope_rows(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """What llama.cpp's converter does to ``W_Q`` / ``W_K``: half-split pair rows → interleaved.

    Within each head the rows ``(0 … D/2−1 | D/2 … D−1)`` are reordered ``0, D/2, 1, D/2+1, …``, so
    that rotating adjacent pairs of the output does what rotating half-split pairs did.

    Args:
        w: ``(n_heads·D, d_in)``.
        n_heads: the heads the rows belong to (``H`` for ``W_Q``, ``G`` for ``W_K``).
    """
    rows, d_in = w.shape
    return w.reshape(n_heads, 2, rows // n_heads // 2, d_in).transpose(1, 2).reshape(rows, d_in)


def unpermute_rope_rows(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """The inverse of :func:`permute_rope_rows`: a GGUF file's interleaved rows → half-split rows."""
    rows, d_in = w.shape
    if rows % (2 * n_heads):
        raise ValueError(f"w: {rows} rows do not split into {n_heads} heads of even width")
    return w.reshape(n_heads, rows // n_heads // 2, 2, d_in).transpose(1, 2).reshape(rows, d_in)


_GGUF_NAMES = {
    "attn_norm": "ln_1",
    "attn_q": "attn.q_proj",
    "attn_k": "attn.k_proj",
    "attn_v": "attn.v_proj",
    "attn_output": "attn.out_proj",
    "ffn_norm": "ln_2",
    "ffn_gate": "mlp.w_gate",
    "ffn_up": "mlp.w_up",
    "ffn_down": "mlp.w_down",
}


def _companion_name(gguf_name: str) -> str | None:
    """``blk.3.attn_q.weight`` → ``layers.3.attn.q_proj.weight``; None for a name we do not know."""
    if gguf_name == "token_embd.weight":
        return "embed_tokens.weight"
    if gguf_name == "output_norm.weight":
        return "norm.weight"
    if gguf_name == "output.weight":
        return "lm_head.weight"
    parts = gguf_name.split(".")
    if len(parts) == 4 and parts[0] == "blk" and parts[3] == "weight" and parts[2] in _GGUF_NAMES:
        return f"layers.{parts[1]}.{_GGUF_NAMES[parts[2]]}.weight"
    return None


def _set_quantized(
    model: Llama,
    name: str,
    raw: np.ndarray,
    shape: tuple[int, ...],
    gguf_name: str,
    config: LlamaConfig,
    unpermute_rope: bool | Callable[[torch.Tensor, int], torch.Tensor],
) -> None:
    """Put the file's Q4_1 bytes for ``name`` (``layers.3.attn.q_proj.weight``) in a Q4_1Linear."""
    from companion.quantize import Q4_1Linear

    layer = Q4_1Linear.from_gguf_blocks(raw, (shape[0], shape[1]))
    if unpermute_rope and gguf_name.endswith(("attn_q.weight", "attn_k.weight")):
        heads = config.num_attention_heads if "attn_q" in gguf_name else config.kv_heads
        rows = torch.arange(shape[0], dtype=torch.float64)[:, None]
        unpermute = unpermute_rope if callable(unpermute_rope) else unpermute_rope_rows
        layer.permute_rows(unpermute(rows, heads)[:, 0].long())
    parent, _, attr = name.removesuffix(".weight").rpartition(".")
    setattr(model.get_submodule(parent), attr, layer)


def load_llama_gguf(
    path: str | Path | None = None,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
    unpermute_rope: bool | Callable[[torch.Tensor, int], torch.Tensor] = True,
    keep_quantized: bool = False,
    verbose: bool = False,
    **config_overrides: Any,
) -> tuple[Llama, Any]:
    """Load a Llama-architecture GGUF file: the model (weights dequantized) and its tokenizer.

    Args:
        path: the ``.gguf`` file; default the pinned SmolLM2-135M-Instruct Q4_1 asset of
            :mod:`companion.hub` (fetched if needed).
        dtype: of the parameters (the file's Q4_1/Q8_0/F16 weights are dequantized to float32 first).
        device: where to put the model.
        unpermute_rope: undo llama.cpp's row permutation of ``W_Q`` and ``W_K`` (see the module
            docstring) with :func:`unpermute_rope_rows`, or with a function of the same signature
            ``(w, n_heads) -> w`` (the chapter's exercise). False reproduces the classic silent bug.
        keep_quantized: keep the file's Q4_1 matrices as they are stored, as
            :class:`~companion.quantize.Q4_1Linear` layers that dequantize on the fly (5 bits per
            weight instead of 32); other tensors are dequantized as usual.
        verbose: print the load time.
        **config_overrides: fields of :class:`LlamaConfig` to change (e.g. ``fused_attention``).

    Returns:
        ``(model in eval mode, tokenizer)``; the tokenizer is a
        :class:`~companion.tokenizers.bpe.BPETokenizer` with ``bos_id``, ``eos_id`` and
        ``chat_template``.

    Raises:
        ValueError: if the file is not a Llama GGUF, or its tensors do not match the configuration
            (a missing, unexpected or wrongly shaped tensor is named).
    """
    from companion.gguf import GGMLType, GGUFFile
    from companion.tokenizers.bpe import BPETokenizer

    start = time.perf_counter()
    if path is None:
        from companion import hub

        path = hub.path("smollm2", hub.SMOLLM2_GGUF)
    f = GGUFFile(path)
    tied = "output.weight" not in f.tensors
    config = LlamaConfig.from_gguf_metadata(f.metadata, tie_word_embeddings=tied, **config_overrides)
    model = Llama(config, device="meta", dtype=dtype)
    expected = {name: tuple(p.shape) for name, p in model.state_dict(keep_vars=True).items()}
    if tied:
        expected.pop("lm_head.weight")
    state: dict[str, torch.Tensor] = {}
    for name, info in f.tensors.items():
        ours = _companion_name(name)
        if ours is None or ours not in expected:
            raise ValueError(f"path: {Path(path).name} holds a tensor {name!r} this Llama has no place for")
        if keep_quantized and info.ggml_type == GGMLType.Q4_1 and ours.startswith("layers."):
            _set_quantized(model, ours, f.raw(name), expected.pop(ours), name, config, unpermute_rope)
            continue
        w = torch.from_numpy(np.ascontiguousarray(f.tensor(name), dtype=np.float32))
        if unpermute_rope and name.endswith(("attn_q.weight", "attn_k.weight")):
            heads = config.num_attention_heads if "attn_q" in name else config.kv_heads
            w = (unpermute_rope if callable(unpermute_rope) else unpermute_rope_rows)(w, heads)
        if tuple(w.shape) != expected[ours]:
            raise ValueError(f"path: tensor {name!r} has shape {tuple(w.shape)}, expected {expected[ours]}")
        state[ours] = w.to(dtype=dtype, device=device)
    missing = sorted(set(expected) - set(state))
    if missing:
        raise ValueError(f"path: {Path(path).name} lacks the tensor(s) for {missing[:5]}")
    model.load_state_dict(state, strict=False, assign=True)
    model.tie_weights()
    model.to(device)
    model.eval()
    tokenizer = BPETokenizer.from_gguf(path)
    if verbose:
        print(
            f"loaded {Path(path).name}: {model.num_parameters():,} parameters "
            f"in {time.perf_counter() - start:.1f} s"
        )
    return model, tokenizer
