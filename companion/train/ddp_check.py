"""Check that data-parallel training equals single-process training on the concatenated batch.

:func:`compare_ddp_to_single` trains a small GPT for a few steps twice: in this process with batch
``W·b``, and in ``W`` processes started by ``torchrun`` (gloo backend, CPU) with batch ``b`` each,
wrapped in ``DistributedDataParallel``. Both draw the same blocks (the
:class:`~companion.train.trainer.Trainer` gives rank ``r`` rows ``r·b … (r+1)·b − 1`` of the shared
global batch), so the losses and the final weights must agree up to the rounding of the all-reduce,
which sums in a different order.

Run by hand::

    torchrun --standalone --nproc_per_node=2 -m companion.train.ddp_check --out ddp.json

This is the worker; ``python -m companion.train.ddp_check --compare`` runs the whole comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from companion.files import atomic_open
from companion.train.distributed import free_port

__all__ = ["compare_ddp_to_single", "train_small"]

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def train_small(
    batch_size: int, steps: int, dtype: str = "float64", grad_accum: int = 1, seed: int = 0
) -> dict[str, Any]:
    """Train a 2-layer character-level GPT for ``steps`` steps (distributed if a group is initialized).

    Returns:
        ``{"loss": [...], "params": [flattened final weights]}`` (on every rank).
    """
    from companion.models.gpt import GPT, GPTConfig
    from companion.train.data import shakespeare
    from companion.train.trainer import TrainConfig, Trainer

    torch.set_num_threads(1)
    data = shakespeare("char")
    config = GPTConfig(vocab_size=data.vocab_size, block_size=16, n_layer=2, n_head=2, n_embd=32)
    torch.manual_seed(seed)
    model = GPT(config, dtype=_DTYPES[dtype])
    run = TrainConfig(
        max_iters=steps, batch_size=batch_size, grad_accum=grad_accum, lr=3e-3, min_lr=3e-4,
        warmup_iters=1, eval_interval=0, seed=seed, progress=False,
    )  # fmt: skip
    trainer = Trainer(model, data.train, data.val, run, device="cpu")
    trainer.fit()
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    return {"loss": trainer.history["loss"], "params": flat.tolist(), "world_size": trainer.world_size}


def compare_ddp_to_single(
    world_size: int = 2,
    batch_size: int = 2,
    steps: int = 3,
    dtype: str = "float64",
    *,
    launcher: str = "direct",
    timeout: float = 300,
) -> dict[str, Any]:
    """Train with DDP on ``world_size`` CPU processes (batch ``batch_size`` each) and in one process
    (batch ``world_size·batch_size``); return both loss curves and the largest differences.

    Args:
        world_size, batch_size, steps: ``W`` processes, ``b`` sequences per process, optimizer steps.
        dtype: ``"float64"`` (agreement to ~1e-15) or ``"float32"`` (~1e-6).
        launcher: ``"direct"`` starts one Python process per rank with the rendezvous variables
            (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``) that ``torchrun`` would set;
            ``"torchrun"`` runs ``python -m torch.distributed.run --standalone`` (one process more).
        timeout: seconds before the workers are killed.

    Returns:
        ``{"single_loss", "ddp_loss", "max_loss_diff", "max_param_diff", "world_size"}``.

    Raises:
        RuntimeError: if ``torchrun`` fails (its output is included).
    """
    if launcher not in ("direct", "torchrun"):
        raise ValueError(f"launcher: expected 'direct' or 'torchrun', got {launcher!r}")
    single = train_small(world_size * batch_size, steps, dtype)
    worker = ["-m", "companion.train.ddp_check", "--batch_size", str(batch_size), "--steps", str(steps)]
    worker += ["--dtype", dtype]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "ddp.json"
        worker += ["--out", str(out)]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        if launcher == "torchrun":
            cmd = [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--standalone",
                f"--nproc_per_node={world_size}",
            ]
            procs = [
                subprocess.Popen([*cmd, *worker], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            ]
        else:  # what torchrun does, without its launcher process: one worker per rank + rendezvous env
            env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()), WORLD_SIZE=str(world_size))
            procs = [
                subprocess.Popen(
                    [sys.executable, *worker],
                    env={**env, "RANK": str(r), "LOCAL_RANK": str(r)},
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                )
                for r in range(world_size)
            ]
        logs, codes = [], []
        for proc in procs:
            try:
                text, _ = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                for q in procs:
                    q.kill()
                raise
            logs.append(text.decode(errors="replace"))
            codes.append(proc.returncode)
        if any(codes) or not out.exists():
            raise RuntimeError(f"DDP workers failed (exit codes {codes}):\n" + "\n".join(logs))
        ddp = json.loads(out.read_text())
    p1, p2 = torch.tensor(single["params"]), torch.tensor(ddp["params"])
    return {
        "world_size": ddp["world_size"],
        "single_loss": single["loss"],
        "ddp_loss": ddp["loss"],
        "max_loss_diff": max(abs(a - b) for a, b in zip(single["loss"], ddp["loss"], strict=True)),
        "max_param_diff": float((p1 - p2).abs().max()),
    }


def main(argv: list[str] | None = None) -> int:
    """Worker entry point (under ``torchrun``), or ``--compare`` to run the whole check."""
    parser = argparse.ArgumentParser(prog="python -m companion.train.ddp_check")
    parser.add_argument("--out", default=None)
    parser.add_argument("--batch_size", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--dtype", default="float64", choices=sorted(_DTYPES))
    parser.add_argument("--compare", action="store_true", help="run single-process and DDP and compare")
    parser.add_argument("--launcher", default="direct", choices=["direct", "torchrun"])
    args = parser.parse_args(argv)
    if args.compare:
        result = compare_ddp_to_single(
            batch_size=args.batch_size, steps=args.steps, dtype=args.dtype, launcher=args.launcher
        )
        print(json.dumps({k: result[k] for k in ("world_size", "max_loss_diff", "max_param_diff")}))
        return 0
    from companion.train.distributed import cleanup, setup

    rank, _, _ = setup("cpu")
    result = train_small(args.batch_size, args.steps, args.dtype)
    if rank == 0 and args.out:
        with atomic_open(args.out) as f:
            f.write(json.dumps(result))
    cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
