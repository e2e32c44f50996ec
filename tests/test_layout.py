"""The package's house rules (CONTRIBUTING.md, "Layout"), checked on the source so that they stay true:
no private name crosses a package boundary, the layers import only downwards, and no module grows
into two ideas again."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "companion"
MODULES = sorted(PACKAGE.rglob("*.py"))

# Longest module allowed. The longest library modules (700 to 520 lines) hold one idea each: the GPT
# with its config and Hugging Face loader, every loss, the classification metrics, the Chinchilla
# analysis. A module that outgrows this has taken in a second idea: split it, one module per idea.
# A chapter's exercise file (companion/grading/exercises/<chapter>.py) holds that chapter's
# specifications and checks, as long as the chapter needs; it is exempt.
MAX_LINES = 720
EXEMPT = "companion/grading/exercises/"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _package_of(path: Path) -> str:
    """The package a module belongs to: ``companion.nn`` for ``companion/nn/attention.py``."""
    return ".".join(path.relative_to(ROOT).parts[:-1])


def _imports(tree: ast.AST) -> list[tuple[str, str | None]]:
    """``(module, name)`` for every ``from module import name`` and ``(module, None)`` for every
    ``import module``, at any depth (imports inside functions count too)."""
    found: list[tuple[str, str | None]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.extend((node.module, alias.name) for alias in node.names)
        elif isinstance(node, ast.Import):
            found.extend((alias.name, None) for alias in node.names)
    return found


def _is_private(dotted: str) -> bool:
    return any(part.startswith("_") and not part.startswith("__") for part in dotted.split("."))


def _private_crossings(path: Path, tree: ast.AST) -> list[str]:
    """Private names ``path`` imports from outside its own package. ``companion._validate`` (the
    shared argument checks) is private to ``companion`` and so usable by all of its subpackages."""
    own = _package_of(path)
    bad = []
    for module, name in _imports(tree):
        if not module.startswith("companion"):
            continue
        target = f"{module}.{name}" if name is not None else module
        if not _is_private(target):
            continue
        private_at = next(i for i, part in enumerate(target.split(".")) if _is_private(part))
        prefix = target.split(".")[:private_at]
        while prefix and not (ROOT / Path(*prefix)).is_dir():  # a module's private name: its package's
            prefix = prefix[:-1]
        owner = ".".join(prefix)  # the package the private name belongs to
        inside = own == owner or own.startswith(owner + ".")
        if not inside:
            bad.append(f"{path.relative_to(ROOT)} imports {target} (private to {owner})")
    return bad


def test_no_module_imports_a_private_name_from_another_package():
    bad = [msg for path in MODULES for msg in _private_crossings(path, ast.parse(path.read_text("utf-8")))]
    assert not bad, "\n".join(bad)


def _script_sources() -> list[tuple[str, str]]:
    """``(label, code)`` of every script and notebook code cell outside the package."""
    out = [(str(p.relative_to(ROOT)), p.read_text("utf-8")) for d in ("experiments", "benchmarks", "tools")
           for p in sorted((ROOT / d).glob("*.py"))]  # fmt: skip
    for nb in sorted((ROOT / "notebooks").rglob("*.ipynb")):
        for i, cell in enumerate(json.loads(nb.read_text("utf-8"))["cells"]):
            if cell["cell_type"] == "code":
                code = "\n".join(
                    line
                    for line in "".join(cell["source"]).splitlines()
                    if not line.lstrip().startswith(("%", "!"))
                )
                out.append((f"{nb.relative_to(ROOT)} cell {i}", code))
    return out


def test_chapters_scripts_and_benchmarks_use_only_public_names():
    bad = []
    for label, code in _script_sources():
        for module, name in _imports(ast.parse(code)):
            target = module if name is None else f"{module}.{name}"
            if target.startswith("companion") and _is_private(target):
                bad.append(f"{label}: {target}")
    assert not bad, "\n".join(bad)


# What each layer may import from the package (besides itself and the helpers at the root).
LAYERS = {
    "companion.nn": {"companion.nn"},
    "companion.tokenizers": {"companion.tokenizers"},
    "companion.metrics": {"companion.metrics"},
}
HELPERS = {
    "companion._validate",
    "companion.data",
    "companion.device",
    "companion.files",
    "companion.gguf",  # file formats and pinned assets: the BPE tokenizer reads GGUF vocabularies
    "companion.hub",
    "companion.testing",
}


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_lower_layers_import_no_higher_one(layer):
    bad = []
    for path in MODULES:
        if not _module_name(path).startswith(layer):
            continue
        for module, _ in _imports(ast.parse(path.read_text("utf-8"))):
            if not module.startswith("companion") or module in HELPERS or module == "companion":
                continue
            if not any(module == ok or module.startswith(ok + ".") for ok in LAYERS[layer]):
                bad.append(f"{path.relative_to(ROOT)} imports {module}")
    assert not bad, "\n".join(bad)


def test_the_package_imports_no_notebook_test_or_script():
    bad = [
        f"{path.relative_to(ROOT)} imports {module}"
        for path in MODULES
        for module, _ in _imports(ast.parse(path.read_text("utf-8")))
        if module.split(".")[0] in {"tests", "notebooks", "experiments", "benchmarks", "tools"}
    ]
    assert not bad, "\n".join(bad)


def test_no_module_holds_two_ideas():
    sizes = {str(p.relative_to(ROOT)): len(p.read_text("utf-8").splitlines()) for p in MODULES}
    too_long = {p: n for p, n in sizes.items() if n > MAX_LINES and not p.startswith(EXEMPT)}
    assert not too_long, f"modules over {MAX_LINES} lines (split them, one module per idea): {too_long}"


def test_the_checks_catch_what_they_look_for():
    """The private-name rule on sources made up for the purpose, inside and across packages."""
    nn_module = PACKAGE / "nn" / "example.py"
    cases = {
        "from companion.tokenizers.bpe import _merge_pair": True,  # private, another package
        "from companion.tokenizers import _bytes": True,  # a private module of another package
        "import companion.train._impl": True,
        "from companion.nn.sdpa import _to_groups": False,  # private, same package
        "from companion._validate import check_tensor": False,  # companion's own helpers
        "from companion.nn.sdpa import softmax": False,
    }
    for code, crosses in cases.items():
        assert bool(_private_crossings(nn_module, ast.parse(code))) is crosses, code
