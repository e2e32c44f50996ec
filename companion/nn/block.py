"""The Transformer block: attention and an FFN, each wrapped in a residual connection (残差连接) and a norm.

Where the normalization sits is the main design choice (``F`` is the attention or FFN sublayer)::

    post      x ← LN(x + F(x))                    original Transformer, BERT, GPT-1
    pre       x ← x + F(LN(x));  final LN_f       GPT-2/3, LLaMA (with RMSNorm)
    sandwich  x ← x + LN(F(LN(x)))                CogView (Ding et al., 2021)
    deepnorm  x ← LN(α·x + F(x)), β-scaled init   DeepNet (Wang et al., 2022)

Xiong et al. ("On Layer Normalization in the Transformer Architecture", 2020) show that at
initialization Post-LN has large gradients near the output, which is why it needs learning-rate
warm-up, while Pre-LN does not; Pre-LN's residual stream grows with depth, so later layers change it
less. :func:`layer_cosine` and :func:`norm_placement` are the diagnostics the chapter uses.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from companion._validate import check_positive_int, check_probability, check_tensor
from companion.nn.attention import GroupedQueryAttention, MultiHeadAttention
from companion.nn.ffn import FFN_KINDS, make_ffn
from companion.nn.kv_cache import KVCache
from companion.nn.norms import LayerNorm, RMSNorm, deepnorm_constants, make_norm

__all__ = [
    "NORM_POSITIONS",
    "TransformerBlock",
    "TransformerStack",
    "deepnorm_init_",
    "layer_cosine",
    "norm_placement",
]

NORM_POSITIONS = ("pre", "post", "sandwich", "deepnorm")


class TransformerBlock(nn.Module):
    """One Transformer layer: self-attention and an FFN with residual connections and norms.

    The one configurable block of the companion: the Transformer-block chapter's experiments, the GPT
    (and, configured, Llama-style and encoder models) are stacks of it.

    Args:
        d_model: model width ``d``.
        n_heads: attention (query) heads ``H`` (ignored when ``attention`` is given).
        n_kv_heads: key/value heads ``G`` of the default attention (default ``H``: multi-head attention;
            1: multi-query; see :class:`~companion.nn.attention.GroupedQueryAttention`).
        d_hidden: FFN inner width; default ``4d`` for ``"mlp"`` and ``8d/3`` rounded up for gated kinds.
        norm: ``"layernorm"`` or ``"rmsnorm"``.
        norm_position: ``"pre"``, ``"post"``, ``"sandwich"`` or ``"deepnorm"`` (see the module docstring).
        ffn: an FFN kind of :func:`~companion.nn.ffn.make_ffn` (``"mlp"``, ``"swiglu"``, …).
        activation: override the FFN's activation (e.g. ``"gelu_tanh"`` for GPT-2).
        dropout: dropout on the attention weights and on each sublayer output before the residual add.
        bias: biases in the attention projections and the FFN (and the LayerNorms).
        feed_forward: a custom FFN module in place of :func:`~companion.nn.ffn.make_ffn`'s, e.g. a
            :class:`~companion.nn.moe.MoE` layer; if it returns ``(y, aux_loss)`` the block uses ``y``
            and keeps the auxiliary loss of the last call in ``aux_loss``.
        attention: a custom attention module called as ``attention(h, key_mask=…, attn_mask=…,
            is_causal=…)`` (plus ``attn_bias``, ``kv_cache``, ``positions`` when the caller passes them);
            default :class:`~companion.nn.attention.GroupedQueryAttention`.
        causal: use a causal mask in self-attention (decoder); False for an encoder.
        cross_attention: add a cross-attention sublayer between self-attention and the FFN (the
            decoder of an encoder–decoder: T5, BART), with its own norm ``ln_cross``; its queries come
            from the block's stream, its keys and values from the ``context`` passed to :meth:`forward`.
        scale: the attention score scale of the default attentions (None: ``1 / sqrt(d_h)``).
        eps: norm epsilon; None keeps the norm's default.
        alpha: DeepNorm's residual weight α (only with ``norm_position="deepnorm"``); apply the
            matching β initialization with :func:`deepnorm_init_`.
        kernel: the default attention's kernel, ``"explicit"`` or ``"sdpa"`` (PyTorch's fused
            ``scaled_dot_product_attention``).
        fused_norm: compute the norms with PyTorch's fused kernels (same formula, faster on a CPU).
        rotary: the default attention's rotary embedding (RoPE), shared by the blocks of a model.
        layer_idx: this block's slot in a shared :class:`~companion.nn.kv_cache.KVCache`.
        device, dtype: where and how to allocate the parameters.

    Attributes:
        ln_1: the first norm (named as in GPT-2). In a ``"post"``/``"deepnorm"`` block it normalizes
            *after* the attention's residual add.
        attn: the attention module.
        ln_2: the second norm.
        mlp: the FFN.
        ln_1_post: (``"sandwich"`` only) the norm on the attention's output; ``ln_2_post`` likewise
            for the FFN's output.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        *,
        n_kv_heads: int | None = None,
        d_hidden: int | None = None,
        norm: str = "layernorm",
        norm_position: str = "pre",
        ffn: str = "mlp",
        activation: str | None = None,
        dropout: float = 0.0,
        bias: bool = True,
        attention: torch.nn.Module | None = None,
        feed_forward: torch.nn.Module | None = None,
        causal: bool = True,
        cross_attention: bool = False,
        scale: float | None = None,
        eps: float | None = None,
        alpha: float = 1.0,
        kernel: str = "explicit",
        fused_norm: bool = False,
        rotary: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        layer_idx: int = 0,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        check_positive_int("d_model", d_model)
        if norm_position not in NORM_POSITIONS:
            raise ValueError(f"norm_position: expected one of {list(NORM_POSITIONS)}, got {norm_position!r}")
        if norm not in ("layernorm", "rmsnorm"):
            raise ValueError(f"norm: expected 'layernorm' or 'rmsnorm', got {norm!r}")
        if ffn not in FFN_KINDS:
            raise ValueError(f"ffn: expected one of {sorted(FFN_KINDS)}, got {ffn!r}")
        if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or not alpha > 0:
            raise ValueError(f"alpha: expected a number > 0, got {alpha!r}")
        if alpha != 1.0 and norm_position != "deepnorm":
            raise ValueError(
                f"alpha: only norm_position='deepnorm' uses alpha, got alpha={alpha} with {norm_position!r}"
            )
        self.d_model = d_model
        self.norm_position = norm_position
        self.causal = causal
        self.alpha = float(alpha)
        kw = {"device": device, "dtype": dtype}
        norm_kw = {"fused": fused_norm, **kw}
        if norm == "layernorm":
            norm_kw["bias"] = bias

        def new_norm() -> nn.Module:
            return make_norm(norm, d_model, eps, **norm_kw)

        self.ln_1 = new_norm()
        if attention is None:
            attention = GroupedQueryAttention(
                d_model, n_heads, n_kv_heads, bias=bias, dropout=dropout, rotary=rotary, kernel=kernel,
                scale=scale, layer_idx=layer_idx, **kw,
            )  # fmt: skip
        self.attn = attention
        if cross_attention:
            if norm_position in ("sandwich", "deepnorm"):
                raise ValueError(
                    f"cross_attention: supported with 'pre' and 'post' norms, got {norm_position!r}"
                )
            self.ln_cross = new_norm()
            self.cross_attn = GroupedQueryAttention(
                d_model, n_heads, n_heads, bias=bias, dropout=dropout, kernel=kernel, scale=scale, **kw
            )
        else:
            self.cross_attn = None
        self.ln_2 = new_norm()
        if feed_forward is None:
            feed_forward = make_ffn(ffn, d_model, d_hidden, activation=activation, bias=bias, **kw)
        elif not isinstance(feed_forward, nn.Module):
            raise TypeError(f"feed_forward: expected an nn.Module, got {type(feed_forward).__name__}")
        self.mlp = feed_forward
        self.aux_loss: torch.Tensor | None = None
        if norm_position == "sandwich":
            self.ln_1_post = new_norm()
            self.ln_2_post = new_norm()
        self.dropout = nn.Dropout(check_probability("dropout", dropout))

    def forward(
        self,
        x: torch.Tensor,
        *,
        attn_mask: torch.Tensor | None = None,
        key_mask: torch.Tensor | None = None,
        attn_bias: torch.Tensor | None = None,
        kv_cache: KVCache | None = None,
        positions: torch.Tensor | None = None,
        context: torch.Tensor | None = None,
        context_mask: torch.Tensor | None = None,
        cross_bias: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Apply the block.

        Args:
            x: ``(B, T, d_model)``.
            attn_mask: optional bool mask broadcastable to ``(B, H, T, T_k)``, True = may attend.
            key_mask: optional ``(B, T_k)`` bool, True at real (non-padding) tokens.
            attn_bias: optional float bias added to the attention scores (ALiBi), ``(…, T, T_k)``.
            kv_cache: a :class:`~companion.nn.kv_cache.KVCache` for incremental decoding.
            positions: ``(T,)`` absolute positions for the rotary embedding.
            context: ``(B, T_src, d_model)`` encoder output for the cross-attention sublayer.
            context_mask: ``(B, T_src)`` bool, True at the context's real tokens.
            cross_bias: optional float bias added to the cross-attention scores.

        Returns:
            ``(B, T, d_model)``.
        """
        check_tensor("x", x, ndim=3, floating=True)
        if x.shape[-1] != self.d_model:
            raise ValueError(f"x: expected last dimension d_model={self.d_model}, got shape {tuple(x.shape)}")
        # Only what the caller gave goes to the attention, so a custom module needs only the basic call.
        extra = {"attn_bias": attn_bias, "kv_cache": kv_cache, "positions": positions}
        extra = {k: v for k, v in extra.items() if v is not None}

        def attend(h: torch.Tensor) -> torch.Tensor:
            out = self.attn(h, key_mask=key_mask, attn_mask=attn_mask, is_causal=self.causal, **extra)
            return out[0] if isinstance(out, tuple) else out

        if (context is None) != (self.cross_attn is None):
            raise ValueError(
                "context: a block with cross_attention needs the encoder output as context, and a block "
                "without it takes none"
            )

        def cross(h: torch.Tensor) -> torch.Tensor:
            return self.cross_attn(h, context, key_mask=context_mask, attn_bias=cross_bias)[0]

        def ffn(h: torch.Tensor) -> torch.Tensor:
            out = self.mlp(h)
            if isinstance(out, tuple):  # a mixture of experts: (y, load-balancing loss)
                out, self.aux_loss = out
            return out

        drop = self.dropout if self.training and self.dropout.p > 0 else _identity  # skip a no-op call
        pos = self.norm_position
        if pos == "pre":
            x = x + drop(attend(self.ln_1(x)))
            if context is not None:
                x = x + drop(cross(self.ln_cross(x)))
            return x + drop(ffn(self.ln_2(x)))
        if pos == "post":
            x = self.ln_1(x + drop(attend(x)))
            if context is not None:
                x = self.ln_cross(x + drop(cross(x)))
            return self.ln_2(x + drop(ffn(x)))
        if pos == "sandwich":
            x = x + drop(self.ln_1_post(attend(self.ln_1(x))))
            return x + drop(self.ln_2_post(ffn(self.ln_2(x))))
        x = self.ln_1(self.alpha * x + drop(attend(x)))  # deepnorm
        return self.ln_2(self.alpha * x + drop(ffn(x)))

    def flops(self, n: int) -> int:
        """Analytic forward FLOPs for one sequence of ``n`` tokens (2 per multiply–accumulate).

        Counts the matrix products only: attention ``2·(4nd² + 2n²d)`` and the FFN ``2·2·n·d·d_ff``
        (``3`` matrices when gated). For the default ``4d`` MLP this is ``24·n·d² + 4·n²·d``.
        """
        check_positive_int("n", n)
        d = self.d_model
        n_mats = 3 if hasattr(self.mlp, "w_gate") else 2
        ffn_macs = n_mats * n * d * self.mlp.d_hidden
        attn_macs = (
            self.attn.macs(n)["total"] if hasattr(self.attn, "macs") else 4 * n * d * d + 2 * n * n * d
        )
        return 2 * (attn_macs + ffn_macs)

    @classmethod
    def from_torch(cls, layer: nn.TransformerEncoderLayer, *, causal: bool = False) -> TransformerBlock:
        """An equivalent block from a ``torch.nn.TransformerEncoderLayer`` (weights copied).

        ``norm_first=True`` gives ``"pre"``, False gives ``"post"``. Supports ReLU/GELU activations and
        same-width attention; the copy is in eval-equivalent form (dropout is not copied).
        """
        if not isinstance(layer, nn.TransformerEncoderLayer):
            raise TypeError(f"layer: expected torch.nn.TransformerEncoderLayer, got {type(layer).__name__}")
        act = {F.relu: "relu", F.gelu: "gelu"}.get(layer.activation)
        if act is None:
            raise ValueError(f"layer: only relu/gelu activations are supported, got {layer.activation!r}")
        w = layer.linear1.weight
        d, d_ff = layer.linear1.in_features, layer.linear1.out_features
        block = cls(
            d,
            layer.self_attn.num_heads,
            d_hidden=d_ff,
            norm_position="pre" if layer.norm_first else "post",
            activation=act,
            bias=layer.linear1.bias is not None,
            causal=causal,
            eps=layer.norm1.eps,
            device=w.device,
            dtype=w.dtype,
        )
        block.attn = MultiHeadAttention.from_torch(layer.self_attn)
        with torch.no_grad():
            for ours, theirs in ((block.mlp.fc_in, layer.linear1), (block.mlp.fc_out, layer.linear2)):
                ours.weight.copy_(theirs.weight)
                if theirs.bias is not None:
                    ours.bias.copy_(theirs.bias)
            for ours, theirs in ((block.ln_1, layer.norm1), (block.ln_2, layer.norm2)):
                ours.weight.copy_(theirs.weight)
                if theirs.bias is not None:
                    ours.bias.copy_(theirs.bias)
        return block


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def deepnorm_init_(block: TransformerBlock, beta: float, generator: torch.Generator | None = None) -> None:
    """DeepNet's initialization, in place: Xavier-normal with gain β on the FFN weights, ``W_V`` and
    ``W_O``, and gain 1 on ``W_Q`` and ``W_K``. Biases and norms are left alone.

    Args:
        block: a :class:`TransformerBlock` (or any module with ``attn.{q,k,v,out}_proj`` and ``mlp``).
        beta: the gain β of :func:`~companion.nn.norms.deepnorm_constants`.
        generator: random generator for the draws.
    """
    if not isinstance(beta, (int, float)) or isinstance(beta, bool) or not beta > 0:
        raise ValueError(f"beta: expected a number > 0, got {beta!r}")

    def xavier(weight: torch.Tensor, gain: float) -> None:
        fan_out, fan_in = weight.shape
        std = gain * math.sqrt(2.0 / (fan_in + fan_out))
        with torch.no_grad():
            weight.normal_(0.0, std, generator=generator)

    attn = block.attn
    for proj in (attn.q_proj, attn.k_proj):
        xavier(proj.weight, 1.0)
    for proj in (attn.v_proj, attn.out_proj):
        xavier(proj.weight, beta)
    for module in block.mlp.modules():
        if isinstance(module, nn.Linear):
            xavier(module.weight, beta)


class TransformerStack(nn.Module):
    """``n_layers`` :class:`TransformerBlock` s, with a final norm ``ln_f`` for Pre-LN and Sandwich.

    With ``norm_position="deepnorm"`` every block gets DeepNorm's α and β for a decoder-only (or, with
    ``causal=False``, encoder-only) stack of ``n_layers``, and the β initialization is applied.

    Args:
        n_layers: number of blocks ``L``.
        d_model, n_heads: as for :class:`TransformerBlock`.
        final_norm: add ``ln_f`` after the last block; default True for ``"pre"`` and ``"sandwich"``
            (whose residual stream is otherwise never normalized), False for ``"post"``/``"deepnorm"``.
        generator: random generator for the DeepNorm initialization.
        **block_kwargs: passed to every block (``norm``, ``norm_position``, ``ffn``, ``causal``, …).
    """

    def __init__(
        self,
        n_layers: int,
        d_model: int,
        n_heads: int,
        *,
        final_norm: bool | None = None,
        generator: torch.Generator | None = None,
        **block_kwargs: object,
    ) -> None:
        super().__init__()
        check_positive_int("n_layers", n_layers)
        position = block_kwargs.get("norm_position", "pre")
        beta = None
        if position == "deepnorm" and "alpha" not in block_kwargs:
            arch = "decoder-only" if block_kwargs.get("causal", True) else "encoder-only"
            block_kwargs["alpha"], beta = deepnorm_constants(arch, n_layers)
        self.blocks = nn.ModuleList(
            TransformerBlock(d_model, n_heads, **block_kwargs) for _ in range(n_layers)
        )
        if beta is not None:
            for block in self.blocks:
                deepnorm_init_(block, beta, generator)
        if final_norm is None:
            final_norm = position in ("pre", "sandwich")
        norm = block_kwargs.get("norm", "layernorm")
        eps = block_kwargs.get("eps")
        self.ln_f = make_norm(norm, d_model, eps) if final_norm else None

    def forward(
        self,
        x: torch.Tensor,
        *,
        attn_mask: torch.Tensor | None = None,
        key_mask: torch.Tensor | None = None,
        return_hidden: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Apply every block (then ``ln_f``) to ``x`` of shape ``(B, T, d)``.

        Returns:
            ``(B, T, d)``; with ``return_hidden`` also the list of ``L + 1`` residual-stream states
            (the input and each block's output, before ``ln_f``).
        """
        hidden = [x]
        for block in self.blocks:
            x = block(x, attn_mask=attn_mask, key_mask=key_mask)
            hidden.append(x)
        if self.ln_f is not None:
            x = self.ln_f(x)
        return (x, hidden) if return_hidden else x


