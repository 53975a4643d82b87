import json

import numpy as np
import pytest
import torch

from pcdiff.eval import main
from pcdiff.metrics.registry import METRICS, EvalInputs, EvalOutput, Option, register_metric


def _clouds(seed: int, s: int = 4, n: int = 1500) -> np.ndarray:
    from conftest import make_backscan

    return np.stack([make_backscan(seed * 10 + i, n).points for i in range(s)]).astype(np.float32)


@pytest.fixture
def arrays(tmp_path):
    from conftest import make_backscan

    gen, ref = _clouds(0), _clouds(1)
    esl = np.stack([make_backscan(i, 1500).esl for i in range(4)])
    np.savez(tmp_path / "gen.npz", points=gen, esl=esl)
    torch.save(torch.from_numpy(ref), tmp_path / "ref.pt")
    return tmp_path / "gen.npz", tmp_path / "ref.pt"


def test_cli_chamfer_matches_library_and_writes_json(arrays, tmp_path, capsys):
    gen, ref = arrays
    out = tmp_path / "res.json"
    result = main(["--metric", "chamfer,fscore", "--generated", str(gen), "--reference", str(ref),
                   "--num-points", "1500", "--out", str(out), "--no-progress"])  # fmt: skip
    table = capsys.readouterr().out
    assert "CD squared-sum [mm^2]" in table and "Fscore @10mm [%]" in table
    saved = json.loads(out.read_text())
    from scipy.spatial import cKDTree

    g, r = _clouds(0), _clouds(1)
    expected = np.mean([
        (cKDTree(b).query(a)[0] ** 2).mean() + (cKDTree(a).query(b)[0] ** 2).mean() for a, b in zip(g, r)
    ])  # fmt: skip
    assert saved["metrics"]["CD squared-sum [mm^2]"] == pytest.approx(expected, rel=1e-5)
    assert len(saved["per_sample"]["chamfer"]["CD squared-sum"]) == 4
    assert result["config"]["metric"] == ["chamfer", "fscore"]


def test_cli_all_metrics_run_on_small_arrays(arrays):
    gen, ref = arrays
    res = main(["--metric", "all", "--generated", str(gen), "--reference", str(ref), "--num-points", "64", "--no-progress"])
    assert res["metrics"]["lateral dev. (symmetry) median [mm]"] < 5.0  # spine uses the full scans
    m = res["metrics"]
    for key in ("EMD (exact) [mm]", "MMD-CD [mm^2]", "COV-EMD [%]", "1-NNA-CD [%]", "JSD [bits]", "ESL-surface mean [mm]"):
        assert key in m and np.isfinite(m[key]), key


def test_cli_errors_are_clear(arrays, tmp_path):
    gen, ref = arrays
    with pytest.raises(SystemExit, match="--generated: .* does not exist"):
        main(["--metric", "chamfer", "--generated", str(tmp_path / "nope"), "--reference", str(ref)])
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((4, 10)))
    with pytest.raises(SystemExit, match=r"expected points of shape \(S, N, 3\)"):
        main(["--metric", "chamfer", "--generated", str(bad), "--reference", str(ref)])
    with pytest.raises(SystemExit, match="unknown"):
        main(["--metric", "hausdorff", "--generated", str(gen), "--reference", str(ref)])
    with pytest.raises(SystemExit, match="--reference is required"):
        main(["--metric", "mmd", "--generated", str(gen)])
    with pytest.raises(SystemExit, match="fewer than --num-points"):
        main(["--metric", "chamfer", "--generated", str(gen), "--reference", str(ref), "--num-points", "5000"])


def test_cli_reads_scan_folders(tmp_path, backscan_factory):
    io = pytest.importorskip("pcdiff.data.io")
    for split in ("gen", "ref"):
        for i in range(3):
            io.write_subject(backscan_factory(seed=i + (10 if split == "ref" else 0), num_points=2000, name=f"s{i}"), tmp_path / split)
    res = main(["--metric", "chamfer", "spine", "--generated", str(tmp_path / "gen"), "--reference", str(tmp_path / "ref"),
                "--num-points", "2000", "--no-progress"])  # fmt: skip
    assert res["config"]["num_generated"] == 3
    assert res["per_sample"]["spine"]["name"] == ["s0", "s1", "s2"]  # paired by name
    assert res["metrics"]["lateral dev. (symmetry) mean [mm]"] < 5.0


def test_registry_accepts_a_plugin_metric_with_its_own_option(arrays):
    gen, ref = arrays

    @register_metric("test_points", "number of generated points", options=(Option("--test-scale", float, 1.0, "scale"),), needs_reference=False)
    def _count(inputs: EvalInputs, test_scale: float) -> EvalOutput:
        return EvalOutput({"points": test_scale * inputs.generated_points.shape[1]})

    try:
        res = main(["--metric", "test_points", "--generated", str(gen), "--num-points", "100", "--test-scale", "2", "--no-progress"])
        assert res["metrics"] == {"points": 200.0}
        with pytest.raises(ValueError, match="already registered"):
            register_metric("test_points", "again")(_count)
    finally:
        METRICS.pop("test_points")
