"""Benchmark: tiled (FlashAttention-style) vs naive vs PyTorch SDPA, and decoding with/without a KV cache.

Part 1 — one attention head batch ``(B, H, T, d_h)``, forward pass, for each ``T``:

* ``naive``: ``softmax(q kᵀ / sqrt(d_h)) v`` with the ``T × T`` scores in memory;
* ``tiled``: :func:`companion.nn.flash.flash_reference` (online softmax over ``block × block`` tiles,
  Python loops — an algorithm reference, not a kernel);
* ``sdpa``: ``torch.nn.functional.scaled_dot_product_attention`` (on CPU a fused C++ kernel).

Median time (``torch.utils.benchmark``) and peak memory (:func:`companion.nn.flash.peak_memory_bytes`
with ``method="profiler"``: allocator-level, so it sees temporaries inside fused kernels; on CUDA,
``torch.cuda.max_memory_allocated``). Ratios are relative to SDPA. All three are checked to agree.

Part 2 — greedy decoding with a small GQA decoder stack: tokens/s when each step recomputes the whole
prefix (no cache) vs when it feeds one token and reads a :class:`companion.nn.kv_cache.KVCache`, for
``G = H`` (MHA), a few KV heads and ``G = 1`` (MQA). The generated tokens are checked to be equal.

Usage::

    python benchmarks/efficient_attention.py                       # CPU, 1 thread, T = 512 … 4096
    python benchmarks/efficient_attention.py --seq 512 1024 --new-tokens 64
    python benchmarks/efficient_attention.py --device cuda
"""

from __future__ import annotations

import argparse
import math
import platform
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils import benchmark

from companion.nn.attention import GroupedQueryAttention
from companion.nn.flash import flash_reference, peak_memory_bytes
from companion.nn.kv_cache import KVCache
from companion.nn.mla import rope_half


def _time(fn: Callable[[], object], threads: int, min_run_time: float) -> float:
    fn()  # warm-up
    timer = benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=threads)
    return timer.blocked_autorange(min_run_time=min_run_time).median


def _naive(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1) @ v


