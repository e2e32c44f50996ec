"""Static checks of the book's conventions (DESIGN §2–§4): every ToC entry exists, notebooks are stored
executed and byte-stable, their stored outputs hold nothing of the machine that ran them, each chapter
follows the arc, and the code is ruff clean."""

from __future__ import annotations

import json
import platform
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

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


def _ignored(cell: dict) -> bool:
    """Whether nbval skips comparing the cell's output (the ``nbval-ignore-output`` tag)."""
    return "nbval-ignore-output" in cell.get("metadata", {}).get("tags", [])


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.stem)
def test_outputs_are_stored_normalized_and_the_learners_kernel_is_untouched(nb_path):
    # A learner's kernel must show a print when it happens, so no chapter changes sys.stdout (such as
    # its flush_interval); tools/execute.py instead merges the pieces a kernel sends and stores a
    # progress bar's last state, so re-running a notebook stores the same file.
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import execute
    finally:
        sys.path.pop(0)
    import nbformat

    nb = nbformat.read(nb_path, as_version=4)
    touched = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and "flush_interval" in c.source]
    assert not touched, f"cells {touched} change sys.stdout's flush_interval (a learner would see no output)"
    problems = execute.is_normalized(nb)
    assert not problems, "\n".join(problems) + f"\nrun: python tools/execute.py --normalize-only {nb_path}"


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stored_executed_without_timestamps(nb_path):
    code = [c for c in _cells(nb_path) if c["cell_type"] == "code" and _source(c).strip()]
    assert code, "a chapter without code"
    unexecuted = [i for i, c in enumerate(code) if c.get("execution_count") is None]
    assert not unexecuted, f"code cells {unexecuted} were not executed: run tools/execute.py (DESIGN §4)"
    assert not any("execution" in c.get("metadata", {}) for c in code), "per-cell timestamps stored"
    counts = [c["execution_count"] for c in code]
    assert counts == list(range(1, len(code) + 1)), "cells were executed out of order"


# What a stored output must never hold (CONTRIBUTING.md, "The numerics contract"): it is compared on other
# machines and shown to every reader.
_ABSOLUTE_PATH = re.compile(r"(?:^|[\s'\"(=\[])((?:/(?:[\w.+-]+/)+[\w.+-]*)|(?:[A-Za-z]:\\[^\s'\"]+))")
_WARNING = re.compile(r"\b\w*Warning\b|\bwarnings\.warn\b")
_PROGRESS = re.compile(r"\d+(?:\.\d+)?(?:it/s|s/it)|\[\d\d:\d\d<")


def _environment_strings() -> list[str]:
    versions = {platform.python_version(), torch.__version__.split("+")[0], np.__version__}
    names = {socket.gethostname(), str(Path.home()), sys.prefix, sys.executable}
    return sorted(v for v in versions | names if len(v) >= 4)


def environment_leaks(text: str, *, ignored_cell: bool, environment: list[str] | None = None) -> list[str]:
    """What in one stored output depends on the machine that executed it (empty: nothing).

    Paths, warnings, this machine's versions and names are never allowed; progress-bar rates and
    timers only in a cell tagged ``nbval-ignore-output``.
    """
    found = [f"absolute path {m.group(1)!r}" for m in _ABSOLUTE_PATH.finditer(text)]
    found += [f"warning {m.group(0)!r}" for m in _WARNING.finditer(text)]
    found += [f"this machine's {s!r}" for s in (environment or []) if s in text]
    if not ignored_cell:
        found += [f"a progress bar or rate {m.group(0)!r}" for m in _PROGRESS.finditer(text)]
    return found


