"""pcdiff.estimator.judge_calibration: a judge's Cobb reading mapped to the true angle, fitted on true backs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pcdiff.estimator.judge_calibration import CobbCalibration, calibrated_rows, fit_cobb_calibration


@settings(max_examples=40, deadline=None)
@given(slope=st.floats(0.2, 1.5), intercept=st.floats(-10, 10))
def test_an_exact_linear_reading_is_undone(slope, intercept):
    """A judge that reads ``slope x true + intercept`` without noise is calibrated back to the true angle."""
    true = np.linspace(0.0, 60.0, 12)
    calibration = fit_cobb_calibration(slope * true + intercept, true)
    np.testing.assert_allclose(calibration(slope * true + intercept), true, atol=1e-6)
    assert calibration.n == 12


def test_a_noisy_pull_towards_the_mean_is_shrunk_less_and_lowers_the_error():
    """A reading pulled towards the mean (0.7 x true + 4) with noise: the calibrated reading errs less on average,
    on fresh backs of the same population, than the raw one."""
    rng = np.random.default_rng(0)

    def draw(n):
        true = rng.uniform(0, 50, n)
        return 0.7 * true + 4.0 + rng.normal(0, 2.0, n), true

    calibration = fit_cobb_calibration(*draw(400))
    read, true = draw(400)
    assert np.abs(calibration(read) - true).mean() < 0.7 * np.abs(read - true).mean()
    assert 1.2 < calibration.slope < 1.5  # 1 / 0.7 = 1.43, attenuated by the reading's noise


def test_a_scalar_reading_gives_a_float():
    assert CobbCalibration(2.0, 1.5, 10)(4.0) == pytest.approx(8.0) and isinstance(CobbCalibration(2.0, 1.5, 10)(4.0), float)


@pytest.mark.parametrize("read, true, match", [([1.0], [1.0], "n >= 2"), ([1.0, np.inf], [1.0, 2.0], "finite"),
                                               ([3.0, 3.0], [1.0, 2.0], "equal")])
def test_bad_input_is_refused(read, true, match):
    with pytest.raises(ValueError, match=f"fit_cobb_calibration.*{match}|{match}"):
        fit_cobb_calibration(read, true)


def test_calibrated_rows_recompute_the_error_and_leave_the_input_alone():
    rows = [{"name": "a", "cobb_pred_deg": 10.0, "cobb_true_deg": 20.0, "cobb_abs_err_deg": 10.0, "rms_mm": 3.0},
            {"name": "b", "error": "not read"}]
    out = calibrated_rows(rows, CobbCalibration(-5.0, 2.0, 3))
    assert out[0]["cobb_pred_deg"] == pytest.approx(15.0) and out[0]["cobb_abs_err_deg"] == pytest.approx(5.0)
    assert out[0]["rms_mm"] == 3.0 and out[1] == rows[1] and out[1] is not rows[1]
    assert rows[0]["cobb_pred_deg"] == 10.0 and rows[0]["cobb_abs_err_deg"] == 10.0
