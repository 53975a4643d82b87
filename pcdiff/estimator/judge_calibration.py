"""A judge's Cobb reading calibrated on true backs: the requested angle expected for a read angle.

A network judge trained with a keypoint loss reads large curves flatter than they are (a pull towards the mean:
on 100 held-out true phantoms the shipped judge reads 0.70 x the requested ESL Cobb + 3.8 deg), so its Cobb error
on generated backs mixes the backs' miss with its own bias. A calibration fitted on **true** backs of phantoms that
neither the judge nor the generator saw (never on the generated backs it will score) takes the bias out: the least
squares line of the true angle on the read one, ``calibrated = intercept + slope * read``, which is the expected
true angle given the reading over the calibration set's population of curves. Read it with that population in mind:
on requested curves drawn from the same phantom prior it is the best straight-line reading; for a population of
much larger curves it would still shrink them towards the prior's mean.

Units: degrees.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pcdiff.estimator.cobb_regression import least_squares_line


@dataclass(frozen=True)
class CobbCalibration:
    """``calibrated_deg = intercept_deg + slope * read_deg``, fitted on ``n`` true backs."""

    intercept_deg: float
    slope: float
    n: int

    def __call__(self, read_deg: np.ndarray | float) -> np.ndarray | float:
        """Calibrated angle(s) in degrees for read angle(s) in degrees (same shape)."""
        value = self.intercept_deg + self.slope * np.asarray(read_deg, dtype=np.float64)
        return value if value.ndim else float(value)


def fit_cobb_calibration(read_deg: np.ndarray | list[float], true_deg: np.ndarray | list[float]) -> CobbCalibration:
    """Least-squares calibration of a judge's Cobb readings (n,) deg on true backs against their true angles (n,) deg.

    Raises:
        ValueError: fewer than 2 backs, arrays of different lengths, non-finite values, or all readings equal.
    """
    intercept, slope = least_squares_line(read_deg, true_deg, "fit_cobb_calibration")
    return CobbCalibration(intercept, slope, len(np.asarray(read_deg)))


def calibrated_rows(per_subject: list[dict[str, Any]], calibration: CobbCalibration) -> list[dict[str, Any]]:
    """Per-back judge rows (``cobb_pred_deg``, ``cobb_true_deg``, ``cobb_abs_err_deg`` among other fields; unread
    backs carry ``error``) with the read angle replaced by its calibrated value and the error recomputed; new dicts,
    the input is left as it was."""
    out = []
    for row in per_subject:
        if "error" in row:
            out.append(dict(row))
            continue
        cobb = calibration(row["cobb_pred_deg"])
        out.append({**row, "cobb_pred_deg": cobb, "cobb_abs_err_deg": abs(cobb - row["cobb_true_deg"])})
    return out
