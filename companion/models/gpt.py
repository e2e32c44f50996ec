"""A decoder-only Transformer language model (GPT), configured by a dataclass.

The model is the stack the Transformer chapters build, with the choices a modern GPT makes exposed
as configuration::

    tokens ──► wte (+ wpe) ──► dropout ──► L × block ──► ln_f ──► lm_head (= wteᵀ when tied) ──► logits

    block (Pre-LN):   x ← x + attn(ln_1(x));   x ← x + mlp(ln_2(x))
    block (Post-LN):  x ← ln_1(x + attn(x));   x ← ln_2(x + mlp(x))     (no ln_f)

* positions: ``"learned"`` (GPT-2: a learned table added to the token embeddings),
  ``"sinusoidal"`` (the fixed table of the original Transformer, added likewise), ``"rope"`` (rotary,
  applied to the queries and keys of every layer, optionally rescaled by position interpolation or
  NTK-aware scaling), ``"alibi"`` (a fixed linear bias added to the attention scores), ``"t5"`` (T5's
  learned bias per head and distance bucket) or ``"none"`` (causal masking alone); only the learned
  table and T5's bias have parameters. These are the schemes the Positional-encoding chapter's
  length-extrapolation experiment trains;
* norm: ``"layernorm"`` or ``"rmsnorm"``, placed ``"pre"`` or ``"post"``;
* FFN: ``"mlp"`` (``GELU(xW₁ + b₁)W₂ + b₂``, 4d wide) or ``"swiglu"`` (three matrices, ``8d/3`` wide);
* attention: multi-head (``n_kv_head = n_head``) or grouped-query (``n_kv_head < n_head``), through
  :class:`companion.nn.attention.GroupedQueryAttention`, with PyTorch's fused
  ``scaled_dot_product_attention`` by default and a :class:`~companion.nn.kv_cache.KVCache` for
  generation;
* every block is a :class:`companion.nn.block.TransformerBlock` (the one configurable block), with
  its norms computed by PyTorch's fused kernels;
* weight tying (``logits = h Eᵀ`` with ``E`` the token-embedding matrix) and GPT-2's initialization
  (``N(0, 0.02²)``, residual projections ``N(0, (0.02/√(2L))²)``).

With :meth:`GPTConfig.gpt2` and weights copied by :meth:`GPT.from_hf_gpt2`, the logits equal those
of Hugging Face's ``GPT2LMHeadModel`` (tested to 1e-5).

The interface other modules rely on (``companion.generate``, the trainer)::

    logits, loss = model(idx)                    # idx (B, T) int64 -> logits (B, T, V)
    logits, loss = model(idx, targets)           # loss: mean cross-entropy over targets != -100
    cache = model.new_kv_cache(batch_size)       # then feed only the new tokens:
    logits, _ = model(idx_new, kv_cache=cache)   # positions continue from cache.length
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from companion._validate import check_positive_int, check_probability, check_tensor
from companion.losses import lm_loss
from companion.models.decoder_inputs import check_decoder_inputs
from companion.nn.block import TransformerBlock
from companion.nn.kv_cache import KVCache
from companion.nn.norms import LayerNorm, RMSNorm, make_norm
from companion.nn.positional import (
    LearnedPositionalEmbedding,
    PositionOutOfRangeError,
    SinusoidalPositionalEncoding,
)
from companion.nn.relative_bias import ALiBi, T5RelativeBias
from companion.nn.rope import RotaryEmbedding

__all__ = [
    "GPT",
    "GPTConfig",
    "incremental_logits",
    "param_count",
]

POSITIONS = ("learned", "sinusoidal", "rope", "alibi", "t5", "none")
ROPE_SCALINGS = (None, "linear", "ntk")
NORMS = ("layernorm", "rmsnorm")
NORM_POSITIONS = ("pre", "post")
FFNS = ("mlp", "swiglu")


@dataclass(frozen=True)
class GPTConfig:
    """Hyperparameters of a :class:`GPT`. Field names follow nanoGPT and Hugging Face's ``GPT2Config``.

    Attributes:
        vocab_size: ``V``, the number of token ids.
        block_size: ``n_ctx``, the context length the model is trained for (the learned position table
            has this many rows; RoPE and ALiBi can run longer but were not trained there).
        n_layer: ``L``, the number of blocks.
        n_head: ``H``, query heads; must divide ``n_embd``.
        n_embd: ``d``, the model width.
        n_kv_head: ``G``, key/value heads (None: ``H``, multi-head attention; 1: multi-query).
        d_ff: FFN inner width; None: ``4d`` for ``"mlp"``, ``8d/3`` rounded up to a multiple of 8 for
            ``"swiglu"``.
        dropout: on the embeddings, the attention weights and each sublayer's output (training only).
        bias: biases in the linear layers and LayerNorms (GPT-2: True; Llama: False).
        position: ``"learned"``, ``"sinusoidal"``, ``"rope"``, ``"alibi"``, ``"t5"`` or ``"none"``. The
            sinusoidal table is scaled to the token embeddings' size (RMS ``init_std``); T5's bias
            has ``min(32, block_size)`` causal buckets with ``max_distance = block_size``, so every
            bucket is trained at the training length.
        norm: ``"layernorm"`` or ``"rmsnorm"``.
        norm_position: ``"pre"`` (GPT-2 onwards, with a final ``ln_f``) or ``"post"`` (GPT-1).
        ffn: ``"mlp"`` or ``"swiglu"``.
        activation: the MLP's activation (``"gelu_tanh"`` is GPT-2's ``gelu_new``; ``"gelu"`` is exact).
        tie_embeddings: share the token-embedding matrix with the output layer.
        norm_eps: epsilon of the norms (GPT-2: 1e-5).
        rope_base: RoPE's base θ.
        rope_scaling: None, ``"linear"`` (position interpolation) or ``"ntk"`` (NTK-aware base
            scaling) — how RoPE is stretched to run at ``rope_scaling_factor`` × its training length
            (see :func:`~companion.nn.rope.rope_frequencies`).
        rope_scaling_factor: the factor ``s ≥ 1`` of ``rope_scaling``.
        init_std: standard deviation of the initial weights (GPT-2: 0.02).
        fused_attention: use ``torch.nn.functional.scaled_dot_product_attention`` (fused kernels on
            CPU and GPU); False runs the explicit softmax of ``companion.nn.attention``.
        gradient_checkpointing: recompute each block's activations in the backward pass (activation
            checkpointing) instead of storing them: less memory for about one extra forward.
    """

    vocab_size: int = 50257
    block_size: int = 1024
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    n_kv_head: int | None = None
    d_ff: int | None = None
    dropout: float = 0.0
    bias: bool = True
    position: str = "learned"
    norm: str = "layernorm"
    norm_position: str = "pre"
    ffn: str = "mlp"
    activation: str = "gelu_tanh"
    tie_embeddings: bool = True
    norm_eps: float = 1e-5
    rope_base: float = 10000.0
    rope_scaling: str | None = None
    rope_scaling_factor: float = 1.0
    init_std: float = 0.02
    fused_attention: bool = True
    gradient_checkpointing: bool = False

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            check_positive_int(name, getattr(self, name))
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd={self.n_embd} is not divisible by n_head={self.n_head}")
        if self.n_kv_head is not None:
            check_positive_int("n_kv_head", self.n_kv_head)
            if self.n_head % self.n_kv_head:
                raise ValueError(f"n_head={self.n_head} is not divisible by n_kv_head={self.n_kv_head}")
        if self.d_ff is not None:
            check_positive_int("d_ff", self.d_ff)
        check_probability("dropout", self.dropout)
        for name, allowed in (
            ("position", POSITIONS),
            ("norm", NORMS),
            ("norm_position", NORM_POSITIONS),
            ("ffn", FFNS),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name}: expected one of {list(allowed)}, got {getattr(self, name)!r}")
        if self.position == "rope" and (self.n_embd // self.n_head) % 2:
            raise ValueError(f"position='rope' needs an even head width, got {self.n_embd // self.n_head}")
        if self.position == "sinusoidal" and self.n_embd % 2:
            raise ValueError(f"position='sinusoidal' needs an even n_embd, got {self.n_embd}")
        if self.rope_scaling not in ROPE_SCALINGS:
            raise ValueError(
                f"rope_scaling: expected one of {list(ROPE_SCALINGS)}, got {self.rope_scaling!r}"
            )
        if self.rope_scaling is not None and self.position != "rope":
            raise ValueError(
                f"rope_scaling: only position='rope' is rescaled, got position={self.position!r}"
            )
        if not self.rope_scaling_factor >= 1:
            raise ValueError(f"rope_scaling_factor: expected a number >= 1, got {self.rope_scaling_factor!r}")
        if not self.norm_eps > 0:
            raise ValueError(f"norm_eps: expected a number > 0, got {self.norm_eps!r}")
        if not self.init_std > 0:
            raise ValueError(f"init_std: expected a number > 0, got {self.init_std!r}")

    @property
    def head_dim(self) -> int:
        """``d_h = d / H``."""
        return self.n_embd // self.n_head

    @property
    def kv_heads(self) -> int:
        """``G``: ``n_kv_head``, or ``n_head`` when that is None."""
        return self.n_head if self.n_kv_head is None else self.n_kv_head

    @property
    def t5_buckets(self) -> int:
        """Buckets of T5's bias (``position="t5"``): ``min(32, block_size)``."""
        return min(32, self.block_size)

    @property
    def ffn_width(self) -> int:
        """The FFN's inner width ``d_ff`` after applying the defaults."""
        if self.d_ff is not None:
            return self.d_ff
        if self.ffn == "mlp":
            return 4 * self.n_embd
        return 8 * ((8 * self.n_embd // 3 + 7) // 8)  # companion.nn.ffn.glu_hidden_size(d, 8)

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (JSON-serialisable)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GPTConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error naming them."""
        if not isinstance(d, dict):
            raise TypeError(f"d: expected a dict, got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"d: unknown GPTConfig field(s) {unknown}")
        return cls(**d)

    # ---- presets ---------------------------------------------------------------------------------
    @classmethod
    def gpt2(cls, **overrides: Any) -> GPTConfig:
        """GPT-2 small (124M): L = 12, H = 12, d = 768, n_ctx = 1024, V = 50 257, tied, gelu_new."""
        return dataclasses.replace(cls(), **overrides)

    @classmethod
    def baby(cls, vocab_size: int = 65, **overrides: Any) -> GPTConfig:
        """nanoGPT's CPU example for character-level Shakespeare: 4 layers, 4 heads, d = 128, block 64."""
        base = cls(vocab_size=vocab_size, block_size=64, n_layer=4, n_head=4, n_embd=128, dropout=0.0)
        return dataclasses.replace(base, **overrides)

    @classmethod
    def shakespeare_char(cls, vocab_size: int = 65, **overrides: Any) -> GPTConfig:
        """nanoGPT's GPU config for character-level Shakespeare: 6 layers, 6 heads, d = 384, block 256."""
        base = cls(vocab_size=vocab_size, block_size=256, n_layer=6, n_head=6, n_embd=384, dropout=0.2)
        return dataclasses.replace(base, **overrides)

    @classmethod
    def llama_style(cls, **overrides: Any) -> GPTConfig:
        """The same skeleton with Llama's choices: RoPE, RMSNorm, SwiGLU, no biases, untied (small)."""
        base = cls(
            vocab_size=65, block_size=128, n_layer=4, n_head=4, n_embd=128, n_kv_head=2, bias=False,
            position="rope", norm="rmsnorm", ffn="swiglu", tie_embeddings=False, norm_eps=1e-6,
        )  # fmt: skip
        return dataclasses.replace(base, **overrides)


def param_count(config: GPTConfig) -> int:
    """The exact number of parameters of ``GPT(config)``, from the configuration alone.

    Per block: attention ``d·(H + 2G)·d_h + H·d_h·d`` weights (``4d²`` for multi-head attention) plus
    biases; the FFN ``2·d·d_ff`` (MLP) or ``3·d·d_ff`` (SwiGLU) plus biases; two norms of ``d`` (or
    ``2d`` with a LayerNorm bias). Embeddings ``V·d`` (+ ``n_ctx·d`` for learned positions), a final
    norm for Pre-LN, ``V·d`` more for an untied output layer, and T5's ``buckets·H`` bias table. For
    GPT-2 small this is 124 439 808; the usual approximation is ``12·L·d² + (V + n_ctx)·d``.

    Args:
        config: a :class:`GPTConfig`.

    Returns:
        The parameter count (tied weights counted once).
    """
    if not isinstance(config, GPTConfig):
        raise TypeError(f"config: expected a GPTConfig, got {type(config).__name__}")
    c = config
    d, h, g, dh, f = c.n_embd, c.n_head, c.kv_heads, c.head_dim, c.ffn_width
    b = 1 if c.bias else 0
    attn = d * (h + 2 * g) * dh + b * (h + 2 * g) * dh + h * dh * d + b * d
    mlp = 2 * d * f + b * (f + d) if c.ffn == "mlp" else 3 * d * f + b * (2 * f + d)
    norm = d * (2 if (c.norm == "layernorm" and c.bias) else 1)
    per_block = attn + mlp + 2 * norm
    total = c.n_layer * per_block + c.vocab_size * d
    if c.position == "learned":
        total += c.block_size * d
    if c.position == "t5":
        total += c.t5_buckets * h
    if c.norm_position == "pre":
        total += norm
    if not c.tie_embeddings:
        total += c.vocab_size * d
    return total


def _norm(config: GPTConfig, device: Any, dtype: Any) -> nn.Module:
    bias = {"bias": config.bias} if config.norm == "layernorm" else {}
    return make_norm(
        config.norm, config.n_embd, config.norm_eps, fused=True, device=device, dtype=dtype, **bias
    )


def _block(config: GPTConfig, layer_idx: int, rotary: RotaryEmbedding | None, **kw: Any) -> TransformerBlock:
    """Block ``layer_idx`` of a GPT: a causal :class:`~companion.nn.block.TransformerBlock`."""
    c = config
    return TransformerBlock(
        c.n_embd,
        c.n_head,
        n_kv_heads=c.kv_heads,
        d_hidden=c.ffn_width,
        norm=c.norm,
        norm_position=c.norm_position,
        ffn=c.ffn,
        activation=c.activation if c.ffn == "mlp" else None,  # SwiGLU keeps its SiLU gate
        dropout=c.dropout,
        bias=c.bias,
        causal=True,
        eps=c.norm_eps,
        kernel="sdpa" if c.fused_attention else "explicit",
        fused_norm=True,
        rotary=rotary,
        layer_idx=layer_idx,
        **kw,
    )


class GPT(nn.Module):
    """A decoder-only Transformer language model.

    Args:
        config: a :class:`GPTConfig` (or keyword arguments for one).
        device, dtype: where and how to allocate the parameters.

    Example::

        model = GPT(GPTConfig.baby(vocab_size=65))
        logits, loss = model(x, y)              # x, y: (B, T) int64
        out = model.generate(x[:, :1], 100)     # greedy; temperature=… samples
    """

    def __init__(
        self,
        config: GPTConfig | None = None,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        if config is None:
            config = GPTConfig(**kwargs)
        elif kwargs:
            config = dataclasses.replace(config, **kwargs)
        if not isinstance(config, GPTConfig):
            raise TypeError(f"config: expected a GPTConfig, got {type(config).__name__}")
        self.config = config
        c = config
        kw = {"device": device, "dtype": dtype}
        self.wte = nn.Embedding(c.vocab_size, c.n_embd, **kw)
        self.wpe = (
            LearnedPositionalEmbedding(c.block_size, c.n_embd, init_std=c.init_std, **kw)
            if c.position == "learned"
            else None
        )
        self.sinusoidal = (
            SinusoidalPositionalEncoding(c.n_embd, max_len=c.block_size).to(device=device)
            if c.position == "sinusoidal"
            else None
        )
        self.rotary = (
            RotaryEmbedding(
                c.head_dim, base=c.rope_base, scaling=c.rope_scaling, scaling_factor=c.rope_scaling_factor,
                max_positions=c.block_size,
            )
            if c.position == "rope"
            else None
        )  # fmt: skip
        self.alibi = ALiBi(c.n_head) if c.position == "alibi" else None
        self.t5_bias = (
            T5RelativeBias(
                c.n_head, num_buckets=c.t5_buckets, max_distance=c.block_size, bidirectional=False
            ).to(**kw)
            if c.position == "t5"
            else None
        )
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(_block(c, i, self.rotary, **kw) for i in range(c.n_layer))
        self.ln_f = _norm(c, device, dtype) if c.norm_position == "pre" else None
        self.lm_head = nn.Linear(c.n_embd, c.vocab_size, bias=False, **kw)
        self.reset_parameters()
        if c.tie_embeddings:
            self.lm_head.weight = self.wte.weight  # logits = h Eᵀ: one matrix, counted once

    @classmethod
    def from_config(cls, config: GPTConfig | dict[str, Any] | None = None, **kwargs: Any) -> GPT:
        """Build a model from a :class:`GPTConfig`, a dict of its fields, or keyword arguments."""
        if isinstance(config, dict):
            config = GPTConfig.from_dict(config)
        return cls(config, **kwargs)

    # ---- initialization ---------------------------------------------------------------------------
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """GPT-2's initialization, in place.

        Every linear and embedding weight ``~ N(0, σ²)`` with ``σ = init_std``, except the projections
        that write into the residual stream (``attn.out_proj`` and the FFN's output), which get
        ``σ/√(2L)``: each of the ``2L`` residual additions then adds variance ``σ²/(2L)``, so the
        stream's variance at the top does not grow with depth (Radford et al., 2019, §2.3). Biases
        are zero and norm gains one; T5's bias table starts at zero (no preference for any distance).
        """
        std = self.config.init_std
        residual_std = std / math.sqrt(2 * self.config.n_layer)
        with torch.no_grad():
            for name, module in self.named_modules():
                if name.startswith("t5_bias"):
                    continue  # zeroed below
                if isinstance(module, (nn.Linear, nn.Embedding)):
                    is_residual = name.endswith(("attn.out_proj", "mlp.fc_out", "mlp.w_down"))
                    module.weight.normal_(0.0, residual_std if is_residual else std, generator=generator)
                    if getattr(module, "bias", None) is not None:
                        module.bias.zero_()
                elif isinstance(module, LearnedPositionalEmbedding):
                    module.weight.normal_(0.0, std, generator=generator)
                elif isinstance(module, (LayerNorm, RMSNorm)):
                    module.weight.fill_(1.0)
                    if getattr(module, "bias", None) is not None:
                        module.bias.zero_()
            if self.t5_bias is not None:
                self.t5_bias.embedding.weight.zero_()

    # ---- sizes ------------------------------------------------------------------------------------
    def num_parameters(self, *, non_embedding: bool = False) -> int:
        """Number of parameters, tied weights counted once.

        Args:
            non_embedding: leave out the token and position embeddings (Kaplan et al.'s ``N``). The
                output layer is left out too when it is tied to the token embeddings.
        """
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.wte.weight.numel()
            if self.wpe is not None:
                n -= self.wpe.weight.numel()
        return n

    def matmul_parameters(self) -> int:
        """Weights that take part in a matrix multiplication per token: every ``nn.Linear`` weight,
        the output layer included even when tied (its product ``h Eᵀ`` is computed), embeddings not
        (a lookup is not a product)."""
        return sum(m.weight.numel() for m in self.modules() if isinstance(m, nn.Linear))

    def flops_per_token(self, seq_len: int | None = None) -> int:
        """Training FLOPs per token (forward + backward) for sequences of ``seq_len`` tokens.

        ``6·N_mm + 12·L·T·d``: a weight takes part in one multiply–accumulate (2 FLOPs) per token in
        the forward pass and in two in the backward pass (the gradients with respect to the input
        and to the weight), hence ``6·N_mm`` with ``N_mm`` = :meth:`matmul_parameters`. Attention
        adds ``Q Kᵀ`` and ``A V``: ``2·T·d`` multiply–accumulates per token and layer forward, ×3
        with the backward pass, counted over all ``T`` keys as dense kernels do (the causal mask
        halves the useful work, not what PyTorch's FLOP counter reports). Biases, norms, softmax and
        the loss are ignored. This is PaLM's ``6N + 12·L·H·d_h·T`` (Chowdhery et al., 2022, App. B).

        Args:
            seq_len: ``T``; default ``block_size``.
        """
        t = self.config.block_size if seq_len is None else check_positive_int("seq_len", seq_len)
        c = self.config
        return 6 * self.matmul_parameters() + 12 * c.n_layer * t * c.n_head * c.head_dim

    # ---- forward ----------------------------------------------------------------------------------
    def new_kv_cache(
        self,
        batch_size: int,
        max_len: int | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> KVCache:
        """An empty :class:`~companion.nn.kv_cache.KVCache` for this model.

        Args:
            batch_size: ``B`` of the sequences that will be decoded.
            max_len: preallocate this many positions (fast, fixed memory); None grows by concatenation.
            device, dtype: of the cache; default the model's parameters' device and dtype.
        """
        p = self.wte.weight
        return KVCache(
            self.config.n_layer, batch_size, self.config.kv_heads, self.config.head_dim, max_len,
            dtype=p.dtype if dtype is None else dtype, device=p.device if device is None else device,
        )  # fmt: skip

    def forward(
        self,
        idx: torch.Tensor,
        targets: torch.Tensor | None = None,
        *,
        kv_cache: KVCache | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Next-token logits for every position, and the loss when ``targets`` are given.

        Args:
            idx: ``(B, T)`` token ids in ``[0, V)``. With ``kv_cache``, only the new tokens: their
                positions continue from ``kv_cache.length``.
            targets: ``(B, T)`` ids of the next tokens, ``-100`` where there is none (ignored).
            kv_cache: a cache from :meth:`new_kv_cache`; keys and values of ``idx`` are appended.

        Returns:
            ``(logits (B, T, V), loss)``: the loss is the mean cross-entropy over the non-ignored
            targets (a scalar), or None without targets.

        Raises:
            ValueError: on ids out of range, or more positions than the learned table has.
        """
        c = self.config
        offset = check_decoder_inputs(idx, c.vocab_size, c.n_layer, kv_cache)
        t = idx.shape[1]
        if self.wpe is not None and offset + t > c.block_size:
            raise PositionOutOfRangeError(
                f"idx: positions {offset}…{offset + t - 1} exceed block_size={c.block_size}: the learned "
                "position table has no row for them (crop the context, or use position='rope'/'alibi')"
            )

        x = self.wte(idx)  # (B, T, d)
        if self.wpe is not None:
            x = self.wpe(x, offset)
        elif self.sinusoidal is not None:
            # The ±1 table scaled to RMS init_std, the size of the token embeddings at initialization:
            # unscaled, the positions would swamp the tokens.
            table = self.sinusoidal.encoding(t, offset).to(device=x.device, dtype=x.dtype)
            x = x + (c.init_std * math.sqrt(2.0)) * table
        if self.training and self.drop.p > 0:
            x = self.drop(x)
        bias = None
        if self.alibi is not None:
            bias = self.alibi.bias(t, offset + t, offset=offset, device=x.device, dtype=x.dtype)[None]
        elif self.t5_bias is not None:
            bias = self.t5_bias.bias(t, offset + t, offset=offset).to(dtype=x.dtype)[None]
        for block in self.blocks:
            if self.config.gradient_checkpointing and self.training and kv_cache is None:
                x = checkpoint(block, x, attn_bias=bias, use_reentrant=False)
            else:
                x = block(x, attn_bias=bias, kv_cache=kv_cache)
        if self.ln_f is not None:
            x = self.ln_f(x)
        logits = self.lm_head(x)  # (B, T, V); tied: x @ wteᵀ
        loss = None if targets is None else lm_loss(logits, targets)
        return logits, loss

    # ---- generation -------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        *,
        use_cache: bool = True,
        temperature: float = 0.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
        crop: bool = False,
    ) -> torch.Tensor:
        """Append ``max_new_tokens`` tokens to ``idx``, greedily (``temperature=0``) or by sampling.

        A minimal decoder for this chapter; ``companion.generate`` has the full set (top-p, beam
        search, stop tokens, streaming). With ``use_cache`` the prompt is run once (prefill) and each
        step feeds only the newest token; without it every step re-runs the whole sequence. Both
        give the same tokens.

        Args:
            idx: ``(B, T)`` prompt ids.
            max_new_tokens: tokens to add, ``>= 0``.
            use_cache: decode with a KV cache.
            temperature: 0 for greedy (argmax); otherwise sample from ``softmax(logits / temperature)``.
            top_k: keep only the ``k`` most likely tokens before sampling.
            generator: random generator for sampling.
            crop: slide the context window: condition each step on the last ``block_size`` tokens
                only (nanoGPT's sampler). This re-runs the window every step, without a cache.

        Returns:
            ``(B, T + max_new_tokens)``.

        Raises:
            ValueError: if ``T + max_new_tokens`` exceeds ``block_size`` (the context window) and
                ``crop`` is False.
        """
        check_tensor("idx", idx, ndim=2)
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
            raise ValueError(f"max_new_tokens: expected an int >= 0, got {max_new_tokens!r}")
        if not temperature >= 0:
            raise ValueError(f"temperature: expected a number >= 0, got {temperature!r}")
        if top_k is not None:
            check_positive_int("top_k", top_k)
        total = idx.shape[1] + max_new_tokens
        if crop:
            use_cache = False  # positions shift as the window slides: cached keys would be stale
        elif total > self.config.block_size:
            raise ValueError(
                f"max_new_tokens: prompt length {idx.shape[1]} + max_new_tokens {max_new_tokens} = {total} "
                f"exceeds the context window block_size={self.config.block_size}"
            )
        was_training = self.training
        self.eval()
        try:
            out = idx
            cache = self.new_kv_cache(idx.shape[0], total) if use_cache else None
            step_input = idx
            for _ in range(max_new_tokens):
                context = step_input if use_cache else out[:, -self.config.block_size :]
                logits, _ = self(context, kv_cache=cache)
                nxt = _pick(logits[:, -1].float(), temperature, top_k, generator)  # (B, 1)
                out = torch.cat([out, nxt], dim=1)
                step_input = nxt
            return out
        finally:
            self.train(was_training)

    # ---- weights from Hugging Face ----------------------------------------------------------------
    @classmethod
    def from_hf_gpt2(cls, hf_model: Any, **overrides: Any) -> GPT:
        """A :class:`GPT` with the weights of a Hugging Face ``GPT2LMHeadModel`` (no download needed).

        GPT-2 stores its projections as ``Conv1D`` layers whose weight is ``(d_in, d_out)`` — the
        book's ``W`` in ``xW`` — while ``nn.Linear`` stores ``Wᵀ``, so every matrix is transposed;
        ``c_attn`` holds ``[W_Q W_K W_V]`` side by side and is split in three.

        Args:
            hf_model: a ``transformers.GPT2LMHeadModel`` (only its ``config`` and ``state_dict()`` are
                read, so ``transformers`` is not imported here).
            **overrides: GPTConfig fields to change (e.g. ``fused_attention=False``).
        """
        hc = hf_model.config
        act = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh"}.get(
            hc.activation_function, hc.activation_function
        )
        fields = dict(
            vocab_size=hc.vocab_size, block_size=hc.n_positions, n_layer=hc.n_layer, n_head=hc.n_head,
            n_embd=hc.n_embd, d_ff=hc.n_inner, activation=act, norm_eps=hc.layer_norm_epsilon,
            tie_embeddings=bool(getattr(hc, "tie_word_embeddings", True)), init_std=hc.initializer_range,
        )  # fmt: skip
        config = GPTConfig(**{**fields, **overrides})
        sd = hf_model.state_dict()
        p = next(iter(sd.values()))
        model = cls(config, device=p.device, dtype=p.dtype)
        d = config.n_embd
        with torch.no_grad():
            model.wte.weight.copy_(sd["transformer.wte.weight"])
            model.wpe.weight.copy_(sd["transformer.wpe.weight"])
            for i, block in enumerate(model.blocks):
                pre = f"transformer.h.{i}."
                w, bias = sd[pre + "attn.c_attn.weight"], sd[pre + "attn.c_attn.bias"]  # (d, 3d), (3d,)
                for j, proj in enumerate((block.attn.q_proj, block.attn.k_proj, block.attn.v_proj)):
                    proj.weight.copy_(w[:, j * d : (j + 1) * d].T)
                    proj.bias.copy_(bias[j * d : (j + 1) * d])
                pairs = (
                    (block.attn.out_proj, "attn.c_proj"),
                    (block.mlp.fc_in, "mlp.c_fc"),
                    (block.mlp.fc_out, "mlp.c_proj"),
                )
                for ours, theirs in pairs:
                    ours.weight.copy_(sd[pre + theirs + ".weight"].T)
                    ours.bias.copy_(sd[pre + theirs + ".bias"])
                for ours, theirs in ((block.ln_1, "ln_1"), (block.ln_2, "ln_2")):
                    ours.weight.copy_(sd[pre + theirs + ".weight"])
                    ours.bias.copy_(sd[pre + theirs + ".bias"])
            model.ln_f.weight.copy_(sd["transformer.ln_f.weight"])
            model.ln_f.bias.copy_(sd["transformer.ln_f.bias"])
            if not config.tie_embeddings:
                model.lm_head.weight.copy_(sd["lm_head.weight"])
        return model


def _pick(
    logits: torch.Tensor, temperature: float, top_k: int | None, generator: torch.Generator | None
) -> torch.Tensor:
    """Next token ``(B, 1)`` from last-position logits ``(B, V)``: argmax, or a sample."""
    if bool(torch.isnan(logits).any()):  # argmax would silently pick token 0
        raise ValueError("model: the next-token logits contain NaN (NaN or inf in weights or activations)")
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)
    logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, 1, generator=generator)


@torch.no_grad()
def incremental_logits(model: GPT, idx: torch.Tensor) -> torch.Tensor:
    """Logits for every position computed one token at a time through a KV cache.

    Equal (up to rounding) to ``model(idx)[0]``, the teacher-forced logits of one parallel pass: the
    causal mask makes position ``t``'s output depend only on tokens ``≤ t``, which the cache holds.

    Args:
        model: a :class:`GPT` (used in eval mode).
        idx: ``(B, T)`` token ids.

    Returns:
        ``(B, T, V)``.
    """
    check_tensor("idx", idx, ndim=2)
    was_training = model.training
    model.eval()
    try:
        cache = model.new_kv_cache(idx.shape[0], idx.shape[1])
        steps = [model(idx[:, t : t + 1], kv_cache=cache)[0] for t in range(idx.shape[1])]
    finally:
        model.train(was_training)
    return torch.cat(steps, dim=1)
