"""The phantom dataset writer and its CLI: round trip through pcdiff.data.io.read_dataset."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from pcdiff.data.io import read_dataset
from pcdiff.data.phantom import generate_phantom
from pcdiff.data.synth import main, phantom_name, write_phantom_dataset


def test_cli_writes_a_readable_dataset(tmp_path, capsys):
    out = tmp_path / "phantom"
    assert main(["--out", str(out), "--n", "3", "--seed", "5", "--points", "300",
                 "--cobb-min", "20", "--cobb-max", "30", "--curve-types", "thoracic", "lumbar"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["n"] == 3
    scans = sorted(read_dataset(out), key=lambda s: s.name)
    assert [s.name for s in scans] == [phantom_name(5, i) for i in range(3)]
    for i, scan in enumerate(scans):
        assert scan.points.shape == (300, 3)
        assert set(scan.landmarks) >= {"C7", "DL", "DR", "DM"}
        spine = scan.meta["phantom"]["spine"]
        assert 20 <= spine["cobb_deg"] <= 30 and spine["curve_type"] in ("thoracic", "lumbar")
        assert scan.meta["cobb"] == pytest.approx(spine["cobb_deg"])
        # Same scan as generated in memory (float32 written exactly).
        ref = generate_phantom([5, i], 300, name=scan.name, spine_prior={
            "cobb_min": 20, "cobb_max": 30, "curve_types": ("thoracic", "lumbar")})
        np.testing.assert_array_equal(scan.points, ref.points)
        np.testing.assert_allclose(scan.isl, ref.isl, atol=1e-4)


def test_same_seed_prefix_and_refusal_to_overwrite(tmp_path):
    a = write_phantom_dataset(tmp_path / "a", 2, seed=1, num_points=128)
    b = write_phantom_dataset(tmp_path / "b", 3, seed=1, num_points=128)
    for fa, fb in zip(a, b):
        assert fa.name == fb.name
        pa, pb = (next(f.glob("*_processed.ply")).read_bytes() for f in (fa, fb))
        assert pa == pb, "scan i does not depend on n"
    with pytest.raises(FileExistsError):
        write_phantom_dataset(tmp_path / "a", 1, seed=1, num_points=128)
    with pytest.raises(ValueError, match="n must be"):
        write_phantom_dataset(tmp_path / "c", 0, seed=1)


def test_module_entry_point_runs(tmp_path):
    res = subprocess.run([sys.executable, "-m", "pcdiff.data.synth", "--out", str(tmp_path / "d"), "--n", "1",
                          "--points", "300"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert len(read_dataset(tmp_path / "d")) == 1
