"""Arc-length parametrisation and resampling of polylines (spinal lines)."""

from __future__ import annotations

import numpy as np


def orient_top_down(line: np.ndarray) -> np.ndarray:
    """Return ``line`` (L, 3) ordered from its top (largest y, C7 end) to its bottom."""
    line = np.asarray(line)
    return line if line[0, 1] >= line[-1, 1] else line[::-1].copy()


def arc_length(line: np.ndarray) -> np.ndarray:
    """Cumulative arc length (L,) of a polyline (L, 3), starting at 0, in the line's units."""
    line = np.asarray(line, dtype=np.float64)
    seg = np.linalg.norm(np.diff(line, axis=0), axis=1)
    return np.concatenate([[0.0], np.cumsum(seg)])


def resample_polyline(line: np.ndarray, num_points: int) -> np.ndarray:
    """Resample a polyline (L, 3) to ``num_points`` points equally spaced in arc length.

    Duplicate consecutive vertices are tolerated. Returns (num_points, 3) float32,
    keeping both end points.
    """
    line = np.asarray(line, dtype=np.float64)
    if line.ndim != 2 or line.shape[1] != 3 or len(line) < 2:
        raise ValueError(f"expected a polyline of shape (L >= 2, 3), got {line.shape}")
    if num_points < 2:
        raise ValueError(f"num_points must be >= 2, got {num_points}")
    s = arc_length(line)
    if s[-1] <= 0:
        raise ValueError("polyline has zero length")
    keep = np.concatenate([[True], np.diff(s) > 0])
    s, line = s[keep], line[keep]
    targets = np.linspace(0.0, s[-1], num_points)
    out = np.stack([np.interp(targets, s, line[:, d]) for d in range(3)], axis=1)
    return out.astype(np.float32)
