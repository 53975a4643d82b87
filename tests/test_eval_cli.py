import json

import numpy as np
import pytest
import torch

from pcdiff.data.io import write_subject
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
                   "--pair-by-position", "--out", str(out), "--no-progress"])  # fmt: skip
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
    res = main(["--metric", "all", "--generated", str(gen), "--reference", str(ref), "--num-points", "64",
                "--pair-by-position", "--no-progress"])  # fmt: skip
    assert res["metrics"]["lateral dev. (symmetry) median [mm]"] < 5.0  # spine uses the full scans
    m = res["metrics"]
    for key in ("EMD (exact) [mm]", "MMD-CD [mm^2]", "COV-EMD [%]", "1-NNA-CD [%]", "JSD [bits]", "ESL-surface mean [mm]",
                "ESL-local plane mean [mm]"):
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
        main(["--metric", "chamfer", "--generated", str(gen), "--reference", str(ref), "--num-points", "5000",
              "--pair-by-position"])  # fmt: skip


def test_cli_reads_scan_folders(tmp_path, backscan_factory):
    for split in ("gen", "ref"):
        for i in range(3):
            write_subject(backscan_factory(seed=i + (10 if split == "ref" else 0), num_points=2000, name=f"s{i}"), tmp_path / split)
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


def test_a_missing_plugin_module_is_an_error(monkeypatch):
    from pcdiff.metrics import registry

    monkeypatch.setattr(registry, "PLUGIN_MODULES", ["pcdiff.estimator.no_such_metric"])
    with pytest.raises(ModuleNotFoundError, match="metric plugin 'pcdiff.estimator.no_such_metric'"):
        registry.load_plugins()
    with pytest.raises(ModuleNotFoundError, match="metric plugin 'no_such_package'"):
        registry.load_plugins(["no_such_package"], builtin_plugins=False)


# ---------------------------------------------------------------- pairing by subject name (issue #14.2)
def _named(tmp_path, file, names, seed, n=200):
    """An .npz of len(names) clouds (S, n, 3) with their subject names; cloud k of subject s is seeded by s."""
    clouds = np.stack([_clouds(seed + int(name[1:]), s=1, n=n)[0] for name in names])
    np.savez(tmp_path / file, points=clouds, names=np.array(names))
    return tmp_path / file


def test_paired_metrics_pair_by_subject_name_not_position(tmp_path, capsys):
    gen = _named(tmp_path, "gen.npz", ["s0", "s1", "s2"], seed=0)
    ref = _named(tmp_path, "ref.npz", ["s2", "s0", "s1"], seed=0)  # the same clouds in another order
    res = main(["--metric", "chamfer", "--generated", str(gen), "--reference", str(ref), "--no-progress"])
    assert res["config"]["pairing"] == "name"
    assert res["per_sample"]["chamfer"]["CD squared-sum"] == pytest.approx([0, 0, 0], abs=1e-6)  # each with itself
    assert "pairs: by subject name (3 pairs)" in capsys.readouterr().out
    # positional pairing only when asked for, and the output says so
    res = main(["--metric", "chamfer", "--generated", str(gen), "--reference", str(ref), "--pair-by-position", "--no-progress"])
    assert res["config"]["pairing"] == "position" and min(res["per_sample"]["chamfer"]["CD squared-sum"]) > 1.0
    assert "BY POSITION" in capsys.readouterr().out


def test_unmatched_names_are_an_error_listing_them(tmp_path):
    gen = _named(tmp_path, "gen.npz", ["s0", "s1", "s3"], seed=0)
    ref = _named(tmp_path, "ref.npz", ["s0", "s1", "s2"], seed=0)
    with pytest.raises(SystemExit, match=r"1 generated only \['s3'\], 1 reference only \['s2'\].*--pair-by-position"):
        main(["--metric", "chamfer", "emd", "--generated", str(gen), "--reference", str(ref), "--no-progress"])
    # set metrics compare the sets as wholes: no pairing needed
    res = main(["--metric", "mmd", "--set-distances", "cd", "--generated", str(gen), "--reference", str(ref), "--no-progress"])
    assert res["config"]["pairing"] is None and np.isfinite(res["metrics"]["MMD-CD [mm^2]"])
    # scan counts differ: even positional pairing is refused
    short = _named(tmp_path, "short.npz", ["s0", "s1"], seed=0)
    with pytest.raises(SystemExit, match="counts must match"):
        main(["--metric", "chamfer", "--generated", str(short), "--reference", str(ref), "--pair-by-position"])


