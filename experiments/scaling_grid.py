"""Regenerate ``experiments/results/scaling_grid.json``: the mini scaling study and the data-repetition
experiment of the Scaling laws chapter (``notebooks/llm/scaling-laws.ipynb``).

A grid of tiny character-level GPTs (2 layers, widths 32–96) is trained on tiny Shakespeare for four
token budgets each, one epoch of unique text, with a learning-rate schedule that ends with each run;
then one width is trained at a fixed budget on shrinking unique subsets repeated 1×, 4×, 16× and 64×
(:func:`companion.scaling_experiments.run_scaling_grid`). The whole run takes about 6 minutes on one
CPU thread, far more than a chapter's 90-second budget, so the notebook reads the losses from the JSON
file this script writes and fits the scaling law to them. The file records the configuration and its
sha256 (``config_hash``); the notebook and ``tests/test_scaling.py`` check that they match the code's
current :class:`~companion.scaling_experiments.ScalingGridConfig`.

Usage, from the repository root::

    python experiments/scaling_grid.py                  # regenerate the cached results
    python experiments/scaling_grid.py --smoke --out /tmp/smoke.json   # seconds; format only
    python experiments/scaling_grid.py --grid gpu --device cuda   # the bigger 7 × 5 grid on a GPU,
                                                                  # into results/scaling_grid_gpu.json
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import torch

from companion.files import provenance, write_json
from companion.scaling_experiments import RunConfig, ScalingGridConfig, run_scaling_grid, shakespeare_chars

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "scaling_grid.json"


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
