"""Helpers of benchmarks/spine_baselines.py: the in-fold choice of the furrow tracer's setting."""

import numpy as np
import pytest

from benchmarks.spine_baselines import FITTED, FURROW_GRID, ROWS, fold_split, select_setting
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
