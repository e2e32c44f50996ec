"""Command line: ``python -m companion.train --config baby [--key=value ...] [--resume]``.

Examples::

    python -m companion.train --config baby                          # CPU, about 3 minutes on one thread
    python -m companion.train --config baby --max_iters=200          # override any field
    python -m companion.train --config shakespeare-char --device=cuda --precision=bf16 --compile=True
    python -m companion.train --config baby --resume                 # continue from out/baby/ckpt.pt
    torchrun --standalone --nproc_per_node=2 -m companion.train --config baby --batch_size=6

``--key=value`` sets a field of the model's :class:`~companion.models.gpt.GPTConfig` or of the run's
:class:`~companion.train.trainer.TrainConfig` (nanoGPT's style). A checkpoint is written atomically to
``--out_dir`` at every evaluation (``ckpt.pt``, for ``--resume``), and also to ``best.pt`` whenever
the validation loss is the lowest so far; ``--results FILE.json`` records the configuration, the losses, the
wall time and samples for the book.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch

from companion.files import atomic_open, remove_orphans
from companion.models.gpt import GPT, GPTConfig
from companion.train.data import shakespeare
from companion.train.presets import PRESETS, preset
from companion.train.trainer import TrainConfig, Trainer

__all__ = ["main", "parse_overrides"]


def _convert(value: str, current: Any, field_type: Any) -> Any:
    if isinstance(current, bool) or field_type in ("bool", "bool | None"):
        if value.lower() in ("true", "1", "yes"):
            return True
        if value.lower() in ("false", "0", "no"):
            return False
        if value.lower() == "none" and "None" in str(field_type):
            return None
        raise ValueError(f"expected True or False, got {value!r}")
    if value.lower() == "none" and "None" in str(field_type):
        return None
    if "int" in str(field_type) and "float" not in str(field_type):
        return int(value)
    if "float" in str(field_type):
        return float(value)
    return value


def parse_overrides(pairs: list[str], model: GPTConfig, train: TrainConfig) -> tuple[GPTConfig, TrainConfig]:
    """Apply ``key=value`` strings to the two configurations (a key may belong to either)."""
    model_fields = {f.name: f for f in dataclasses.fields(model)}
    train_fields = {f.name: f for f in dataclasses.fields(train)}
    m_changes: dict[str, Any] = {}
    t_changes: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.lstrip("-").partition("=")
        if not sep:
            raise ValueError(f"override {pair!r}: expected --key=value")
        if key in model_fields or key in train_fields:
            config, changes = (model, m_changes) if key in model_fields else (train, t_changes)
            field_type = (model_fields if key in model_fields else train_fields)[key].type
            try:
                changes[key] = _convert(value, getattr(config, key), field_type)
            except ValueError as exc:
                raise ValueError(f"--{key}: expected {field_type}, got {value!r} ({exc})") from None
        else:
            known = sorted({*model_fields, *train_fields})
            raise ValueError(f"override {pair!r}: unknown key {key!r}; known keys: {', '.join(known)}")
    try:
        return dataclasses.replace(model, **m_changes), dataclasses.replace(train, **t_changes)
    except (TypeError, ValueError) as exc:  # the configurations' own checks, e.g. "lr: expected ..."
        raise ValueError(f"--{exc}") from None


def _sample(model: GPT, tokenizer: Any, prompt: str, n: int, seed: int) -> str:
    ids = torch.tensor([tokenizer.encode(prompt)], device=next(model.parameters()).device)
    gen = torch.Generator(device=ids.device).manual_seed(seed)
    out = model.generate(ids, n, temperature=0.8, top_k=40, generator=gen, crop=True)
    return tokenizer.decode(out[0].tolist())


def _check_arguments(
    parser: argparse.ArgumentParser,
    args: argparse.Namespace,
    train_cfg: TrainConfig,
    out_dir: Path,
    ckpt: Path,
) -> None:
    """Every command-line mistake is a usage error naming its flag, before the run starts (not a
    traceback, and not after a whole run)."""
    from companion.device import resolve_device

    if args.dist_timeout is not None and not args.dist_timeout > 0:
        parser.error(f"--dist_timeout: expected a number of seconds > 0, got {args.dist_timeout}")
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads: expected a positive int, got {args.threads}")
    if args.final_eval_iters < 0:
        parser.error(
            f"--final_eval_iters: expected an int >= 0 (0: no final evaluation), got {args.final_eval_iters}"
        )
    try:
        resolve_device(args.device)
    except ValueError as exc:
        parser.error(f"--{exc}")
    if args.results is not None:
        results = Path(args.results)
        if results.is_dir():
            parser.error(f"--results: {results} is a directory; expected a file name such as run.json")
        parent = next((p for p in results.absolute().parents if p.exists()), None)
        if parent is None or not parent.is_dir() or not os.access(parent, os.W_OK):
            parser.error(f"--results: cannot create {results} (no writable folder above it)")
        if train_cfg.eval_interval == 0:
            parser.error("--results: records the evaluations, so --eval_interval must be > 0 (it is 0)")
    if args.resume and args.overwrite:
        parser.error("--resume and --overwrite: choose one")
    if args.resume and not ckpt.is_file():
        parser.error(f"--resume: no checkpoint at {ckpt}")
    if not args.resume and not args.overwrite and ckpt.exists():
        parser.error(
            f"--out_dir: {out_dir} already holds a checkpoint (ckpt.pt); pass --resume to continue it, "
            "--overwrite to start over, or another --out_dir"
        )


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m companion.train", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="baby", choices=sorted(PRESETS), help="a named preset")
    parser.add_argument(
        "--data", default="char", choices=["char", "bpe"], help="tokenizer for tiny Shakespeare"
    )
    parser.add_argument("--out_dir", default=None, help="checkpoint directory (default out/<config>)")
    parser.add_argument("--resume", action="store_true", help="continue from <out_dir>/ckpt.pt")
    parser.add_argument(
        "--overwrite", action="store_true", help="start afresh even if <out_dir> holds a checkpoint"
    )
    parser.add_argument("--results", default=None, help="write a JSON summary of the run here")
    parser.add_argument("--device", default=None, help="cpu, cuda, mps (default: best available)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads on the CPU")
    parser.add_argument(
        "--dist_timeout",
        type=float,
        default=None,
        help="seconds a rank waits for a silent one under torchrun (default $LLMF_DIST_TIMEOUT_S or 300)",
    )
    parser.add_argument("--no_progress", action="store_true", help="no tqdm bar")
    parser.add_argument(
        "--final_eval_iters",
        type=int,
        default=200,
        help="batches per split for the final evaluation (0: none)",
    )
    args, rest = parser.parse_known_args(argv)

    from companion.device import resolve_device
    from companion.train.distributed import cleanup, setup

    model_cfg, train_cfg = preset(args.config)
    try:
        model_cfg, train_cfg = parse_overrides(rest, model_cfg, train_cfg)
    except ValueError as exc:
        parser.error(str(exc))
    out_dir = Path(args.out_dir or f"out/{args.config}")
    ckpt = out_dir / "ckpt.pt"
    _check_arguments(parser, args, train_cfg, out_dir, ckpt)  # before any data or training
    if args.threads:
        torch.set_num_threads(args.threads)
    rank, world, device = setup(args.device, timeout=args.dist_timeout)
    device = resolve_device(args.device) if world == 1 else device
    data = shakespeare(args.data)
    if data.vocab_size != model_cfg.vocab_size:
        if any(a.lstrip("-").startswith("vocab_size=") for a in rest):
            parser.error(
                f"--vocab_size: the {args.data} tokenizer of tiny Shakespeare has {data.vocab_size} tokens, "
                f"the model's vocabulary is set from it; got {model_cfg.vocab_size}"
            )
        model_cfg = dataclasses.replace(model_cfg, vocab_size=data.vocab_size)
    if rank == 0:
        remove_orphans(ckpt)  # temporary files of saves killed mid-write in an earlier run
        remove_orphans(out_dir / "best.pt")
    if args.no_progress:
        train_cfg = dataclasses.replace(train_cfg, progress=False)
    torch.manual_seed(train_cfg.seed)
    model = GPT(model_cfg, device=device)
    trainer = Trainer(model, data.train, data.val, train_cfg, device=device)
    if args.resume:
        try:
            trainer.resume(ckpt)
        except (FileNotFoundError, ValueError) as exc:  # CheckpointMismatchError is a ValueError
            parser.error(f"--resume: {exc}")
        train_cfg = trainer.config  # what the run really uses (a longer run keeps the saved cosine)
        if rank == 0:
            print(f"resumed from {ckpt} at step {trainer.step}")
    start_step = trainer.step
    if rank == 0:
        n = model.num_parameters()
        print(f"{args.config}: {n:,} parameters, {trainer.tokens_per_iter:,} tokens/iter, device {device}, "
              f"world size {world}")  # fmt: skip

    samples: list[dict[str, Any]] = []
    # The lowest validation loss so far; after --resume, from the restored evaluation history, so
    # that best.pt is never replaced by a worse checkpoint.
    evals = [e for e in trainer.history["eval"] if "val" in e]
    low = min(evals, key=lambda e: e["val"], default=None) if (out_dir / "best.pt").exists() else None
    best: dict[str, Any] = (
        {} if low is None else {"iter": low["iter"], "train_loss": low["train"], "val_loss": low["val"]}
    )
    start = time.perf_counter()
    interval = train_cfg.eval_interval or train_cfg.max_iters
    while trainer.step < train_cfg.max_iters:
        trainer.fit(min(trainer.step + interval - trainer.step % interval, train_cfg.max_iters))
        if rank == 0:
            ev = trainer.history["eval"][-1] if trainer.history["eval"] else {}
            text = _sample(model, data.tokenizer, "\n", 200, seed=train_cfg.seed)
            samples.append({"iter": trainer.step, "text": text})
            nan = float("nan")
            print(f"step {trainer.step}: train {ev.get('train', nan):.4f}, val {ev.get('val', nan):.4f}")
            # nanoGPT's small-data configs keep the checkpoint with the lowest validation loss
            # (always_save_checkpoint = False): these models overfit tiny Shakespeare late in the run.
            # best.pt is written (atomically) before ckpt.pt: a run stopped in between resumes from
            # the previous ckpt.pt, whose history does not yet name this evaluation as the best.
            if ev.get("val", nan) < best.get("val_loss", float("inf")):
                best = {"iter": trainer.step, "train_loss": ev["train"], "val_loss": ev["val"]}
                trainer.save(out_dir / "best.pt")
            trainer.save(ckpt)
    wall = time.perf_counter() - start
    # The periodic evaluations average eval_iters batches (nanoGPT's noisy estimate); the final one
    # uses final_eval_iters batches of each split for a precise number.
    precise = trainer.evaluate(args.final_eval_iters) if args.final_eval_iters else None
    if rank == 0 and precise is not None:
        val = precise.get("val", float("nan"))
        print(
            f"final ({args.final_eval_iters} batches per split): train {precise['train']:.4f}, val {val:.4f}"
        )
    if rank == 0 and args.results:
        final = trainer.history["eval"][-1]
        summary = {
            "command": "python -m companion.train " + " ".join(sys.argv[1:] if argv is None else argv),
            "preset": args.config,
            "data": data.name,
            "model_config": model_cfg.to_dict(),
            "train_config": train_cfg.to_dict(),
            "world_size": world,
            "device": str(device),
            "threads": torch.get_num_threads(),
            "num_parameters": model.num_parameters(),
            "final": {"iter": final["iter"], "train_loss": final["train"], "val_loss": final["val"]},
            "best": best or None,
            "final_precise": None
            if precise is None
            else {
                "eval_iters": args.final_eval_iters,
                "train_loss": precise["train"],
                "val_loss": precise["val"],
            },
            "eval": trainer.history["eval"],
            "wall_time_s": round(wall, 1),
            # the steps this process ran (after --resume, not the ones before it)
            "tokens_per_s": round(trainer.tokens_per_iter * (trainer.step - start_step) / wall, 1),
            "samples": samples,
            "versions": {"python": platform.python_version(), "torch": torch.__version__},
        }
        path = Path(args.results)
        with atomic_open(path) as f:  # a full disk or a kill mid-write leaves the previous file intact
            f.write(json.dumps(summary, indent=1, ensure_ascii=False) + "\n")
        print(f"wrote {path}")
    cleanup()
    return 0
