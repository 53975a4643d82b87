"""Reader / writer of the 4D-Spine and generic layouts, and every bad input named in issue 2."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import make_backscan

from pcdiff.data.io import (
    InvalidScanError,
    detect_layout,
    read_dataset,
    read_subject,
    write_point_cloud,
    write_subject,
)
from pcdiff.data.units import UnitConversionWarning

#: A copy of ../shared/formats/4dspine-example.json (invented example values), so a fresh clone runs the test.
EXAMPLE_JSON = Path(__file__).resolve().parent / "data" / "4dspine-example.json"


def _assert_same(a, b, colors_atol=0.0):
    assert a.name == b.name
    np.testing.assert_array_equal(a.points, b.points)
    np.testing.assert_array_equal(a.esl, b.esl)
    np.testing.assert_array_equal(a.isl, b.isl)
    assert set(a.landmarks) == set(b.landmarks)
    for k in a.landmarks:
        np.testing.assert_array_equal(a.landmarks[k], b.landmarks[k])


@pytest.mark.parametrize("binary", [True, False])
def test_round_trip_exact(tmp_path, binary):
    scan = make_backscan(1, 500)
    # Values that are not representable in few digits, to catch any float formatting loss.
    scan.points = scan.points + np.float32(1e-3) * np.pi
    scan.normals = np.tile(np.array([0.0, 0.0, 1.0], np.float32), (500, 1))
    scan.colors = np.random.default_rng(0).integers(0, 256, (500, 3)).astype(np.float32) / 255
    scan.meta["phantom"] = {"cobb_deg": np.float32(23.5), "curve_type": "thoracic", "apex": (7, 8)}
    scan.meta["cobb"] = 41
    folder = write_subject(scan, tmp_path, binary=binary)
    assert folder == tmp_path / scan.name
    assert (folder / f"{scan.name}_processed.ply").is_file()
    back = read_subject(folder)
    _assert_same(scan, back)
    np.testing.assert_array_equal(scan.normals, back.normals)
    np.testing.assert_allclose(scan.colors, back.colors, atol=1 / 510)
    assert back.meta["phantom"] == {"cobb_deg": 23.5, "curve_type": "thoracic", "apex": [7, 8]}
    assert back.meta["cobb"] == 41 and back.meta["age"] == 14
    # Reading by JSON path or PLY path gives the same subject.
    _assert_same(back, read_subject(folder / f"{scan.name}_processed.json"))
    _assert_same(back, read_subject(folder / f"{scan.name}_processed.ply"))


def test_writer_never_overwrites(tmp_path):
    scan = make_backscan(0, 300)
    write_subject(scan, tmp_path)
    with pytest.raises(FileExistsError, match=r"pass --overwrite \(overwrite=True in Python\)"):
        write_subject(scan, tmp_path)
    write_subject(scan, tmp_path, overwrite=True)


def test_reads_the_shared_example_format(tmp_path):
    """The example JSON's keys/nesting: specialPts without DM, lines keyed by pipeline, optional keys."""
    doc = json.loads(EXAMPLE_JSON.read_text())
    esl = np.array(doc["esl"]["pcdicomapp"], dtype=np.float32)
    # A surface around the example's ESL: a strip of points on the line, widened with curved flanks.
    rng = np.random.default_rng(0)
    t = rng.uniform(0, 1, 3000)
    idx = np.minimum((t * (len(esl) - 1)).astype(int), len(esl) - 2)
    frac = t * (len(esl) - 1) - idx
    base = esl[idx] * (1 - frac[:, None]) + esl[idx + 1] * frac[:, None]
    dx = rng.uniform(-150, 150, len(t))
    points = base + np.stack([dx, np.zeros_like(dx), -(dx**2) / 300], axis=1)
    sub = tmp_path / "balgrist" / "0042"
    sub.mkdir(parents=True)
    shutil.copy(EXAMPLE_JSON, sub / "0042processed.json")
    write_point_cloud(sub / "0042processed.ply", points, binary=False)
    scans = read_dataset(tmp_path)
    assert len(scans) == 1
    s = scans[0]
    assert s.name == "0042" and s.pipeline == "pcdicomapp"
    np.testing.assert_allclose(s.landmarks["DM"], (np.array(doc["specialPts"]["DL"]) + doc["specialPts"]["DR"]) / 2,
                               rtol=1e-6)
    assert s.meta["gender"] == "f" and s.meta["dataset"] == "balgrist"
    assert s.isl.shape == (9, 3)


