"""Unit and axis checks on load (pcdiff.data.units)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_backscan

from pcdiff.data.units import (
    UnitConversionWarning,
    UnitsAxesError,
    check_frame,
    check_lines_on_surface,
    ensure_frame,
    unit_scale,
)

FLIP_X = np.array([1, -1, -1], np.float32)  # 180 deg about x: the y-down camera frame


def _transformed(scan, factor, points_only=False):
    scan.points = scan.points * factor
    if not points_only:
        scan.esl = scan.esl * factor
        scan.isl = None if scan.isl is None else scan.isl * factor
        scan.landmarks = {k: v * factor for k, v in scan.landmarks.items()}
    return scan


def test_unit_scale_ranges():
    assert unit_scale(500.0, "x") == 1.0
    assert unit_scale(0.5, "x") == 1000.0
    for bad in (20.0, 0.01, 1e5, float("nan")):
        with pytest.raises(UnitsAxesError):
            unit_scale(bad, "x")


def test_correct_scan_is_untouched():
    scan = make_backscan(0, 500)
    check = check_frame(scan)
    assert not check.changed and check.y_up and check.z_out
    assert ensure_frame(scan) is scan


def test_metres_everywhere():
    ref = make_backscan(1, 500)
    scan = _transformed(make_backscan(1, 500), 1e-3)
    with pytest.warns(UnitConversionWarning):
        out = ensure_frame(scan)
    np.testing.assert_allclose(out.points, ref.points, atol=1e-3)
    np.testing.assert_allclose(out.landmarks["C7"], ref.landmarks["C7"], atol=1e-3)


@pytest.mark.parametrize("with_isl", [True, False])
def test_camera_frame_detected_with_or_without_isl(with_isl):
    """Without an ISL the depth direction comes from the trunk's curvature (flanks away from the scanner)."""
    ref = make_backscan(2, 1500)
    scan = make_backscan(2, 1500)
    if not with_isl:
        ref.isl = scan.isl = None
    scan = _transformed(scan, FLIP_X)
    check = check_frame(scan)
    assert check.flipped and check.y_up is False and check.z_out is False
    with pytest.warns(UnitConversionWarning):
        out = ensure_frame(scan)
    np.testing.assert_allclose(out.points, ref.points)
    np.testing.assert_allclose(out.esl, ref.esl)


def test_z_only_flipped_is_refused():
    scan = _transformed(make_backscan(3, 500), np.array([1, 1, -1], np.float32))
    with pytest.raises(UnitsAxesError, match="z points into the body"):
        check_frame(scan)


def test_y_down_with_flat_surface_and_no_isl_is_ambiguous():
    scan = make_backscan(4, 500)
    scan.isl = None
    scan.points[:, 2] = np.random.default_rng(0).normal(0, 0.5, len(scan.points))  # flat crop
    scan.esl[:, 2] = 0.0
    scan = _transformed(scan, FLIP_X)
    with pytest.raises(UnitsAxesError, match="depth direction could not be established"):
        check_frame(scan)


def test_lines_on_surface():
    scan = make_backscan(5, 2000)
    med = check_lines_on_surface(scan)
    assert med["esl"] < 10 and 40 < med["isl"] < 80
    scan.isl = scan.isl - np.array([0, 0, 300], np.float32)
    with pytest.raises(UnitsAxesError, match="ISL lies"):
        check_lines_on_surface(scan)