@pytest.mark.parametrize(
    ("text", "ignored", "expected"),
    [
        ("loss 2.345 after 100 steps; 3/4 of 12 tokens/s", False, []),
        ("see https://arxiv.org/abs/2002.04745 and notebooks/llm/x.ipynb", False, []),
        ("/usr/lib/python3.11/site-packages/tqdm/auto.py:21: TqdmWarning: IProgress", True, 2),
        ("wrote C:\\Users\\me\\out.json", False, 1),
        ("train: 50%|█████ | 50/100 [00:02<00:02, 21.3it/s]", False, 2),
        ("train: 50%|█████ | 50/100 [00:02<00:02, 21.3it/s]", True, []),
        ("UserWarning: the default will change", False, 1),
        ("running torch 9.9.9 on host-x", False, 2),
    ],
)
def test_environment_leaks_finds_what_it_should(text, ignored, expected):
    found = environment_leaks(text, ignored_cell=ignored, environment=["9.9.9", "host-x"])
    assert (found == expected) if isinstance(expected, list) else len(found) == expected, found


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_outputs_hold_nothing_of_the_machine(nb_path):
    environment = _environment_strings()
    problems = []
    code = [c for c in _cells(nb_path) if c["cell_type"] == "code"]
    for i, cell in enumerate(code):
        ignored = _ignored(cell)
        for out in cell.get("outputs", []):
            text = out.get("text") or out.get("data", {}).get("text/plain", "") or out.get("evalue", "")
            text = "".join(text) if isinstance(text, list) else text
            if out.get("output_type") == "stream" and out.get("name") == "stderr" and not ignored:
                problems.append(f"cell {i}: stores stderr {text[:80]!r}")
            problems += [
                f"cell {i}: {leak}"
                for leak in environment_leaks(text, ignored_cell=ignored, environment=environment)
            ]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_follows_the_chapter_arc(nb_path):
    cells = _cells(nb_path)
    first_md = next(_source(c) for c in cells if c["cell_type"] == "markdown")
    assert re.match(r"^# .+\(.+\)", first_md), "first cell: '# Title (中文)'"
    first_code = next(_source(c) for c in cells if c["cell_type"] == "code")
    assert 'find_spec("companion") is None' in first_code, "first code cell must be the Colab install cell"
    setup = [_source(c) for c in cells if c["cell_type"] == "code"][1]
    assert "print(reproducible(seed=" in setup, (
        "the setup cell states its numerics: print(reproducible(seed=...))"
    )
    code = "\n".join(_source(c) for c in cells if c["cell_type"] == "code")
    markdown = "\n".join(_source(c) for c in cells if c["cell_type"] == "markdown")
    assert re.search(r"^\s*assert ", code, flags=re.M), "no assert: chapters verify against a reference"
    assert not re.search(r"^\s*torch\.manual_seed\(", code, flags=re.M), "write `_ = torch.manual_seed(...)`"
    assert "grade(" in code, "no graded exercise"
    assert re.search(r"\|\s*English\s*\|\s*中文\s*\|", markdown), "no English | 中文 key-terms table"
    for c in cells:
        if c["cell_type"] == "code" and _ignored(c):
            assert re.search(r"perf_counter|benchmark|timeit|tqdm|Trainer", _source(c)), (
                "nbval-ignore-output is only for timings and progress bars (DESIGN §4)"
            )
        # readers see the source: the marker is a cell tag, never a comment in the code
        assert "NBVAL_IGNORE_OUTPUT" not in _source(c), "use the cell tag nbval-ignore-output, not a comment"


@pytest.mark.parametrize("args", [["check", "."], ["format", "--check", "."]], ids=["lint", "format"])
def test_ruff_clean(args):
    cmd = [sys.executable, "-m", "ruff", *args]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-4000:]


def test_every_command_the_how_to_use_page_names_is_installed():
    # A learner types these commands first; each must exist in the environment requirements.txt makes.
    import importlib.util
    import shutil

    text = (ROOT / "book" / "how-to-use.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^\s*```bash\n(.*?)^\s*```", text, flags=re.M | re.S)
    commands = [line.split("#")[0].split() for block in blocks for line in block.splitlines()]
    commands = [c for c in commands if c and c[0] not in ("cd", "source")]  # shell built-ins
    assert len(commands) >= 8, commands
    missing = []
    for words in commands:
        if words[0] == "python" and words[1] == "-m":
            module = words[2]
            ok = importlib.util.find_spec(module) is not None
        elif words[0] == "jupyter":
            ok = shutil.which(f"jupyter-{words[1]}") is not None
        else:
            ok = shutil.which(words[0]) is not None
        if not ok:
            missing.append(" ".join(words))
    assert not missing, f"how-to-use names commands this environment lacks: {missing}"


def _repository_url() -> str:
    match = re.search(
        r"^repository:\s*\n\s+url:\s*(\S+)", (ROOT / "_config.yml").read_text(encoding="utf-8"), re.M
    )
    assert match, "_config.yml: no repository.url"
    return match.group(1).rstrip("/")