def layer_cosine(hidden_states: list[torch.Tensor] | tuple[torch.Tensor, ...] | torch.Tensor) -> list[float]:
    """Mean cosine similarity between consecutive layers' hidden states, token by token.

    Args:
        hidden_states: ``L`` tensors of the same shape ``(..., d)`` (e.g. ``(B, T, d)``), or one tensor
            ``(L, ..., d)``.

    Returns:
        ``L − 1`` floats; entry ``l`` is the mean over tokens of ``cos(h_l, h_{l+1})`` taken along the
        feature axis. Values near 1 mean layer ``l + 1`` barely changed the representation.
    """
    if isinstance(hidden_states, torch.Tensor):
        hidden_states = list(hidden_states.unbind(0))
    if not isinstance(hidden_states, (list, tuple)) or len(hidden_states) < 2:
        raise ValueError("hidden_states: expected a list of at least 2 tensors (one per layer)")
    shape = hidden_states[0].shape
    for i, h in enumerate(hidden_states):
        check_tensor(f"hidden_states[{i}]", h, min_ndim=1, floating=True)
        if h.shape != shape:
            raise ValueError(f"hidden_states[{i}]: shape {tuple(h.shape)} differs from {tuple(shape)}")
    return [
        float(F.cosine_similarity(a.detach(), b.detach(), dim=-1).mean())
        for a, b in itertools.pairwise(hidden_states)
    ]


