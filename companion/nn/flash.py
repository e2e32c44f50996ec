"""FlashAttention's algorithm in plain PyTorch: online softmax, tiling and recomputation.

FlashAttention (Dao et al., 2022, "FlashAttention: Fast and Memory-Efficient Exact Attention with
IO-Awareness") computes *exact* attention without ever writing the ``T_q × T_k`` score or weight
matrix to the GPU's high-bandwidth memory (HBM, 高带宽显存). It loads blocks of Q, K and V into the
small on-chip SRAM (片上缓存) of each streaming multiprocessor, computes a block of scores there, and
folds it into running softmax statistics — the **online softmax** (在线 softmax)::

    m' = max(m, max_j s_j)
    ℓ' = e^(m - m') ℓ + Σ_j e^(s_j - m')
    o' = e^(m - m') o + Σ_j e^(s_j - m') v_j            (output = o / ℓ at the end)

starting from ``m = -inf, ℓ = 0, o = 0``. The backward pass does not store the weights either: it
*recomputes* each block of scores from Q, K and the saved log-sum-exp ``L = m + log ℓ`` (one number
per query), trading a few extra FLOPs for far less memory traffic.

This module is the readable reference of that algorithm, not a fast kernel: the tiles are ordinary
PyTorch tensors and Python loops run over them. On a GPU the real kernels are reached through
``torch.nn.functional.scaled_dot_product_attention`` (or ``GroupedQueryAttention(kernel="sdpa")``).
What the reference does show, on any device, is that the result equals standard attention and that
no ``T_q × T_k`` tensor is ever allocated (:func:`peak_memory_bytes` measures it).
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable
from typing import Any

import torch
from torch.autograd.function import once_differentiable
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from companion._validate import check_positive_int, check_tensor

__all__ = [
    "FlashAttentionFunction",
    "TensorAllocationTracker",
    "attention_hbm_accesses",
    "flash_attention",
    "flash_backward",
    "flash_forward",
    "flash_reference",
    "online_softmax",
    "peak_memory_bytes",
]


def online_softmax(x: torch.Tensor, *, block_size: int = 64) -> torch.Tensor:
    """Softmax over the last dimension computed in one streaming pass over blocks of ``block_size``.

    The running maximum ``m`` and normalizer ``ℓ = Σ e^(x_j - m)`` are updated block by block with
    ``ℓ' = e^(m - m') ℓ + Σ_j e^(x_j - m')``; a second, embarrassingly parallel pass writes
    ``e^(x_j - m) / ℓ``. Equal to ``torch.softmax(x, -1)`` up to rounding; rows that are entirely
    ``-inf`` give zeros.

    Args:
        x: ``(..., N)`` logits.
        block_size: how many logits are read per step.

    Returns:
        ``(..., N)`` probabilities.
    """
    check_tensor("x", x, min_ndim=1, floating=True)
    check_positive_int("block_size", block_size)
    lead = x.shape[:-1]
    m = torch.full((*lead, 1), float("-inf"), dtype=x.dtype, device=x.device)
    ell = torch.zeros((*lead, 1), dtype=x.dtype, device=x.device)
    for start in range(0, x.shape[-1], block_size):
        s = x[..., start : start + block_size]
        m_new = torch.maximum(m, s.amax(dim=-1, keepdim=True))
        ref = _finite_or_zero(m_new)  # while a row has seen only -inf, use 0 to avoid (-inf) - (-inf)
        ell = torch.exp(m - ref) * ell + torch.exp(s - ref).sum(dim=-1, keepdim=True)
        m = m_new
    p = torch.exp(x - _finite_or_zero(m))
    return p / torch.where(ell > 0, ell, torch.ones_like(ell))


def _finite_or_zero(m: torch.Tensor) -> torch.Tensor:
    return torch.where(torch.isfinite(m), m, torch.zeros_like(m))


def _check_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    check_tensor("q", q, min_ndim=2, floating=True)
    check_tensor("k", k, min_ndim=2, floating=True)
    check_tensor("v", v, min_ndim=2, floating=True)
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"q and k: last dimensions (d_k) must match, got {tuple(q.shape)} and {tuple(k.shape)}"
        )
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"k and v: must have the same number of keys, got {tuple(k.shape)} and {tuple(v.shape)}"
        )
    if q.shape[:-2] != k.shape[:-2] or k.shape[:-2] != v.shape[:-2]:
        raise ValueError(
            f"q, k, v: leading (batch, head) dimensions must be equal, got {tuple(q.shape)}, "
            f"{tuple(k.shape)}, {tuple(v.shape)}"
        )


def _blocks(block_size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(block_size, tuple):
        if len(block_size) != 2:
            raise ValueError(f"block_size: expected an int or a pair (block_q, block_k), got {block_size!r}")
        return check_positive_int("block_q", block_size[0]), check_positive_int("block_k", block_size[1])
    b = check_positive_int("block_size", block_size)
    return b, b


def flash_forward(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, causal: bool, block_q: int, block_k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """FlashAttention's tiled forward pass, without ever building the ``T_q × T_k`` score matrix.

    Args:
        q: ``(..., T_q, d_k)``; k: ``(..., T_k, d_k)``; v: ``(..., T_k, d_v)``.
        scale: the score scale (``1/√d_k`` normally); causal: block keys after each query.
        block_q, block_k: tile sizes along the queries and the keys.

    Returns:
        The output ``(..., T_q, d_v)`` and the log-sum-exp of each query's scores ``(..., T_q)``, which
        :func:`flash_backward` needs.
    """
    t_q, t_k = q.shape[-2], k.shape[-2]
    lead = q.shape[:-2]
    out = q.new_empty((*lead, t_q, v.shape[-1]))
    lse = q.new_empty((*lead, t_q))
    for i0 in range(0, t_q, block_q):
        i1 = min(i0 + block_q, t_q)
        q_i = q[..., i0:i1, :] * scale
        m = q.new_full((*lead, i1 - i0, 1), float("-inf"))  # running max of each query row
        ell = q.new_zeros((*lead, i1 - i0, 1))  # running normalizer Σ e^(s - m)
        acc = q.new_zeros((*lead, i1 - i0, v.shape[-1]))  # running Σ e^(s - m) v
        # Causal (top-left aligned, key j visible to query i iff j <= i): key blocks that start after
        # the last query of this block are entirely masked, so they are never loaded.
        j_stop = min(t_k, i1) if causal else t_k
        for j0 in range(0, j_stop, block_k):
            j1 = min(j0 + block_k, t_k)
            s = q_i @ k[..., j0:j1, :].transpose(-2, -1)  # (..., bq, bk): the only score tile in memory
            if causal and j1 - 1 > i0:  # the tile crosses the diagonal: mask its upper part
                rows = torch.arange(i0, i1, device=q.device)[:, None]
                cols = torch.arange(j0, j1, device=q.device)[None, :]
                s = s.masked_fill(cols > rows, float("-inf"))
            m_new = torch.maximum(m, s.amax(dim=-1, keepdim=True))
            ref = _finite_or_zero(m_new)
            p = torch.exp(s - ref)
            alpha = torch.exp(m - ref)  # rescales what was accumulated under the old maximum
            ell = alpha * ell + p.sum(dim=-1, keepdim=True)
            acc = alpha * acc + p @ v[..., j0:j1, :]
            m = m_new
        safe = torch.where(ell > 0, ell, torch.ones_like(ell))  # a row with no visible key: output 0
        out[..., i0:i1, :] = acc / safe
        lse[..., i0:i1] = (m + torch.log(safe)).squeeze(-1)
    return out, lse


def flash_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    block_q: int = 64,
    block_k: int = 64,
    causal: bool = False,
    *,
    scale: float | None = None,
) -> torch.Tensor:
    """Tiled attention forward pass with the online softmax (no autograd support needed).

    Equals ``softmax(q kᵀ · scale) v`` (with the top-left causal mask if ``causal``, like
    ``F.scaled_dot_product_attention(is_causal=True)``) while holding at most one
    ``(block_q, block_k)`` tile of scores at a time. With ``causal``, key blocks entirely above the
    diagonal are skipped.

    Args:
        q: ``(..., T_q, d_k)``; k: ``(..., T_k, d_k)``; v: ``(..., T_k, d_v)``.
        block_q: queries per tile; block_k: keys per tile (need not divide the lengths).
        causal: block key ``j > i`` for query ``i``.
        scale: score scale, default ``1/sqrt(d_k)``.

    Returns:
        ``(..., T_q, d_v)``.
    """
    _check_qkv(q, k, v)
    check_positive_int("block_q", block_q)
    check_positive_int("block_k", block_k)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    with torch.no_grad():
        return flash_forward(q, k, v, scale, causal, block_q, block_k)[0]


def flash_backward(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    out: torch.Tensor,
    lse: torch.Tensor,
    dout: torch.Tensor,
    scale: float,
    causal: bool,
    block_q: int,
    block_k: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Backward by recomputation: rebuild each weight tile from Q, K and the saved log-sum-exp.

    With ``P = exp(S - L)``, ``dV = Pᵀ dO``, ``dP = dO Vᵀ``, ``dS = P ⊙ (dP - D)`` where
    ``D_i = Σ_c dO_ic O_ic`` (= ``Σ_j P_ij dP_ij``), ``dQ = scale · dS K`` and ``dK = scale · dSᵀ Q``.

    Args:
        q, k, v, scale, causal, block_q, block_k: as for :func:`flash_forward`.
        out, lse: what :func:`flash_forward` returned; dout: the gradient of the output, like ``out``.

    Returns:
        ``(dq, dk, dv)``, shaped like ``q``, ``k`` and ``v``.
    """
    t_q, t_k = q.shape[-2], k.shape[-2]
    dq, dk, dv = torch.zeros_like(q), torch.zeros_like(k), torch.zeros_like(v)
    delta = (dout * out).sum(dim=-1, keepdim=True)  # D: (..., T_q, 1)
    lse = lse.unsqueeze(-1)
    for j0 in range(0, t_k, block_k):
        j1 = min(j0 + block_k, t_k)
        k_j, v_j = k[..., j0:j1, :], v[..., j0:j1, :]
        # Causal: query blocks that end before key j0 cannot see this key block.
        i_start = (j0 // block_q) * block_q if causal else 0
        for i0 in range(i_start, t_q, block_q):
            i1 = min(i0 + block_q, t_q)
            s = (q[..., i0:i1, :] @ k_j.transpose(-2, -1)) * scale
            if causal and j1 - 1 > i0:
                rows = torch.arange(i0, i1, device=q.device)[:, None]
                cols = torch.arange(j0, j1, device=q.device)[None, :]
                s = s.masked_fill(cols > rows, float("-inf"))
            p = torch.exp(s - lse[..., i0:i1, :])  # the weights, recomputed (exactly 0 where masked)
            do_i = dout[..., i0:i1, :]
            dv[..., j0:j1, :] += p.transpose(-2, -1) @ do_i
            ds = p * (do_i @ v_j.transpose(-2, -1) - delta[..., i0:i1, :])
            dq[..., i0:i1, :] += (ds @ k_j) * scale
            dk[..., j0:j1, :] += (ds.transpose(-2, -1) @ q[..., i0:i1, :]) * scale
    return dq, dk, dv


class FlashAttentionFunction(torch.autograd.Function):
    """``torch.autograd.Function`` whose forward is tiled and whose backward recomputes the weights.

    Saved for the backward pass: ``q, k, v``, the output and the log-sum-exp (one number per query) —
    ``O(T·d)`` memory instead of the ``O(T²)`` weights that autograd of naive attention keeps.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        causal: bool,
        scale: float,
        block_q: int,
        block_k: int,
    ) -> torch.Tensor:
        """Tiled forward pass; saves ``q, k, v``, the output and the log-sum-exp for the backward pass."""
        out, lse = flash_forward(q, k, v, scale, causal, block_q, block_k)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.config = (scale, causal, block_q, block_k)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, dout: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        """Gradients with respect to ``q, k, v`` by recomputing each weight tile (none for the options)."""
        q, k, v, out, lse = ctx.saved_tensors
        scale, causal, block_q, block_k = ctx.config
        dq, dk, dv = flash_backward(q, k, v, out, lse, dout.contiguous(), scale, causal, block_q, block_k)
        return dq, dk, dv, None, None, None, None


def flash_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    is_causal: bool = False,
    block_size: int | tuple[int, int] = 64,
    scale: float | None = None,
) -> torch.Tensor:
    """Exact attention, tiled forward and recomputing backward (FlashAttention's algorithm in PyTorch).

    Args:
        q: ``(..., T_q, d_k)``; k: ``(..., T_k, d_k)``; v: ``(..., T_k, d_v)`` (same leading dims).
        is_causal: top-left aligned causal mask, as in ``F.scaled_dot_product_attention``.
        block_size: tile size, an int or ``(block_q, block_k)``; need not divide ``T``.
        scale: score scale, default ``1/sqrt(d_k)``.

    Returns:
        ``(..., T_q, d_v)``, differentiable with respect to ``q``, ``k`` and ``v``.
    """
    _check_qkv(q, k, v)
    block_q, block_k = _blocks(block_size)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    return FlashAttentionFunction.apply(q, k, v, bool(is_causal), scale, block_q, block_k)


class TensorAllocationTracker(TorchFunctionMode):
    """Count the bytes of tensors that PyTorch functions return, like ``tracemalloc`` for tensors.

    Inside ``with TensorAllocationTracker(inputs) as tracker:``, the output of every PyTorch function
    or tensor method called from Python (``torch.matmul``, ``@``, ``torch.softmax``, ``x[...]``, …) is
    recorded; this is a ``TorchFunctionMode``. Each new storage adds its size to ``current`` until
    the last tensor that uses it is garbage-collected; views and in-place results share their input's
    storage and add nothing. Storages of the tensors passed to the constructor (the inputs) are not
    counted.

    Attributes:
        peak: the largest ``current`` seen (bytes).
        largest: the largest single storage allocated (bytes).
        ops: ``(function name, output shape)`` for every tensor output, in order.

    Temporaries *inside* one function (e.g. the tiles of a fused attention kernel, or a copy made
    inside ``torch.matmul``) are invisible at this level; :func:`peak_memory_bytes` with
    ``method="profiler"`` counts them.
    """

    def __init__(self, inputs: Any = ()) -> None:
        super().__init__()
        leaves = inputs if isinstance(inputs, (list, tuple)) else [inputs]
        self._external = {t.untyped_storage().data_ptr() for t in leaves if isinstance(t, torch.Tensor)}
        self._live: dict[int, list[int]] = {}  # storage address -> [bytes, number of live tensors]
        self.current = 0
        self.peak = 0
        self.largest = 0
        self.ops: list[tuple[str, tuple[int, ...]]] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                self.ops.append((getattr(func, "__name__", str(func)), tuple(t.shape)))
                self._track(t)
        return out

    def _track(self, t: torch.Tensor) -> None:
        storage = t.untyped_storage()
        key, nbytes = storage.data_ptr(), storage.nbytes()
        if nbytes == 0 or key in self._external:
            return
        if key not in self._live:
            self._live[key] = [nbytes, 0]
            self.current += nbytes
            self.peak = max(self.peak, self.current)
            self.largest = max(self.largest, nbytes)
        self._live[key][1] += 1
        weakref.finalize(t, self._release, key)

    def _release(self, key: int) -> None:
        entry = self._live.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] == 0:
            self.current -= entry[0]
            del self._live[key]


def peak_memory_bytes(fn: Callable[..., Any], *args: Any, method: str = "tensors", **kwargs: Any) -> int:
    """Peak bytes allocated while ``fn(*args, **kwargs)`` runs, not counting the inputs.

    Methods:

    * on CUDA (whatever ``method``): ``torch.cuda.max_memory_allocated`` minus the memory allocated
      before the call (the peak counter is reset first);
    * ``"tensors"`` (CPU default): :class:`TensorAllocationTracker` — the live bytes of tensors returned
      by PyTorch functions, over time. Deterministic and cheap, but blind to temporaries inside a
      single function such as a fused attention kernel;
    * ``"profiler"``: the PyTorch profiler with ``profile_memory=True`` records every allocation and
      free of the CPU allocator with a timestamp; the maximum of their running sum is the peak. This
      sees temporaries inside kernels too (use it for ``F.scaled_dot_product_attention``). The
      profiler's first use in a process takes a few seconds and prints log lines from its C++ side.

    The result of ``fn`` is alive until ``fn`` returns, so it is included.
    """
    tensors = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
    if tensors and tensors[0].is_cuda:
        device = tensors[0].device
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        start = torch.cuda.memory_allocated(device)
        result = fn(*args, **kwargs)
        torch.cuda.synchronize(device)
        del result
        return torch.cuda.max_memory_allocated(device) - start
    if method == "tensors":
        with TensorAllocationTracker(tensors) as tracker:
            result = fn(*args, **kwargs)
            del result
        return tracker.peak
    if method != "profiler":
        raise ValueError(f"method: expected 'tensors' or 'profiler', got {method!r}")

    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        result = fn(*args, **kwargs)
        del result
    records = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    records.sort(key=lambda e: e.start_ns())
    current = peak = 0
    for e in records:
        current += e.nbytes()
        peak = max(peak, current)
    return peak


def attention_hbm_accesses(n: int, d: int, sram_elements: int) -> dict[str, int]:
    """HBM reads + writes (in elements) of one attention head: standard vs FlashAttention.

    Standard attention (Dao et al., 2022, Algorithm 0) reads Q and K and writes S (``2nd + n²``), reads
    S and writes P (``2n²``), reads P and V and writes O (``n² + 2nd``): ``4nd + 4n²`` = Θ(nd + n²).

    FlashAttention (Algorithm 1) with SRAM of ``M`` elements uses key blocks of ``B_c = ceil(M/4d)``
    and query blocks of ``B_r = min(B_c, d)``. K and V are read once (``2nd``); for each of the
    ``T_c = ceil(n/B_c)`` key blocks, Q and O are read and O written (``3nd``) together with the
    statistics ℓ and m (``4n``): ``2nd + T_c (3nd + 4n)`` = Θ(n²d²/M).

    Args:
        n: sequence length; d: head width; sram_elements: on-chip memory ``M`` in elements.

    Returns:
        ``{"standard": ..., "flash": ..., "block_k": B_c, "block_q": B_r}``.
    """
    check_positive_int("n", n)
    check_positive_int("d", d)
    check_positive_int("sram_elements", sram_elements)
    block_k = -(-sram_elements // (4 * d))
    block_q = min(block_k, d)
    t_c = -(-n // block_k)
    return {
        "standard": 4 * n * d + 4 * n * n,
        "flash": 2 * n * d + t_c * (3 * n * d + 4 * n),
        "block_k": block_k,
        "block_q": block_q,
    }
