"""pcdiff.estimator.hybrid: one line's place, another line's bends."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pcdiff.estimator.hybrid import hybrid_line
from pcdiff.geometry.cobb import lateral_deviation_error


def _line(x_of_y, k: int = 40, z: float = 0.0) -> np.ndarray:
    """(k, 3) mm, top (y = 450) -> bottom (y = 0), lateral course ``x_of_y``."""
    y = np.linspace(450.0, 0.0, k)
    return np.stack([x_of_y(y), y, np.full(k, z) + 0.01 * y], axis=1)


@settings(max_examples=40, deadline=None)
@given(shift=st.floats(-40, 40), lean=st.floats(-0.1, 0.1), amp=st.floats(0, 30), phase=st.floats(0, 6.3))
def test_bends_come_from_shape_and_place_from_position(shift, lean, amp, phase):
    """``mean`` keeps position's mean x and takes shape's centred course; ``trend`` also keeps position's lean."""
    shape = _line(lambda y: shift + amp * np.sin(y / 70.0 + phase), k=33, z=-5.0)
    position = _line(lambda y: lean * y + 3.0 * np.cos(y / 50.0), k=40)
    mean_kept = hybrid_line(position, shape, "mean")
    assert mean_kept[:, 0].mean() == pytest.approx(position[:, 0].mean(), abs=1e-9)
    np.testing.assert_allclose(mean_kept[:, 1:], position[:, 1:])  # heights and depths are the position line's
    shape_at = np.interp(position[::-1, 1], shape[::-1, 1], shape[::-1, 0])[::-1]
    np.testing.assert_allclose(mean_kept[:, 0] - mean_kept[:, 0].mean(), shape_at - shape_at.mean(), atol=1e-9)
    trend_kept = hybrid_line(position, shape, "trend")
    y = position[:, 1]
    residual = trend_kept[:, 0] - position[:, 0]  # = d - fit(d): no mean and no lean left
    assert residual.mean() == pytest.approx(0.0, abs=1e-9)
    assert np.polyfit(y, residual, 1)[0] == pytest.approx(0.0, abs=1e-9)


def test_same_line_and_either_direction():
    line = _line(lambda y: 10 * np.sin(y / 90.0))
    np.testing.assert_allclose(hybrid_line(line, line), line, atol=1e-12)
    np.testing.assert_allclose(hybrid_line(line[::-1], line, "trend"), line, atol=1e-12)  # bottom-up in, top-down out


def test_hybrid_scores_the_shape_lines_centred_error():
    """Against a true line, the hybrid has the shape line's centred lateral error, whatever the position line's bends."""
    true = _line(lambda y: 15 * np.sin(y / 80.0))
    shape = _line(lambda y: 30.0 + 14 * np.sin(y / 80.0))  # right bends, 30 mm off
    position = _line(lambda y: 2.0 + 5 * np.sin(y / 40.0))  # right place, wrong bends
    hybrid = hybrid_line(position, shape)
    centred = lateral_deviation_error(hybrid, true, centred=True)
    assert centred == pytest.approx(lateral_deviation_error(shape, true, centred=True), abs=1e-6)
    assert centred < lateral_deviation_error(position, true, centred=True)
    assert lateral_deviation_error(hybrid, true) < lateral_deviation_error(shape, true)


@pytest.mark.parametrize(
    "position, shape, keep, match",
    [
        (np.zeros((1, 3)), _line(np.sin), "mean", "position"),
        (_line(np.sin), np.full((5, 3), np.nan), "mean", "shape"),
        (_line(np.sin), np.zeros((5, 3)), "mean", "height"),
        (_line(np.sin), _line(np.sin), "median", "keep"),
    ],
)
def test_bad_input(position, shape, keep, match):
    with pytest.raises(ValueError, match=match):
        hybrid_line(position, shape, keep)
