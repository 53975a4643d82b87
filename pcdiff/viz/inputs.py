"""Turn what callers hand the plotting functions (BackScans, arrays, tensors) into one record.

Both the plotly and the matplotlib views draw the same things: a cloud of points coloured by depth
(z), the spinal lines and the landmarks. This module checks shapes once, loudly, so that the two
renderers only draw.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pcdiff.data.sample import BackScan


@dataclass
class CloudView:
    """One panel's content, in the caller's units (millimetres or normalised).

    Attributes:
        title: panel title.
        points: (N, 3) float32 points.
        lines: label ("ESL", "ISL", "spine") -> (L, 3) float32 polyline.
        landmarks: name (C7, DL, DR, DM) -> (3,) float32.
    """

    title: str
    points: np.ndarray
    lines: dict[str, np.ndarray] = field(default_factory=dict)
    landmarks: dict[str, np.ndarray] = field(default_factory=dict)


def to_numpy(array: Any, what: str) -> np.ndarray:
    """Return ``array`` (NumPy, list or torch tensor, on any device) as a float32 NumPy array (R, 3).

    Raises ``ValueError`` naming ``what`` when the shape is not (R, 3) with R >= 1, or when it holds
    NaN or infinite values.
    """
    if hasattr(array, "detach"):  # a torch tensor, possibly on a GPU or requiring grad
        array = array.detach().float().cpu().numpy()
    out = np.asarray(array, dtype=np.float32)
    if out.ndim != 2 or out.shape[1] != 3 or out.shape[0] < 1:
        raise ValueError(f"{what}: expected an array of shape (N, 3) with N >= 1, got shape {out.shape}")
    if not np.isfinite(out).all():
        raise ValueError(f"{what}: contains NaN or infinite coordinates")
    return out


CENTERS = (None, "DM", "centroid")


def as_cloud_views(
    clouds: Sequence[BackScan | np.ndarray | Any],
    spines: Sequence[np.ndarray | None] | None = None,
    titles: Sequence[str] | None = None,
    center: str | None = None,
) -> list[CloudView]:
    """Normalise the plotting functions' inputs.

    Args:
        clouds: BackScans or (N, 3) arrays / tensors; a (B, N, 3) array is read as B clouds.
        spines: one (K, 3) polyline (or ``None``) per cloud, drawn as "spine" (for instance the
            conditioning keypoints of a generated back). For a BackScan given without a spine, its
            own ESL and ISL are drawn; its landmarks are drawn in every case.
        titles: one title per cloud; defaults to the scan name or "cloud i".
        center: translate each cloud with its lines and landmarks for display: ``None`` (as given),
            ``"DM"`` (its DM landmark, the midpoint of the lumbar dimples, to the origin; BackScans only)
            or ``"centroid"`` (the mean of its points to the origin). Use it to compare scans recorded
            in different frames, e.g. real scans in the scanner frame beside phantoms.

    Returns:
        one ``CloudView`` per cloud.
    """
    if isinstance(clouds, BackScan) or (hasattr(clouds, "ndim") and clouds.ndim == 2):
        raise ValueError("clouds: expected a list of clouds (or a (B, N, 3) batch), got a single cloud; wrap it in [...]")
    clouds = list(clouds)
    if not clouds:
        raise ValueError("clouds: expected at least one cloud, got an empty list")
    n = len(clouds)
    if center not in CENTERS:
        raise ValueError(f"center: expected one of {CENTERS}, got {center!r}")
    if spines is not None and len(spines) != n:
        raise ValueError(f"spines: expected one polyline (or None) per cloud ({n}), got {len(spines)}")
    if titles is not None and len(titles) != n:
        raise ValueError(f"titles: expected one title per cloud ({n}), got {len(titles)}")

    views = []
    for i, cloud in enumerate(clouds):
        spine = None if spines is None else spines[i]
        if isinstance(cloud, BackScan):
            title = cloud.name
            points = to_numpy(cloud.points, f"clouds[{i}] ({cloud.name}).points")
            lines = {}
            if spine is None:
                for key in ("esl", "isl"):
                    line = getattr(cloud, key)
                    if line is not None and len(line) >= 2:
                        lines[key.upper()] = to_numpy(line, f"clouds[{i}] ({cloud.name}).{key}")
            landmarks = {k: np.asarray(v, dtype=np.float32).reshape(3) for k, v in cloud.landmarks.items()}
        else:
            title = f"cloud {i}"
            points = to_numpy(cloud, f"clouds[{i}]")
            lines, landmarks = {}, {}
        if spine is not None:
            lines["spine"] = to_numpy(spine, f"spines[{i}]")
        if titles is not None:
            title = str(titles[i])
        if center is not None:
            if center == "DM" and "DM" not in landmarks:
                raise ValueError(f"center='DM': clouds[{i}] ({title}) has no DM landmark (give a BackScan with landmarks, or center='centroid')")
            origin = landmarks["DM"] if center == "DM" else points.mean(axis=0)
            points = points - origin
            lines = {k: v - origin for k, v in lines.items()}
            landmarks = {k: v - origin for k, v in landmarks.items()}
        views.append(CloudView(title=title, points=points, lines=lines, landmarks=landmarks))
    return views


def depth_range(views: Sequence[CloudView]) -> tuple[float, float]:
    """Shared (min, max) of z over every view's points, so that all panels use one depth colour scale."""
    z = np.concatenate([v.points[:, 2] for v in views])
    lo, hi = float(z.min()), float(z.max())
    if hi <= lo:  # a flat cloud: widen so that colour normalisation does not divide by zero
        lo, hi = lo - 0.5, hi + 0.5
    return lo, hi
