"""A Cobb angle read from the rib hump: a straight-line fit of the clinical angle on the back's rotation swing.

The Cobb angle measured on an estimated ISL inherits every error of that line. Surface-topography practice
(Kaiser et al. 2025 on PCdare; the rasterstereography literature before them) reads the curve's size from the
surface's rotation instead: the vertebral rotation that comes with a scoliotic curve turns the rib cage and the
lumbar muscles, so one side of the back stands out. :func:`asymmetry_swing_mm` measures that as the swing (max - min
along the spinal line) of the left-right depth difference 50 mm either side of an ESL
(:func:`pcdiff.metrics.spine.surface_asymmetry`, the same reading the ISL offset model uses);
:class:`AsymmetryCobbModel` maps it to degrees by least squares on training subjects.

Measured on the 20 PCdare subjects, 5 folds, fitted on each fold's training subjects (``python -m
benchmarks.spine_baselines``): beside the furrow-path ESL, Cobb MAE 6.8 +- 4.2 deg (median 6.4), held-out r = 0.64,
against 7.8 +- 6.8 deg (r = 0.43) for the Cobb angle of the ISL estimate built on the same ESL and 9.1 deg for the
training subjects' mean angle; beside the true ESL 6.6 deg. It gives the angle only, not the line.

Tried and not kept (scratch script, the same folds and in-fold furrow settings): adding the furrow-path ESL's own Cobb
angle as a second regressor, 7.0 deg (median 5.8, r 0.58); adding the Cobb angle of the ISL estimate instead, 7.7;
all three, 8.1. With 16 training subjects per fold the extra slopes cost more than they bring. Choosing the
distance per fold among 30, 40, 50 and 70 mm by leave-one-out error over the training subjects (a row added to
``spine_baselines`` for one run, then removed): 7.3 +- 4.1 deg, worse than the fixed 50 mm, and unstable (the folds
chose 70 mm four times and 50 mm once beside the furrow-path ESL, while beside the true ESL 30 mm fitted best).

Units: points and lines in mm (pcdiff frame: x lateral, y up, z towards the scanner), angles in degrees.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pcdiff.metrics.spine import ASYMMETRY_DISTANCE_MM, surface_asymmetry


def asymmetry_swing_mm(points: np.ndarray, esl: np.ndarray, distance_mm: float = ASYMMETRY_DISTANCE_MM) -> float:
    """Swing (mm, >= 0) of the back's left-right depth asymmetry along ``esl`` (K, 3) mm: the largest minus the
    smallest of :func:`~pcdiff.metrics.spine.surface_asymmetry` (``distance_mm`` either side) over the line's points,
    read on the scan ``points`` (N, 3) mm. A right thoracic hump over a left lumbar prominence counts both."""
    return float(np.ptp(surface_asymmetry(np.asarray(points, np.float64), np.asarray(esl, np.float64), distance_mm)))


@dataclass(frozen=True)
class AsymmetryCobbModel:
    """Cobb angle (deg) = ``intercept_deg + slope_deg_per_mm * swing`` with the swing of :func:`asymmetry_swing_mm`."""

    intercept_deg: float
    slope_deg_per_mm: float
    distance_mm: float = ASYMMETRY_DISTANCE_MM

    def predict(self, points: np.ndarray, esl: np.ndarray) -> float:
        """Cobb angle (deg) of the back with scan ``points`` (N, 3) mm and ESL (estimate) ``esl`` (K, 3) mm."""
        return self.from_swing(asymmetry_swing_mm(points, esl, self.distance_mm))

    def from_swing(self, swing_mm: float) -> float:
        """Cobb angle (deg) for a swing already measured (mm)."""
        return float(self.intercept_deg + self.slope_deg_per_mm * swing_mm)


def least_squares_line(x: np.ndarray | list[float], y: np.ndarray | list[float], who: str) -> tuple[float, float]:
    """(intercept, slope) of the least-squares line y = intercept + slope * x over (n,) arrays; ``who`` names the
    caller in errors.

    Raises:
        ValueError: fewer than 2 values, arrays of different lengths, non-finite values, or all x equal.
    """
    xs, ys = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if xs.ndim != 1 or xs.shape != ys.shape or len(xs) < 2:
        raise ValueError(f"{who}: expected two (n >= 2,) arrays, got {xs.shape} and {ys.shape}")
    if not (np.isfinite(xs).all() and np.isfinite(ys).all()):
        raise ValueError(f"{who}: every value must be finite")
    if np.ptp(xs) == 0:
        raise ValueError(f"{who}: every x is equal, the slope is undefined")
    slope, intercept = np.polyfit(xs, ys, 1)
    return float(intercept), float(slope)


def fit_asymmetry_cobb(swings_mm: np.ndarray | list[float], cobbs_deg: np.ndarray | list[float],
                       distance_mm: float = ASYMMETRY_DISTANCE_MM) -> AsymmetryCobbModel:
    """Least-squares :class:`AsymmetryCobbModel` from training subjects' swings (n,) mm (:func:`asymmetry_swing_mm`,
    read at ``distance_mm``) and their clinical Cobb angles (n,) deg.

    Raises:
        ValueError: fewer than 2 subjects, arrays of different lengths, non-finite values, or all swings equal.
    """
    intercept, slope = least_squares_line(swings_mm, cobbs_deg, "fit_asymmetry_cobb")
    return AsymmetryCobbModel(intercept, slope, float(distance_mm))

