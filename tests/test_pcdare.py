"""PCdare importer on two real subjects (skipped when ../shared/data/pcdare is absent)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from pcdiff.data.io import InvalidScanError, read_dataset, read_point_cloud, write_point_cloud
from pcdiff.data.pcdare import isl_depth, main, radiograph_shift_mm, read_pcdare
from pcdiff.data.units import line_surface_distance

pytestmark = pytest.mark.real_data
IDS = ["1", "2"]


@pytest.fixture
def two(pcdare_dir):
    return read_pcdare(pcdare_dir, ids=IDS, skip_invalid=False)


def test_units_axes_and_landmarks(two, pcdare_dir):
    assert [s.name for s in two] == ["pcdare_1", "pcdare_2"]
    for s in two:
        # millimetres: a back is several hundred mm tall; every source point kept
        extent = s.points.max(0) - s.points.min(0)
        assert 300 < extent[1] < 1000 and 200 < extent[0] < 800
        src_pts, _, _ = read_point_cloud(next((pcdare_dir / "Upright" / s.meta["id"]).glob("*.ply")))
        assert len(s.points) == len(src_pts)
        np.testing.assert_allclose(s.points, src_pts * np.array([1000, -1000, -1000]), rtol=1e-6, atol=1e-3)
        # y up: C7 above DM; +x right: marker 3 (DR) right of marker 4 (DL)
        assert s.landmarks["C7"][1] > s.landmarks["DM"][1] + 250
        assert s.landmarks["DR"][0] > s.landmarks["DL"][0]
        np.testing.assert_allclose(s.landmarks["DM"], (s.landmarks["DL"] + s.landmarks["DR"]) / 2)
        # ESL on the surface (within a few mm), ISL behind it at negative z relative to the ESL
        assert np.median(line_surface_distance(s.esl, s.points)) < 3.0
        assert 30 < isl_depth(s.esl, s.isl) < 100
        assert np.median(s.isl[:, 2]) < np.median(s.esl[:, 2])
        # the scanner sees the back: the surface faces +z around the spine (flanks recede)
        assert s.meta["dataset"] == "pcdare" and isinstance(s.meta["cobb"], float)
    assert two[0].meta["cobb"] == 41.0 and two[1].meta["cobb"] == 33.0


def test_marker_mapping_matches_json(two, pcdare_dir):
    s = two[0]
    doc = json.loads(next((pcdare_dir / "Upright" / "1" / "Output").glob("*.json")).read_text())
    world = np.array([m["World"] for m in doc["pcMarkers"]]) * [1, -1, -1]
    np.testing.assert_allclose(s.landmarks["C7"], world[0], rtol=1e-6)
    np.testing.assert_allclose(s.landmarks["DR"], world[2], rtol=1e-6)
    np.testing.assert_allclose(s.landmarks["DL"], world[3], rtol=1e-6)
    np.testing.assert_allclose(s.esl, np.array(doc["pcLinePts"]) * [1, -1, -1], rtol=1e-6)
    np.testing.assert_allclose(s.isl, np.array(doc["islLinePts"]) * [1, -1, -1], rtol=1e-6)
    skin = np.array(s.meta["pcdare_radiograph_skin_line"])
    np.testing.assert_allclose(skin, np.array(doc["eslLinePts"]) * [1, -1, -1], rtol=1e-6)
    shift = radiograph_shift_mm(s)  # subject 1's radiograph sits within a few mm of the scan sideways
    assert shift[1] == 0 and abs(shift[0]) < 5 and abs(shift[2]) < 40


def _copy(pcdare_dir, dst, ids=IDS):
    (dst / "Upright").mkdir(parents=True)
    shutil.copy(pcdare_dir / "CobbAngles.csv", dst / "CobbAngles.csv")
    for i in ids:
        shutil.copytree(pcdare_dir / "Upright" / i, dst / "Upright" / i)
        for p in (dst / "Upright" / i).rglob("*"):
            p.chmod(0o755 if p.is_dir() else 0o644)  # the shared copy is read-only
        (dst / "Upright" / i).chmod(0o755)
    return dst


def _ply(src, i):
    return next((src / "Upright" / i).glob("*.ply"))


def _json(src, i):
    return next((src / "Upright" / i / "Output").glob("*.json"))


def _edit_json(path, fn):
    doc = json.loads(path.read_text())
    fn(doc)
    path.write_text(json.dumps(doc))


CORRUPTIONS = {
    "missing ply": (lambda s: _ply(s, "2").unlink(), "expected exactly one \\*.ply"),
    "empty ply": (lambda s: _ply(s, "2").write_bytes(b""), "empty file"),
    "corrupt ply": (lambda s: _ply(s, "2").write_bytes(b"ply\nformat nonsense\n"), "unreadable or empty"),
    "missing json": (lambda s: _json(s, "2").unlink(), "expected exactly one \\*Markers\\*.json"),
    "corrupt json": (lambda s: _json(s, "2").write_text("{"), "invalid JSON"),
    "empty json": (lambda s: _json(s, "2").write_text(""), "invalid JSON"),
    "no isl": (lambda s: _edit_json(_json(s, "2"), lambda d: d.pop("islLinePts")), "no 'islLinePts'"),
    # the radiograph skin line instead of the on-scan line: 8-23 mm off the surface
    "wrong line": (
        lambda s: _edit_json(_json(s, "2"), lambda d: d.update(pcLinePts=d["eslLinePts"])),
        "ESL lies .* from the scan surface",
    ),
    "swapped dimples": (
        lambda s: _edit_json(_json(s, "2"), lambda d: d.update(pcMarkers=[d["pcMarkers"][i] for i in (0, 1, 3, 2)])),
        "marker 3 .* is not right of marker 4",
    ),
    "ply already in mm": (
        lambda s: write_point_cloud(_ply(s, "2"), read_point_cloud(_ply(s, "2"))[0] * 1000),
        "fits neither millimetres",
    ),
}


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_bad_subject_named_skipped_counted(pcdare_dir, tmp_path, case, capsys):
    src = _copy(pcdare_dir, tmp_path / "src")
    corrupt, message = CORRUPTIONS[case]
    corrupt(src)
    with pytest.raises(InvalidScanError, match=message):
        read_pcdare(src, skip_invalid=False)
    scans = read_pcdare(src)
    assert [s.name for s in scans] == ["pcdare_1"]
    assert len(scans.skipped) == 1 and "Upright/2" in str(scans.skipped[0][0])
    before = {p: p.stat().st_mtime_ns for p in src.rglob("*")}
    assert main([str(src), str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "imported 1 of 2 subjects" in out and "not imported" in out and "Upright/2" in out
    assert {p: p.stat().st_mtime_ns for p in src.rglob("*")} == before  # source untouched


def test_cli_round_trip_and_exit_codes(pcdare_dir, tmp_path, capsys):
    src = _copy(pcdare_dir, tmp_path / "src", ids=["1"])
    out = tmp_path / "out"
    assert main([str(src), str(out)]) == 0
    text = capsys.readouterr().out
    assert "pcdare_1" in text and "ESL length" in text and "ISL depth" in text
    assert (out / "pcdare_1" / "pcdare_1_processed.ply").is_file()
    (back,) = read_dataset(out)  # the 4D-Spine reader reads the import without any conversion
    (direct,) = read_pcdare(src)
    np.testing.assert_array_equal(back.points, direct.points)
    np.testing.assert_array_equal(back.isl, direct.isl)
    assert back.meta["cobb"] == 41.0 and back.meta["dataset"] == "pcdare"
    # existing output is not overwritten
    assert main([str(src), str(out)]) == 1
    assert "overwrite" in capsys.readouterr().out
    assert main([str(src), str(out), "--overwrite"]) == 0
    # nothing importable -> non-zero exit
    _ply(src, "1").write_bytes(b"")
    assert main([str(src), str(tmp_path / "out2")]) == 1
    with pytest.raises(SystemExit):
        main([str(src), str(src / "inside")])


def test_datamodule_reads_pcdare_directly(pcdare_dir, tmp_path):
    from pcdiff.data.datamodule import BackScanDataModule

    src = _copy(pcdare_dir, tmp_path / "src")
    dm = BackScanDataModule(data_dir=str(src), cache_dir=str(tmp_path / "cache"), num_points=512, num_keypoints=16,
                            line="isl", batch_size=2, val_fraction=0.0, test_fraction=0.0, augment=False)
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    assert batch["points"].shape == (2, 512, 3) and batch["spine"].shape == (2, 16, 3)
    assert sorted(batch["name"]) == ["pcdare_1", "pcdare_2"]
    assert (batch["landmarks"][:, 0, 1] > batch["landmarks"][:, 3, 1]).all()
