"""Helpers of benchmarks/spine_baselines.py: the in-fold choice of the furrow tracer's setting."""

import numpy as np
import pytest

from benchmarks.spine_baselines import COBB_ONLY_ROWS, FITTED, FURROW_GRID, ROWS, cobb_only_records, fold_split, select_setting
from pcdiff.data.sample import BackScan
from pcdiff.estimator.furrow import FurrowParams


def test_select_setting_looks_at_training_subjects_only():
    errors = np.array([[1.0, 5.0], [1.0, 5.0], [9.0, 0.0]])  # setting 0 best on subjects 0-1, setting 1 on 2
    assert select_setting(errors, np.array([True, True, False])) == 0
    assert select_setting(errors, np.array([False, False, True])) == 1
    with pytest.raises(ValueError, match="training"):
        select_setting(errors, np.zeros(3, dtype=bool))


def test_grid_starts_with_the_default_and_every_row_says_what_it_fits():
    assert FURROW_GRID[0] == FurrowParams()
    assert len(set(FURROW_GRID)) == len(FURROW_GRID) == 24
    assert set(FITTED) == set(ROWS)


def test_folds_are_subject_wise_and_near_equal():
    fold_of = fold_split(20, 5)
    assert sorted(np.bincount(fold_of).tolist()) == [4] * 5
    np.testing.assert_array_equal(fold_of, fold_split(20, 5))


def _twisted_scan(name: str, gain: float, cobb: float) -> BackScan:
    """A grid back whose cross-sections turn by ``gain`` (dz/dx) at mid-height, with a straight midline ESL."""
    x, y = np.meshgrid(np.arange(-150.0, 151.0, 5.0), np.arange(0.0, 451.0, 5.0))
    points = np.stack([x.ravel(), y.ravel(), (gain * np.sin(np.pi * y / 450.0) * x).ravel()], axis=1)
    esl = np.stack([np.zeros(30), np.linspace(440.0, 10.0, 30), np.zeros(30)], axis=1)
    return BackScan(name=name, points=points, esl=esl, isl=esl - [0, 0, 60], meta={"cobb": cobb})


def test_cobb_only_rows_fit_on_training_subjects_and_score_the_test_ones():
    """Cobb = 10 + 200 * gain on every back: the swing fit recovers it on a held-out back; the mean row gives the
    training mean."""
    train = [_twisted_scan(f"t{i}", g, 10 + 200 * g) for i, g in enumerate((0.0, 0.05, 0.1, 0.15))]
    test = [_twisted_scan("held_out", 0.08, 26.0)]
    records = cobb_only_records(train, test, 3, {s.name: s.esl for s in train + test})
    by_row = {r["row"]: r for r in records}
    assert set(by_row) == set(COBB_ONLY_ROWS) and all(r["fold"] == 3 and r["subject"] == "held_out" for r in records)
    assert by_row[COBB_ONLY_ROWS[0]]["cobb_deg"] == pytest.approx(np.mean([10, 20, 30, 40]))
    for row in COBB_ONLY_ROWS[1:]:
        assert by_row[row]["cobb_deg"] == pytest.approx(26.0, abs=0.5) and by_row[row]["cobb_abs_err_deg"] < 0.5
