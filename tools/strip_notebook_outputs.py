"""Strip outputs, execution counts and per-run metadata from Jupyter notebooks, so git holds only code.

Usage:
    python tools/strip_notebook_outputs.py notebooks/*.ipynb          # rewrite in place
    python tools/strip_notebook_outputs.py --check notebooks/*.ipynb  # exit 1 listing unstripped files

Hand-written with nbformat (a dependency already) rather than nbstripout or nbconvert, which pcdiff
does not otherwise need.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

# Notebook-level metadata keys written by a run (widget state, timings) rather than by the author.
RUN_METADATA = ("widgets", "execution")


def unstripped_reasons(nb: nbformat.NotebookNode) -> list[str]:
    """What a run left in ``nb``: cells with outputs or execution counts, run metadata; empty when clean."""
    reasons = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        if cell.get("outputs"):
            reasons.append(f"cell {i} has outputs")
        if cell.get("execution_count") is not None:
            reasons.append(f"cell {i} has an execution count")
        if "execution" in cell.get("metadata", {}):
            reasons.append(f"cell {i} has execution timing metadata")
    reasons += [f"notebook metadata has {key!r}" for key in RUN_METADATA if key in nb.metadata]
    return reasons


def strip(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Remove outputs, execution counts and run metadata from ``nb`` in place and return it."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
            cell.metadata.pop("execution", None)
    for key in RUN_METADATA:
        nb.metadata.pop(key, None)
    return nb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path, help=".ipynb files")
    parser.add_argument("--check", action="store_true", help="only report unstripped notebooks (exit 1 if any)")
    args = parser.parse_args(argv)
    dirty = 0
    for path in args.notebooks:
        if path.suffix != ".ipynb":
            parser.error(f"{path}: expected a .ipynb file")
        nb = nbformat.read(path, as_version=nbformat.NO_CONVERT)
        reasons = unstripped_reasons(nb)
        if not reasons:
            continue
        dirty += 1
        if args.check:
            print(f"{path}: " + "; ".join(reasons))
        else:
            nbformat.write(strip(nb), path)
            print(f"stripped {path}")
    return 1 if args.check and dirty else 0


if __name__ == "__main__":
    sys.exit(main())
