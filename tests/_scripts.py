"""Load a script of the repository (benchmarks/, experiments/) as a module, and compare the structure of
the results it writes with a committed file, for its tests."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def load_script(relative_path: str) -> ModuleType:
    """The module defined by ``ROOT / relative_path``, executed afresh (its ``main`` is not run).

    The script's folder goes on ``sys.path``, as ``python folder/script.py`` puts it there, so that a
    script can import its siblings (``experiments/scaling_lr_check.py`` imports ``scaling_grid``).
    """
    path = ROOT / relative_path
    if str(path.parent) not in sys.path:
        sys.path.append(str(path.parent))
    spec = importlib.util.spec_from_file_location(f"script_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    # Registered before it runs, as an import would be: dataclasses (and pickling) look classes up in
    # sys.modules by their __module__.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def json_structure(tree: object) -> object:
    """The nested key structure of a JSON value (a list by its first element; a leaf by its type name):
    two results files with equal structures have the same format, whatever their numbers."""
    if isinstance(tree, dict):
        return {k: json_structure(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [json_structure(tree[0])] if tree else []
    return type(tree).__name__