def test_arrays_without_names_need_the_position_flag(arrays):
    gen, ref = arrays  # .npz / .pt without 'names'
    with pytest.raises(SystemExit, match=r"--generated .*gen.npz and --reference .*ref.pt store no subject names.*--pair-by-position"):
        main(["--metric", "fscore", "--generated", str(gen), "--reference", str(ref), "--no-progress"])


def test_spine_metric_with_unpairable_reference_uses_the_generated_line(tmp_path, backscan_factory):
    gen = tmp_path / "gen.npz"
    scans = [backscan_factory(seed=i, num_points=1500) for i in range(2)]
    np.savez(gen, points=np.stack([s.points for s in scans]), esl=np.stack([s.esl for s in scans]), names=np.array(["a", "b"]))
    ref = _named(tmp_path, "ref.npz", ["s0", "s1"], seed=0, n=1500)
    res = main(["--metric", "spine", "--generated", str(gen), "--reference", str(ref), "--no-progress"])
    assert res["per_sample"]["spine"]["name"] == ["a", "b"]


# ---------------------------------------------------------------- points as given unless resampling is needed (#14.6)
def test_defaults_accept_pcdiffs_own_output(tmp_path, capsys):
    """(S, 1024, 3) arrays, as pcdiff generates, with no --num-points: used as given, and the output says so."""
    gen, ref = _named(tmp_path, "gen.npz", ["s0", "s1"], 0, n=1024), _named(tmp_path, "ref.npz", ["s0", "s1"], 5, n=1024)
    res = main(["--metric", "chamfer", "--generated", str(gen), "--reference", str(ref), "--no-progress"])
    assert res["config"]["points_per_scan"] == 1024
    assert "points: as given (1024 per scan)" in capsys.readouterr().out
    # point counts that differ are resampled to the smallest (up to 2048), and the output says why
    small = _named(tmp_path, "small.npz", ["s0", "s1"], 5, n=700)
    res = main(["--metric", "chamfer", "--generated", str(gen), "--reference", str(small), "--no-progress"])
    assert res["config"]["points_per_scan"] == 700
    assert "resampled to 700 per scan" in capsys.readouterr().out and "counts differ (700-1024)" in res["notes"][-1]
    # asked for: resampled
    res = main(["--metric", "chamfer", "--generated", str(gen), "--reference", str(ref), "--num-points", "256", "--no-progress"])
    assert res["config"]["points_per_scan"] == 256 and "--num-points" in res["notes"][-1]


def test_spine_metric_needs_no_num_points(arrays, capsys):
    gen, _ = arrays  # 1500 points a scan, below the old default of 2048
    res = main(["--metric", "spine", "--generated", str(gen), "--no-progress"])
    assert len(res["per_sample"]["spine"]["name"]) == 4 and res["config"]["points_per_scan"] is None
    assert "points: full scans" in capsys.readouterr().out


@pytest.mark.parametrize("value", ["0", "-3", "x"])
def test_num_points_must_be_positive(arrays, value, capsys):
    gen, ref = arrays
    with pytest.raises(SystemExit) as exc:
        main(["--metric", "chamfer", "--generated", str(gen), "--reference", str(ref), "--num-points", value])
    assert exc.value.code == 2 and "--num-points" in capsys.readouterr().err


def test_empty_folder_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match=r"--generated: no scans found in .*empty"):
        main(["--metric", "spine", "--generated", str(tmp_path / "empty")])


@pytest.mark.parametrize("suffix", [".npz", ".npy", ".pt"])
def test_damaged_array_file_is_a_clear_error(arrays, tmp_path, suffix):
    bad = tmp_path / f"bad{suffix}"
    bad.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(SystemExit, match=rf"--generated: .*bad\{suffix}: unreadable or corrupt \{suffix} file"):
        main(["--metric", "spine", "--generated", str(bad)])
