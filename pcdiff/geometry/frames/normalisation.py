"""Normalisation: millimetres <-> normalised <-> model space, and the one list of normalisation names.

Coordinate spaces (millimetres as in README "Coordinates and units"):

    mm          the 4D-Spine frame: x lateral (+x right), y up (pelvis -> C7), z towards the scanner.
    normalised  ``(x_mm - center) / scale`` with one scan's ``center`` (3,) mm and ``scale`` mm from
                :func:`frame_of` (:func:`to_normalised`, :func:`to_mm`). The data module's samples, the
                spine estimator and ``SpineToBackPipeline.sample_normalized`` work in it.
    model       ``normalised * data_scale``, straightened first by the conditioning keypoints when the
                generator works in the straightened frame, and untwisted when it also works in the untwisted
                one (:func:`to_model`, :func:`from_model`): what the denoiser sees and the noise is added to.

Normalisations (``data.normalize``, recorded with a model's weights), :data:`NORMALIZATIONS`:

    "line"       center = midpoint of the conditioning line's two ends, scale = their distance (mm)
    "landmarks"  center = midpoint of C7 and DM, scale = |C7 - DM| (mm)
    "fixed"      the "line" center, scale = ``fixed_scale`` mm for every scan
    "center"     the "line" center, scale 1 (units stay mm)
    "none"       center 0, scale 1 (the mm frame itself)

All but "landmarks" follow from the spinal line alone (:data:`INVERTIBLE_FROM_LINE`), so only those can
be exported to a pipeline, which is given a line in mm and returns backs in mm.
"""

from __future__ import annotations

from typing import Literal, TypeVar, get_args

import numpy as np
import torch

from pcdiff.geometry.frames.straightened import straighten, unstraighten
from pcdiff.geometry.frames.twisted import retwist, untwist

Normalization = Literal["line", "landmarks", "fixed", "center", "none"]
#: Every normalisation, by name (the values of :data:`Normalization`).
NORMALIZATIONS: tuple[str, ...] = get_args(Normalization)
#: Normalisations centred on the conditioning line (they need it).
LINE_NORMALIZATIONS: tuple[str, ...] = ("line", "fixed", "center")
#: Normalisations computable from the spinal line alone (exportable to a pipeline).
INVERTIBLE_FROM_LINE: tuple[str, ...] = (*LINE_NORMALIZATIONS, "none")

Array = TypeVar("Array", np.ndarray, torch.Tensor)


def check_normalization(
    normalize: str, fixed_scale: float | None = None, *, who: str = "normalize", from_line_only: bool = False
) -> None:
    """Refuse an unknown normalisation, or a ``fixed_scale`` given without ``"fixed"`` (or missing with it).

    Args:
        normalize: the name to check, one of :data:`NORMALIZATIONS`.
        fixed_scale: the scale in mm of ``"fixed"``; None for the others.
        who: what the error messages start with (the caller's name).
        from_line_only: also refuse normalisations that need more than the spinal line (``"landmarks"``).

    Raises:
        ValueError: naming what was expected.
    """
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"{who}: unknown mode {normalize!r}; normalize must be one of {NORMALIZATIONS}")
    if from_line_only and normalize not in INVERTIBLE_FROM_LINE:
        raise ValueError(
            f"{who}: normalize={normalize!r} cannot be inverted from a spinal line alone (it needs the scan's "
            f"landmarks); expected one of {INVERTIBLE_FROM_LINE} (train with data.normalize 'line' to export a pipeline)"
        )
    if (normalize == "fixed") != (fixed_scale is not None):
        raise ValueError(
            f"{who}: give the fixed scale in mm exactly when mode='fixed' (got normalize={normalize!r}, "
            f"fixed_scale={fixed_scale!r})"
        )
    if fixed_scale is not None and not fixed_scale > 0:
        raise ValueError(f"{who}: the fixed scale must be > 0 mm, got {fixed_scale}")


