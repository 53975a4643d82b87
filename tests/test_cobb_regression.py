"""pcdiff.estimator.cobb_regression: the Cobb angle from the back's rotation swing."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pcdiff.estimator.cobb_regression import AsymmetryCobbModel, asymmetry_swing_mm, fit_asymmetry_cobb


def _twisted_back(gain: float, step_mm: float = 4.0) -> tuple[np.ndarray, np.ndarray]:
    """A grid back whose cross-sections turn with height: z = gain * sin(pi y / 450) * x (mm), and its midline ESL."""
    x, y = np.meshgrid(np.arange(-150.0, 150.0 + step_mm, step_mm), np.arange(0.0, 450.0 + step_mm, step_mm))
    points = np.stack([x.ravel(), y.ravel(), (gain * np.sin(np.pi * y / 450.0) * x).ravel()], axis=1)
    heights = np.linspace(440.0, 10.0, 40)
    return points, np.stack([np.zeros_like(heights), heights, np.zeros_like(heights)], axis=1)


@pytest.mark.parametrize("gain", [0.0, 0.05, -0.1])
def test_swing_of_a_turning_back(gain):
    """Asymmetry at +-50 mm is 100 * gain * sin(...): its swing over the line is 100 |gain| (1 - sin(pi 10 / 450))."""
    points, esl = _twisted_back(gain)
    expected = 100 * abs(gain) * (1 - np.sin(np.pi * 10 / 450))
    assert asymmetry_swing_mm(points, esl) == pytest.approx(expected, abs=0.05)


def test_symmetric_back_reads_its_intercept():
    points, esl = _twisted_back(0.0)
    assert AsymmetryCobbModel(12.0, 3.0).predict(points, esl) == pytest.approx(12.0)


@settings(max_examples=40, deadline=None)
@given(intercept=st.floats(-20, 20), slope=st.floats(-5, 5), swings=st.lists(st.floats(0, 60), min_size=3, max_size=20, unique=True))
def test_fit_recovers_an_exact_line(intercept, slope, swings):
    swings = np.array(swings)
    if np.ptp(swings) < 1e-3:
        return
    model = fit_asymmetry_cobb(swings, intercept + slope * swings, distance_mm=40.0)
    assert model.slope_deg_per_mm == pytest.approx(slope, abs=1e-6)
    assert model.intercept_deg == pytest.approx(intercept, abs=1e-5)
    assert model.distance_mm == 40.0 and model.from_swing(10.0) == pytest.approx(intercept + 10 * slope, abs=1e-4)


def test_fit_is_least_squares_on_noisy_data():
    rng = np.random.default_rng(0)
    swings = rng.uniform(0, 40, 200)
    model = fit_asymmetry_cobb(swings, 8.0 + 0.7 * swings + rng.normal(0, 2, 200))
    assert model.slope_deg_per_mm == pytest.approx(0.7, abs=0.05) and model.intercept_deg == pytest.approx(8.0, abs=1.0)


@pytest.mark.parametrize(
    "swings, cobbs, match",
    [([1.0], [10.0], "n >= 2"), ([1.0, 2.0], [10.0], "n >= 2"), ([1.0, np.nan], [10.0, 20.0], "finite"), ([3.0, 3.0], [10.0, 20.0], "equal")],
)
def test_fit_rejects_bad_input(swings, cobbs, match):
    with pytest.raises(ValueError, match=match):
        fit_asymmetry_cobb(swings, cobbs)

