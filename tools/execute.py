"""Execute the book's notebooks so that their stored outputs are byte-stable (CONTRIBUTING.md).

    python tools/execute.py notebooks/transformer/attention.ipynb [MORE.ipynb ...]
    python tools/execute.py --normalize-only notebooks          # tidy the stored outputs, run nothing

A kernel sends a cell's printout in pieces, as it is printed (every 0.2 s), so re-running a notebook
stores a different number of stream outputs each time, and a tqdm bar stores one piece per redraw (the
GPT chapter's training cell rendered as ten boxes). The learner's kernel should keep doing that — a loop
that prints every two seconds must show each line when it is printed — so the book does not touch
``sys.stdout`` in its setup cells. Instead this tool executes the notebook (``record_timing=False``: no
timestamps in the file) and then normalizes what it stores:

* consecutive stream outputs of the same name become one (an image between two prints stays between them);
* a carriage return erases the line before it and a backspace the character before it, as a terminal
  shows them, so a progress bar is stored as its last state.

nbval merges and cleans the streams it compares in the same way, so normalizing changes nothing nbval
checks; ``tests/test_book.py`` checks that every stored notebook is normalized.
"""

from __future__ import annotations

import argparse
import copy
import os
import re
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

import nbformat

_CARRIAGE_RETURN = re.compile(r"^.*\r(?=[^\n])", re.MULTILINE)  # text before a \r that is not a line end
_BACKSPACE = re.compile(r"[^\n]\x08")


def clean_stream_text(text: str) -> str:
    """What a terminal shows for ``text``: each ``\\r`` erases its line so far, each backspace the
    character before it; a lone ``\\r`` before a newline is dropped."""
    old = None
    while old != text:
        old = text
        text = _BACKSPACE.sub("", text)
    text = _CARRIAGE_RETURN.sub("", text)
    return text.replace("\r\n", "\n").replace("\r", "")


def normalize_outputs(outputs: list) -> list:
    """Merge consecutive stream outputs of the same name and clean their text (see the module)."""
    merged: list = []
    for out in outputs:
        if (
            out.get("output_type") == "stream"
            and merged
            and merged[-1].get("output_type") == "stream"
            and merged[-1].get("name") == out.get("name")
        ):
            merged[-1]["text"] = merged[-1]["text"] + out["text"]
        else:
            merged.append(out)
    for out in merged:
        if out.get("output_type") == "stream":
            out["text"] = clean_stream_text(out["text"])
    return [o for o in merged if o.get("output_type") != "stream" or o["text"]]


def is_normalized(nb: nbformat.NotebookNode) -> list[str]:
    """The problems that :func:`normalize_outputs` would fix, one line per cell (empty: none)."""
    problems = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        if normalize_outputs(copy.deepcopy(cell.outputs)) != cell.outputs:
            problems.append(f"cell {i}: its stream outputs are split or hold raw \\r / backspace redraws")
    return problems


def _notebooks(paths: Iterable[str]) -> list[Path]:
    found = []
    for p in map(Path, paths):
        if p.is_dir():
            found += sorted(p.rglob("*.ipynb"))
        elif p.suffix == ".ipynb" and p.exists():
            found.append(p)
        else:
            raise SystemExit(f"paths: {p} is neither a folder nor a notebook file")
    return [p for p in found if ".ipynb_checkpoints" not in p.parts]


def run(path: Path, *, execute: bool = True, timeout: int = 600) -> None:
    """Execute ``path`` in its own folder (unless ``execute=False``), normalize, and write it back."""
    nb = nbformat.read(path, as_version=4)
    if execute:
        from nbclient import NotebookClient

        # the chapter's grade() calls (stubs and solutions) must not land in the author's progress record
        os.environ.setdefault("LLMF_PROGRESS", os.path.join(tempfile.mkdtemp(), "progress.json"))
        client = NotebookClient(
            nb, timeout=timeout, kernel_name="python3", record_timing=False,
            resources={"metadata": {"path": str(path.parent.resolve())}},
        )  # fmt: skip
        client.execute()
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = normalize_outputs(cell.outputs)
    nbformat.write(nb, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", help="notebooks, or folders to search for them")
    parser.add_argument("--normalize-only", action="store_true", help="tidy stored outputs; execute nothing")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell (default 600)")
    args = parser.parse_args(argv)
    for path in _notebooks(args.paths):
        print(f"{'normalizing' if args.normalize_only else 'executing'} {path}", flush=True)
        run(path, execute=not args.normalize_only, timeout=args.timeout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
