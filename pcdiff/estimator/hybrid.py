"""One ESL from two estimates: where the line lies from one, how it bends from the other.

On PCdare the two ESL estimators are good at different things (``benchmarks/estimator_finetune.py``, 3 seeds):
the furrow path (:mod:`pcdiff.estimator.furrow`) puts the line where it is (lateral RMS 4.4 mm, against 8.4 mm for
the phantom-pretrained network fine-tuned on real backs), while the network reads its curvature better (ESL Cobb
error 4.1 against 6.4 degrees). :func:`hybrid_line` keeps the first line and replaces its bends by the second's:

    hybrid_x(y) = position_x(y) + d(y) - fit(d)(y),  with d(y) = shape_x(y) - position_x(y),

at the heights y of the position line's keypoints, where ``fit`` is the mean of d (``keep="mean"``: the position
line gives the constant lateral offset) or its least-squares straight line in y (``keep="trend"``: it also gives the
lean). Height and depth stay those of the position line, which lies on the surface. So the hybrid's lateral shape,
centred (or detrended), is the shape line's.

Measured (``python -m benchmarks.estimator_finetune --init outputs/estimator_phantom_landmarks/last.ckpt``, seeds 0-2,
PCdare 5 folds): it does not pay. The hybrid takes the network's ESL Cobb error (4.2-4.5 against the furrow path's 6.4
degrees) but loses place: ESL lateral RMS 6.7-6.8 mm keeping the mean, 4.8-5.0 mm keeping the lean as well, against
4.4 mm for the furrow path alone; and the clinical Cobb MAE of the ISL built on it (fitted offset) is 8.3-9.0 against
7.8 degrees. The furrow path stays the estimator; the hybrids stay as rows of that benchmark.

Lines are (K, 3) mm keypoints in the pcdiff frame (x lateral, y up, z towards the scanner), either direction.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from pcdiff.geometry.polyline import orient_top_down

Keep = Literal["mean", "trend"]


def _check(line: np.ndarray, name: str) -> np.ndarray:
    line = np.asarray(line, dtype=np.float64)
    if line.ndim != 2 or line.shape[1] != 3 or len(line) < 2 or not np.isfinite(line).all():
        raise ValueError(f"hybrid_line: {name} must be a finite (K >= 2, 3) line in mm, got shape {line.shape}")
    if np.ptp(line[:, 1]) <= 0:
        raise ValueError(f"hybrid_line: {name} has no height extent (all y equal)")
    return orient_top_down(line)


def hybrid_line(position: np.ndarray, shape: np.ndarray, keep: Keep = "mean") -> np.ndarray:
    """The ``position`` line with its lateral bends replaced by those of ``shape`` (see the module docstring).

    Args:
        position: (K, 3) mm, the line whose heights, depths and mean lateral place (``keep="trend"``: and lean) are kept.
        shape: (L, 3) mm, the line whose lateral bends are taken; read at ``position``'s heights by linear
            interpolation in y (held at its end values beyond its own height range).
        keep: ``"mean"`` or ``"trend"``: what of ``position``'s lateral course survives besides its heights.

    Returns:
        (K, 3) mm, top -> bottom.

    Raises:
        ValueError: a line that is not a finite (>= 2, 3) array with some height extent, or an unknown ``keep``.
    """
    if keep not in ("mean", "trend"):
        raise ValueError(f"hybrid_line: keep must be 'mean' or 'trend', got {keep!r}")
    position, shape = _check(position, "position"), _check(shape, "shape")
    order = np.argsort(shape[:, 1])  # np.interp wants increasing heights
    y = position[:, 1]
    d = np.interp(y, shape[order, 1], shape[order, 0]) - position[:, 0]
    design = np.stack([np.ones_like(y), y - y.mean()], axis=1)[:, : 1 if keep == "mean" else 2]  # (K, 1 or 2)
    coef = np.linalg.lstsq(design, d, rcond=None)[0]
    out = position.copy()
    out[:, 0] += d - design @ coef
    return out
