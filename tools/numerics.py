"""Portability checks for the stored notebook outputs (CONTRIBUTING.md, "The numerics contract").

The stored outputs must be what the code prints on *any* x86 machine. This script emulates other machines
on the one it runs on, through the switches each numerical library reads at start-up, and either runs the
stored-output suite under them or measures how far a number moves between them:

    python tools/numerics.py variants                        # every variant, notebooks + grader proofs
    python tools/numerics.py variants --only sse-machine notebooks/transformer/gpt.ipynb
    python tools/numerics.py spread NOTEBOOK CELL EXPR [EXPR ...]
    python tools/numerics.py env avx2-machine                # the variables, for a shell: env $(...) cmd

``spread`` runs the notebook's code cells ``0 … CELL`` in a fresh interpreter under each variant, evaluates
each ``EXPR`` there (numbers, or lists, tuples and dicts of them) and prints every value at full precision
with the largest absolute and relative spread: the yardstick for a printed precision and an ``assert``
tolerance.

The variants change, one library at a time and then all together:
  - ATen's vectorized kernels (``ATEN_CPU_CAPABILITY``: what a CPU without AVX-512 or AVX2 dispatches);
  - the thread count (``OMP_NUM_THREADS``, inherited by the notebook kernels);
  - MKL's code path (``MKL_CBWR``), oneDNN's (``ONEDNN_MAX_CPU_ISA``, bf16 matmuls), NumPy's SIMD loops
    (``NPY_DISABLE_CPU_FEATURES``) and OpenBLAS's kernels (``OPENBLAS_CORETYPE``).
``avx2-machine`` and ``sse-machine`` set all of them at once: an AVX2 laptop and an old CPU, as closely
as one machine can pretend to be another. A switch that names an instruction set the CPU lacks is
harmless (each library then uses what the CPU has).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_NO_AVX512_NUMPY = "X86_V4,AVX512_ICL,AVX512_SPR"
VARIANTS: dict[str, dict[str, str]] = {
    "native": {},
    "aten-default": {"ATEN_CPU_CAPABILITY": "default"},
    "aten-avx2": {"ATEN_CPU_CAPABILITY": "avx2"},
    "threads-1": {"OMP_NUM_THREADS": "1"},
    "threads-2": {"OMP_NUM_THREADS": "2"},
    "threads-4": {"OMP_NUM_THREADS": "4"},
    "mkl-compatible": {"MKL_CBWR": "COMPATIBLE"},
    "avx2-machine": {
        "ATEN_CPU_CAPABILITY": "avx2",
        "MKL_CBWR": "AVX2",
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "NPY_DISABLE_CPU_FEATURES": _NO_AVX512_NUMPY,
        "OPENBLAS_CORETYPE": "Haswell",
    },
    "sse-machine": {
        "ATEN_CPU_CAPABILITY": "default",
        "MKL_CBWR": "COMPATIBLE",
        "ONEDNN_MAX_CPU_ISA": "SSE41",
        "NPY_DISABLE_CPU_FEATURES": "X86_V3," + _NO_AVX512_NUMPY,
        "OPENBLAS_CORETYPE": "Nehalem",
        "OMP_NUM_THREADS": "3",
    },
}
DEFAULT_PATHS = ["notebooks", "tests/test_grading.py"]


def variant_env(name: str) -> dict[str, str]:
    """``os.environ`` with variant ``name``'s switches set (every library reads them at start-up)."""
    if name not in VARIANTS:
        raise SystemExit(f"variant: expected one of {', '.join(VARIANTS)}, got {name!r}")
    env = dict(os.environ, **VARIANTS[name])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    return env


