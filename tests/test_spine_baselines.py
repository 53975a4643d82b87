"""Helpers of benchmarks/spine_baselines.py: the in-fold choice of the furrow tracer's setting."""

import numpy as np
import pytest

from synthetic_backs import back_with_furrow

from benchmarks.learned_furrow_folds import FITS, TRACERS, learned_furrow_folds
from benchmarks.spine_baselines import (COBB_ONLY_ROWS, FITTED, FURROW_GRID, LEARNED_ISL_ROW, LEARNED_ROWS, MOVED_ISL_ROWS, ROWS,
                                       cobb_only_records, fold_split, select_setting)
from pcdiff.data.sample import BackScan
from pcdiff.estimator.fit_furrow import prepare
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
    assert set(LEARNED_ROWS) == set(FITS) and all(row.startswith("learned furrow ESL") for row in LEARNED_ROWS.values())
    assert LEARNED_ISL_ROW.startswith("learned furrow") and "offset" in LEARNED_ISL_ROW
    assert all("diagnostic" in row for row in MOVED_ISL_ROWS) and all(row.startswith("Cobb only") for row in COBB_ONLY_ROWS)


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
    lines = {s.name: s.esl for s in train + test}
    records = cobb_only_records(train, test, 3, {COBB_ONLY_ROWS[1]: lines, COBB_ONLY_ROWS[2]: lines})
    by_row = {r["row"]: r for r in records}
    assert set(by_row) == set(COBB_ONLY_ROWS) and all(r["fold"] == 3 and r["subject"] == "held_out" for r in records)
    assert by_row[COBB_ONLY_ROWS[0]]["cobb_deg"] == pytest.approx(np.mean([10, 20, 30, 40]))
    for row in COBB_ONLY_ROWS[1:]:
        assert by_row[row]["cobb_deg"] == pytest.approx(26.0, abs=0.5) and by_row[row]["cobb_abs_err_deg"] < 0.5


def _furrowed_scan(name: str, amplitude: float, seed: int) -> BackScan:
    """A synthetic back with a known furrow, its landmarks and its ESL (the furrow line)."""
    def truth(y):
        return amplitude * np.sin(y / 400 * 2 * np.pi + seed)

    ys = np.linspace(395, 5, 60)
    esl = np.stack([truth(ys), ys, np.zeros_like(ys)], axis=1)
    landmarks = {"C7": np.array([0.0, 380.0, 0.0]), "DM": np.array([0.0, 20.0, 0.0])}
    return BackScan(name=name, points=back_with_furrow(truth, 12000, seed), esl=esl, landmarks=landmarks, meta={"cobb": 10.0})


def test_learned_furrow_folds_read_every_subject_held_out_with_in_fold_choices():
    scans = [_furrowed_scan(f"s{i}", (-1) ** i * (10 + 3 * i), i) for i in range(8)]
    phantoms = [prepare(_furrowed_scan(f"p{i}", 12 - 4 * i, 10 + i)) for i in range(3)]
    fold_of = fold_split(len(scans), 2)
    result = learned_furrow_folds(scans, fold_of, phantoms)
    assert set(result.lines) == set(result.chosen) == set(FITS)
    for fit in result.lines:
        assert len(result.chosen[fit]) == 2 and all(c in TRACERS for c in result.chosen[fit])
        assert set(result.lines[fit]) == {s.name for s in scans}
        for scan in scans:
            line, seconds = result.lines[fit][scan.name]
            assert line.shape == (64, 3) and seconds > 0
            truth = np.interp(line[:, 1], scan.esl[::-1, 1], scan.esl[::-1, 0])
            assert np.sqrt(np.mean((line[:, 0] - truth) ** 2)) < 4.0
