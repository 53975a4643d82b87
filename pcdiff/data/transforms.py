"""Small composable transforms on a dict sample (one back scan).

A sample is a plain dict made by :func:`scan_to_sample`::

    name           str
    points         (N, 3) float32   back surface (mm until normalised)
    normals        (N, 3) float32 or absent
    esl, isl       (L, 3) float32 or None, ordered top (C7) -> bottom
    landmarks      (4, 3) float32   C7, DL, DR, DM (rows of NaN where the scan has none)
    has_landmarks  bool             all four present
    center         (3,) float32     mm; normalised = (mm - center) / scale (pcdiff.geometry.frames)
    scale          float            mm
    spine          (K, 3) float32   keypoints of the conditioning line (after :class:`ResampleLine`)

Every transform is a callable ``t(sample, rng) -> sample`` returning a new dict (inputs are never
modified in place). Random transforms draw only from the ``numpy.random.Generator`` passed in, so
a seeded generator reproduces them exactly; deterministic ones ignore it. ``Compose`` chains them
(a plain class rather than torchvision's, which pcdiff does not depend on).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from pcdiff.data.sample import LANDMARK_NAMES, BackScan
from pcdiff.geometry.frames import (
    LINE_NORMALIZATIONS,
    NORMALIZATIONS,
    check_normalization,
    frame_of,
    landmark_frame,  # noqa: F401 (re-exported: benchmarks and older code import it from here)
    line_frame,
    to_normalised,
)
from pcdiff.geometry.polyline import orient_top_down, resample_polyline

#: The "line" frame of a spinal line, under its earlier name (:func:`pcdiff.geometry.frames.line_frame`).
spine_frame = line_frame

Sample = dict[str, Any]
Transform = Callable[[Sample, "np.random.Generator | None"], Sample]

#: Keys holding coordinates (moved by normalisation and geometric augmentation).
GEOMETRY_KEYS = ("points", "esl", "isl", "landmarks", "spine")


def scan_to_sample(scan: BackScan) -> Sample:
    """Turn a :class:`BackScan` (mm) into a sample dict, lines ordered top -> bottom."""
    landmarks = np.full((len(LANDMARK_NAMES), 3), np.nan, dtype=np.float32)
    for i, k in enumerate(LANDMARK_NAMES):
        if k in scan.landmarks:
            landmarks[i] = scan.landmarks[k]
    sample: Sample = {
        "name": scan.name,
        "points": scan.points,
        "esl": None if scan.esl is None else orient_top_down(scan.esl),
        "isl": None if scan.isl is None else orient_top_down(scan.isl),
        "landmarks": landmarks,
        "has_landmarks": bool(np.isfinite(landmarks).all()),
        "center": np.zeros(3, dtype=np.float32),
        "scale": 1.0,
    }
    if scan.normals is not None:
        sample["normals"] = scan.normals
    return sample


def _map_geometry(sample: Sample, fn: Callable[[np.ndarray], np.ndarray], normals_fn=None) -> Sample:
    out = dict(sample)
    for key in GEOMETRY_KEYS:
        if out.get(key) is not None:
            out[key] = fn(np.asarray(out[key], dtype=np.float32)).astype(np.float32)
    if normals_fn is not None and out.get("normals") is not None:
        out["normals"] = normals_fn(out["normals"]).astype(np.float32)
    return out


class Compose:
    """Apply transforms in order, all drawing from the same generator."""

    def __init__(self, transforms: Sequence[Transform]) -> None:
        self.transforms = list(transforms)

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Sample:
        for t in self.transforms:
            sample = t(sample, rng)
        return sample

    def __repr__(self) -> str:
        return f"Compose({self.transforms!r})"


class Normalize:
    """Centre and scale a mm sample: ``x -> (x - center) / scale``; records ``center`` and ``scale``.

    The frame comes from :func:`pcdiff.geometry.frames.frame_of`; see :mod:`pcdiff.geometry.frames` for
    the normalisations.

    Args:
        mode: one of :data:`pcdiff.geometry.frames.NORMALIZATIONS`: ``"line"`` (centre and length of
            ``line``'s ends), ``"landmarks"`` (C7..DM), ``"fixed"`` (the line's centre, ``scale`` given in
            mm), ``"center"`` (the line's centre, scale 1 so units stay mm) or ``"none"`` (identity).
        line: ``"esl"`` or ``"isl"``, the line defining the frame.
        scale: the fixed scale in mm for ``mode="fixed"``.
    """

    MODES = NORMALIZATIONS

    def __init__(self, mode: str = "line", line: str = "esl", scale: float | None = None) -> None:
        check_normalization(mode, scale, who="Normalize")
        if line not in ("esl", "isl"):
            raise ValueError(f"Normalize: line must be 'esl' or 'isl', got {line!r}")
        self.mode, self.line, self.fixed_scale = mode, line, scale

    def _line(self, sample: Sample) -> np.ndarray:
        line = sample.get(self.line)
        if line is None or len(line) < 2:
            raise ValueError(f"{sample.get('name')}: no {self.line.upper()} to normalise by")
        return line

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Sample:
        if self.mode == "none":
            return dict(sample, center=np.zeros(3, np.float32), scale=1.0)
        line = self._line(sample) if self.mode in LINE_NORMALIZATIONS else None
        center, scale = frame_of(self.mode, line=line, landmarks=sample["landmarks"], fixed_scale=self.fixed_scale)
        out = _map_geometry(sample, lambda a: to_normalised(a, center, scale))
        out["center"], out["scale"] = center, float(scale)
        return out

    def __repr__(self) -> str:
        return f"Normalize(mode={self.mode!r}, line={self.line!r}, scale={self.fixed_scale})"


class ResampleLine:
    """Set ``spine`` (K, 3): the ``which`` line, top -> bottom, resampled to K equal arc-length points."""

    def __init__(self, num_keypoints: int = 32, which: str = "esl") -> None:
        if which not in ("esl", "isl"):
            raise ValueError(f"ResampleLine: which must be 'esl' or 'isl', got {which!r}")
        self.k, self.which = int(num_keypoints), which

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Sample:
        line = sample.get(self.which)
        if line is None or len(line) < 2:
            raise ValueError(f"{sample.get('name')}: no {self.which.upper()} spinal line to resample")
        return dict(sample, spine=resample_polyline(orient_top_down(line), self.k))

    def __repr__(self) -> str:
        return f"ResampleLine(num_keypoints={self.k}, which={self.which!r})"


class ResamplePoints:
    """Resample the scan to exactly ``num_points`` points (normals follow).

    Args:
        num_points: N.
        method: ``"random"`` (uniform, without replacement) or ``"fps"`` (farthest-point sampling
            via :func:`pcdiff.ops.farthest_point_sample`, random start drawn from ``rng``).

    Raises (on call):
        ValueError: the scan has fewer than ``num_points`` points (nothing is duplicated silently).
    """

    METHODS = ("random", "fps")

    def __init__(self, num_points: int = 2048, method: str = "random") -> None:
        if method not in self.METHODS:
            raise ValueError(f"ResamplePoints: unknown method {method!r}; expected one of {self.METHODS}")
        self.n, self.method = int(num_points), method

    def indices(self, points: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(num_points,) int64 indices into ``points`` (N, 3)."""
        if len(points) < self.n:
            raise ValueError(f"scan has {len(points)} points, fewer than num_points={self.n}")
        if self.method == "random":
            return np.sort(rng.choice(len(points), self.n, replace=False))
        import torch

        from pcdiff.ops import farthest_point_sample

        # Start from a random point; the rest of FPS is deterministic given the start.
        start = int(rng.integers(len(points)))
        order = np.roll(np.arange(len(points)), -start)
        idx = farthest_point_sample(torch.from_numpy(np.ascontiguousarray(points[order]))[None], self.n)[0]
        return order[idx.numpy()]

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Sample:
        if rng is None:
            raise ValueError("ResamplePoints needs a numpy Generator (rng)")
        try:
            idx = self.indices(sample["points"], rng)
        except ValueError as exc:
            raise ValueError(f"{sample.get('name')}: {exc}") from exc
        out = dict(sample, points=sample["points"][idx])
        if sample.get("normals") is not None:
            out["normals"] = sample["normals"][idx]
        return out

    def __repr__(self) -> str:
        return f"ResamplePoints(num_points={self.n}, method={self.method!r})"


def _need_rng(rng: np.random.Generator | None, who: str) -> np.random.Generator:
    if rng is None:
        raise ValueError(f"{who} is random: pass a numpy Generator (rng)")
    return rng


class RandomRotateY:
    """Rotate every coordinate about the vertical (y) axis through the origin by U(-max_deg, max_deg).

    Apply after :class:`Normalize` so the origin is the spine centre. Backs are scanned from behind,
    so keep ``max_deg`` small (default 10 degrees).
    """

    def __init__(self, max_deg: float = 10.0) -> None:
        self.max_deg = float(max_deg)

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Sample:
        theta = np.deg2rad(_need_rng(rng, "RandomRotateY").uniform(-self.max_deg, self.max_deg))
        c, s = np.cos(theta), np.sin(theta)
        rot = np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]], dtype=np.float32)  # row vectors: x @ rot.T
        return _map_geometry(sample, lambda a: a @ rot.T, normals_fn=lambda a: a @ rot.T)

    def __repr__(self) -> str:
        return f"RandomRotateY(max_deg={self.max_deg})"


