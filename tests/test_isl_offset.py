"""The fitted ISL-from-ESL model (pcdiff.estimator.isl_offset) on synthetic backs where the answer is known."""

import numpy as np
import pytest

from pcdiff.estimator.isl_offset import fit_isl_offset, surface_asymmetry, trunk_width_mm


def _back(width, twist, num=30000, seed=0):
    """Points (N, 3) of a back ``width`` mm wide, 0-400 mm tall, turned about y by ``twist(y)`` (z = twist(y) * x)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-width / 2, width / 2, num)
    y = rng.uniform(0, 400, num)
    return np.stack([x, y, twist(y) * x], axis=1)


def _esl(num=50):
    y = np.linspace(380, 20, num)
    return np.stack([np.zeros(num), y, np.zeros(num)], axis=1)


def test_asymmetry_of_a_turned_back_is_twice_the_slope_times_the_distance():
    points = _back(300, lambda y: 0.1 * (y / 400))
    line = _esl()
    asym = surface_asymmetry(points, line, distance_mm=50)
    np.testing.assert_allclose(asym, 2 * 50 * 0.1 * line[:, 1] / 400, atol=0.3)
    flat = _back(300, lambda y: 0 * y)
    np.testing.assert_allclose(surface_asymmetry(flat, line), 0.0, atol=1e-9)


def test_trunk_width_is_the_central_spread_of_x():
    assert trunk_width_mm(_back(300, lambda y: 0 * y), 380, 20) == pytest.approx(0.9 * 300, abs=5)


def test_fit_recovers_the_depth_slope_and_the_lateral_gain():
    """ISL = ESL + (-60 - 0.2 (width - 250)) in z and 0.5 x (centred asymmetry) in x: both numbers come back."""
    esls, isls, scans, widths = [], [], [], []
    for i, (width, amp) in enumerate([(240, 0.05), (260, -0.1), (300, 0.08), (280, 0.0), (320, -0.04)]):
        points = _back(width, lambda y, amp=amp: amp * np.sin(y / 400 * np.pi), seed=i)
        esl = _esl(64)
        asym = surface_asymmetry(points, esl)
        isl = esl.copy()
        isl[:, 0] += 0.5 * (asym - asym.mean())
        isl[:, 2] += -60 - 0.2 * (width - 250)
        esls.append(esl), isls.append(isl), scans.append(points), widths.append(trunk_width_mm(points, 380, 20))
    model = fit_isl_offset(esls, isls, scans, widths, num_keypoints=64)
    assert model.lateral_gain == pytest.approx(0.5, abs=0.02)
    assert model.depth_coef[1] == pytest.approx(-0.2 / 0.9, abs=0.02)  # per mm of measured (0.9 x true) width
    # a new back: the prediction reproduces its ISL
    points = _back(270, lambda y: 0.06 * np.sin(y / 400 * np.pi), seed=9)
    esl = _esl(64)
    asym = surface_asymmetry(points, esl)
    predicted = model.predict(esl, points, trunk_width_mm(points, 380, 20))
    assert predicted.shape == (64, 3)
    np.testing.assert_allclose(predicted[:, 0], 0.5 * (asym - asym.mean()), atol=0.3)
    np.testing.assert_allclose(predicted[:, 2], -60 - 0.2 * 20, atol=1.0)


def test_fit_needs_matching_lists_of_two_or_more_subjects():
    points = _back(300, lambda y: 0 * y)
    with pytest.raises(ValueError, match="2 subjects"):
        fit_isl_offset([_esl()], [_esl()], [points], [270.0])
    with pytest.raises(ValueError, match="as many"):
        fit_isl_offset([_esl(), _esl()], [_esl()], [points, points], [270.0, 260.0])
