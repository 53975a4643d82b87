"""Transforms on dict samples: frames, resampling, augmentation, seeding."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_backscan

from pcdiff.data.transforms import (
    Compose,
    Jitter,
    Normalize,
    RandomRotateY,
    RandomScale,
    ResampleLine,
    ResamplePoints,
    default_augment,
    default_preprocess,
    landmark_frame,
    scan_to_sample,
    spine_frame,
)
from pcdiff.geometry.polyline import arc_length


@pytest.fixture
def sample():
    return scan_to_sample(make_backscan(0, 1000))


def test_scan_to_sample_orders_lines_and_landmarks():
    scan = make_backscan(1, 300)
    scan.esl = scan.esl[::-1].copy()  # bottom -> top in the file
    s = scan_to_sample(scan)
    assert s["esl"][0, 1] > s["esl"][-1, 1]
    np.testing.assert_array_equal(s["landmarks"][0], scan.landmarks["C7"])
    np.testing.assert_array_equal(s["landmarks"][3], (scan.landmarks["DL"] + scan.landmarks["DR"]) / 2)
    assert s["has_landmarks"]
    scan.landmarks = {}
    s = scan_to_sample(scan)
    assert not s["has_landmarks"] and np.isnan(s["landmarks"]).all()


def test_spine_frame_values():
    line = np.array([[0, 200, 0], [10, 0, 5], [0, -200, 0]], np.float32)
    center, scale = spine_frame(line)
    np.testing.assert_allclose(center, [0, 0, 0])
    assert scale == pytest.approx(400.0)
    with pytest.raises(ValueError, match="coincide"):
        spine_frame(np.zeros((3, 3)))


@pytest.mark.parametrize("mode", ["line", "landmarks", "fixed", "center", "none"])
def test_normalize_modes_invert(sample, mode):
    t = Normalize(mode, line="esl", scale=500.0 if mode == "fixed" else None)
    out = t(sample)
    back = out["points"] * out["scale"] + out["center"]
    np.testing.assert_allclose(back, sample["points"], atol=1e-3)
    assert sample["points"] is not out["points"] or mode == "none"  # inputs never modified in place
    if mode == "line":
        # the ESL's ends land at distance 1 apart, centred on the origin
        assert np.linalg.norm(out["esl"][0] - out["esl"][-1]) == pytest.approx(1.0, abs=1e-5)
        np.testing.assert_allclose((out["esl"][0] + out["esl"][-1]) / 2, 0, atol=1e-6)
    if mode == "landmarks":
        center, scale = landmark_frame(sample["landmarks"])
        assert np.linalg.norm(out["landmarks"][0] - out["landmarks"][3]) == pytest.approx(1.0, abs=1e-5)
    if mode == "fixed":
        assert out["scale"] == 500.0
    if mode in ("center", "none"):
        assert out["scale"] == 1.0


def test_normalize_rejects_bad_options(sample):
    with pytest.raises(ValueError, match="unknown mode"):
        Normalize("unit")
    with pytest.raises(ValueError, match="exactly when mode='fixed'"):
        Normalize("fixed")
    s = dict(sample, landmarks=np.full((4, 3), np.nan, np.float32))
    with pytest.raises(ValueError, match="needs C7 and DM"):
        Normalize("landmarks")(s)


def test_resample_line_equal_arc_length(sample):
    out = ResampleLine(16, "isl")(sample)
    spine = out["spine"]
    assert spine.shape == (16, 3) and spine[0, 1] > spine[-1, 1]
    seg = np.diff(arc_length(spine))
    np.testing.assert_allclose(seg, seg.mean(), rtol=0.05)
    np.testing.assert_allclose(spine[0], sample["isl"][0], atol=1e-4)


@pytest.mark.parametrize("method", ["random", "fps"])
def test_resample_points_seeded(sample, method):
    t = ResamplePoints(128, method)
    a = t(sample, np.random.default_rng(3))
    b = t(sample, np.random.default_rng(3))
    c = t(sample, np.random.default_rng(4))
    assert a["points"].shape == (128, 3)
    np.testing.assert_array_equal(a["points"], b["points"])
    assert not np.array_equal(a["points"], c["points"])
    # every resampled point is a distinct original point
    assert len(np.unique(a["points"], axis=0)) == 128
    assert np.isin(a["points"].view("f4,f4,f4"), sample["points"].view("f4,f4,f4")).all()


def test_fps_covers_better_than_random(sample):
    """FPS spreads points: its largest hole (max nearest-sample distance) is smaller than random's."""
    from scipy.spatial import cKDTree

    def coverage(pts):
        return cKDTree(pts).query(sample["points"])[0].max()

    rng = np.random.default_rng(0)
    fps = ResamplePoints(64, "fps")(sample, rng)["points"]
    rnd = ResamplePoints(64, "random")(sample, rng)["points"]
    assert coverage(fps) < 0.8 * coverage(rnd)


def test_resample_points_too_few(sample):
    with pytest.raises(ValueError, match="fewer than num_points=5000"):
        ResamplePoints(5000)(sample, np.random.default_rng(0))
    with pytest.raises(ValueError, match="needs a numpy Generator"):
        ResamplePoints(10)(sample)


def test_rotation_about_y_keeps_heights_and_distances(sample):
    s = Normalize("line")(sample)
    out = RandomRotateY(30)(s, np.random.default_rng(0))
    np.testing.assert_allclose(out["points"][:, 1], s["points"][:, 1], atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(out["points"], axis=1), np.linalg.norm(s["points"], axis=1), rtol=1e-5)
    assert not np.allclose(out["points"], s["points"])
    # lines and landmarks move with the surface
    np.testing.assert_allclose(np.linalg.norm(out["esl"] - out["esl"][:1], axis=1),
                               np.linalg.norm(s["esl"] - s["esl"][:1], axis=1), rtol=1e-5, atol=1e-6)


def test_scale_and_jitter(sample):
    s = Normalize("line")(sample)
    out = RandomScale(0.9, 1.1)(s, np.random.default_rng(0))
    f = out["points"] / np.where(s["points"] == 0, 1, s["points"])
    assert 0.9 <= np.median(f) <= 1.1
    np.testing.assert_allclose(out["esl"], s["esl"] * np.median(f), rtol=1e-4, atol=1e-6)
    j = Jitter(0.01, 0.02)(s, np.random.default_rng(0))
    d = j["points"] - s["points"]
    assert np.abs(d).max() <= 0.02 + 1e-7 and 0.005 < d.std() < 0.015
    np.testing.assert_array_equal(j["esl"], s["esl"])  # only the scan is jittered
    with pytest.raises(ValueError, match="is random"):
        Jitter()(s)


def test_composed_pipelines_reproducible(sample):
    pre = default_preprocess(num_points=256, num_keypoints=8, line="isl", sampling="random", normalize="line")
    aug = default_augment()
    run = lambda seed: aug(pre(sample, np.random.default_rng(seed)), np.random.default_rng(seed))  # noqa: E731
    a, b = run(1), run(1)
    for k in ("points", "spine", "landmarks"):
        np.testing.assert_array_equal(a[k], b[k])
    assert a["points"].shape == (256, 3) and a["spine"].shape == (8, 3)
    assert isinstance(pre, Compose) and "ResamplePoints" in repr(pre)
