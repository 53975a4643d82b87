"""The in-memory record of one back scan, shared by readers, writers, the phantom and transforms."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

LANDMARK_NAMES = ("C7", "DL", "DR", "DM")


@dataclass
class BackScan:
    """One subject's back surface with its spinal lines and landmarks.

    All coordinates are millimetres in the 4D-Spine frame: x lateral (+x the subject's
    right), y up (pelvis -> C7), z out of the back towards the scanner.

    Attributes:
        name: unique subject key (used for subject-wise splits and file names).
        points: (N, 3) float32 back-surface points.
        esl: (L, 3) float32 external spinal line (spinous processes, on the skin), top to bottom
            or bottom to top as read; ``None`` when absent.
        isl: (M, 3) float32 internal spinal line (vertebral bodies), or ``None``.
        landmarks: name -> (3,) float32; ``C7``, ``DL``, ``DR`` and ``DM`` (midpoint of DL and DR).
        meta: everything else from the JSON (dataset, id, age, phantom parameters, cobb, ...).
        normals: optional (N, 3) float32 unit normals.
        colors: optional (N, 3) float32 colours in [0, 1].
        pipeline: key under which the spinal lines are stored (``pcdicomapp``, ``formetric``...).
    """

    name: str
    points: np.ndarray
    esl: np.ndarray | None = None
    isl: np.ndarray | None = None
    landmarks: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    normals: np.ndarray | None = None
    colors: np.ndarray | None = None
    pipeline: str = "pcdicomapp"

    def __post_init__(self) -> None:
        self.points = np.asarray(self.points, dtype=np.float32)
        if self.points.ndim != 2 or self.points.shape[1] != 3:
            raise ValueError(f"{self.name}: expected points of shape (N, 3), got {self.points.shape}")
        for attr in ("esl", "isl", "normals", "colors"):
            value = getattr(self, attr)
            if value is not None:
                value = np.asarray(value, dtype=np.float32)
                if value.ndim != 2 or value.shape[1] != 3:
                    raise ValueError(f"{self.name}: expected {attr} of shape (L, 3), got {value.shape}")
                setattr(self, attr, value)
        self.landmarks = {k: np.asarray(v, dtype=np.float32).reshape(3) for k, v in self.landmarks.items()}
        if "DM" not in self.landmarks and "DL" in self.landmarks and "DR" in self.landmarks:
            # Midpoint of the dimples: (DL + DR) / 2, parenthesised (the original code had DR + DL / 2).
            self.landmarks["DM"] = (self.landmarks["DL"] + self.landmarks["DR"]) / 2.0

    def line(self, which: str) -> np.ndarray:
        """Return the ``"esl"`` or ``"isl"`` line as (L, 3), raising a clear error when it is missing."""
        if which not in ("esl", "isl"):
            raise ValueError(f"spinal line must be 'esl' or 'isl', got {which!r}")
        value = getattr(self, which)
        if value is None or len(value) < 2:
            raise ValueError(f"{self.name}: no {which.upper()} spinal line (need at least 2 points)")
        return value
