"""The learning-rate sweep behind the ``baby`` preset: ``experiments/results/gpt_baby_lr_sweep.json``.

nanoGPT's README trains its CPU "baby" model (4 layers, 4 heads, d = 128, block 64, batch 12,
2 000 steps) at a peak learning rate of 1e-3 and reports a validation loss of about 1.88. This script
trains the same model with ``python -m companion.train --config baby --lr=LR --seed=S`` for every
learning rate and seed asked for, one CPU thread per run and ``--jobs`` runs at a time, and records
each run's validation loss from the 20-batch estimate at step 2 000 (nanoGPT's ``eval_iters = 20``)
and from 200 batches per split (a precise one).

Results are merged into ``--out`` as each run finishes, keyed by (learning rate, seed, embedding
decay): an interrupted sweep keeps what it finished, and a rerun skips it.

Usage, from the repository root::

    python experiments/baby_lr_sweep.py --lrs 1e-3 --decay-embeddings --seeds 1337-1344 --jobs 16
    python experiments/baby_lr_sweep.py --lrs 1.5e-3 4e-3 6e-3 --seeds 1337-1340 --jobs 16
    python experiments/baby_lr_sweep.py --lrs 2e-3 3e-3 --seeds 1337-1344 --jobs 16

(The first line is nanoGPT's recipe exactly: it also decays the embeddings. Each run takes about
3 minutes on one thread of a recent server CPU.)
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import torch

from companion.files import atomic_open

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "experiments" / "results" / "gpt_baby_lr_sweep.json"


def parse_seeds(text: str) -> list[int]:
    """``"1337-1340"`` or ``"1,5,9"`` to a list of seeds."""
    if "-" in text:
        lo, hi = (int(t) for t in text.split("-"))
        if hi < lo:
            raise argparse.ArgumentTypeError(f"seeds: empty range {text!r}")
        return list(range(lo, hi + 1))
    return [int(t) for t in text.split(",")]


def run_key(run: dict[str, Any]) -> tuple[float, int, bool]:
    return (run["lr"], run["seed"], run["decay_embeddings"])


def train_one(
    lr: float, seed: int, decay_embeddings: bool, workdir: Path, extra: Sequence[str] = ()
) -> dict[str, Any]:
    """One CPU run of the baby preset through the command line; its summary as a sweep record.

    ``extra`` command-line overrides are appended (the test suite shrinks the model and the run).
    """
    tag = f"lr{lr:g}_s{seed}_de{int(decay_embeddings)}"
    results = workdir / f"{tag}.json"
    cmd = [
        sys.executable, "-m", "companion.train", "--config", "baby", "--device", "cpu", "--threads", "1",
        "--no_progress", f"--lr={lr}", f"--seed={seed}", f"--decay_embeddings={decay_embeddings}",
        "--out_dir", str(workdir / tag), "--results", str(results), *extra,
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"run {tag} failed:\n{proc.stderr[-2000:]}")
    summary = json.loads(results.read_text(encoding="utf-8"))
    return {
        "lr": lr,
        "seed": seed,
        "decay_embeddings": decay_embeddings,
        "val_loss_20_batches": summary["final"]["val_loss"],
        "val_loss_200_batches": summary["final_precise"]["val_loss"],
        "train_loss_200_batches": summary["final_precise"]["train_loss"],
        "eval": summary["eval"],
        "wall_time_s": summary["wall_time_s"],
    }


def merge(path: Path, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Add ``runs`` to the file at ``path`` (replacing runs with the same key) and write it atomically."""
    data = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {"runs": []}
    new = {run_key(r): r for r in data["runs"]}
    new.update({run_key(r): r for r in runs})
    data["runs"] = [new[k] for k in sorted(new)]
    data.setdefault("provenance", {}).update(  # keeps fields such as a note on how runs were made
        {
            "script": "experiments/baby_lr_sweep.py",
            "python": platform.python_version(),
            "torch": torch.__version__,
            "machine": platform.machine(),
            "threads_per_run": 1,
        }
    )
    with atomic_open(path, "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lrs", type=float, nargs="+", required=True, help="peak learning rates")
    parser.add_argument("--seeds", type=parse_seeds, default=parse_seeds("1337-1340"), help="e.g. 1337-1344")
    parser.add_argument("--decay-embeddings", action="store_true", help="decay the embeddings (nanoGPT)")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time (one CPU thread each)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if args.jobs < 1 or any(lr <= 0 for lr in args.lrs):
        parser.error("--jobs and every learning rate must be positive")
    done: set[tuple[float, int, bool]] = set()
    if args.out.exists():
        done = {run_key(r) for r in json.loads(args.out.read_text(encoding="utf-8"))["runs"]}
    todo = [(lr, s, args.decay_embeddings) for lr in args.lrs for s in args.seeds]
    todo = [t for t in todo if t not in done]
    print(f"{len(todo)} runs to do ({len(args.lrs) * len(args.seeds) - len(todo)} already in {args.out})")
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(args.jobs) as pool:
        futures = [pool.submit(train_one, *t, Path(tmp)) for t in todo]
        for fut in as_completed(futures):
            run = fut.result()
            merge(args.out, [run])
            print(
                f"lr {run['lr']:g} seed {run['seed']}: val {run['val_loss_200_batches']:.4f} (200 batches), "
                f"{run['val_loss_20_batches']:.4f} (20)",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