def test_one_repository_url_and_a_tagged_install():
    # _config.yml's repository.url is the one place that names the repository (the site's Colab,
    # repository and issue buttons read it); everything else that names it must agree, so a fork or
    # the real publication changes one line. The install cells install the release tag of this version.
    url = _repository_url()
    ours = re.compile(r"https://github\.com/[\w.-]+/[\w.-]+?(?=\.git\b|[/\s\"'@)>]|$)")
    version = re.search(
        r'^version\s*=\s*"([^"]+)"', (ROOT / "pyproject.toml").read_text(encoding="utf-8"), re.M
    )
    files = ["pyproject.toml", "README.md", "CONTRIBUTING.md", "book/intro.md", "book/how-to-use.md"]
    places = {ROOT / f: (ROOT / f).read_text(encoding="utf-8") for f in files}
    for nb_path in NOTEBOOKS:
        install = next(_source(c) for c in _cells(nb_path) if c["cell_type"] == "code")
        places[nb_path] = install
        assert f'url = "git+{url}@v{version.group(1)}"' in install, (
            f"{nb_path.name}: the install cell must install git+{url}@v{version.group(1)} (a release tag)"
        )
    wrong = {
        f"{p.relative_to(ROOT)}: {m.group(0)}"
        for p, text in places.items()
        for m in ours.finditer(text)
        if m.group(0) != url
    }
    assert not wrong, f"these name another repository than _config.yml's {url}: {sorted(wrong)}"


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.stem)
def test_solutions_never_replace_the_learners_attempt(nb_path):
    # In Jupyter or Colab the collapsed solution cell runs too ("Run all"): if it defined the learner's
    # names, it would replace their attempt with the reference and report every check passed.
    import ast

    from companion.grading import get_exercise

    shadowing = []
    for i, cell in enumerate(_cells(nb_path)):
        graded = re.findall(r'grade\("([\w.-]+)"', _source(cell))
        if cell["cell_type"] != "code" or "hide-input" not in cell["metadata"].get("tags", []) or not graded:
            continue
        tree = ast.parse(_source(cell))
        defined = {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
        defined |= {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
        for exercise_id in graded:
            shadowing += [f"cell {i}: {name}" for name in get_exercise(exercise_id).names if name in defined]
    assert not shadowing, f"solution cells that redefine the learner's names: {shadowing}"


def test_misconceptions_carry_no_chapter_numbers():
    # Chapters are numbered by _toc.yml and renumber when one is inserted: a reader-facing id such as
    # "M10.3" would then name the wrong chapter. Misconceptions are numbered within their chapter.
    plan_id = re.compile(r"\bM\d+\.\d+\b")
    found = []
    for nb_path in NOTEBOOKS:
        for i, cell in enumerate(_cells(nb_path)):
            texts = [_source(cell)] if cell["cell_type"] == "markdown" else []
            for out in cell.get("outputs", []):
                texts.append(
                    "".join(out.get("text", "")) + "".join(out.get("data", {}).get("text/plain", ""))
                )
            found += [f"{nb_path.name} cell {i}: {m}" for t in texts for m in plan_id.findall(t)]
    for page in sorted((ROOT / "book").glob("*.md")):
        found += [f"{page.name}: {m}" for m in plan_id.findall(page.read_text(encoding="utf-8"))]
    assert not found, found


def test_the_landing_page_lists_exactly_the_chapters_that_exist():
    # The landing page must not promise chapters the book lacks: its list is the table of contents.
    text = (ROOT / "book" / "intro.md").read_text(encoding="utf-8")
    section = text.split("## What is in the book", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"\{doc\}`/([\w/-]+)`", section)
    chapters = [f for f in _toc_files() if f.startswith("notebooks/")]
    assert listed == chapters, f"intro.md lists {listed}; _toc.yml has {chapters}"


def test_readers_never_see_the_plan():
    # "the curriculum" is this project's plan, not the reader's book; chapters not yet written are
    # "a later chapter", never a named chapter the site does not have.
    unwritten = re.compile(
        r"\b(the )?(Fine-tuning|Alignment|Classic[- ]models|Neural-network[- ]fundamentals|Prompting)"
        r" chapter\b",
        re.I,
    )
    found = []
    pages = [(p.name, p.read_text(encoding="utf-8")) for p in sorted((ROOT / "book").glob("*.md"))]
    pages += [(nb.name, "\n".join(_source(c) for c in _cells(nb))) for nb in NOTEBOOKS]
    for name, text in pages:
        found += [f"{name}: {m.group(0)!r}" for m in re.finditer(r"curriculum", text, re.I)]
        found += [f"{name}: {m.group(0)!r}" for m in unwritten.finditer(text)]
    assert not found, found


def test_every_glossary_term_is_a_link_target():
    rows = [
        line for line in (ROOT / "book" / "glossary.md").read_text(encoding="utf-8").splitlines()
        if line.startswith("| ") and not line.startswith("| English")
    ]  # fmt: skip
    ids = [re.match(r'\| <span id="(term-[a-z0-9-]+)"></span>\S', row) for row in rows]
    missing = [row[:60] for row, m in zip(rows, ids, strict=True) if m is None]
    assert not missing, f"glossary rows without a term-… anchor: {missing}"
    names = [m.group(1) for m in ids]
    assert len(names) == len(set(names)) >= 200, "glossary anchors must be unique"


def test_cross_chapter_references_are_links():
    # "the Attention chapter" in plain text cannot be followed and goes stale silently; as a {doc} link
    # the nitpicky build (-n) fails when its target disappears.
    plain = re.compile(r"(?<![`<])\b[Tt]he\s+[A-Z][\w-]*(\s+[\w-]+)?\s+chapter\b")
    found = [
        f"{nb.name}: {m.group(0)!r}"
        for nb in NOTEBOOKS
        for c in _cells(nb)
        if c["cell_type"] == "markdown"
        for m in plain.finditer(_source(c))
    ]
    assert not found, f"plain-text chapter references (make them {{doc}} links): {found}"