class RandomScale:
    """Scale every coordinate isotropically by U(low, high) about the origin (``scale`` is kept)."""

    def __init__(self, low: float = 0.95, high: float = 1.05) -> None:
        if not 0 < low <= high:
            raise ValueError(f"RandomScale: need 0 < low <= high, got {low}, {high}")
        self.low, self.high = float(low), float(high)

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Sample:
        f = np.float32(_need_rng(rng, "RandomScale").uniform(self.low, self.high))
        return _map_geometry(sample, lambda a: a * f)

    def __repr__(self) -> str:
        return f"RandomScale(low={self.low}, high={self.high})"


class Jitter:
    """Add clipped Gaussian noise (std ``sigma``, in the sample's current units) to the scan points only."""

    def __init__(self, sigma: float = 0.002, clip: float = 0.01) -> None:
        self.sigma, self.clip = float(sigma), float(clip)

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Sample:
        noise = _need_rng(rng, "Jitter").normal(0.0, self.sigma, sample["points"].shape)
        noise = np.clip(noise, -self.clip, self.clip).astype(np.float32)
        return dict(sample, points=sample["points"] + noise)

    def __repr__(self) -> str:
        return f"Jitter(sigma={self.sigma}, clip={self.clip})"


def default_preprocess(
    num_points: int = 2048,
    num_keypoints: int = 32,
    line: str = "esl",
    sampling: str = "random",
    normalize: str = "line",
    fixed_scale: float | None = None,
) -> Compose:
    """The deterministic-given-rng pipeline the data module caches: normalise, keypoints, resample.

    With ``normalize="line"`` the frame is the conditioning ``line``'s own (ISL or ESL).
    """
    return Compose(
        [
            Normalize(normalize, line=line, scale=fixed_scale),
            ResampleLine(num_keypoints, which=line),
            ResamplePoints(num_points, method=sampling),
        ]
    )


def default_augment(max_rotation_deg: float = 10.0, scale_range: tuple[float, float] = (0.95, 1.05),
                    jitter_sigma: float = 0.002, jitter_clip: float = 0.01) -> Compose:
    """Training-time augmentation on normalised samples: rotation about y, small scaling, jitter.

    ``jitter_sigma``/``jitter_clip`` are in normalised units (0.002 ~ 1 mm on a 450 mm spine).
    """
    return Compose([RandomRotateY(max_rotation_deg), RandomScale(*scale_range), Jitter(jitter_sigma, jitter_clip)])
