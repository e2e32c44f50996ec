"""Regenerate ``experiments/results/scaling_grid.json``: the mini scaling study and the data-repetition
experiment of the Scaling laws chapter (``notebooks/llm/scaling-laws.ipynb``).

A grid of tiny character-level GPTs (2 layers, widths 32–96) is trained on tiny Shakespeare for four
token budgets each, one epoch of unique text, with a learning-rate schedule that ends with each run;
then one width is trained at a fixed budget on shrinking unique subsets repeated 1×, 4×, 16× and 64×
(:func:`run_scaling_grid`, on :mod:`companion.train.budget`). The whole run takes about 6 minutes on one
CPU thread, far more than a chapter's 90-second budget, so the notebook reads the losses from the JSON
file this script writes and fits the scaling law to them. The file records the configuration and its
sha256 (``config_hash``); the notebook and ``tests/test_scaling.py`` check that they match the code's
current :class:`ScalingGridConfig`.

Usage, from the repository root::

    python experiments/scaling_grid.py                  # regenerate the cached results
    python experiments/scaling_grid.py --smoke --out /tmp/smoke.json   # seconds; format only
    python experiments/scaling_grid.py --grid gpu --device cuda   # the bigger 7 × 5 grid on a GPU,
                                                                  # into results/scaling_grid_gpu.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from companion.data import tiny_shakespeare
from companion.files import config_hash, provenance, write_json
from companion.tokenizers import CharTokenizer
from companion.train.budget import (
    RunConfig,
    make_model,
    repetition_stream,
    split_data,
    train_lm,
    train_on_stream,
)

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "scaling_grid.json"


@dataclass(frozen=True)
class ScalingGridConfig:
    """The experiment ``experiments/scaling_grid.py`` runs: a width × token-budget grid, then the
    repetition runs at one width and one budget.

    Attributes:
        widths: model widths ``d`` (each a multiple of ``run.head_dim``).
        token_budgets: training tokens ``D`` of the grid's runs (unique data, one epoch).
        repetition_width: the model width of the repetition runs.
        repetition_budget: their fixed token budget.
        unique_fracs: fraction of that budget that is unique data (``1/k`` = ``k`` epochs).
        val_frac: the last ``val_frac`` of the corpus is held out for validation.
        run: shared model and optimisation settings.
    """

    widths: tuple[int, ...] = (32, 48, 64, 96)
    token_budgets: tuple[int, ...] = (102_400, 204_800, 409_600, 819_200)
    repetition_width: int = 64
    repetition_budget: int = 409_600
    unique_fracs: tuple[float, ...] = (1.0, 0.25, 0.0625, 0.015625)
    val_frac: float = 0.1
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict[str, Any]:
        """The configuration as plain JSON types (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def gpu(cls) -> ScalingGridConfig:
        """The bigger grid for a GPU: the CPU grid's widths and budgets extended (7 widths × 5 budgets),
        with the same per-run settings, so the 16 shared runs can be compared across devices."""
        return cls(
            widths=(32, 48, 64, 96, 128, 192, 256), token_budgets=(51_200, 102_400, 204_800, 409_600, 819_200)
        )


def shakespeare_chars() -> tuple[torch.Tensor, int]:
    """Tiny Shakespeare as character ids (the sorted characters, as ``CharTokenizer``) and ``V``."""
    text = tiny_shakespeare()
    chars = CharTokenizer(text)
    return torch.tensor(chars.encode(text), dtype=torch.long), chars.vocab_size


def run_scaling_grid(
    config: ScalingGridConfig,
    data: torch.Tensor,
    vocab_size: int,
    *,
    device: torch.device | str = "cpu",
    log: bool = False,
) -> dict[str, Any]:
    """Train every (width, token budget) of the grid and the repetition runs.

    Args:
        config: the experiment.
        data: ``(n,)`` int64 token ids of the whole corpus (split by ``config.val_frac``).
        vocab_size: ``V``.
        device: where to train.
        log: print one line per run.

    Returns:
        ``{"config", "config_hash", "vocab_size", "grid": [...], "repetition": [...]}``. Each grid
        row has ``width, n_params, tokens, flops (6·N·D), val_loss``; each repetition row has
        ``unique_frac, unique_tokens, epochs, val_loss``.
    """
    cfg = config.to_dict()
    train_ids, val = split_data(data, config.val_frac)
    grid = []
    for width in config.widths:
        n_params = make_model(width, vocab_size, config.run).num_parameters()
        for tokens in config.token_budgets:
            start = time.perf_counter()
            # random blocks of the whole training split: D tokens from ~1M, hardly any repeated
            loss = train_lm(
                train_ids, val, tokens, width=width, config=config.run, vocab_size=vocab_size, device=device
            )
            row = {"width": width, "n_params": n_params, "tokens": tokens, "flops": 6 * n_params * tokens}
            grid.append({**row, "val_loss": round(loss, 6)})
            if log:
                print(
                    f"d={width:>3} N={n_params:>7} D={tokens:>8}: val {loss:.4f} "
                    f"({time.perf_counter() - start:.1f}s)"
                )
    repetition = []
    for frac in config.unique_fracs:
        start = time.perf_counter()
        stream = repetition_stream(train_ids, frac, config.repetition_budget)
        loss = train_on_stream(
            stream,
            val,
            width=config.repetition_width,
            config=config.run,
            vocab_size=vocab_size,
            device=device,
        )
        unique = max(1, round(frac * config.repetition_budget))
        epochs = round(config.repetition_budget / unique, 6)
        repetition.append(
            {"unique_frac": frac, "unique_tokens": unique, "epochs": epochs, "val_loss": round(loss, 6)}
        )
        if log:
            print(f"unique_frac={frac:<9} U={unique:>7}: val {loss:.4f} ({time.perf_counter() - start:.1f}s)")
    return {
        "config": cfg,
        "config_hash": config_hash(cfg),
        "vocab_size": vocab_size,
        "grid": grid,
        "repetition": repetition,
    }


def smoke_config() -> ScalingGridConfig:
    """A configuration small enough to run in seconds, with the same output format."""
    return ScalingGridConfig(
        widths=(16, 32),
        token_budgets=(2048, 4096),
        repetition_width=16,
        repetition_budget=4096,
        unique_fracs=(1.0, 0.25),
        run=dataclasses.replace(RunConfig(), block_size=32, batch_size=8, eval_tokens=1024),
    )


GRIDS = {"cpu": ScalingGridConfig, "gpu": ScalingGridConfig.gpu, "smoke": smoke_config}
OUTPUTS = {"cpu": DEFAULT_OUT, "gpu": DEFAULT_OUT.with_name("scaling_grid_gpu.json")}


def run(config: ScalingGridConfig, device: str, threads: int) -> dict:
    """Run the experiment and add a ``provenance`` record (script, versions, device, seconds)."""
    torch.set_num_threads(threads)
    start = time.perf_counter()
    data, vocab_size = shakespeare_chars()
    result = run_scaling_grid(config, data, vocab_size, device=device, log=True)
    result["provenance"] = provenance(
        "experiments/scaling_grid.py", device=device, threads=threads, seconds=time.perf_counter() - start,
        data="companion.data.tiny_shakespeare, character level",
    )  # fmt: skip
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", default="cpu", choices=sorted(GRIDS), help="which configuration")
    parser.add_argument("--out", type=Path, default=None, help="where to write the JSON results")
    parser.add_argument("--smoke", action="store_true", help="same as --grid smoke: checks the format only")
    parser.add_argument("--device", default="cpu", help="cpu (the cached file), cuda or mps")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)
    grid = "smoke" if args.smoke else args.grid
    out = args.out or OUTPUTS.get(grid)
    if out is None:
        parser.error("--out is required for the smoke grid")
    write_json(run(GRIDS[grid](), args.device, args.threads), out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
