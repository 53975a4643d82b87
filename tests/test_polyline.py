import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pcdiff.geometry.polyline import arc_length, orient_top_down, resample_polyline


def test_resample_straight_line_is_equally_spaced():
    line = np.array([[0, 0, 0], [0, 3, 0], [0, 10, 0]], dtype=np.float32)
    out = resample_polyline(line, 11)
    np.testing.assert_allclose(out[:, 1], np.arange(11), atol=1e-5)


@settings(max_examples=30, deadline=None)
@given(st.integers(3, 40), st.integers(2, 64), st.integers(0, 2**16))
def test_resample_keeps_ends_and_length(n_in, n_out, seed):
    rng = np.random.default_rng(seed)
    line = np.cumsum(rng.uniform(0.1, 1.0, size=(n_in, 3)), axis=0)
    out = resample_polyline(line, n_out)
    assert out.shape == (n_out, 3)
    np.testing.assert_allclose(out[0], line[0], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(out[-1], line[-1], rtol=1e-5, atol=1e-4)
    # resampled length never exceeds the original (chords are shorter than arcs)
    assert arc_length(out)[-1] <= arc_length(line)[-1] + 1e-3
    seg = np.linalg.norm(np.diff(out, axis=0), axis=1)
    assert np.all(seg <= arc_length(line)[-1] / (n_out - 1) + 1e-3)


def test_resample_rejects_bad_input():
    with pytest.raises(ValueError, match="shape"):
        resample_polyline(np.zeros((1, 3)), 5)
    with pytest.raises(ValueError, match="zero length"):
        resample_polyline(np.zeros((4, 3)), 5)


def test_orient_top_down():
    line = np.array([[0, -1, 0], [0, 1, 0]], dtype=np.float32)
    assert orient_top_down(line)[0, 1] == 1
