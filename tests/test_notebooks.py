"""Notebooks are committed without outputs, and the stripping tool finds and removes them.

The notebooks themselves are executed by nbmake (``pytest --nbmake notebooks/``, run by ``make test``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
EXPECTED = {"visualize_point_clouds.ipynb", "dataset_eda.ipynb", "training_results.ipynb"}

_spec = importlib.util.spec_from_file_location("strip_notebook_outputs", ROOT / "tools" / "strip_notebook_outputs.py")
strip_tool = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(strip_tool)


def test_expected_notebooks_exist():
    assert EXPECTED <= {p.name for p in NOTEBOOKS}, f"missing notebooks: {EXPECTED - {p.name for p in NOTEBOOKS}}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stripped(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    reasons = strip_tool.unstripped_reasons(nb)
    assert not reasons, f"{path.name}: {reasons}; run `python tools/strip_notebook_outputs.py {path.relative_to(ROOT)}`"


def test_strip_tool_removes_outputs(tmp_path):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("print(1)", execution_count=3)
    cell.outputs = [nbformat.v4.new_output("stream", text="1\n")]
    cell.metadata["execution"] = {"iopub.execute_input": "2026-01-01"}
    nb.cells = [nbformat.v4.new_markdown_cell("# t"), cell]
    nb.metadata["widgets"] = {"state": {}}
    path = tmp_path / "dirty.ipynb"
    nbformat.write(nb, path)

    assert strip_tool.main(["--check", str(path)]) == 1
    assert len(strip_tool.unstripped_reasons(nbformat.read(path, as_version=4))) == 4
    assert strip_tool.main([str(path)]) == 0
    clean = nbformat.read(path, as_version=4)
    assert strip_tool.unstripped_reasons(clean) == []
    assert clean.cells[1].source == "print(1)" and clean.cells[0].source == "# t"
    assert strip_tool.main(["--check", str(path)]) == 0