def _segment_frame(a: np.ndarray, b: np.ndarray, ends: str) -> tuple[np.ndarray, float]:
    """``(midpoint (3,) float32, length)`` of the segment from ``a`` (3,) to ``b`` (3,), in their units;
    ``ends`` names them in the error when they coincide."""
    scale = float(np.linalg.norm(a - b))
    if not scale > 0:
        raise ValueError(f"{ends} coincide (zero length)")
    return ((a + b) / 2).astype(np.float32), scale


def line_frame(line: np.ndarray) -> tuple[np.ndarray, float]:
    """The ``"line"`` frame of a spinal line: centre and length of the segment between its two ends.

    Args:
        line: (L >= 2, 3) mm, in either direction (only its two ends count, so resampling it keeps its frame).

    Returns:
        ``(center (3,) float32 mm, scale mm)``: midpoint of the two ends and their distance (for the ESL
        about the C7..DM distance).
    """
    line = np.asarray(line, dtype=np.float64)
    if line.ndim != 2 or line.shape[1] != 3 or len(line) < 2:
        raise ValueError(f"line_frame: expected a line of shape (L >= 2, 3), got {line.shape}")
    return _segment_frame(line[0], line[-1], "line_frame: the line's two ends")


def landmark_frame(landmarks: np.ndarray) -> tuple[np.ndarray, float]:
    """The ``"landmarks"`` frame: center = midpoint of C7 and DM, scale = |C7 - DM|.

    Args:
        landmarks: (4, 3) C7, DL, DR, DM in mm (DL and DR are not used).

    Returns:
        ``(center (3,) float32 mm, scale mm)``.
    """
    c7, dm = np.asarray(landmarks[0], np.float64), np.asarray(landmarks[3], np.float64)
    if not (np.isfinite(c7).all() and np.isfinite(dm).all()):
        raise ValueError("landmark frame needs C7 and DM (or DL and DR)")
    return _segment_frame(c7, dm, "landmark frame: C7 and DM")


def frame_of(
    normalize: str,
    line: np.ndarray | None = None,
    landmarks: np.ndarray | None = None,
    fixed_scale: float | None = None,
) -> tuple[np.ndarray, float]:
    """The frame of one scan under a normalisation: normalised = ``(x_mm - center) / scale``.

    Args:
        normalize: one of :data:`NORMALIZATIONS`.
        line: (L >= 2, 3) the conditioning spinal line in mm; needed by :data:`LINE_NORMALIZATIONS`.
        landmarks: (4, 3) C7, DL, DR, DM in mm; needed by ``"landmarks"``.
        fixed_scale: the scale in mm, given exactly for ``"fixed"``.

    Returns:
        ``(center (3,) float32 mm, scale mm)``.

    Raises:
        ValueError: an unknown name, a missing line or landmarks, a degenerate line or landmarks.
    """
    check_normalization(normalize, fixed_scale, who="frame_of")
    if normalize == "none":
        return np.zeros(3, dtype=np.float32), 1.0
    if normalize == "landmarks":
        if landmarks is None:
            raise ValueError("frame_of: normalize='landmarks' needs the scan's landmarks (4, 3) in mm")
        return landmark_frame(landmarks)
    if line is None:
        raise ValueError(f"frame_of: normalize={normalize!r} needs the spinal line (L, 3) in mm")
    center, scale = line_frame(line)
    if normalize == "fixed":
        scale = float(fixed_scale)
    elif normalize == "center":
        scale = 1.0
    return center, scale


def frame_name(normalize: str, line: str) -> str:
    """The name a spine estimator records for its input frame: the line's (``"esl"``/``"isl"``) for
    ``normalize="line"``, else the normalisation's own (``"landmarks"``, ``"none"``...)."""
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"frame_name: unknown mode {normalize!r}; normalize must be one of {NORMALIZATIONS}")
    return line if normalize == "line" else normalize


