"""A classical, network-free ESL estimate: the spinal furrow / symmetry line read off the back surface.

Between the heights of two landmarks (C7 at the top; at the bottom the lowest landmark the ESL reaches:
PCdare's lower lumbar marker 2 when present, else DM, the midpoint of the dimples), the back is cut into
horizontal bands. In each band the lateral position x of the midline is read from the band's depth
profile z(x) by :func:`pcdiff.metrics.spine.symmetry_midline` (the axis of left-right symmetry) and
:func:`pcdiff.metrics.spine.furrow_midline` (the deepest point of the high-passed profile near that
axis), or the two averaged (``method="both"``). The default, ``"symmetry"``, did best of these three on
the 20 PCdare subjects and on phantoms (lateral RMS 8.9 vs furrow 10.4 and both 8.9 mm on PCdare; 15.7 vs
18.7 and 16.7 mm on 8 phantoms). ``method="path"`` instead traces the furrow as one continuous path
(:mod:`pcdiff.estimator.furrow`): 5.7 mm on PCdare and 6.6 / 9.0 mm on phantoms 0-7 at 16384 / 4096
points, but on other phantom seeds at 4096 points it is worse than the symmetry axis (mean 11.1 vs 9.7,
one sparse turned back 114 mm off), so the default stays ``"symmetry"``. For the band-wise methods a
second pass reads the bands again within 130 mm of the first pass's median x (drops arms and one-sided
crops). The per-band x is then smoothed along y by a Savitzky-Golay fit (quadratic over ``smooth_mm`` of
height), and each point of the line is dropped onto the surface (median z of the scan points within
``surface_radius_mm`` in x-y).

Only the landmarks' *heights* are used: on PCdare the C7 and lumbar markers sit to +x of the drawn line's
ends (all 20 subjects: C7 31.7 +- 6.6 mm, marker 2 27.7 +- 6.3 mm; both markers lie on the surface, the C7
one on a raised sticker), so anchoring x at them would add that offset. DM, the dimples' midpoint, lies
3 +- 4 mm from the line's lower end.

    >>> from pcdiff.estimator.geometric import geometric_esl, isl_from_esl, mean_isl_offset
    >>> esl = geometric_esl(scan)          # (H, 3) mm, top (C7) -> bottom
    >>> isl = isl_from_esl(esl, mean_isl_offset(train_esls, train_isls))   # (K, 3) mm
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy.signal import savgol_filter
from scipy.spatial import cKDTree

from pcdiff.data.sample import BackScan
from pcdiff.estimator.furrow import FurrowParams, furrow_path_x
from pcdiff.estimator.learned_furrow import LearnedFurrow
from pcdiff.geometry.polyline import orient_top_down, resample_polyline
from pcdiff.metrics.spine import furrow_midline, symmetry_midline

#: Number of bands (heights) the line is read at.
DEFAULT_NUM_HEIGHTS = 64
#: Smoothing of the per-band midline along y, mm of height (about three vertebrae).
DEFAULT_SMOOTH_MM = 80.0
#: Half-width (mm) of the band kept around the first-pass midline in the second pass.
DEFAULT_HALF_WIDTH_MM = 130.0
#: Radius (mm, in x-y) of the surface patch whose median z gives the line's depth.
SURFACE_RADIUS_MM = 6.0

Method = Literal["symmetry", "furrow", "both", "path"]


def landmark_heights(scan: BackScan) -> tuple[float, float]:
    """(top, bottom) heights y in mm of the ESL's expected ends: C7, and PCdare's marker 2 or else DM.

    Raises:
        ValueError: naming the scan when C7 or both bottom landmarks are missing.
    """
    if "C7" not in scan.landmarks:
        raise ValueError(f"{scan.name}: geometric ESL needs the C7 landmark")
    if "pcdare_marker2" in scan.meta:
        bottom = float(np.asarray(scan.meta["pcdare_marker2"], dtype=np.float64)[1])
    elif "DM" in scan.landmarks:
        bottom = float(scan.landmarks["DM"][1])
    else:
        raise ValueError(f"{scan.name}: geometric ESL needs DM (or DL and DR) below C7")
    top = float(scan.landmarks["C7"][1])
    if top <= bottom:
        raise ValueError(f"{scan.name}: C7 (y={top:.1f} mm) is not above the lower landmark (y={bottom:.1f} mm)")
    return top, bottom


def midline_x(
    points: np.ndarray, heights: np.ndarray, method: Method = "symmetry", half_width_mm: float | None = DEFAULT_HALF_WIDTH_MM
) -> np.ndarray:
    """Lateral position x (H,) mm of the back's midline at ``heights`` (H,) mm; NaN where no band could be read.

    ``"symmetry"``, ``"furrow"`` or ``"both"`` (their mean where both exist, else whichever exists).
    With ``half_width_mm``, a second pass reads the bands again from the points within ``half_width_mm``
    of the first pass's median x (the torso, without an arm or a one-sided crop that pulls a band's
    symmetry axis sideways: on the phantoms such bands were 40-70 mm off).
    """
    if half_width_mm is not None:
        first = midline_x(points, heights, "symmetry", None)
        if np.isfinite(first).any():
            centre = float(np.nanmedian(first))
            points = points[np.abs(points[:, 0] - centre) <= half_width_mm]
    if method not in ("symmetry", "furrow", "both"):
        raise ValueError(f"geometric ESL: method must be 'symmetry', 'furrow', 'both' or (geometric_esl only) 'path', got {method!r}")
    sym = symmetry_midline(points, heights) if method in ("symmetry", "both") else None
    fur = furrow_midline(points, heights) if method in ("furrow", "both") else None
    if sym is None:
        return fur
    if fur is None:
        return sym
    return np.where(np.isfinite(sym) & np.isfinite(fur), (sym + fur) / 2, np.where(np.isfinite(sym), sym, fur))


def smooth_along_height(x: np.ndarray, heights: np.ndarray, smooth_mm: float = DEFAULT_SMOOTH_MM) -> np.ndarray:
    """Fill NaN bands by linear interpolation and smooth x (H,) mm along equally spaced ``heights`` (H,) mm
    (quadratic Savitzky-Golay over ``smooth_mm``). Raises when fewer than half the bands were read."""
    ok = np.isfinite(x)
    if ok.sum() < max(3, len(x) // 2):
        raise ValueError(f"geometric ESL: the midline was found in only {ok.sum()} of {len(x)} bands")
    order = np.argsort(heights[ok])
    filled = np.interp(heights, heights[ok][order], x[ok][order])
    step = abs(heights[1] - heights[0])
    window = min(int(round(smooth_mm / step)) | 1, len(x) if len(x) % 2 else len(x) - 1)
    return savgol_filter(filled, window, polyorder=2, mode="interp") if window >= 5 else filled


def surface_depth(points: np.ndarray, xy: np.ndarray, radius_mm: float = SURFACE_RADIUS_MM) -> np.ndarray:
    """Depth z (H,) mm of the surface under each (x, y) of ``xy`` (H, 2) mm: median z of the scan
    ``points`` (N, 3) mm within ``radius_mm`` in x-y, or of the 8 nearest in x-y where none is that close."""
    tree = cKDTree(points[:, :2])
    z = np.empty(len(xy))
    for i, near in enumerate(tree.query_ball_point(xy, radius_mm)):
        if len(near) < 3:
            near = tree.query(xy[i], k=8)[1]
        z[i] = np.median(points[near, 2])
    return z


def geometric_esl(
    scan: BackScan,
    *,
    method: Method = "symmetry",
    num_heights: int = DEFAULT_NUM_HEIGHTS,
    smooth_mm: float = DEFAULT_SMOOTH_MM,
    heights: tuple[float, float] | None = None,
    furrow: FurrowParams | LearnedFurrow | None = None,
) -> np.ndarray:
    """Estimate the ESL of a back scan from its surface alone (no network, no ESL label).

    Args:
        scan: the back (``points`` (N, 3) mm) with its landmarks (C7, and DM or PCdare's marker 2).
        method: midline read per band: ``"symmetry"``, ``"furrow"`` or ``"both"`` (see the module docstring),
            or ``"path"``: the furrow traced as one continuous path (:func:`pcdiff.estimator.furrow.furrow_path_x`,
            settings ``furrow``), smoothed over ``smooth_mm``.
        num_heights: bands, evenly spaced in height between the landmarks.
        smooth_mm: smoothing of the per-band x along y, mm of height.
        heights: (top, bottom) y in mm instead of the landmarks' heights.
        furrow: settings of the ``"path"`` tracer (default :class:`~pcdiff.estimator.furrow.FurrowParams`), or a
            :class:`~pcdiff.estimator.learned_furrow.LearnedFurrow`: the path through its learned cost instead.

    Returns:
        (num_heights, 3) float64 line in mm, top -> bottom, on the surface.
    """
    top, bottom = landmark_heights(scan) if heights is None else heights
    points = np.asarray(scan.points, dtype=np.float64)
    ys = np.linspace(top, bottom, num_heights)
    if method == "path":
        x = furrow.path_x(points, ys) if isinstance(furrow, LearnedFurrow) else furrow_path_x(points, ys, furrow or FurrowParams())
    else:
        x = midline_x(points, ys, method)
    return line_on_surface(points, x, ys, smooth_mm)


def line_on_surface(points: np.ndarray, x: np.ndarray, heights: np.ndarray, smooth_mm: float = DEFAULT_SMOOTH_MM) -> np.ndarray:
    """The line (H, 3) mm through lateral positions ``x`` (H,) mm (NaN filled) at equally spaced ``heights`` (H,) mm,
    smoothed along the height (:func:`smooth_along_height`, ``smooth_mm``) and dropped onto the scan ``points`` (N, 3)
    mm (:func:`surface_depth`)."""
    x = smooth_along_height(x, heights, smooth_mm)
    return np.stack([x, heights, surface_depth(points, np.stack([x, heights], axis=1))], axis=1)


def mean_isl_offset(esls: list[np.ndarray], isls: list[np.ndarray], num_keypoints: int = DEFAULT_NUM_HEIGHTS) -> np.ndarray:
    """Mean ISL - ESL offset (K, 3) mm of training subjects, keypoint by keypoint.

    Each line (L_i, 3) mm is oriented top -> bottom and resampled to ``num_keypoints`` points at equal arc
    length; the offset of subject i is ``isl_i - esl_i`` per keypoint, averaged over the subjects.
    """
    if not esls or len(esls) != len(isls):
        raise ValueError(f"mean_isl_offset: expected as many ESLs as ISLs (>= 1), got {len(esls)} and {len(isls)}")
    diffs = [resample_polyline(orient_top_down(i), num_keypoints) - resample_polyline(orient_top_down(e), num_keypoints)
             for e, i in zip(esls, isls)]
    return np.mean(np.stack(diffs), axis=0).astype(np.float64)


def isl_from_esl(esl: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """ISL estimate (K, 3) mm: an ESL (L, 3) mm resampled to the K keypoints of ``offset`` (K, 3) mm, plus it.

    With the true ESL this is the oracle baseline of issue #13; with :func:`geometric_esl` it is a
    network-free ISL estimate."""
    return resample_polyline(orient_top_down(esl), len(offset)).astype(np.float64) + offset
