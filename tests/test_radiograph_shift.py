"""radiograph_shift_mm: the constant offset of PCdare's radiograph skin line from the scan's ESL (no data needed)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pcdiff.data.pcdare import radiograph_shift_mm
from pcdiff.data.sample import BackScan


def _scan(skin: np.ndarray | None) -> BackScan:
    y = np.linspace(250.0, -200.0, 40)
    esl = np.stack([8 * np.sin(y / 90), y, 20 * np.cos(y / 150)], axis=1)
    meta = {} if skin is None else {"pcdare_radiograph_skin_line": skin(esl).tolist()}
    return BackScan(name="s", points=np.zeros((10, 3), np.float32), esl=esl.astype(np.float32), meta=meta)


@settings(max_examples=25, deadline=None)
@given(dx=st.floats(-30, 30), dz=st.floats(-30, 30))
def test_shift_is_the_constant_offset(dx: float, dz: float):
    # a shorter, reversed and resampled copy of the ESL moved by (dx, ?, dz): the shift ignores y and the sampling
    scan = _scan(lambda esl: esl[30:3:-1] + np.array([dx, 0.0, dz]))
    np.testing.assert_allclose(radiograph_shift_mm(scan), [dx, 0.0, dz], atol=0.05)


def test_a_shape_change_averages_out_and_bad_input_raises():
    y = np.linspace(250.0, -200.0, 40)
    wave = np.stack([10 * np.sin(2 * np.pi * (y - y.min()) / np.ptp(y)), np.zeros_like(y), np.zeros_like(y)], axis=1)
    scan = _scan(lambda esl: esl + wave + np.array([4.0, 0, 0]))
    assert radiograph_shift_mm(scan)[0] == pytest.approx(4.0, abs=0.4)  # a zero-mean wave is not a shift
    with pytest.raises(KeyError):
        radiograph_shift_mm(_scan(None))
    with pytest.raises(ValueError, match="share no heights"):
        radiograph_shift_mm(_scan(lambda esl: esl + np.array([0.0, 1000.0, 0.0])))
