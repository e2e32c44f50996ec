"""Position-wise feed-forward networks (前馈神经网络, FFN): the two-matrix MLP and the GLU family.

The FFN is applied to every token's hidden state independently — the same MLP at every position
(Vaswani et al., 2017, §3.3). With row vectors ``x ∈ R^{1×d}``::

    FFN(x)        = act(x W₁ + b₁) W₂ + b₂                  W₁ ∈ R^{d×d_ff}, W₂ ∈ R^{d_ff×d}
    FFN_GLU(x)    = (σ(xW) ⊙ xV) W₂                          three matrices, no biases
    FFN_ReGLU(x)  = (max(0, xW) ⊙ xV) W₂
    FFN_GEGLU(x)  = (GELU(xW) ⊙ xV) W₂
    FFN_SwiGLU(x) = (Swish₁(xW) ⊙ xV) W₂

(Shazeer, "GLU Variants Improve Transformer", 2020).

A gated FFN has ``3·d·d_ff`` weights, a two-matrix FFN ``2·d·d_ff``: ``d_ff = 8d/3`` keeps a gated FFN
at the parameter count of a ``4d`` MLP. LLaMA computes ``int(2·4d/3)`` and rounds it *up* to a
multiple of ``multiple_of = 256`` (d = 4096 → 11 008); :func:`glu_hidden_size` implements that rule.

Module attribute names follow the Hugging Face Llama layout for the gated FFN (``w_gate`` = gate_proj
= W, ``w_up`` = up_proj = V, ``w_down`` = down_proj = W₂) and ``fc_in``/``fc_out`` for the MLP.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from companion._validate import check_positive_int, check_probability, check_tensor
from companion.nn.activations import get_activation

__all__ = [
    "FFN_KINDS",
    "FeedForward",
    "GLUFeedForward",
    "ffn",
    "ffn_param_count",
    "glu_hidden_size",
    "make_ffn",
]


def _resolve_activation(
    activation: str | Callable[[torch.Tensor], torch.Tensor],
) -> Callable[[torch.Tensor], torch.Tensor]:
    if callable(activation):
        return activation
    return get_activation(activation)


def ffn(
    x: torch.Tensor,
    W1: torch.Tensor,
    b1: torch.Tensor | None,
    W2: torch.Tensor,
    b2: torch.Tensor | None,
    act: str | Callable[[torch.Tensor], torch.Tensor] = "gelu",
) -> torch.Tensor:
    """The position-wise FFN ``act(x W₁ + b₁) W₂ + b₂`` in the book's row-vector convention.

    Args:
        x: ``(..., d)``, e.g. ``(B, T, d)``; each row is transformed independently.
        W1: ``(d, d_ff)`` (note: ``torch.nn.Linear.weight`` is ``W₁ᵀ``).
        b1: ``(d_ff,)`` or None.
        W2: ``(d_ff, d)``.
        b2: ``(d,)`` or None.
        act: an activation name (see :func:`~companion.nn.activations.get_activation`) or a callable.

    Returns:
        ``(..., d)``.
    """
    check_tensor("x", x, min_ndim=1, floating=True)
    check_tensor("W1", W1, ndim=2)
    check_tensor("W2", W2, ndim=2)
    if W1.shape[0] != x.shape[-1]:
        raise ValueError(f"W1: expected shape (d={x.shape[-1]}, d_ff), got {tuple(W1.shape)}")
    if W2.shape[0] != W1.shape[1]:
        raise ValueError(f"W2: expected shape (d_ff={W1.shape[1]}, d_out), got {tuple(W2.shape)}")
    h = x @ W1
    if b1 is not None:
        h = h + b1
    y = _resolve_activation(act)(h) @ W2
    return y if b2 is None else y + b2


def glu_hidden_size(d_model: int, multiple_of: int = 256, ffn_dim_multiplier: float | None = None) -> int:
    """LLaMA's hidden width for a SwiGLU FFN: ``int(2·4d/3)``, optionally scaled, rounded up.

    ``glu_hidden_size(4096) == 11008`` (LLaMA-7B). With ``multiple_of=1`` and ``d`` divisible by 3 the
    result is exactly ``8d/3``, which matches the parameters of a ``4d`` two-matrix FFN.

    Args:
        d_model: model width ``d``.
        multiple_of: round up to a multiple of this (LLaMA: 256; hardware likes multiples of 8–256).
        ffn_dim_multiplier: optional extra factor applied before rounding (LLaMA-2 70B / LLaMA-3).
    """
    check_positive_int("d_model", d_model)
    check_positive_int("multiple_of", multiple_of)
    hidden = int(2 * (4 * d_model) / 3)
    if ffn_dim_multiplier is not None:
        hidden = int(ffn_dim_multiplier * hidden)
    return multiple_of * ((hidden + multiple_of - 1) // multiple_of)


class FeedForward(nn.Module):
    """The Transformer's two-matrix FFN ``act(x W₁ + b₁) W₂ + b₂`` (GPT-2, BERT).

    Args:
        d_model: input and output width ``d``.
        d_hidden: inner width ``d_ff``; default ``4·d``.
        activation: a name (``"gelu"``, ``"gelu_tanh"``, ``"relu"``, ``"silu"``, …) or a callable.
        bias: biases on both linear layers.
        dropout: dropout on the output (active in ``train()`` mode only).
        device, dtype: where and how to allocate the parameters.

    Attributes:
        fc_in: ``nn.Linear(d, d_ff)`` (its ``weight`` is ``W₁ᵀ``).
        fc_out: ``nn.Linear(d_ff, d)``.
    """

    def __init__(
        self,
        d_model: int,
        d_hidden: int | None = None,
        activation: str | Callable[[torch.Tensor], torch.Tensor] = "gelu",
        bias: bool = True,
        dropout: float = 0.0,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        check_positive_int("d_model", d_model)
        d_hidden = 4 * d_model if d_hidden is None else check_positive_int("d_hidden", d_hidden)
        self.d_model, self.d_hidden = d_model, d_hidden
        self.activation_name = (
            activation if isinstance(activation, str) else getattr(activation, "__name__", "?")
        )
        self.act = _resolve_activation(activation)
        kw = {"device": device, "dtype": dtype}
        self.fc_in = nn.Linear(d_model, d_hidden, bias=bias, **kw)
        self.fc_out = nn.Linear(d_hidden, d_model, bias=bias, **kw)
        self.dropout = nn.Dropout(check_probability("dropout", dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``(..., d_model)`` → ``(..., d_model)``."""
        y = self.fc_out(self.act(self.fc_in(x)))
        return self.dropout(y) if self.training and self.dropout.p > 0 else y  # skip a no-op call

    def extra_repr(self) -> str:
        return f"activation={self.activation_name}"