def _frame_like(points: Array, center: Array | float, scale: Array | float) -> tuple[Array, Array]:
    """``center`` as (..., 1, 3) and ``scale`` as (..., 1, 1), of the type, dtype and device of ``points``."""
    if isinstance(points, torch.Tensor):
        center = torch.as_tensor(center, dtype=points.dtype, device=points.device)
        scale = torch.as_tensor(scale, dtype=points.dtype, device=points.device)
    else:
        dtype = points.dtype if np.issubdtype(points.dtype, np.floating) else np.float64
        center, scale = np.asarray(center, dtype=dtype), np.asarray(scale, dtype=dtype)
    if points.ndim < 2 or points.shape[-1] != 3:
        raise ValueError(f"frames: expected points of shape (..., N, 3), got {tuple(points.shape)}")
    if center.shape[-1:] != (3,) or center.ndim > points.ndim - 1 or scale.ndim > points.ndim - 2:
        raise ValueError(
            f"frames: for points {tuple(points.shape)} = (..., N, 3) expected center (..., 3) and scale (...), "
            f"got center {tuple(center.shape)} and scale {tuple(scale.shape)}"
        )
    return center[..., None, :], scale[..., None, None]


def to_normalised(points_mm: Array, center: Array | float, scale: Array | float) -> Array:
    """Millimetres -> normalised coordinates: ``(points_mm - center) / scale``.

    Args:
        points_mm: (..., N, 3) points in mm, numpy array or tensor, e.g. (N, 3) or (B, N, 3).
        center: (..., 3) mm, one per cloud (or (3,) for all).
        scale: (...) mm, one per cloud (or a float for all).

    Returns:
        (..., N, 3) normalised, of the type, dtype and device of ``points_mm``.
    """
    if not isinstance(points_mm, torch.Tensor):
        points_mm = np.asarray(points_mm)
    center, scale = _frame_like(points_mm, center, scale)
    return (points_mm - center) / scale


def to_mm(points: Array, center: Array | float, scale: Array | float) -> Array:
    """Normalised coordinates -> millimetres: ``points * scale + center``; inverse of :func:`to_normalised`.

    Args:
        points: (..., N, 3) normalised points, numpy array or tensor, e.g. (B, N, 3) clouds or (B, K, 3) keypoints.
        center: (..., 3) mm, one per cloud (or (3,) for all).
        scale: (...) mm, one per cloud (or a float for all).

    Returns:
        (..., N, 3) in mm, of the type, dtype and device of ``points``.
    """
    if not isinstance(points, torch.Tensor):
        points = np.asarray(points)
    center, scale = _frame_like(points, center, scale)
    return points * scale + center


def to_model(points: torch.Tensor, data_scale: float, line: torch.Tensor | None = None, twist_gain: float = 0.0) -> torch.Tensor:
    """Normalised -> model space: straightened by ``line`` when one is given (and untwisted by ``twist_gain``),
    then times ``data_scale``.

    Args:
        points: (B, N, 3) normalised points (or (B, K, 3) keypoints, mapped with ``line=None``).
        data_scale: model units per normalised unit.
        line: (B, K, 3) normalised keypoints, top to bottom, to straighten by
            (:func:`~pcdiff.geometry.frames.straighten`); None: not straightened.
        twist_gain: the turn beside the line's curve taken out after straightening
            (:func:`~pcdiff.geometry.frames.twisted.untwist`); 0: none. Needs ``line``.

    Returns:
        (B, N, 3) model-space points.
    """
    if line is not None:
        points = untwist(straighten(points, line.to(points)), line, twist_gain)
    elif twist_gain != 0.0:
        raise ValueError("to_model: twist_gain needs the line (the untwisted frame is built on the straightened one)")
    return points * data_scale


def from_model(points: torch.Tensor, data_scale: float, line: torch.Tensor | None = None, twist_gain: float = 0.0) -> torch.Tensor:
    """Model space -> normalised; inverse of :func:`to_model` for the same ``data_scale``, ``line`` and ``twist_gain``.

    Args:
        points: (B, N, 3) model-space points.
        data_scale: model units per normalised unit.
        line: (B, K, 3) the normalised keypoints :func:`to_model` straightened by, or None.
        twist_gain: the gain :func:`to_model` untwisted by (0: none).

    Returns:
        (B, N, 3) normalised points.
    """
    points = points / data_scale
    if line is not None:
        points = unstraighten(retwist(points, line.to(points), twist_gain), line.to(points))
    elif twist_gain != 0.0:
        raise ValueError("from_model: twist_gain needs the line (the untwisted frame is built on the straightened one)")
    return points
