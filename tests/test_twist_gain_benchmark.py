"""benchmarks/twist_gain.py: the untwisted frame's gain on phantoms, and what untwisting by it removes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmarks.twist_gain import fit_row, normalised, outline_follow, saved_backs
from pcdiff.data.phantom import SpineParams, generate_phantom
from pcdiff.data.sample import BackScan
from pcdiff.geometry.frames import straighten


def test_phantom_gain_is_positive_and_untwisting_removes_asymmetry():
    """On curved phantoms the right side stands out beside a rightward deviation (gain > 0), the asymmetry follows
    the line's deviation closely, and untwisting by the fitted gain leaves less of it. (Without vertebral rotation,
    ``rotation_deg=0``, a phantom has no hump and the correlation is ~0.)"""
    scans = [generate_phantom(seed, num_points=4096, params=SpineParams(cobb_deg=cobb, curve_type="thoracic", convexity=side,
                                                                        rotation_deg=0.35 * cobb))  # the prior's centre
             for seed, (cobb, side) in enumerate([(45.0, "right"), (35.0, "left"), (55.0, "right")])]  # fmt: skip
    row = fit_row("phantoms", scans)
    assert row["n"] == 3 and row["gain"] > 1.0
    assert row["median_corr"] > 0.8
    assert row["asym_rms_after"] < 0.9 * row["asym_rms_before"]  # the rest: the trunk's constant twist (measured 0.82x)
    assert row["outline_gain"] > 0.5 and row["outline_corr"] > 0.5  # the phantom's trunk moves with its spine


@pytest.mark.parametrize("follow", [0.0, 0.5, 1.0])
def test_outline_follow_reads_how_far_the_trunk_moves_with_the_line(follow):
    """A flat back whose outline moves sideways by ``follow`` times the ESL's deviation from its chord: the slope of
    the outline's offset on the deviation recovers ``follow``."""
    rng = np.random.default_rng(0)
    y = rng.uniform(0.0, 450.0, 20000)
    bend = lambda h: 40.0 * np.sin(np.pi * h / 450.0) + 0.05 * h  # noqa: E731  (a lean: its chord is not vertical)
    points = np.stack([rng.uniform(-150.0, 150.0, len(y)) + follow * bend(y), y, np.zeros_like(y)], axis=1)
    heights = np.linspace(450.0, 0.0, 30)
    scan = BackScan(name="flat", points=points.astype(np.float32),
                    esl=np.stack([bend(heights), heights, np.zeros_like(heights)], axis=1).astype(np.float32))
    flat, line = normalised(scan)
    p, l = torch.from_numpy(flat)[None], torch.from_numpy(line)[None]
    deviation, outline = outline_follow(straighten(p, l), l)
    assert np.isfinite(outline).all() and np.ptp(deviation) > 0.05  # 40 mm on a ~460 mm line
    assert np.polyfit(deviation, outline, 1)[0] == pytest.approx(follow, abs=0.05)


def test_saved_backs_are_read_with_their_requested_lines(tmp_path):
    backs = np.random.default_rng(1).normal(size=(2, 64, 3))
    lines = [np.stack([np.zeros(5), np.linspace(400, 0, 5) + i, np.zeros(5)], axis=1) for i in range(2)]
    np.savez(tmp_path / "gen.npz", backs_mm=backs, true_mm=backs, names=np.array(["a", "b"]),
             **{f"esl_mm_{i}": line for i, line in enumerate(lines)})
    scans = saved_backs(tmp_path / "gen.npz")
    assert [s.name for s in scans] == ["gen_0", "gen_1"]
    np.testing.assert_allclose(scans[1].points, backs[1])
    np.testing.assert_allclose(scans[1].esl, lines[1])
    np.savez(tmp_path / "other.npz", points=backs)
    with pytest.raises(ValueError, match="other.npz: not a --save-backs file"):
        saved_backs(tmp_path / "other.npz")
