"""BackScanDataModule: shapes, subject-wise splits, caching, bad input, phantom default."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from conftest import make_backscan

import pcdiff.data.datamodule as dm_mod
from pcdiff.data.datamodule import BackScanDataModule, folder_fingerprint
from pcdiff.data.io import InvalidScanError, write_point_cloud, write_subject


@pytest.fixture
def data_dir(tmp_path):
    root = tmp_path / "data"
    for i in range(10):
        scan = make_backscan(i, 400, name=f"s{i:02d}")
        scan.meta["subject"] = f"p{i // 2}"  # two scans per subject
        write_subject(scan, root / ("a" if i < 5 else "b"))
    return root


def _dm(data_dir, tmp_path, **kw):
    args = dict(data_dir=str(data_dir), cache_dir=str(tmp_path / "cache"), num_points=128, num_keypoints=8,
                batch_size=4, val_fraction=0.2, test_fraction=0.2)
    args.update(kw)
    return BackScanDataModule(**args)


def _snapshot(root):
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("line", ["esl", "isl"])
def test_batch_shapes_and_normalisation(data_dir, tmp_path, line):
    dm = _dm(data_dir, tmp_path, line=line, augment=False)
    dm.prepare_data()
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["points"].shape == (4, 128, 3) and batch["points"].dtype == torch.float32
    assert batch["spine"].shape == (4, 8, 3) and batch["landmarks"].shape == (4, 4, 3)
    assert batch["center"].shape == (4, 3) and batch["scale"].shape == (4,) and batch["scale"].dtype == torch.float32
    assert len(batch["name"]) == 4 and all(isinstance(n, str) for n in batch["name"])
    # "line" frame: the chosen line's ends are 1 apart and centred; keypoints run top -> bottom
    ends = batch["spine"][:, [0, -1]]
    torch.testing.assert_close(torch.linalg.norm(ends[:, 0] - ends[:, 1], dim=-1), torch.ones(4), atol=1e-5, rtol=0)
    torch.testing.assert_close(ends.mean(1), torch.zeros(4, 3), atol=1e-5, rtol=0)
    assert (batch["spine"][:, 0, 1] > batch["spine"][:, -1, 1]).all()
    assert 400 < float(batch["scale"].min()) < 500
    # landmarks in order C7, DL, DR, DM: C7 on top, DR on +x
    lm = batch["landmarks"]
    assert (lm[:, 0, 1] > lm[:, 3, 1]).all() and (lm[:, 2, 0] > lm[:, 1, 0]).all()
    assert batch["has_landmarks"].all()


def test_subject_wise_split(data_dir, tmp_path):
    dm = _dm(data_dir, tmp_path)
    dm.setup()
    s = dm.splits
    assert sorted(s["train"] + s["val"] + s["test"]) == [f"p{i}" for i in range(5)]
    assert len(s["test"]) == 1 and len(s["val"]) == 1
    names = {split: {n for b in dm._loader(split, False) for n in b["name"]} for split in ("train", "val", "test")}
    subj = lambda n: f"p{int(n[1:]) // 2}"  # noqa: E731
    for split, ns in names.items():
        assert {subj(n) for n in ns} == set(s[split])  # both scans of a subject in the same split
    # another seed gives another (still subject-wise) split
    other = _dm(data_dir, tmp_path, seed=5)
    other.setup()
    assert sorted(other.splits["train"] + other.splits["val"] + other.splits["test"]) == [f"p{i}" for i in range(5)]


def test_explicit_keys(data_dir, tmp_path):
    dm = _dm(data_dir, tmp_path, val_keys=["p1"], test_keys=["p3", "p4"])
    dm.setup()
    assert dm.splits == {"train": ["p0", "p2"], "val": ["p1"], "test": ["p3", "p4"]}
    with pytest.raises(ValueError, match="not in the data"):
        _dm(data_dir, tmp_path, test_keys=["nobody"]).setup()
    with pytest.raises(ValueError, match="both train_keys and test_keys"):
        _dm(data_dir, tmp_path, train_keys=["p0", "p1"], test_keys=["p1"]).setup()


def test_cache_reused_and_invalidated(data_dir, tmp_path, monkeypatch):
    before = _snapshot(data_dir)
    dm = _dm(data_dir, tmp_path)
    dm.prepare_data()
    path = dm.cache_path()
    assert path.is_file()
    # the cache holds plain arrays (no pickles)
    with np.load(path, allow_pickle=False) as d:
        assert d["points"].shape == (10, 128, 3)

    def boom(*a, **k):
        raise AssertionError("data folder was read again despite a current cache")

    monkeypatch.setattr(dm_mod, "read_dataset", boom)
    again = _dm(data_dir, tmp_path)
    again.setup()
    np.testing.assert_array_equal(again._arrays["points"], np.load(path)["points"])
    # changing a setting or a file changes the key
    assert _dm(data_dir, tmp_path, num_points=64).cache_path() != path
    assert _dm(data_dir, tmp_path, sampling="fps").cache_path() != path
    js = next(data_dir.rglob("*.json"))
    os.utime(js, ns=(js.stat().st_atime_ns, js.stat().st_mtime_ns + 10**9))
    assert _dm(data_dir, tmp_path).cache_path() != path
    assert _snapshot(data_dir).keys() == before.keys()


def test_preprocessing_reproducible_and_independent_of_other_subjects(data_dir, tmp_path):
    a = _dm(data_dir, tmp_path / "x")
    a.setup()
    b = _dm(data_dir, tmp_path / "y")
    b.setup()
    np.testing.assert_array_equal(a._arrays["points"], b._arrays["points"])
    # drop one subject: the remaining subjects' resampled points are unchanged
    import shutil

    sub = tmp_path / "sub"
    shutil.copytree(data_dir, sub)
    shutil.rmtree(next(p for p in sub.rglob("s03")))
    c = _dm(sub, tmp_path / "z")
    c.setup()
    i, j = a._names.index("s07"), c._names.index("s07")
    np.testing.assert_array_equal(a._arrays["points"][i], c._arrays["points"][j])


def test_augmentation_train_only_and_seeded(data_dir, tmp_path):
    dm = _dm(data_dir, tmp_path, augment=True)
    dm.setup()
    train, val = dm.dataset("train"), dm.dataset("val")
    torch.manual_seed(0)
    a = train[0]["points"]
    torch.manual_seed(0)
    b = train[0]["points"]
    c = train[0]["points"]
    torch.testing.assert_close(a, b)
    assert not torch.equal(a, c)
    j = int(train.index[0])
    assert not np.array_equal(a.numpy(), dm._arrays["points"][j])
    np.testing.assert_array_equal(val[0]["points"].numpy(), dm._arrays["points"][int(val.index[0])])


@pytest.mark.parametrize("max_rotation_deg", [0.0, 30.0])
def test_augmentation_turn_about_y_is_bounded_by_max_rotation_deg(data_dir, tmp_path, max_rotation_deg):
    """The line's x-z direction from top to bottom keypoint turns by at most max_rotation_deg (scale and ~1 mm jitter
    do not turn it; the keypoints are not jittered)."""
    dm = _dm(data_dir, tmp_path, augment=True, max_rotation_deg=max_rotation_deg)
    dm.setup()
    train = dm.dataset("train")
    j = int(train.index[0])
    plain = dm._arrays["spine"][j]
    turns = []
    for seed in range(20):
        torch.manual_seed(seed)
        spine = train[0]["spine"].numpy()
        angle = lambda kp: np.arctan2(kp[0, 2] - kp[-1, 2], kp[0, 0] - kp[-1, 0])  # noqa: E731
        turns.append(np.degrees(abs(np.angle(np.exp(1j * (angle(spine) - angle(plain)))))))
    assert max(turns) <= max_rotation_deg + 1e-3
    if max_rotation_deg > 0:
        assert max(turns) > max_rotation_deg / 3  # it does turn


def test_bad_subjects(data_dir, tmp_path):
    bad = next(data_dir.rglob("s04_processed.ply"))
    bad.write_bytes(b"not a ply")
    with pytest.raises(InvalidScanError, match="s04_processed.ply"):
        _dm(data_dir, tmp_path).prepare_data()
    dm = _dm(data_dir, tmp_path, skip_invalid=True)
    dm.setup()
    assert len(dm._names) == 9 and len(dm.skipped) == 1 and "s04" in dm.skipped[0][0]


def test_too_few_points_for_num_points(data_dir, tmp_path):
    small = make_backscan(42, 150, name="small")
    write_subject(small, data_dir / "c")
    with pytest.raises(InvalidScanError, match="small_processed.json.*fewer than num_points=256"):
        _dm(data_dir, tmp_path, num_points=256).prepare_data()
    dm = _dm(data_dir, tmp_path, num_points=256, skip_invalid=True)
    dm.setup()
    assert "small" not in dm._names and len(dm.skipped) == 1


def test_generic_layout_without_landmarks(tmp_path):
    root = tmp_path / "generic"
    root.mkdir()
    for i in range(3):
        scan = make_backscan(i, 300, name=f"g{i}")
        write_point_cloud(root / f"g{i}.ply", scan.points)
        (root / f"g{i}.json").write_text(json.dumps({"esl": scan.esl.tolist()}))
    dm = _dm(root, tmp_path, layout="auto", val_fraction=0.0, test_fraction=0.0)
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    assert batch["points"].shape == (3, 128, 3)
    assert not batch["has_landmarks"].any() and torch.isnan(batch["landmarks"]).all()
    with pytest.raises(ValueError, match="the val split is empty"):
        dm.val_dataloader()


def test_bad_options(tmp_path):
    with pytest.raises(ValueError, match="line must be"):
        BackScanDataModule(line="spine")
    with pytest.raises(ValueError, match="normalize must be"):
        BackScanDataModule(normalize="unit")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        BackScanDataModule(data_dir=str(tmp_path / "nope"), cache_dir=str(tmp_path)).prepare_data()
    (tmp_path / "scan.ply").write_bytes(b"ply")
    with pytest.raises(FileNotFoundError, match="scan.ply is a file, not a folder of scans"):
        BackScanDataModule(data_dir=str(tmp_path / "scan.ply"), cache_dir=str(tmp_path)).prepare_data()
    with pytest.raises(ValueError, match="max_rotation_deg must lie in"):
        BackScanDataModule(max_rotation_deg=-5.0)
    for name, value, minimum in [("num_keypoints", 0, 2), ("num_keypoints", 1, 2), ("num_points", 0, 1), ("batch_size", -1, 1)]:
        with pytest.raises(ValueError, match=f"data.{name} must be >= {minimum}, got {value}"):
            BackScanDataModule(**{name: value})


def test_fingerprint_sees_names_sizes_mtimes(data_dir):
    a = folder_fingerprint(data_dir)
    assert a == folder_fingerprint(data_dir)
    f = next(data_dir.rglob("*.json"))
    os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 1))
    assert folder_fingerprint(data_dir) != a


def test_phantom_default(tmp_path):
    dm = BackScanDataModule(cache_dir=str(tmp_path), phantom_num_scans=4, num_points=256, num_keypoints=8,
                            batch_size=2, val_fraction=0.25, test_fraction=0.25)
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    assert batch["points"].shape == (2, 256, 3) and batch["has_landmarks"].all()
    phantom_dirs = [p for p in tmp_path.iterdir() if p.name.startswith("phantom-")]
    assert len(phantom_dirs) == 1 and (phantom_dirs[0] / ".complete").is_file()