def test_optional_metadata_and_pipeline_choice(tmp_path):
    scan = make_backscan(2, 400)
    scan.meta = {}
    folder = write_subject(scan, tmp_path)
    js = folder / f"{scan.name}_processed.json"
    doc = json.loads(js.read_text())
    assert "age" not in doc and "gender" not in doc and "status" not in doc
    doc["esl"] = {"formetric": (np.array(doc["esl"]["pcdicomapp"]) + [0, 0, 1]).tolist(), **doc["esl"]}
    js.write_text(json.dumps(doc))
    s = read_subject(folder)
    assert s.pipeline == "pcdicomapp"
    np.testing.assert_array_equal(s.esl, scan.esl)
    s2 = read_subject(folder, pipeline="formetric")
    np.testing.assert_allclose(s2.esl[:, 2], scan.esl[:, 2] + 1, atol=1e-4)
    assert s2.isl is None  # the ISL exists only under pcdicomapp
    with pytest.raises(InvalidScanError, match="no spinal line has pipeline .nope."):
        read_subject(folder, pipeline="nope")


def test_recursive_dataset_sorted(tmp_path):
    for i, ds in enumerate(["balgrist", "croatian", "balgrist"]):
        write_subject(make_backscan(i, 300, name=f"s{i}"), tmp_path / ds)
    assert detect_layout(tmp_path) == "4dspine"
    scans = read_dataset(tmp_path)
    assert [s.name for s in scans] == ["s0", "s1", "s2"]
    assert scans.skipped == []


# ----------------------------------------------------------------------------- bad input


def _subject(tmp_path, seed=0, name=None):
    scan = make_backscan(seed, 300, name=name)
    folder = write_subject(scan, tmp_path / "data")
    return scan, folder, folder / f"{scan.name}_processed.ply", folder / f"{scan.name}_processed.json"


def _corrupt_ply_garbage(ply, js):
    ply.write_bytes(b"this is not a ply file")


def _corrupt_ply_empty(ply, js):
    ply.write_bytes(b"")


def _corrupt_ply_header_only(ply, js):
    ply.write_text("ply\nformat ascii 1.0\nelement vertex 0\nproperty float x\nproperty float y\nproperty float z\nend_header\n")


def _corrupt_nan(ply, js):
    pts = np.full((300, 3), 1.0)
    pts[:, 1] = np.linspace(-200, 200, 300)
    pts[5] = np.nan
    write_point_cloud(ply, pts, binary=False)


def _corrupt_inf(ply, js):
    pts = np.random.default_rng(0).normal(size=(300, 3)) * 100
    pts[7, 2] = np.inf
    write_point_cloud(ply, pts)


def _corrupt_no_spine(ply, js):
    doc = json.loads(js.read_text())
    del doc["esl"], doc["isl"]
    js.write_text(json.dumps(doc))


def _corrupt_one_point_spine(ply, js):
    doc = json.loads(js.read_text())
    doc["esl"] = {"pcdicomapp": [[0, 0, 0]]}
    del doc["isl"]
    js.write_text(json.dumps(doc))


def _corrupt_one_point_esl_beside_isl(ply, js):
    doc = json.loads(js.read_text())
    doc["esl"] = {"pcdicomapp": [[0, 0, 0]]}  # the ISL stays valid
    js.write_text(json.dumps(doc))


def _corrupt_bad_json(ply, js):
    js.write_text('{"esl": [1, 2,')


def _corrupt_missing_json(ply, js):
    js.unlink()


def _corrupt_missing_ply(ply, js):
    ply.unlink()


def _corrupt_too_few(ply, js):
    write_point_cloud(ply, np.random.default_rng(0).normal(size=(20, 3)) * 100)


