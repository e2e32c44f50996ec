"""Benchmark: companion attention vs PyTorch's own, side by side in one process.

Compares, forward and forward+backward, for a few shapes ``(B, H, T, d_h)``:

* ``companion.nn.sdpa.scaled_dot_product_attention`` (explicit softmax, returns the weights) vs
  ``torch.nn.functional.scaled_dot_product_attention`` (fused kernels), without a mask and causal;
* ``companion.nn.attention.MultiHeadAttention`` with ``kernel="explicit"`` and ``kernel="sdpa"`` vs
  ``torch.nn.MultiheadAttention(batch_first=True)`` (``need_weights=False``), self-attention.

Times are medians from ``torch.utils.benchmark.Timer.blocked_autorange``; the ratio is ours / torch
(> 1 means ours is slower). Every pair is checked to compute the same output before it is timed.
Forward timings run under ``torch.no_grad()`` with modules in ``eval()`` mode, which lets
``torch.nn.MultiheadAttention`` take its fast path; forward+backward timings include ``.backward()``.

Usage::

    python benchmarks/attention.py                      # CPU, 1 thread, T in {128, 512}
    python benchmarks/attention.py --threads 2 --seq 128 256 512 1024
    python benchmarks/attention.py --device cuda --dtype bfloat16
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils import benchmark

from companion.nn.attention import MultiHeadAttention
from companion.nn.sdpa import scaled_dot_product_attention

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _time(fn: Callable[[], object], threads: int, min_run_time: float) -> float:
    """Median seconds per call of ``fn`` (CUDA is synchronised by the Timer)."""
    fn()  # warm-up (allocations, lazy init)
    timer = benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=threads)
    return timer.blocked_autorange(min_run_time=min_run_time).median


def _fwd(fn: Callable[[], torch.Tensor]) -> Callable[[], object]:
    def run() -> object:
        with torch.no_grad():
            return fn()

    return run


def _fwd_bwd(fn: Callable[[], torch.Tensor], leaves: list[torch.Tensor]) -> Callable[[], object]:
    def run() -> object:
        for t in leaves:
            t.grad = None
        out = fn()
        out.float().sum().backward()
        return out

    return run


def _sdpa_pair(q, k, v, causal: bool):
    def ours() -> torch.Tensor:
        return scaled_dot_product_attention(q, k, v, is_causal=causal)[0]

    def peer() -> torch.Tensor:
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal)

    return ours, peer


def _mha_pair(d: int, h: int, x: torch.Tensor, fused: bool):
    torch.manual_seed(0)
    peer_mod = nn.MultiheadAttention(d, h, batch_first=True, device=x.device, dtype=x.dtype).eval()
    ours_mod = MultiHeadAttention.from_torch(peer_mod).eval()
    ours_mod.kernel = "sdpa" if fused else "explicit"

    def ours() -> torch.Tensor:
        return ours_mod(x)[0]

    def peer() -> torch.Tensor:
        return peer_mod(x, x, x, need_weights=False)[0]

    return ours, peer, [*ours_mod.parameters(), *peer_mod.parameters()]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--dtype", default="float32", choices=sorted(DTYPES))
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    parser.add_argument("--batch", type=int, default=8, help="B (default 8)")
    parser.add_argument("--heads", type=int, default=8, help="H (default 8)")
    parser.add_argument("--head-dim", type=int, default=64, help="d_h (default 64)")
    parser.add_argument("--seq", type=int, nargs="+", default=[128, 512], help="sequence lengths T")
    parser.add_argument("--min-run-time", type=float, default=0.3, help="seconds per measurement")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch.cuda.is_available() is False")
    dtype = DTYPES[args.dtype]
    if device.type == "cpu" and dtype is torch.float16:
        parser.error("--dtype float16 is not sensible on CPU; use float32 or bfloat16")
    torch.set_num_threads(args.threads)
    tol = 1e-4 if dtype is torch.float32 else 5e-2

    b, h, d_h = args.batch, args.heads, args.head_dim
    d = h * d_h
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    print(
        f"torch {torch.__version__} | device {device} ({where}) | dtype {args.dtype} | "
        f"threads {torch.get_num_threads()} | B={b} H={h} d_h={d_h} (d={d})"
    )
    print("median time per call; ratio = ours / torch (> 1: ours slower)\n")
    header = (
        f"{'op':<28} {'pass':<8} {'T':>5} {'ours ms':>10} {'torch ms':>10} {'ratio':>7} {'max|diff|':>10}"
    )
    print(header)
    print("-" * len(header))

    start = time.perf_counter()
    g = torch.Generator(device="cpu").manual_seed(0)
    for t in args.seq:
        q, k, v = (
            torch.randn(b, h, t, d_h, generator=g).to(device, dtype).requires_grad_(True) for _ in range(3)
        )
        x = torch.randn(b, t, d, generator=g).to(device, dtype).requires_grad_(True)
        cases = []
        for causal in (False, True):
            ours, peer = _sdpa_pair(q, k, v, causal)
            name = "sdpa" + (" causal" if causal else "") + " vs F.sdpa"
            cases.append((name, ours, peer, [q, k, v]))
        for fused in (False, True):
            ours, peer, params = _mha_pair(d, h, x, fused)
            name = f"MHA fused={fused} vs nn.MHA"
            cases.append((name, ours, peer, [x, *params]))

        for name, ours, peer, leaves in cases:
            with torch.no_grad():
                diff = (ours().float() - peer().float()).abs().max().item()
            if diff > tol:
                raise SystemExit(f"{name}, T={t}: outputs differ by {diff:.2e} > {tol:.0e}; not timing")
            timings = (
                ("fwd", _fwd(ours), _fwd(peer)),
                ("fwd+bwd", _fwd_bwd(ours, leaves), _fwd_bwd(peer, leaves)),
            )
            for label, f_ours, f_peer in timings:
                t_ours = _time(f_ours, args.threads, args.min_run_time)
                t_peer = _time(f_peer, args.threads, args.min_run_time)
                print(
                    f"{name:<28} {label:<8} {t:>5} {t_ours * 1e3:>10.2f} {t_peer * 1e3:>10.2f} "
                    f"{t_ours / t_peer:>7.2f} {diff:>10.1e}",
                    flush=True,
                )
            for leaf in leaves:
                leaf.grad = None
    print(f"\ntotal benchmark time {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
