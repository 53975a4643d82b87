"""Subject-wise folds of the PCdare benchmarks, the keypoints their lines are scored at, and the in-fold choice of a
setting from training subjects' errors."""

from __future__ import annotations

import numpy as np

from pcdiff.estimator.metrics import line_errors
from pcdiff.geometry.polyline import orient_top_down, resample_polyline

#: Keypoints of every estimated line (the estimator's default is 32; 64 keeps the geometric line's detail).
NUM_KEYPOINTS = 64


def resampled(line: np.ndarray) -> np.ndarray:
    """``line`` (L, 3) mm, either direction, as the (64, 3) float64 keypoints every line here is scored at (top -> bottom)."""
    return resample_polyline(orient_top_down(line), NUM_KEYPOINTS).astype(np.float64)


def lateral_errors(lines: list[tuple[np.ndarray, float]], esl: np.ndarray) -> np.ndarray:
    """(C,) ESL lateral RMS (mm) of each of C candidate lines (``(line (K, 3) mm, seconds)`` pairs, one per setting)
    against the true ``esl`` (L, 3) mm: one back's row of the errors :func:`select_setting` chooses from."""
    truth = resampled(esl)
    return np.array([line_errors(line, truth)[0]["lateral_rms_mm"] for line, _ in lines])


def fold_split(n: int, folds: int, seed: int = 0) -> np.ndarray:
    """(n,) fold index of each subject: a seeded permutation cut into ``folds`` near-equal chunks."""
    fold_of = np.empty(n, dtype=int)
    for f, chunk in enumerate(np.array_split(np.random.default_rng(seed).permutation(n), folds)):
        fold_of[chunk] = f
    return fold_of


def select_setting(errors: np.ndarray, train: np.ndarray) -> int:
    """Index of the setting with the lowest mean error over the training subjects.

    Args:
        errors: (S, C) error of each of C settings on each of S subjects.
        train: (S,) bool, the training subjects (only their rows are looked at).
    """
    if not train.any():
        raise ValueError("select_setting: no training subject")
    return int(np.argmin(errors[train].mean(axis=0)))
