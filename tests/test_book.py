"""Static checks of the book's conventions (DESIGN §2–§4): every ToC entry exists, notebooks are stored
executed and byte-stable, each chapter follows the arc, and the code is ruff clean."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").rglob("*.ipynb"))
NOTEBOOKS = [p for p in NOTEBOOKS if ".ipynb_checkpoints" not in p.parts]


def _toc_files() -> list[str]:
    text = (ROOT / "_toc.yml").read_text(encoding="utf-8")
    files = re.findall(r"^\s*(?:-\s*)?(?:file|root):\s*(\S+)", text, flags=re.M)
    assert files, "no entries found in _toc.yml"
    return files


def test_every_toc_entry_exists_and_every_chapter_is_listed():
    listed = set()
    for entry in _toc_files():
        matches = [p for p in (ROOT / f"{entry}.md", ROOT / f"{entry}.ipynb") if p.is_file()]
        assert matches, f"_toc.yml lists {entry!r}, which does not exist"
        listed.add(matches[0].resolve())
    for nb in NOTEBOOKS:
        assert nb.resolve() in listed, f"{nb.relative_to(ROOT)} is not in _toc.yml"


def test_notebook_names_carry_no_numbers():
    for nb in NOTEBOOKS:
        assert not re.match(r"^\d", nb.name), f"{nb.name}: _toc.yml numbers chapters, file names must not"


def _cells(nb_path: Path) -> list[dict]:
    return json.loads(nb_path.read_text(encoding="utf-8"))["cells"]


def _source(cell: dict) -> str:
    return "".join(cell["source"])


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stored_executed_without_timestamps(nb_path):
    code = [c for c in _cells(nb_path) if c["cell_type"] == "code" and _source(c).strip()]
    assert code, "a chapter without code"
    unexecuted = [i for i, c in enumerate(code) if c.get("execution_count") is None]
    assert not unexecuted, f"code cells {unexecuted} were not executed: run nbconvert --execute (DESIGN §4)"
    assert not any("execution" in c.get("metadata", {}) for c in code), "per-cell timestamps stored"
    counts = [c["execution_count"] for c in code]
    assert counts == list(range(1, len(code) + 1)), "cells were executed out of order"


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_follows_the_chapter_arc(nb_path):
    cells = _cells(nb_path)
    first_md = next(_source(c) for c in cells if c["cell_type"] == "markdown")
    assert re.match(r"^# .+\(.+\)", first_md), "first cell: '# Title (中文)'"
    first_code = next(_source(c) for c in cells if c["cell_type"] == "code")
    assert 'find_spec("companion") is None' in first_code, "first code cell must be the Colab install cell"
    code = "\n".join(_source(c) for c in cells if c["cell_type"] == "code")
    markdown = "\n".join(_source(c) for c in cells if c["cell_type"] == "markdown")
    assert re.search(r"^\s*assert ", code, flags=re.M), "no assert: chapters verify against a reference"
    assert not re.search(r"^\s*torch\.manual_seed\(", code, flags=re.M), "write `_ = torch.manual_seed(...)`"
    assert "grade(" in code, "no graded exercise"
    assert re.search(r"\|\s*English\s*\|\s*中文\s*\|", markdown), "no English | 中文 key-terms table"
    for c in cells:
        if c["cell_type"] == "code" and "NBVAL_IGNORE_OUTPUT" in _source(c):
            assert re.search(r"perf_counter|benchmark|timeit|tqdm", _source(c)), (
                "NBVAL_IGNORE_OUTPUT is only for timings and progress bars (DESIGN §4)"
            )


@pytest.mark.parametrize("args", [["check", "."], ["format", "--check", "."]], ids=["lint", "format"])
def test_ruff_clean(args):
    cmd = [sys.executable, "-m", "ruff", *args]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-4000:]