BAD_INPUTS = {
    "garbage ply": (_corrupt_ply_garbage, "ply", "not a PLY file"),
    "empty ply": (_corrupt_ply_empty, "ply", "empty file"),
    "header-only ply": (_corrupt_ply_header_only, "ply", "unreadable or empty"),
    "nan": (_corrupt_nan, "ply", "NaN/inf"),
    "inf": (_corrupt_inf, "ply", "NaN/inf"),
    "json without spine": (_corrupt_no_spine, "json", "no spinal line"),
    "one-point spine": (_corrupt_one_point_spine, "json", "no spinal line"),
    "one-point ESL beside a valid ISL": (_corrupt_one_point_esl_beside_isl, "json", "'esl' has 1 point"),
    "invalid json": (_corrupt_bad_json, "json", "invalid JSON"),
    "scan without json": (_corrupt_missing_json, "ply", "do not pair"),
    "json without scan": (_corrupt_missing_ply, "json", "do not pair"),
    "too few points": (_corrupt_too_few, "ply", "too few points"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_raises_naming_file(tmp_path, case):
    corrupt, which, message = BAD_INPUTS[case]
    scan, folder, ply, js = _subject(tmp_path)
    corrupt(ply, js)
    with pytest.raises(InvalidScanError, match=message) as info:
        read_dataset(tmp_path / "data")
    assert str(info.value).startswith(str(ply if which == "ply" else js))


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_skipped_counted_reported(tmp_path, case, caplog):
    corrupt, which, message = BAD_INPUTS[case]
    good = [_subject(tmp_path, seed=i, name=f"good{i}")[0] for i in range(2)]
    _, folder, ply, js = _subject(tmp_path, seed=9, name="bad")
    corrupt(ply, js)
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "data").rglob("*") if p.is_file()}
    with caplog.at_level(logging.WARNING, logger="pcdiff.data.readers"):
        scans = read_dataset(tmp_path / "data", skip_invalid=True)
    assert [s.name for s in scans] == [g.name for g in good]
    assert len(scans.skipped) == 1 and message in scans.skipped[0][1]
    assert "skipped 1 of 3 subjects" in caplog.text and "bad" in caplog.text
    after = {p: p.stat().st_mtime_ns for p in (tmp_path / "data").rglob("*") if p.is_file()}
    assert before == after, "reader must never modify user files"


def test_all_invalid_is_an_error(tmp_path):
    _, _, ply, js = _subject(tmp_path)
    _corrupt_ply_garbage(ply, js)
    with pytest.raises(ValueError, match="none of the 1 subjects"):
        read_dataset(tmp_path / "data", skip_invalid=True)


def test_duplicate_names_disambiguated_by_folder(tmp_path, caplog):
    write_subject(make_backscan(0, 300, name="a"), tmp_path / "x")
    write_subject(make_backscan(1, 300, name="a"), tmp_path / "y")
    write_subject(make_backscan(2, 300, name="b"), tmp_path / "y")
    with caplog.at_level(logging.WARNING, logger="pcdiff.data.readers"):
        scans = read_dataset(tmp_path)
    assert [s.name for s in scans] == ["b", "x__a", "y__a"]
    assert "appears 2 times" in caplog.text


def test_missing_folder_and_unknown_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_dataset(tmp_path / "nope")
    (tmp_path / "scan.ply").write_bytes(b"ply")
    with pytest.raises(FileNotFoundError, match="scan.ply is a file, not a folder"):
        read_dataset(tmp_path / "scan.ply")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no back scans found"):
        read_dataset(tmp_path / "empty")
    with pytest.raises(ValueError, match="unknown layout"):
        read_dataset(tmp_path / "empty", layout="xyz")


# ----------------------------------------------------------------------------- units on load


def test_metres_converted_with_warning(tmp_path):
    scan = make_backscan(3, 400)
    scan_m = make_backscan(3, 400)
    scan_m.points = scan.points / 1000  # PLY in metres, JSON in mm (as PCdare stores them)
    folder = write_subject(scan_m, tmp_path)
    with pytest.warns(UnitConversionWarning, match="scan points metres -> mm"):
        back = read_subject(folder)
    np.testing.assert_allclose(back.points, scan.points, rtol=1e-5, atol=1e-3)
    np.testing.assert_array_equal(back.esl, scan.esl)


