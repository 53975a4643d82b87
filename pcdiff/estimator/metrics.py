"""Error measures of an estimated spinal line against the true one, as surface-topography papers report them.

Per subject (all in millimetres, lines given as (K, 3) or (B, K, 3) in the same frame):

- ``mean_mm`` / ``rms_mm`` / ``max_mm``: mean, root-mean-square and maximum 3D distance between the
  two lines, measured point-to-curve in both directions (each predicted keypoint to the true
  polyline and each true keypoint to the predicted polyline; ``max_mm`` is the Hausdorff distance).
  Point-to-curve, not keypoint-to-keypoint, so a prediction that slides along the true line is not
  penalised for its parametrisation.
- ``lateral_rms_mm``: RMS lateral (x) deviation error at equal heights (``pcdiff.geometry.cobb``).
- ``lateral_shape_rms_mm``: the same with the mean lateral difference removed (the coronal shape error,
  blind to a constant sideways shift): the convention of Kaiser et al. 2025's ISL RMSE on PCdare.
- ``cobb_pred_deg`` / ``cobb_true_deg`` / ``cobb_abs_err_deg``: coronal tangent Cobb angles.

``summarize`` aggregates a list of per-subject rows into means, the Cobb MAE and the Pearson
correlation of predicted vs true Cobb angles.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from pcdiff.geometry.cobb import cobb_angle, lateral_deviation_error

def _point_to_polyline(points: np.ndarray, line: np.ndarray) -> np.ndarray:
    """Exact Euclidean distance (P,) of each point (P, 3) to a polyline (L, 3), via point-to-segment projection."""
    a, b = line[:-1], line[1:]  # (S, 3) segment starts and ends
    ab = b - a
    length_sq = np.maximum((ab**2).sum(-1), 1e-12)  # (S,), guards repeated vertices
    t = np.clip(((points[:, None, :] - a[None]) * ab[None]).sum(-1) / length_sq, 0.0, 1.0)  # (P, S)
    nearest = a[None] + t[..., None] * ab[None]  # (P, S, 3)
    return np.linalg.norm(points[:, None, :] - nearest, axis=-1).min(axis=1)


def line_errors(pred: np.ndarray | torch.Tensor, true: np.ndarray | torch.Tensor) -> list[dict[str, float]]:
    """Per-subject errors of predicted spinal lines against true ones.

    Args:
        pred: (B, K, 3) or (K, 3) predicted keypoints, **millimetres** (not normalised).
        true: (B, M, 3) or (M, 3) true line in mm, same frame; M may differ from K.

    Returns:
        One dict per subject with the keys listed in the module docstring (floats, mm or degrees).
    """
    pred_np = pred.detach().cpu().numpy() if isinstance(pred, torch.Tensor) else np.asarray(pred)
    true_np = true.detach().cpu().numpy() if isinstance(true, torch.Tensor) else np.asarray(true)
    if pred_np.ndim == 2:
        pred_np, true_np = pred_np[None], true_np[None]
    if pred_np.ndim != 3 or pred_np.shape[-1] != 3 or true_np.ndim != 3 or len(pred_np) != len(true_np):
        raise ValueError(
            f"pcdiff.estimator.metrics: expected pred (B, K, 3) and true (B, M, 3), got {pred_np.shape} and {true_np.shape}"
        )
    rows = []
    for p, t in zip(pred_np.astype(np.float64), true_np.astype(np.float64)):
        d = np.concatenate([_point_to_polyline(p, t), _point_to_polyline(t, p)])
        cobb_p, cobb_t = cobb_angle(p), cobb_angle(t)
        rows.append(
            {
                "mean_mm": float(d.mean()),
                "rms_mm": float(np.sqrt(np.mean(d**2))),
                "max_mm": float(d.max()),
                "lateral_rms_mm": lateral_deviation_error(p, t),
                "lateral_shape_rms_mm": lateral_deviation_error(p, t, centred=True),
                "cobb_pred_deg": cobb_p,
                "cobb_true_deg": cobb_t,
                "cobb_abs_err_deg": abs(cobb_p - cobb_t),
            }
        )
    return rows


def pearson(a: Iterable[float], b: Iterable[float]) -> float:
    """Pearson correlation of two sequences; NaN when either is constant or has fewer than 3 values."""
    a, b = np.asarray(list(a), dtype=np.float64), np.asarray(list(b), dtype=np.float64)
    if len(a) < 3 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def summarize(rows: list[dict[str, float]]) -> dict[str, float]:
    """Aggregate per-subject rows of ``line_errors`` (optionally with more numeric keys).

    Returns the mean of every key (``cobb_abs_err_deg`` mean = Cobb MAE, also given as
    ``cobb_mae_deg``), the worst ``max_mm`` over subjects as ``max_max_mm``, ``cobb_r`` (Pearson r of
    predicted vs true Cobb) and ``n``. Raises on an empty list rather than returning zeros.
    """
    if not rows:
        raise ValueError("pcdiff.estimator.metrics.summarize: no subjects to summarise")
    out = {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if isinstance(rows[0][k], (int, float))}
    out["cobb_mae_deg"] = out["cobb_abs_err_deg"]
    out["max_max_mm"] = float(max(r["max_mm"] for r in rows))
    out["cobb_r"] = pearson([r["cobb_pred_deg"] for r in rows], [r["cobb_true_deg"] for r in rows])
    out["n"] = len(rows)
    return out