class TinyDecoder(nn.Module):
    """Embedding, pre-norm blocks of GQA (with RoPE) + MLP, and an LM head: ids (B, T) -> logits."""

    def __init__(self, vocab: int, d: int, n_layers: int, n_heads: int, n_kv_heads: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.attn = nn.ModuleList(
            GroupedQueryAttention(d, n_heads, n_kv_heads, rotary=rope_half, kernel="sdpa", layer_idx=i)
            for i in range(n_layers)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(d) for _ in range(n_layers))
        self.mlps = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(d), nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))
            for _ in range(n_layers)
        )
        self.head = nn.Linear(d, vocab)

    def forward(self, ids: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        x = self.embed(ids)
        for attn, norm, mlp in zip(self.attn, self.norms, self.mlps, strict=True):
            x = x + attn(norm(x), is_causal=True, kv_cache=cache)[0]
            x = x + mlp(x)
        return self.head(x)


@torch.no_grad()
def greedy(model: TinyDecoder, prompt: torch.Tensor, n_new: int, use_cache: bool) -> torch.Tensor:
    """Greedy decoding; without a cache every step runs the model over the whole sequence again."""
    ids = prompt
    if not use_cache:
        for _ in range(n_new):
            nxt = model(ids)[:, -1].argmax(-1, keepdim=True)
            ids = torch.cat([ids, nxt], dim=1)
        return ids
    first = model.attn[0]
    cache = KVCache(
        len(model.attn),
        prompt.shape[0],
        first.n_kv_heads,
        first.head_dim,
        max_len=prompt.shape[1] + n_new,
        device=prompt.device,
    )
    logits = model(ids, cache)  # prefill
    for _ in range(n_new):
        nxt = logits[:, -1].argmax(-1, keepdim=True)
        ids = torch.cat([ids, nxt], dim=1)
        logits = model(nxt, cache)  # one token; reads the cached keys and values
    return ids


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    parser.add_argument("--batch", type=int, default=1, help="B (default 1)")
    parser.add_argument("--heads", type=int, default=4, help="H (default 4)")
    parser.add_argument("--head-dim", type=int, default=64, help="d_h (default 64)")
    parser.add_argument("--block", type=int, default=128, help="tile size of the tiled version")
    parser.add_argument("--seq", type=int, nargs="+", default=[512, 1024, 2048, 4096])
    parser.add_argument("--min-run-time", type=float, default=0.3, help="seconds per timing")
    parser.add_argument("--prompt", type=int, default=32, help="decode benchmark: prompt length")
    parser.add_argument("--new-tokens", type=int, default=128, help="decode benchmark: tokens generated")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch.cuda.is_available() is False")
    torch.set_num_threads(args.threads)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    b, h, d_h = args.batch, args.heads, args.head_dim
    print(
        f"torch {torch.__version__} | device {device} ({where}) | threads {torch.get_num_threads()} | "
        f"B={b} H={h} d_h={d_h} block={args.block} | float32, forward only"
    )
    start = time.perf_counter()

    print("\n1. Attention forward: time and peak memory (ratios relative to torch SDPA)\n")
    header = (
        f"{'T':>5} {'naive ms':>9} {'tiled ms':>9} {'sdpa ms':>8} {'naive/sdpa':>10} {'tiled/sdpa':>10} "
        f"{'naive MiB':>10} {'tiled MiB':>10} {'sdpa MiB':>9} {'naive/tiled mem':>15}"
    )
    print(header)
    print("-" * len(header))
    g = torch.Generator().manual_seed(0)
    for t in args.seq:
        q, k, v = (torch.randn(b, h, t, d_h, generator=g).to(device) for _ in range(3))
        fns = {
            "naive": lambda q=q, k=k, v=v: _naive(q, k, v),
            "tiled": lambda q=q, k=k, v=v: flash_reference(q, k, v, args.block, args.block),
            "sdpa": lambda q=q, k=k, v=v: F.scaled_dot_product_attention(q, k, v),
        }
        with torch.no_grad():
            ref = fns["sdpa"]()
            for name in ("naive", "tiled"):
                diff = (fns[name]() - ref).abs().max().item()
                if diff > 1e-4:
                    raise SystemExit(f"T={t}: {name} differs from SDPA by {diff:.2e}; not timing")
            ms = {n: 1e3 * _time(f, args.threads, args.min_run_time) for n, f in fns.items()}
            mib = {n: peak_memory_bytes(f, method="profiler") / 2**20 for n, f in fns.items()}
        print(
            f"{t:>5} {ms['naive']:>9.2f} {ms['tiled']:>9.2f} {ms['sdpa']:>8.2f} "
            f"{ms['naive'] / ms['sdpa']:>10.2f} {ms['tiled'] / ms['sdpa']:>10.2f} "
            f"{mib['naive']:>10.2f} {mib['tiled']:>10.2f} {mib['sdpa']:>9.2f} "
            f"{mib['naive'] / mib['tiled']:>15.1f}",
            flush=True,
        )

    print(
        f"\n2. Greedy decoding: {args.new_tokens} new tokens after a {args.prompt}-token prompt, "
        "4 layers, d = 256, 8 query heads\n"
    )
    header2 = (
        f"{'KV heads':>8} {'no cache tok/s':>15} {'KV cache tok/s':>15} {'speed-up':>9} {'cache KiB':>10}"
    )
    print(header2)
    print("-" * len(header2))
    for n_kv in (8, 2, 1):
        torch.manual_seed(0)
        model = TinyDecoder(vocab=256, d=256, n_layers=4, n_heads=8, n_kv_heads=n_kv).to(device).eval()
        prompt = torch.randint(0, 256, (1, args.prompt), generator=g).to(device)
        rates = {}
        outs = {}
        for use_cache in (False, True):
            greedy(model, prompt, 4, use_cache)  # warm-up
            t0 = time.perf_counter()
            outs[use_cache] = greedy(model, prompt, args.new_tokens, use_cache)
            if device.type == "cuda":
                torch.cuda.synchronize()
            rates[use_cache] = args.new_tokens / (time.perf_counter() - t0)
        if not torch.equal(outs[False], outs[True]):
            raise SystemExit(f"G={n_kv}: decoding with and without the cache produced different tokens")
        kib = 2 * 4 * n_kv * 32 * (args.prompt + args.new_tokens) * 4 / 1024
        print(
            f"{n_kv:>8} {rates[False]:>15.1f} {rates[True]:>15.1f} "
            f"{rates[True] / rates[False]:>9.2f} {kib:>10.1f}",
            flush=True,
        )
    print(f"\ntotal benchmark time {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