def _is_norm(module: nn.Module) -> bool:
    return isinstance(module, (nn.LayerNorm, nn.RMSNorm, LayerNorm, RMSNorm)) or type(
        module
    ).__name__.endswith("Norm")


def _tensors(obj: object) -> list[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (tuple, list)):
        return [t for item in obj for t in _tensors(item)]
    return []


def norm_placement(block: nn.Module, x: torch.Tensor | None = None) -> str:
    """Find where a block normalizes by tracing one forward pass: ``'pre'``, ``'post'`` or ``'sandwich'``.

    The rule follows the data, not the module names:

    * ``'post'`` — the block's output *is* the output of a norm (Post-LN and DeepNorm);
    * ``'sandwich'`` — otherwise, if some norm is applied directly to a sublayer's output;
    * ``'pre'`` — otherwise, if a norm is applied to the block's input (the residual stream).

    Args:
        block: a module called as ``block(x)`` with ``x`` of shape ``(B, T, d)``, e.g. a
            :class:`TransformerBlock` or ``torch.nn.TransformerEncoderLayer(batch_first=True)``.
        x: the input to trace with; default a seeded ``(2, 5, d)`` tensor, ``d`` read from the first norm.

    Raises:
        ValueError: if the block has no norm or fits none of the three patterns.
    """
    if not isinstance(block, nn.Module):
        raise TypeError(f"block: expected an nn.Module, got {type(block).__name__}")
    norms = [m for m in block.modules() if m is not block and _is_norm(m)]
    if not norms:
        raise ValueError(f"block: {type(block).__name__} contains no normalization layer")
    if x is None:
        weight = next((p for m in norms for p in m.parameters()), None)
        shape = getattr(norms[0], "normalized_shape", None) if weight is None else weight.shape
        if not shape:
            raise ValueError("x: cannot infer the width from the block's norms; pass an input")
        param = next(block.parameters(), weight)
        kw = {} if param is None else {"dtype": param.dtype, "device": param.device}
        x = torch.randn(2, 5, shape[-1], generator=torch.Generator().manual_seed(0), **kw)
    # Keep the traced tensors themselves (not their ids): a freed tensor's id may be reused.
    norm_inputs: list[torch.Tensor] = []
    norm_outputs: list[torch.Tensor] = []
    sublayer_outputs: list[torch.Tensor] = []

    def norm_hook(module: nn.Module, args: tuple, output: object) -> None:
        norm_inputs.extend(_tensors(args))
        norm_outputs.extend(_tensors(output))

    def other_hook(module: nn.Module, args: tuple, output: object) -> None:
        if not isinstance(module, (nn.Dropout, nn.Identity)):
            sublayer_outputs.extend(_tensors(output))

    handles = []
    for m in block.modules():
        if m is block:
            continue
        handles.append(m.register_forward_hook(norm_hook if _is_norm(m) else other_hook))
    was_training = block.training
    block.eval()
    try:
        with (
            torch.enable_grad()
        ):  # PyTorch's TransformerEncoderLayer skips its submodules on its no-grad fast path
            out = block(x)
    finally:
        block.train(was_training)
        for h in handles:
            h.remove()
    outputs = _tensors(out)

    def among(t: torch.Tensor, group: list[torch.Tensor]) -> bool:
        return any(t is g for g in group)

    if outputs and among(outputs[0], norm_outputs):
        return "post"
    if any(among(t, sublayer_outputs) for t in norm_inputs):
        return "sandwich"
    if among(x, norm_inputs):
        return "pre"
    raise ValueError(f"block: could not recognize the norm placement of {type(block).__name__}")
