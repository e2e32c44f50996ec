"""tools/numerics.py, the portability checker of the numerics contract (CONTRIBUTING.md): its variants
really reach the libraries, `variants` reports a test that holds on one machine only, and `spread`
measures how far a notebook's numbers move."""

from __future__ import annotations

import json
import subprocess
import sys

import nbformat
import pytest

from tests._scripts import ROOT, load_script

numerics = load_script("tools/numerics.py")


def test_every_variant_sets_only_known_switches():
    known = {
        "ATEN_CPU_CAPABILITY",
        "MKL_CBWR",
        "ONEDNN_MAX_CPU_ISA",
        "NPY_DISABLE_CPU_FEATURES",
        "OPENBLAS_CORETYPE",
        "OMP_NUM_THREADS",
    }
    assert numerics.VARIANTS["native"] == {}
    for name, switches in numerics.VARIANTS.items():
        assert set(switches) <= known, name
    # the list: other ATen ISAs and 1, 2 and 4 threads, plus whole emulated machines
    for name in ("aten-default", "aten-avx2", "threads-1", "threads-2", "threads-4", "sse-machine"):
        assert name in numerics.VARIANTS
    env = numerics.variant_env("sse-machine")
    assert env["ATEN_CPU_CAPABILITY"] == "default" and str(ROOT) in env["PYTHONPATH"].split(":")
    with pytest.raises(SystemExit, match="variant: expected one of"):
        numerics.variant_env("pentium")


def test_the_switches_reach_torch_and_numpy():
    probe = (
        "import json, torch, numpy as np\n"
        "from numpy._core._multiarray_umath import __cpu_features__ as f\n"
        "print(json.dumps([torch.backends.cpu.get_cpu_capability(), bool(f['AVX2'])]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        env=numerics.variant_env("sse-machine"),
        capture_output=True,
        text=True,
        check=True,
    )
    capability, _ = json.loads(out.stdout)
    assert capability == "DEFAULT"  # ATen dispatches its scalar kernels, as on a CPU without AVX2
    dispatch = subprocess.run(
        [sys.executable, "-c", "import numpy as np; np.show_runtime()"],
        env=numerics.variant_env("sse-machine"),
        capture_output=True,
        text=True,
        check=True,
    )
    assert "X86_V3" in dispatch.stdout.split("not_found")[-1]  # NumPy's AVX2 loops switched off


def test_variants_reports_a_test_that_holds_on_one_machine_only(tmp_path, capsys):
    test = tmp_path / "test_machine.py"
    test.write_text("import os\n\ndef test_native():\n    assert 'ATEN_CPU_CAPABILITY' not in os.environ\n")
    rc = numerics.run_variants(
        ["native", "aten-default"], [str(test), "-p", "no:nbval"], workers=1, show_failures=5
    )
    out = capsys.readouterr().out
    assert rc == 1
    assert "== native" in out and "1 passed" in out
    assert "== aten-default" in out and "1 failed" in out and "test_machine.py::test_native" in out
    assert "lines of pytest's report under aten-default" in out


def test_spread_measures_a_notebook_number(tmp_path, capsys):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# A notebook"),
        nbformat.v4.new_code_cell("import os\nx = 1.5"),
        nbformat.v4.new_code_cell("y = x + (1e-9 if os.environ.get('ATEN_CPU_CAPABILITY') else 0.0)"),
        nbformat.v4.new_code_cell("raise RuntimeError('never run: after the requested cell')"),
    ]
    path = tmp_path / "tiny.ipynb"
    nbformat.write(nb, path)
    rc = numerics.measure_spread(str(path), 1, ["y", "[x, 2 * x]"], ["native", "aten-default"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "== native          y = 1.5" in out and "y = 1.500000001" in out
    assert "spread y: 1e-09" in out and "spread [x, 2 * x][1]: 0 " in out
