"""Attention (注意力): the one attention module, :class:`GroupedQueryAttention`.

Shapes use ``B`` batch, ``H`` query heads, ``G`` key/value heads, ``T_q``/``T_k`` query/key lengths,
``d_model`` the model width. Masks are boolean with **True = may attend** (see
:mod:`companion.nn.masks`); a float mask or bias is *added* to the scores.

:class:`GroupedQueryAttention` is the one attention module (as Hugging Face's Llama has one): ``H``
query heads share ``G`` key/value heads, so ``G = H`` is multi-head attention (多头注意力) and ``G = 1``
multi-query attention; keys and values come from the input (self-attention) or from a ``context``
(cross-attention); a KV cache, RoPE, an additive bias (ALiBi) and learned attention sinks are
options. The computation is a *kernel chosen by name* from :mod:`companion.nn.sdpa`, where the formula
``softmax(Q K^T / sqrt(d_k) + M) V`` lives: ``"explicit"`` (which can return the weights) or
``"sdpa"`` (PyTorch's fused ``scaled_dot_product_attention``). :class:`MultiHeadAttention` and
:class:`CrossAttention` are the same module with the Attention chapter's constructor and call. The
Efficient attention chapter's conversion :func:`mha_to_gqa` is here too; the KV cache and its size are
in :mod:`companion.nn.kv_cache`, Linformer in :mod:`companion.nn.linformer`, multi-head latent
attention in :mod:`companion.nn.mla`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from companion._validate import check_positive_int, check_probability, check_tensor
from companion.nn.kv_cache import KVCache  # used in annotations (kv_cache does not import this module)
from companion.nn.sdpa import ATTENTION_KERNELS

__all__ = [
    "CrossAttention",
    "GroupedQueryAttention",
    "MultiHeadAttention",
    "mean_pool_kv_heads",
    "merge_heads",
    "mha_to_gqa",
    "split_heads",
]


def split_heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Split the channel dimension into heads: ``(B, T, H*d_h) -> (B, H, T, d_h)``."""
    check_tensor("x", x, ndim=3)
    check_positive_int("n_heads", n_heads)
    b, t, c = x.shape
    if c % n_heads:
        raise ValueError(f"x: channel dimension {c} is not divisible by n_heads={n_heads}")
    return x.view(b, t, n_heads, c // n_heads).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`split_heads`: ``(B, H, T, d_h) -> (B, T, H*d_h)``."""
    check_tensor("x", x, ndim=4)
    b, h, t, d = x.shape
    return x.transpose(1, 2).reshape(b, t, h * d)


class GroupedQueryAttention(nn.Module):
    """The attention module: grouped-query attention 分组查询注意力, with multi-head (``G = H``) and
    multi-query (``G = 1``) attention as special cases, for self- and cross-attention.

    ``H`` query heads share ``G`` key/value heads: query head ``h`` reads KV head ``h // (H/G)``
    (Ainslie et al., 2023). ``G = H`` is multi-head attention (Vaswani et al., 2017), ``G = 1`` is
    multi-query attention (Shazeer, 2019). Only the K and V projections shrink (to ``G·d_h`` outputs);
    the attention FLOPs are those of MHA. What shrinks by ``H/G`` is the KV cache that decoding keeps
    and reads at every step.

    Args:
        d_model: model width ``d``; queries and outputs have this width.
        n_heads: query heads ``H``.
        n_kv_heads: key/value heads ``G``, a divisor of ``H`` (default ``H``: multi-head attention).
        head_dim: per-head width ``d_h`` (default ``d_model // n_heads``).
        kv_dim: width of a cross-attention ``context`` (default ``d_model``).
        bias: whether the four projections have biases (Llama: no; GPT-2, BERT: yes).
        dropout: dropout on the attention weights in ``train()`` mode.
        rotary: optional callable ``rotary(x (B, heads, T, d_h), positions (T,)) -> x`` applied to
            queries and keys before caching (RoPE); self-attention only.
        kernel: ``"explicit"`` or ``"sdpa"`` (see the module docstring). ``"sdpa"`` falls back to the
            explicit kernel when the weights are requested.
        scale: the score scale (default ``1 / sqrt(d_h)``; T5 uses 1, having folded it into the
            initialization of ``W_Q``).
        sinks: add one learned *sink* logit ``s_h`` per query head (GPT-OSS, 2025): the softmax runs
            over the scores and ``s_h``, whose share of the probability is thrown away, so a head can
            put weight "nowhere" and its weights over the real keys sum to less than 1. Implemented as
            an extra key with a zero key vector, a zero value and the additive bias ``s_h``, which
            every kernel (the fused one included) computes unchanged.
        layer_idx: default index of this layer in a shared :class:`~companion.nn.kv_cache.KVCache`.
        device, dtype: of the parameters.

    Projections are ``q_proj``, ``k_proj``, ``v_proj`` and ``out_proj`` (``nn.Linear``, so ``x W^T``).
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        n_kv_heads: int | None = None,
        *,
        head_dim: int | None = None,
        kv_dim: int | None = None,
        bias: bool = False,
        dropout: float = 0.0,
        rotary: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        kernel: str = "explicit",
        scale: float | None = None,
        sinks: bool = False,
        layer_idx: int = 0,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        check_positive_int("d_model", d_model)
        check_positive_int("n_heads", n_heads)
        n_kv_heads = n_heads if n_kv_heads is None else check_positive_int("n_kv_heads", n_kv_heads)
        if n_heads % n_kv_heads:
            raise ValueError(
                f"n_heads={n_heads} is not divisible by n_kv_heads={n_kv_heads}: every KV head must serve "
                "the same number of query heads"
            )
        if head_dim is None:
            if d_model % n_heads:
                raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}; pass head_dim")
            head_dim = d_model // n_heads
        if kernel not in ATTENTION_KERNELS:
            raise ValueError(f"kernel: expected one of {sorted(ATTENTION_KERNELS)}, got {kernel!r}")
        if rotary is not None and not callable(rotary):
            raise TypeError(f"rotary: expected a callable rotary(x, positions), got {type(rotary).__name__}")
        self.d_model = d_model
        self.n_heads = n_heads
        self.n_kv_heads = n_kv_heads
        self.n_rep = n_heads // n_kv_heads
        self.head_dim = check_positive_int("head_dim", head_dim)
        self.kv_dim = d_model if kv_dim is None else check_positive_int("kv_dim", kv_dim)
        self.dropout = check_probability("dropout", dropout)
        self.kernel = kernel
        if scale is not None and (
            isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale > 0
        ):
            raise ValueError(f"scale: expected a number > 0 (or None for 1/sqrt(head_dim)), got {scale!r}")
        self.scale = scale
        self.rotary = rotary
        self.layer_idx = layer_idx
        kw = {"device": device, "dtype": dtype}
        self.q_proj = nn.Linear(d_model, n_heads * head_dim, bias=bias, **kw)
        self.k_proj = nn.Linear(self.kv_dim, n_kv_heads * head_dim, bias=bias, **kw)
        self.v_proj = nn.Linear(self.kv_dim, n_kv_heads * head_dim, bias=bias, **kw)
        self.out_proj = nn.Linear(n_heads * head_dim, d_model, bias=bias, **kw)
        self.sinks = nn.Parameter(torch.zeros(n_heads, **kw)) if sinks else None

    def extra_repr(self) -> str:
        kv = f", kv_dim={self.kv_dim}" if self.kv_dim != self.d_model else ""
        return (
            f"d_model={self.d_model}, n_heads={self.n_heads}, n_kv_heads={self.n_kv_heads}, "
            f"head_dim={self.head_dim}{kv}, kernel={self.kernel!r}"
            + (", sinks" if self.sinks is not None else "")
        )

    def _check_mask(
        self, name: str, m: torch.Tensor, shape: tuple[int, int, int, int], want_bool: bool
    ) -> None:
        check_tensor(name, m)
        if want_bool and m.dtype != torch.bool:
            raise TypeError(f"{name}: expected a bool mask (True = may attend), got dtype {m.dtype}")
        if not want_bool and not m.is_floating_point():
            raise TypeError(f"{name}: expected a floating-point additive bias, got dtype {m.dtype}")
        if m.ndim > 4:
            raise ValueError(f"{name}: expected at most 4 dimensions (B, H, T_q, T_k), got {tuple(m.shape)}")
        try:
            if torch.broadcast_shapes(m.shape, shape) != torch.Size(shape):
                raise RuntimeError
        except RuntimeError as exc:
            raise ValueError(
                f"{name}: shape {tuple(m.shape)} does not broadcast to (B, H, T_q, T_k)={shape}"
            ) from exc

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        *,
        key_mask: torch.Tensor | None = None,
        attn_mask: torch.Tensor | None = None,
        attn_bias: torch.Tensor | None = None,
        is_causal: bool = False,
        kv_cache: KVCache | None = None,
        layer_idx: int | None = None,
        positions: torch.Tensor | None = None,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attend from ``x`` to itself, or to ``context``; optionally through a KV cache.

        Args:
            x: ``(B, T, d_model)``: the queries' input (with a cache: the new tokens — the whole
                prompt, or one token when decoding).
            context: keys' and values' input ``(B, T_k, kv_dim)`` for cross-attention; default ``x``.
            key_mask: ``(B, T_k)`` bool, True at real (non-padding) keys.
            attn_mask: bool, True = may attend, broadcastable to ``(B, H, T, T_k)``, where ``T_k``
                counts cached plus new keys.
            attn_bias: float added to the scores (e.g. ALiBi), broadcastable to ``(B, H, T, T_k)``.
            is_causal: block keys after each query. The triangle is bottom-right aligned: with a cache
                the queries sit at absolute positions ``offset … offset + T - 1`` (``offset`` = cached
                length), and query ``i`` sees keys ``<= offset + i``.
            kv_cache: a :class:`~companion.nn.kv_cache.KVCache`; new keys/values are appended to layer
                ``layer_idx`` and attention runs over all of them (self-attention only).
            layer_idx: this layer's index in ``kv_cache`` (default: the constructor's ``layer_idx``).
            positions: ``(T,)`` absolute positions for ``rotary`` (default ``offset + arange(T)``).
            need_weights: also return the attention weights ``(B, H, T, T_k)`` (explicit kernel).

        Returns:
            ``(output (B, T, d_model), weights or None)``.
        """
        check_tensor("x", x, ndim=3, floating=True)
        if x.shape[-1] != self.d_model:
            raise ValueError(f"x: expected last dimension d_model={self.d_model}, got shape {tuple(x.shape)}")
        b, t, _ = x.shape
        h, g, d = self.n_heads, self.n_kv_heads, self.head_dim
        if context is None:
            ctx = x
            if self.kv_dim != self.d_model:
                raise ValueError(
                    f"context: this cross-attention layer (kv_dim={self.kv_dim}) needs a context, got None"
                )
        else:
            ctx = check_tensor("context", context, ndim=3, floating=True)
            if ctx.shape[-1] != self.kv_dim:
                raise ValueError(
                    f"context: expected last dimension kv_dim={self.kv_dim}, got shape {tuple(ctx.shape)}"
                )
            if ctx.shape[0] != b:
                raise ValueError(f"context: batch size {ctx.shape[0]} differs from x's {b}")
            if kv_cache is not None or self.rotary is not None:
                raise ValueError("context: cross-attention takes neither a kv_cache nor rotary positions")
        layer = self.layer_idx if layer_idx is None else layer_idx
        offset = 0 if kv_cache is None else kv_cache.layer_length(layer)

        q = self.q_proj(x).view(b, t, h, d).transpose(1, 2)  # (B, H, T, d_h)
        k = self.k_proj(ctx).view(b, ctx.shape[1], g, d).transpose(1, 2)  # (B, G, T_ctx, d_h)
        v = self.v_proj(ctx).view(b, ctx.shape[1], g, d).transpose(1, 2)
        if self.rotary is not None:
            if positions is None:
                positions = torch.arange(offset, offset + t, device=x.device)
            elif tuple(positions.shape) != (t,):
                raise ValueError(f"positions: expected shape (T,)=({t},), got {tuple(positions.shape)}")
            q, k = self.rotary(q, positions), self.rotary(k, positions)
        if kv_cache is not None:
            k, v = kv_cache.update(layer, k, v)  # all keys/values so far: (B, G, offset + T, d_h)
        t_k = k.shape[2]

        shape = (b, h, t, t_k)
        allowed = None
        if attn_mask is not None:
            self._check_mask("attn_mask", attn_mask, shape, want_bool=True)
            allowed = attn_mask
        if key_mask is not None:
            check_tensor("key_mask", key_mask, ndim=2)
            if key_mask.dtype != torch.bool or tuple(key_mask.shape) != (b, t_k):
                raise ValueError(
                    f"key_mask: expected a bool tensor of shape (B, T_k)=({b}, {t_k}), "
                    f"got {key_mask.dtype} {tuple(key_mask.shape)}"
                )
            km = key_mask[:, None, None, :]
            allowed = km if allowed is None else allowed & km
        if attn_bias is not None:
            self._check_mask("attn_bias", attn_bias, shape, want_bool=False)
        if self.sinks is not None:
            k, v, allowed, attn_bias = self._add_sink(k, v, allowed, attn_bias, shape)
        p = self.dropout if self.training else 0.0

        # "sdpa" returns no weights: asked for them, use the explicit kernel.
        kernel = ATTENTION_KERNELS["explicit" if need_weights else self.kernel]
        scale = {} if self.scale is None else {"scale": self.scale}  # custom kernels need not take it
        out, weights = kernel(q, k, v, allowed, attn_bias, is_causal=is_causal, dropout_p=p, **scale)
        out = self.out_proj(out.transpose(1, 2).reshape(b, t, h * d))
        if need_weights and self.sinks is not None:
            weights = weights[..., 1:]  # the sink's share is not a key's
        return out, (weights if need_weights else None)

    def _add_sink(
        self,
        k: torch.Tensor,
        v: torch.Tensor,
        allowed: torch.Tensor | None,
        bias: torch.Tensor | None,
        shape: tuple[int, int, int, int],
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """Prepend the sink: a key of zeros (score ``q·0 = 0``) plus the bias ``s_h``, and a zero value.

        Prepended rather than appended, so a bottom-right causal triangle still sees it from every query.
        """
        b, h, t, t_k = shape
        zeros = k.new_zeros(k.shape[0], k.shape[1], 1, k.shape[3])
        k, v = torch.cat([zeros, k], dim=2), torch.cat([zeros, v], dim=2)
        column = torch.zeros(1, h, 1, t_k + 1, dtype=k.dtype, device=k.device)
        column[..., 0] = self.sinks.to(k.dtype)[None, :, None]
        if bias is not None:
            bias = torch.cat(
                [bias.expand(b, h, t, t_k).new_zeros(b, h, t, 1), bias.expand(b, h, t, t_k)], dim=-1
            )
            column = column + bias
        if allowed is not None:
            allowed = allowed.expand(b, h, t, t_k)
            allowed = torch.cat([allowed.new_ones(b, h, t, 1), allowed], dim=-1)
        return k, v, allowed, column

    def macs(self, t_q: int, t_k: int | None = None) -> dict[str, int]:
        """Analytic multiply-accumulate counts for one sequence (batch 1), ignoring softmax and biases.

        Returns a dict with ``projections`` (for multi-head attention with a same-width context,
        ``(2 T_q + 2 T_k)·d²``), ``attention`` (``2·T_q·T_k·H·d_h``: scores plus the weighted sum)
        and ``total``. Neither term depends on how ``H·d_h`` is split into heads.
        """
        t_k = t_q if t_k is None else t_k
        width, kv_width = self.n_heads * self.head_dim, self.n_kv_heads * self.head_dim
        proj = 2 * t_q * self.d_model * width + 2 * t_k * self.kv_dim * kv_width
        attn = 2 * t_q * t_k * width
        return {"projections": proj, "attention": attn, "total": proj + attn}


class MultiHeadAttention(GroupedQueryAttention):
    """Multi-head attention 多头注意力: :class:`GroupedQueryAttention` with one key/value head per query
    head, for self-attention (自注意力) and cross-attention (交叉注意力).

    ``head_h = Attention(X W_Q^h, C W_K^h, C W_V^h)`` and ``MHA = Concat(head_1..head_H) W_O`` where
    ``C = X`` for self-attention or the ``context`` (e.g. the encoder output) for cross-attention.
    Each head has width ``d_h = d_model / n_heads``, so the cost does not grow with ``n_heads``.

    Args:
        d_model: model width ``d``; queries and outputs have this width.
        n_heads: number of heads ``H``; must divide ``d_model``.
        dropout: dropout on the attention weights (active in ``train()`` mode only).
        bias: whether the four projections have biases.
        kv_dim: width of the ``context`` for cross-attention (default ``d_model``).
        kernel: ``"explicit"`` or ``"sdpa"`` (PyTorch's fused kernels whenever the weights are not
            requested).
        device, dtype: where and how to allocate the parameters.

    Called as :meth:`GroupedQueryAttention.forward`: ``mha(x, context=None, *, key_mask, attn_mask,
    is_causal, need_weights) -> (output (B, T_q, d_model), weights (B, H, T_q, T_k) or None)``.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        *,
        dropout: float = 0.0,
        bias: bool = True,
        kv_dim: int | None = None,
        kernel: str = "explicit",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(
            d_model, n_heads, n_heads, kv_dim=kv_dim, bias=bias, dropout=dropout, kernel=kernel,
            device=device, dtype=dtype,
        )  # fmt: skip

    @property
    def d_head(self) -> int:
        """The per-head width ``d_h = d_model / n_heads``."""
        return self.head_dim

    @classmethod
    def from_torch(cls, module: nn.MultiheadAttention) -> MultiHeadAttention:
        """Build an equivalent module from a ``torch.nn.MultiheadAttention`` (weights copied).

        Torch stores ``[W_Q; W_K; W_V]`` stacked in ``in_proj_weight`` of shape ``(3d, d)``.
        """
        if not isinstance(module, nn.MultiheadAttention):
            raise TypeError(f"module: expected torch.nn.MultiheadAttention, got {type(module).__name__}")
        if not module._qkv_same_embed_dim or module.bias_k is not None or module.add_zero_attn:
            raise ValueError("module: only same-width q/k/v without bias_k/add_zero_attn is supported")
        d = module.embed_dim
        has_bias = module.in_proj_bias is not None
        w = module.in_proj_weight
        new = cls(d, module.num_heads, dropout=module.dropout, bias=has_bias, device=w.device, dtype=w.dtype)
        with torch.no_grad():
            for i, proj in enumerate((new.q_proj, new.k_proj, new.v_proj)):
                proj.weight.copy_(w[i * d : (i + 1) * d])
                if has_bias:
                    proj.bias.copy_(module.in_proj_bias[i * d : (i + 1) * d])
            new.out_proj.weight.copy_(module.out_proj.weight)
            if has_bias:
                new.out_proj.bias.copy_(module.out_proj.bias)
        return new


class CrossAttention(MultiHeadAttention):
    """Encoder–decoder (cross) attention 交叉注意力: queries from the decoder, keys/values from the encoder.

    Only the *source* padding mask applies; no causal mask is used, because every decoder position may
    look at the whole (already available) source sequence.
    """

    def forward(  # type: ignore[override]
        self,
        x: torch.Tensor,
        context: torch.Tensor,
        context_mask: torch.Tensor | None = None,
        *,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Args: ``x`` ``(B, T_dec, d)``, ``context`` ``(B, T_src, kv_dim)``, ``context_mask``
        ``(B, T_src)`` bool, True at real source tokens. Returns ``(B, T_dec, d)`` and the weights."""
        if context is None:
            raise ValueError("context: cross-attention needs the encoder output, got None")
        return super().forward(x, context, key_mask=context_mask, need_weights=need_weights)


def mean_pool_kv_heads(weight: torch.Tensor, n_heads: int, n_kv_heads: int) -> torch.Tensor:
    """Mean-pool the key (or value) heads of an MHA projection into ``n_kv_heads`` groups.

    ``W^g = (G/H) · Σ_{h in group g} W^h`` with group ``g`` = heads ``g·H/G, …, (g+1)·H/G - 1``
    (Ainslie et al., 2023, "GQA: Training Generalized Multi-Query Transformer Models from Multi-Head
    Checkpoints", §2.1).

    Args:
        weight: an ``nn.Linear`` weight ``(H·d_h, d_in)`` or bias ``(H·d_h,)``; rows are head-major.
        n_heads: ``H``.
        n_kv_heads: ``G``, a divisor of ``H``.

    Returns:
        ``(G·d_h, d_in)`` (or ``(G·d_h,)``).
    """
    check_tensor("weight", weight, ndim=(1, 2), floating=True)
    check_positive_int("n_heads", n_heads)
    check_positive_int("n_kv_heads", n_kv_heads)
    if n_heads % n_kv_heads:
        raise ValueError(f"n_heads={n_heads} is not divisible by n_kv_heads={n_kv_heads}")
    if weight.shape[0] % n_heads:
        raise ValueError(f"weight: first dimension {weight.shape[0]} is not divisible by n_heads={n_heads}")
    d_h = weight.shape[0] // n_heads
    rest = tuple(weight.shape[1:])
    grouped = weight.reshape(n_kv_heads, n_heads // n_kv_heads, d_h, *rest)
    return grouped.mean(dim=1).reshape(n_kv_heads * d_h, *rest)


def mha_to_gqa(module: GroupedQueryAttention, n_kv_heads: int) -> GroupedQueryAttention:
    """Convert a multi-head attention layer to GQA with ``n_kv_heads`` groups by mean-pooling K/V heads.

    ``W_K^g = (G/H) Σ_{h in g} W_K^h`` (and the same for ``W_V`` and the biases); ``W_Q`` and ``W_O``
    are copied. Ainslie et al. (2023) follow this with a short uptraining run (about 5% of the
    pretraining compute). When the heads within each group are identical the conversion is exact.

    Args:
        module: a self-attention layer with one KV head per query head (a :class:`MultiHeadAttention`,
            or a :class:`GroupedQueryAttention` with ``n_kv_heads == n_heads``).
        n_kv_heads: ``G``, a divisor of the number of heads.

    Returns:
        A new :class:`GroupedQueryAttention` on the same device and dtype, with the same kernel.
    """
    if not isinstance(module, GroupedQueryAttention):
        raise TypeError(
            f"module: expected MultiHeadAttention or GroupedQueryAttention, got {type(module).__name__}"
        )
    if module.n_kv_heads != module.n_heads:
        raise ValueError(
            f"module: expected an MHA layer (n_kv_heads == n_heads), got n_kv_heads={module.n_kv_heads}"
        )
    if module.kv_dim != module.d_model:
        raise ValueError("module: cross-attention layers (kv_dim != d_model) are not supported")
    h = module.n_heads
    w = module.q_proj.weight
    has_bias = module.q_proj.bias is not None
    new = GroupedQueryAttention(
        module.d_model, h, n_kv_heads, head_dim=module.head_dim, bias=has_bias, kernel=module.kernel,
        device=w.device, dtype=w.dtype,
    )  # fmt: skip
    with torch.no_grad():
        new.q_proj.load_state_dict(module.q_proj.state_dict())
        new.out_proj.load_state_dict(module.out_proj.state_dict())
        for name in ("k_proj", "v_proj"):
            src, dst = getattr(module, name), getattr(new, name)
            dst.weight.copy_(mean_pool_kv_heads(src.weight, h, n_kv_heads))
            if has_bias:
                dst.bias.copy_(mean_pool_kv_heads(src.bias, h, n_kv_heads))
    return new
