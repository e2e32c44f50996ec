"""Helpers shared by the model benchmarks (``llama_decode.py``, ``bert_encode.py``): timings that
alternate between the two contenders, the median of per-round ratios, and peak memory measured in a
fresh child process per contender."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import torch


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def timed(fn: Callable[[], object], device: str) -> float:
    """Wall seconds of one call of ``fn`` (CUDA synchronized before and after)."""
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def alternate(ours: Callable[[], object], theirs: Callable[[], object], rounds: int, device: str):
    """``rounds`` timings of each, interleaved, so that a machine slowing down mid-run slows both."""
    a, b = [], []
    for _ in range(rounds):
        a.append(timed(ours, device))
        b.append(timed(theirs, device))
    return a, b


def ratio_summary(ours_s: list[float], theirs_s: list[float]) -> str:
    """The median of the per-round speed ratios ``their_time / our_time`` (and its range)."""
    if len(ours_s) != len(theirs_s) or not ours_s:
        raise ValueError(
            f"ours_s, theirs_s: expected equally many rounds (>= 1), got {len(ours_s)} and {len(theirs_s)}"
        )
    ratios = [h / o for o, h in zip(ours_s, theirs_s, strict=True)]
    spread = f" (range {min(ratios):.2f}–{max(ratios):.2f})" if len(ratios) > 1 else ""
    return f"{statistics.median(ratios):.2f}x{spread}"


def peak_rss_mib() -> float:
    """This process's peak resident set so far, in MiB (Linux reports KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def spawn_child(script: str, args: list[str]) -> dict[str, float]:
    """Run ``script --child …`` in a fresh interpreter; it prints one JSON line last."""
    out = subprocess.run([sys.executable, script, *args], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])
