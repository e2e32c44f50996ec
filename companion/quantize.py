"""Weight-only quantization (量化): linear layers that store their weights in 4 or 8 bits and
dequantize them on the fly.

A weight-only scheme keeps activations in floating point and shrinks what dominates a small model's
memory and a decoder's per-token traffic: the weight matrices. Two formats, one class each:

* **Q4_1** (llama.cpp's format, the one SmolLM2's GGUF file uses): each row is cut into blocks of 32
  weights; a block stores a float16 scale ``d``, a float16 minimum ``m`` and 32 unsigned 4-bit codes
  ``q ∈ {0 … 15}``, and ``w = d·q + m``. Quantizing a block picks ``m = min w``,
  ``d = (max w − min w)/15`` and ``q = ⌊(w − m)/d + ½⌋``. That is ``2 + 2 + 16 = 20`` bytes per 32
  weights: **5 bits per weight**. :class:`Q4_1Linear` keeps exactly the bytes of the file (the codes
  two to a byte: byte ``j`` holds code ``j`` in its low nibble and code ``j + 16`` in its high one).
* **int8 per output channel** (LLM.int8()'s baseline, Dettmers et al., 2022, without its outlier
  decomposition): row ``o`` of ``W`` is stored as ``q_o = round(W_o / s_o)`` with ``s_o = max|W_o| / 127``,
  and ``x W_oᵀ = s_o · (x q_oᵀ)``: one float per row, **8 bits per weight** (plus ``32/d_in``).

Both compute ``F.linear(x, dequantized W)``: the memory is saved, the multiply is a float one (a
dedicated kernel would multiply the codes directly). :func:`quantize_linears_` swaps the
``nn.Linear`` layers of a model in place; :func:`weight_bytes` counts what a model's weights occupy.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from companion._validate import check_tensor

__all__ = [
    "QK",
    "Int8Linear",
    "Q4_1Linear",
    "dequantize_q4_1",
    "quantize_linears_",
    "quantize_q4_1",
    "weight_bytes",
]

QK = 32  # weights per Q4_1 block


def quantize_q4_1(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Quantize a matrix to Q4_1 blocks along its rows (llama.cpp's reference rounding).

    Args:
        w: ``(out, in)`` float, ``in`` a multiple of 32.

    Returns:
        ``(codes, d, m)``: ``codes`` ``(out, in/2)`` uint8 (two 4-bit codes per byte, ggml's order),
        ``d`` and ``m`` ``(out, in/32)`` float16.
    """
    check_tensor("w", w, ndim=2, floating=True)
    out_f, in_f = w.shape
    if in_f % QK:
        raise ValueError(
            f"w: Q4_1 needs an input width that is a multiple of {QK}, got shape {tuple(w.shape)}"
        )
    blocks = w.detach().float().reshape(out_f, in_f // QK, QK)
    lo, hi = blocks.amin(-1, keepdim=True), blocks.amax(-1, keepdim=True)
    d = (hi - lo) / 15
    inv = torch.where(d == 0, torch.zeros_like(d), 1 / d)
    q = torch.trunc((blocks - lo) * inv + 0.5).clamp(0, 15).to(torch.uint8)
    codes = q[..., : QK // 2] | (q[..., QK // 2 :] << 4)
    return codes.reshape(out_f, in_f // 2), d.squeeze(-1).half(), lo.squeeze(-1).half()


def dequantize_q4_1(codes: torch.Tensor, d: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """``w = d·q + m`` block by block: the float32 ``(out, in)`` matrix of :func:`quantize_q4_1`'s output."""
    out_f = codes.shape[0]
    packed = codes.reshape(out_f, -1, QK // 2)
    q = torch.cat([packed & 0x0F, packed >> 4], dim=-1).float()  # (out, in/32, 32)
    return (q * d.float()[..., None] + m.float()[..., None]).reshape(out_f, -1)


class Q4_1Linear(nn.Module):
    """A bias-free linear layer whose weight is stored in Q4_1 (5 bits per weight).

    Args:
        codes, d, m: as returned by :func:`quantize_q4_1` (or read from a GGUF file with
            :meth:`from_gguf_blocks`).

    ``forward(x)`` dequantizes the weight to ``x``'s dtype and applies ``F.linear``: ``(…, in) → (…, out)``.
    """

    def __init__(self, codes: torch.Tensor, d: torch.Tensor, m: torch.Tensor) -> None:
        super().__init__()
        check_tensor("codes", codes, ndim=2)
        if codes.dtype != torch.uint8:
            raise TypeError(f"codes: expected uint8 packed 4-bit codes, got {codes.dtype}")
        blocks = codes.shape[1] * 2 // QK
        for name, t in (("d", d), ("m", m)):
            if tuple(t.shape) != (codes.shape[0], blocks):
                raise ValueError(f"{name}: expected shape {(codes.shape[0], blocks)}, got {tuple(t.shape)}")
        self.out_features, self.in_features = codes.shape[0], codes.shape[1] * 2
        self.register_buffer("codes", codes)
        self.register_buffer("d", d.half())
        self.register_buffer("m", m.half())

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> Q4_1Linear:
        """Quantize an ``nn.Linear`` (without a bias)."""
        if linear.bias is not None:
            raise ValueError("linear: Q4_1Linear has no bias; quantize bias-free layers only")
        return cls(*quantize_q4_1(linear.weight))

    @classmethod
    def from_gguf_blocks(cls, raw: np.ndarray, shape: tuple[int, int]) -> Q4_1Linear:
        """Keep a GGUF file's Q4_1 bytes as they are: ``raw`` holds ``out·in/32`` blocks of 20 bytes
        (``d``, ``m``, 16 bytes of codes) for a matrix of ``shape = (out, in)``."""
        out_f, in_f = shape
        blocks = np.asarray(raw, dtype=np.uint8).reshape(out_f, in_f // QK, 20)
        d = torch.from_numpy(blocks[..., 0:2].copy().view("<f2")[..., 0])
        m = torch.from_numpy(blocks[..., 2:4].copy().view("<f2")[..., 0])
        codes = torch.from_numpy(blocks[..., 4:].reshape(out_f, in_f // 2).copy())
        return cls(codes, d, m)

    def dequantized(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The ``(out, in)`` weight the codes stand for."""
        return dequantize_q4_1(self.codes, self.d, self.m).to(dtype)

    def permute_rows(self, index: torch.Tensor) -> None:
        """Reorder the output rows in place (blocks run along a row, so rows move whole)."""
        self.codes, self.d, self.m = self.codes[index], self.d[index], self.m[index]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.dequantized(x.dtype))

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, format=Q4_1"


class Int8Linear(nn.Module):
    """A linear layer whose weight is stored as int8 with one float scale per output channel.

    Args:
        weight: ``(out, in)`` int8 codes ``q``.
        scale: ``(out,)`` float32 scales ``s`` (``W ≈ s[:, None] · q``).
        bias: optional ``(out,)`` float bias, kept as it is.
    """

    def __init__(self, weight: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None = None) -> None:
        super().__init__()
        check_tensor("weight", weight, ndim=2)
        if weight.dtype != torch.int8:
            raise TypeError(f"weight: expected int8 codes, got {weight.dtype}")
        if tuple(scale.shape) != (weight.shape[0],):
            raise ValueError(f"scale: expected shape ({weight.shape[0]},), got {tuple(scale.shape)}")
        self.out_features, self.in_features = weight.shape
        self.register_buffer("weight", weight)
        self.register_buffer("scale", scale.float())
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone(), requires_grad=False)

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> Int8Linear:
        """Quantize an ``nn.Linear``: ``s_o = max|W_o| / 127``, ``q = round(W / s)`` (a zero row: s = 1)."""
        w = linear.weight.detach().float()
        scale = w.abs().amax(dim=1) / 127
        scale = torch.where(scale == 0, torch.ones_like(scale), scale)
        q = torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8)
        return cls(q, scale, linear.bias)

    def dequantized(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The ``(out, in)`` weight the codes stand for."""
        return (self.weight.float() * self.scale[:, None]).to(dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x (s q)ᵀ = (x qᵀ) s: scale the output columns instead of materializing a float weight.
        y = F.linear(x, self.weight.to(x.dtype)) * self.scale.to(x.dtype)
        return y if self.bias is None else y + self.bias.to(x.dtype)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, format=int8 per channel"


_FORMATS = {"q4_1": Q4_1Linear, "int8": Int8Linear}


def quantize_linears_(
    model: nn.Module, kind: str = "int8", *, skip: Iterable[str] = ("lm_head",)
) -> nn.Module:
    """Replace every ``nn.Linear`` of ``model`` by its quantized version, in place.

    Args:
        model: any module.
        kind: ``"int8"`` (per-channel) or ``"q4_1"``.
        skip: names (or name suffixes) of linear layers to keep in float, e.g. a head tied to the
            embeddings (quantizing it would untie it).

    Returns:
        The same ``model``.
    """
    if kind not in _FORMATS:
        raise ValueError(f"kind: expected one of {sorted(_FORMATS)}, got {kind!r}")
    skip = tuple(skip)
    targets = [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and not any(name == s or name.endswith("." + s) for s in skip)
    ]
    for name, module in targets:
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, attr, _FORMATS[kind].from_linear(module))
    return model


def weight_bytes(model: nn.Module) -> dict[str, int]:
    """Bytes the model's weights occupy: ``float`` its parameters (shared, tied ones once),
    ``quantized`` the codes and scales of its quantized layers, and their ``total``. Other buffers
    (RoPE tables, caches) are not weights and are left out."""
    seen: set[int] = set()
    out = {"float": 0, "quantized": 0}
    for t in model.parameters():
        if id(t) not in seen and not t.is_meta:
            seen.add(id(t))
            out["float"] += t.numel() * t.element_size()
    for m in model.modules():
        if isinstance(m, (Q4_1Linear, Int8Linear)):
            for t in m.buffers(recurse=False):
                out["quantized"] += t.numel() * t.element_size()
    out["total"] = out["float"] + out["quantized"]
    return out
