"""Regenerate ``experiments/results/scaling_lr_check.json``: is the peak learning rate why the wide
models of the GPU scaling grid lose?

The GPU grid (``experiments/scaling_grid.py --grid gpu``) trains every width at the CPU grid's peak
learning rate, 6e-3, and its widest model (width 256) ends worse than width 128 at the large budgets.
This script retrains width 256 at 409 600 tokens with the same settings except the peak learning
rate (halved, then halved again). The Scaling laws chapter reads the file, checks the configuration
and compares the losses with the grid's. Each run takes about 90 seconds on one CPU thread; ``--jobs``
runs them in parallel processes.

Usage, from the repository root::

    python experiments/scaling_lr_check.py --jobs 2
    python experiments/scaling_lr_check.py --smoke --out /tmp/smoke.json   # seconds; format only
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch
from scaling_grid import ScalingGridConfig, shakespeare_chars  # the sibling script: its folder is on sys.path

from companion.files import write_json
from companion.train.budget import RunConfig, split_data, train_lm

OUT = Path(__file__).resolve().parent / "results" / "scaling_lr_check.json"
WIDTH, TOKENS, LRS = 256, 409_600, (3e-3, 1.5e-3)


def train_at(lr: float, smoke: bool = False) -> dict:
    """One run of the GPU grid's configuration at width ``WIDTH``, ``TOKENS`` tokens and peak ``lr``.

    ``smoke=True`` trains width 16 on 2 048 tokens with short sequences instead: the same code and
    record format in a second, for the test suite.
    """
    torch.set_num_threads(1)
    grid = ScalingGridConfig.gpu()
    width, tokens, run = WIDTH, TOKENS, grid.run
    if smoke:
        width, tokens = 16, 2048
        run = dataclasses.replace(RunConfig(), block_size=16, batch_size=4, eval_tokens=256)
    data, vocab_size = shakespeare_chars()
    train_ids, val = split_data(data, grid.val_frac)
    start = time.perf_counter()
    config = dataclasses.replace(run, lr=lr)
    loss = train_lm(train_ids, val, tokens, width=width, config=config, vocab_size=vocab_size)
    seconds = round(time.perf_counter() - start, 1)
    print(f"width {width}, {tokens} tokens, lr {lr:g}: val {loss:.4f} ({seconds} s)", flush=True)
    return {"width": width, "tokens": tokens, "lr": lr, "val_loss": round(loss, 6), "seconds": seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel (one CPU thread each)")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--smoke", action="store_true", help="tiny runs: checks the code and format only")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs must be positive")
    if args.smoke and args.out == OUT:
        parser.error("--smoke would overwrite the committed results: pass --out")
    if args.jobs == 1:  # in this process (train_at sets one thread; put the caller's count back)
        threads = torch.get_num_threads()
        try:
            runs = [train_at(lr, args.smoke) for lr in LRS]
        finally:
            torch.set_num_threads(threads)
    else:
        with ProcessPoolExecutor(args.jobs) as pool:
            runs = list(pool.map(train_at, LRS, [args.smoke] * len(LRS)))
    result = {
        "grid_config": ScalingGridConfig.gpu().to_dict(),
        "runs": runs,
        "provenance": {
            "script": "experiments/scaling_lr_check.py",
            "torch": torch.__version__,
            "device": "cpu",
            "threads_per_run": 1,
        },
    }
    write_json(result, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