def test_y_down_camera_frame_rotated_back(tmp_path):
    scan = make_backscan(4, 400)
    flip = np.array([1, -1, -1], np.float32)
    cam = make_backscan(4, 400)
    cam.points, cam.esl, cam.isl = scan.points * flip, scan.esl * flip, scan.isl * flip
    cam.landmarks = {k: v * flip for k, v in scan.landmarks.items()}
    folder = write_subject(cam, tmp_path)
    with pytest.warns(UnitConversionWarning, match=r"\(x, -y, -z\)"):
        back = read_subject(folder)
    np.testing.assert_array_equal(back.points, scan.points)
    assert back.landmarks["C7"][1] > back.landmarks["DM"][1]
    assert back.landmarks["DR"][0] > 0  # +x stays the subject's right


def test_y_mirrored_only_is_refused(tmp_path):
    scan = make_backscan(5, 400)
    flip = np.array([1, -1, 1], np.float32)  # a mirror: cannot be told from a left-right swap
    scan.points, scan.esl, scan.isl = scan.points * flip, scan.esl * flip, scan.isl * flip
    scan.landmarks = {k: v * flip for k, v in scan.landmarks.items()}
    folder = write_subject(scan, tmp_path)
    with pytest.raises(InvalidScanError, match="y points down .* mirror"):
        read_subject(folder)


def test_centimetres_are_ambiguous(tmp_path):
    scan = make_backscan(6, 400)
    scan.points = scan.points / 10
    folder = write_subject(scan, tmp_path)
    with pytest.raises(InvalidScanError, match="neither millimetres"):
        read_subject(folder)


# ----------------------------------------------------------------------------- generic layout


@pytest.mark.parametrize("fmt", [".ply", ".pcd", ".xyz", ".npz"])
@pytest.mark.parametrize("spine", [".csv", ".json"])
def test_generic_layout(tmp_path, fmt, spine):
    scan = make_backscan(7, 400, name="g1")
    path = tmp_path / f"g1{fmt}"
    if fmt == ".npz":
        np.savez(path, points=scan.points)
    else:
        write_point_cloud(path, scan.points, binary=fmt != ".xyz")
    if spine == ".csv":
        rows = ["x,y,z,line"] + [f"{x!r},{y!r},{z!r},esl" for x, y, z in scan.esl.tolist()]
        rows += [f"{x!r},{y!r},{z!r},isl" for x, y, z in scan.isl.tolist()]
        (tmp_path / "g1.csv").write_text("\n".join(rows))
    else:
        doc = {"esl": scan.esl.tolist(), "isl": scan.isl.tolist(),
               "specialPts": {k: v.tolist() for k, v in scan.landmarks.items()}}
        (tmp_path / "g1.json").write_text(json.dumps(doc))
    assert detect_layout(tmp_path) == "generic"
    (s,) = read_dataset(tmp_path)
    assert s.name == "g1"
    np.testing.assert_allclose(s.points, scan.points, atol=1e-3)
    np.testing.assert_array_equal(s.esl, scan.esl)
    np.testing.assert_array_equal(s.isl, scan.isl)


def test_generic_npz_with_lines_inside_and_missing_spine(tmp_path):
    scan = make_backscan(8, 400, name="n1")
    np.savez(tmp_path / "n1.npz", points=scan.points, esl=scan.esl, C7=scan.landmarks["C7"])
    (s,) = read_dataset(tmp_path, layout="generic")
    np.testing.assert_array_equal(s.esl, scan.esl)
    assert s.isl is None and "C7" in s.landmarks
    write_point_cloud(tmp_path / "n2.ply", scan.points)
    with pytest.raises(InvalidScanError, match="no spine file beside it"):
        read_dataset(tmp_path, layout="generic")


def test_spine_far_from_surface_refused(tmp_path):
    scan = make_backscan(9, 400)
    scan.esl = scan.esl + np.array([0, 0, 60], np.float32)  # e.g. the radiograph skin line, not on the scan
    folder = write_subject(scan, tmp_path)
    with pytest.raises(InvalidScanError, match="ESL lies .* from the scan surface"):
        read_subject(folder)


def test_error_pickles():
    import pickle

    err = pickle.loads(pickle.dumps(InvalidScanError("/a/b.ply", "empty file")))
    assert isinstance(err, InvalidScanError) and err.reason == "empty file" and str(err) == "/a/b.ply: empty file"
