"""The benchmarks' shared results writer (benchmarks.reporting) and realism's 1-NNA (benchmarks.realism)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks.realism import nna_between
from benchmarks.reporting import write_results
from pcdiff.metrics.chamfer import pairwise_chamfer


def test_write_results_writes_json_and_markdown(tmp_path: Path):
    payload = {"f32": np.float32(0.5), "i64": np.int64(3), "flag": np.bool_(True), "array": np.arange(3),
               "tensor": torch.tensor([1.5, 2.5]), "path": tmp_path / "x"}
    js, md = write_results("run", payload, "# title", tmp_path / "out", indent=1)
    assert (js, md) == (tmp_path / "out" / "run.json", tmp_path / "out" / "run.md")
    assert json.loads(js.read_text()) == {"f32": 0.5, "i64": 3, "flag": True, "array": [0, 1, 2],
                                          "tensor": [1.5, 2.5], "path": str(tmp_path / "x")}
    assert md.read_text() == "# title\n"


def test_write_results_without_markdown_writes_json_only(tmp_path: Path):
    js, md = write_results("only", {"a": 1}, None, tmp_path)
    assert md is None and js.is_file() and not (tmp_path / "only.md").exists()
    with pytest.raises(TypeError, match="cannot write object"):
        write_results("bad", {"a": object()}, None, tmp_path)


def _naive_nna(xs: np.ndarray, ys: np.ndarray) -> float:
    """Leave-one-out 1-NN accuracy from the full (A + B)^2 squared-Chamfer matrix, first index on ties."""
    union = torch.from_numpy(np.concatenate([xs, ys]))
    full = pairwise_chamfer(union).numpy()
    np.fill_diagonal(full, np.inf)
    labels = np.r_[np.zeros(len(xs)), np.ones(len(ys))]
    return float((labels[full.argmin(1)] == labels).mean())


@pytest.mark.parametrize("seed", range(6))
def test_realism_nna_matches_a_naive_leave_one_out(seed: int):
    rng = np.random.default_rng(seed)
    a, b = rng.integers(2, 10, size=2)
    xs = rng.normal(size=(a, 48, 3)).astype(np.float32)
    ys = (rng.normal(size=(b, 48, 3)) + 0.1 * seed).astype(np.float32)
    ys[:1] = xs[:1]  # a tie
    assert nna_between(xs, ys) == _naive_nna(xs, ys)


def test_command_line_names_the_module_of_a_module_run(tmp_path: Path):
    import subprocess
    import sys

    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "run.py").write_text("from benchmarks.reporting import command_line\nprint(command_line())\n")
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-m", "pkg.run", "--mode", "a b"], cwd=tmp_path, capture_output=True,
                         text=True, env={"PYTHONPATH": str(root), "PATH": ""}, check=True).stdout
    assert out.split(" ", 1)[1].strip() == "-m pkg.run --mode 'a b'"