class GLUFeedForward(nn.Module):
    """Gated FFN ``(act(xW) ⊙ xV) W₂`` — GLU, ReGLU, GeGLU or SwiGLU by the choice of ``act``.

    Args:
        d_model: input and output width ``d``.
        d_hidden: inner width ``d_ff``; default :func:`glu_hidden_size` ``(d, multiple_of)``,
            i.e. ``8d/3`` rounded up.
        activation: the gate's activation: ``"silu"`` → SwiGLU (LLaMA), ``"gelu"`` → GeGLU,
            ``"gelu_tanh"`` → GeGLU with the tanh GELU (Gemma), ``"relu"`` → ReGLU, ``"sigmoid"`` →
            GLU (Dauphin et al., 2017); or a callable.
        bias: biases on the three linear layers (LLaMA: none).
        dropout: dropout on the output (active in ``train()`` mode only).
        multiple_of: rounding of the default ``d_hidden`` (LLaMA uses 256; the default 8 suits small
            models too).
        device, dtype: where and how to allocate the parameters.

    Attributes:
        w_gate: ``nn.Linear(d, d_ff)``, the gated branch ``W`` (Hugging Face ``gate_proj``).
        w_up: ``nn.Linear(d, d_ff)``, the linear branch ``V`` (``up_proj``).
        w_down: ``nn.Linear(d_ff, d)``, the output ``W₂`` (``down_proj``).
    """

    def __init__(
        self,
        d_model: int,
        d_hidden: int | None = None,
        activation: str | Callable[[torch.Tensor], torch.Tensor] = "silu",
        bias: bool = False,
        dropout: float = 0.0,
        *,
        multiple_of: int = 8,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        check_positive_int("d_model", d_model)
        if d_hidden is None:
            d_hidden = glu_hidden_size(d_model, multiple_of)
        check_positive_int("d_hidden", d_hidden)
        self.d_model, self.d_hidden = d_model, d_hidden
        self.activation_name = (
            activation if isinstance(activation, str) else getattr(activation, "__name__", "?")
        )
        self.act = _resolve_activation(activation)
        kw = {"device": device, "dtype": dtype}
        self.w_gate = nn.Linear(d_model, d_hidden, bias=bias, **kw)
        self.w_up = nn.Linear(d_model, d_hidden, bias=bias, **kw)
        self.w_down = nn.Linear(d_hidden, d_model, bias=bias, **kw)
        self.dropout = nn.Dropout(check_probability("dropout", dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``(..., d_model)`` → ``(..., d_model)``."""
        y = self.w_down(self.act(self.w_gate(x)) * self.w_up(x))
        return self.dropout(y) if self.training and self.dropout.p > 0 else y

    def extra_repr(self) -> str:
        return f"activation={self.activation_name}"


#: ffn kind -> (gated?, default activation)
FFN_KINDS: dict[str, tuple[bool, str]] = {
    "mlp": (False, "gelu"),
    "relu": (False, "relu"),
    "gelu": (False, "gelu"),
    "swiglu": (True, "silu"),
    "geglu": (True, "gelu"),
    "reglu": (True, "relu"),
    "glu": (True, "sigmoid"),
}


def make_ffn(
    kind: str,
    d_model: int,
    d_hidden: int | None = None,
    *,
    activation: str | Callable[[torch.Tensor], torch.Tensor] | None = None,
    bias: bool | None = None,
    dropout: float = 0.0,
    **kwargs: object,
) -> nn.Module:
    """Build an FFN by name.

    Args:
        kind: ``"mlp"`` (GELU MLP), ``"relu"``, ``"gelu"``, or a gated kind ``"swiglu"``, ``"geglu"``,
            ``"reglu"``, ``"glu"``.
        d_model: model width.
        d_hidden: inner width; default ``4d`` for the MLP kinds and ``8d/3`` rounded up for gated ones.
        activation: override the kind's activation (e.g. ``"gelu_tanh"`` for a GPT-2 MLP).
        bias: default True for the MLP kinds (GPT-2, BERT) and False for gated ones (LLaMA).
        dropout: output dropout.
        **kwargs: passed on (``device``, ``dtype``, ``multiple_of`` for gated kinds).
    """
    if kind not in FFN_KINDS:
        raise ValueError(f"kind: expected one of {sorted(FFN_KINDS)}, got {kind!r}")
    gated, default_act = FFN_KINDS[kind]
    act = default_act if activation is None else activation
    if gated:
        return GLUFeedForward(
            d_model, d_hidden, act, bias=False if bias is None else bias, dropout=dropout, **kwargs
        )
    return FeedForward(d_model, d_hidden, act, bias=True if bias is None else bias, dropout=dropout, **kwargs)


def ffn_param_count(d_model: int, d_hidden: int, *, gated: bool, bias: bool) -> int:
    """Parameters of an FFN: ``2·d·d_ff (+ d_ff + d)`` for the MLP, ``3·d·d_ff (+ 2·d_ff + d)`` gated."""
    check_positive_int("d_model", d_model)
    check_positive_int("d_hidden", d_hidden)
    if gated:
        return 3 * d_model * d_hidden + (2 * d_hidden + d_model if bias else 0)
    return 2 * d_model * d_hidden + (d_hidden + d_model if bias else 0)