def run_variants(names: list[str], paths: list[str], workers: int, show_failures: int = 0) -> int:
    """Run pytest on ``paths`` under each variant; print the time, the summary and every failing test
    (and, with ``show_failures``, that many lines of pytest's report when a variant fails)."""
    failed_any = False
    for name in names:
        start = time.monotonic()
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *paths]
        if workers > 1:
            cmd[4:4] = ["-n", str(workers), "--dist", "loadfile"]
        out = subprocess.run(cmd, cwd=ROOT, env=variant_env(name), capture_output=True, text=True)
        lines = out.stdout.splitlines()
        summary = next((s for s in reversed(lines) if re.search(r"\d+ (passed|failed)", s)), "no summary")
        summary = re.sub(r"\x1b\[[0-9;]*m", "", summary).strip("= ")
        print(f"== {name:<15} {time.monotonic() - start:6.0f} s  {summary}", flush=True)
        for line in lines:
            if line.startswith(("FAILED ", "ERROR ")):
                print("   " + re.sub(r"\x1b\[[0-9;]*m", "", line.split(" - ")[0]), flush=True)
        if out.returncode != 0 and show_failures:
            tail = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join([*lines[-show_failures:], out.stderr[-2000:]]))
            print(f"--- the last {show_failures} lines of pytest's report under {name} ---", flush=True)
            print(tail, flush=True)
        failed_any |= out.returncode != 0
    return 1 if failed_any else 0


_CHILD = r"""
import contextlib, io, json, os, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
plt.show = lambda *args, **kwargs: plt.close("all")
path, last, exprs = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
nb = json.load(open(path, encoding="utf-8"))
code = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
os.chdir(os.path.dirname(path))  # a notebook kernel starts in the notebook's folder
ns = {"__name__": "__main__"}
with contextlib.redirect_stdout(io.StringIO()):
    for i, src in enumerate(code[: last + 1]):
        exec(compile(src, f"<cell {i}>", "exec"), ns)
print("@@" + json.dumps({e: eval(e, ns) for e in exprs}, default=float))
"""


def _numbers(value: object, where: str = "") -> Iterator[tuple[str, float]]:
    if isinstance(value, bool):
        yield where, float(value)
    elif isinstance(value, (int, float)):
        yield where, float(value)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _numbers(v, f"{where}[{i}]")
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _numbers(v, f"{where}[{k!r}]")


def measure_spread(notebook: str, cell: int, exprs: list[str], names: list[str]) -> int:
    """Evaluate ``exprs`` after code cells ``0 … cell`` under each variant; print values and spreads."""
    path = str((ROOT / notebook).resolve())
    results: dict[str, dict[str, float]] = {}
    for name in names:
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, path, str(cell), json.dumps(exprs)],
            env=variant_env(name),
            capture_output=True,
            text=True,
        )
        line = next((s for s in out.stdout.splitlines() if s.startswith("@@")), None)
        if line is None:
            print(f"== {name}: failed\n{out.stderr[-3000:]}", flush=True)
            return 1
        values = json.loads(line[2:])
        results[name] = {f"{e}{k}": v for e in exprs for k, v in _numbers(values[e])}
        print(f"== {name:<15} " + ", ".join(f"{k} = {v!r}" for k, v in results[name].items()), flush=True)
    keys = next(iter(results.values())).keys()
    for key in keys:
        xs = [r[key] for r in results.values()]
        spread = max(xs) - min(xs)
        scale = max(abs(x) for x in xs)
        print(f"spread {key}: {spread:.3g} (relative {spread / scale if scale else 0.0:.3g})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("variants", help="run the stored-output suite under each variant")
    run.add_argument("paths", nargs="*", default=DEFAULT_PATHS)
    run.add_argument("--only", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    run.add_argument("--workers", type=int, default=2, help="pytest-xdist workers (1: no xdist)")
    run.add_argument("--show-failures", type=int, default=0, metavar="N", help="print N lines of a failure")
    spread = sub.add_parser("spread", help="measure how far numbers move between the variants")
    spread.add_argument("notebook")
    spread.add_argument("cell", type=int, help="index of the last code cell to run (as nbval counts)")
    spread.add_argument("exprs", nargs="+")
    spread.add_argument("--only", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    show = sub.add_parser("env", help="print a variant's variables as NAME=VALUE lines")
    show.add_argument("name", choices=list(VARIANTS))
    args = parser.parse_args(argv)
    if args.command == "variants":
        return run_variants(args.only, args.paths, args.workers, args.show_failures)
    if args.command == "spread":
        return measure_spread(args.notebook, args.cell, args.exprs, args.only)
    for key, value in VARIANTS[args.name].items():
        print(f"{key}={value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
