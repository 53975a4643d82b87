"""Subject-wise folds of the PCdare benchmarks, and the in-fold choice of a setting from training subjects' errors."""

from __future__ import annotations

import numpy as np


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
