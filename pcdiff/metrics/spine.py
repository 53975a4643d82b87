"""Spine-conditioning metrics: does a generated back scan honour the spinal line it was asked for?

Without any learned model, two geometric checks of a scan ``points`` (N, 3) mm against the requested
external spinal line ``line`` (L, 3) mm (pcdiff frame: x lateral, y up, z towards the scanner):

1. **ESL-to-surface distance** (mean / max, mm): the requested ESL lies on the skin (it is the
   spinous-process line), so each of its points, resampled at equal arc length, should have a scan
   point close by. Point-to-nearest-point distance: its floor is about half the point spacing
   (~2-4 mm for 2048-4096 points on a back), which the real and phantom floors in the tests show.
   Beside it, the distance to the local plane of the nearest points, which has no such floor.
2. **Lateral deviation** (mean / max, mm): per horizontal slice of the back, the x of the requested
   line against the x of the scan's *own* midline, estimated from the surface alone by a
   :data:`MidlineEstimator` -- by default the left-right **symmetry** axis of the slice's depth profile,
   or the **furrow** (the dip between the paraspinal muscles). In scoliosis the surface symmetry line
   and the spinous processes separate somewhat (surface rotation), so compare against the same metric on
   real scans with their own ESL, not against zero.

A learned estimator plugs in as another :data:`MidlineEstimator` (``(points, heights) -> x``), or as its
own registry entry in :mod:`pcdiff.metrics.registry`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Literal

import numpy as np
from scipy.spatial import cKDTree

from pcdiff.geometry.cobb import coronal_profile
from pcdiff.geometry.polyline import resample_polyline

MidlineEstimator = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""``(points (N, 3) mm, heights (H,) mm) -> x (H,) mm`` of the scan's midline, NaN where undetermined."""

MIN_SLICE_POINTS = 30

#: Lateral distance (mm) either side of the ESL at which the back's depths are compared.
ASYMMETRY_DISTANCE_MM = 50.0
#: Radius (mm, in x-y) of the surface patch whose median depth is read at each side.
ASYMMETRY_RADIUS_MM = 6.0


def _check(points: np.ndarray, line: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    points, line = np.asarray(points, dtype=np.float64), np.asarray(line, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3 or len(points) < MIN_SLICE_POINTS:
        raise ValueError(f"spine metrics: expected scan points of shape (N >= {MIN_SLICE_POINTS}, 3) mm, got {points.shape}")
    if line.ndim != 2 or line.shape[1] != 3 or len(line) < 2:
        raise ValueError(f"spine metrics: expected a spinal line of shape (L >= 2, 3) mm, got {line.shape}")
    return points, line


#: Scan points whose plane stands in for the surface near an ESL point (:func:`esl_surface_distance`).
SURFACE_PATCH_POINTS = 16


def esl_surface_distance(
    points: np.ndarray, line: np.ndarray, num_samples: int = 64, patch_points: int = SURFACE_PATCH_POINTS
) -> dict[str, float]:
    """Distance (mm) from the requested ESL ``line`` (L, 3) to the scan ``points`` (N, 3), two ways.

    The line is resampled to ``num_samples`` points at equal arc length. Each gets

    * ``esl_surface_mean`` / ``esl_surface_max``: the Euclidean distance to its nearest scan point. Its floor is
      about half the point spacing, so it shrinks with the point count even for a line lying exactly on the skin.
    * ``esl_plane_mean`` / ``esl_plane_max``: the distance to the surface itself, read as the plane through its
      ``patch_points`` nearest scan points (normal: the smallest principal axis of the patch, as in point-to-plane
      ICP): the distance along the normal, plus how far the point lies beyond the patch's rim within the plane
      (rim: the radius of a uniform disc with the patch's RMS radius), so a line beside the scan's edge stays far.
      Independent of the point count on a flat sheet; on a back, whose spinal furrow curves, it still shrinks with
      the count, far less than the nearest-point distance (real PCdare ESLs, mean over the 20 subjects: 1.8 / 1.1 /
      0.6 mm at 1024 / 2048 / 4096 points, against 6.8 / 4.4 / 3.2 mm to the nearest point). A thick cloud
      flatters it (a plane fitted inside the cloud passes near any point), so read it with the cloud's surface
      variation or depth extent.
    """
    points, line = _check(points, line)
    if not 3 <= patch_points <= len(points):
        raise ValueError(f"esl_surface_distance: patch_points must be in [3, {len(points)}], got {patch_points}")
    queries = resample_polyline(line, num_samples).astype(np.float64)  # (S, 3)
    distances, neighbours = cKDTree(points).query(queries, k=patch_points)  # (S, k) each, nearest first
    nearest = distances[:, 0]
    patch = points[neighbours]  # (S, k, 3)
    centroid = patch.mean(axis=1)  # (S, 3)
    centred = patch - centroid[:, None]
    normal = np.linalg.eigh(np.einsum("ski,skj->sij", centred, centred))[1][..., 0]  # (S, 3), smallest axis
    offset = queries - centroid
    along_normal = np.einsum("si,si->s", offset, normal)
    within_plane = np.linalg.norm(offset - along_normal[:, None] * normal, axis=1)
    patch_in_plane = centred - np.einsum("ski,si->sk", centred, normal)[..., None] * normal[:, None]
    rim = np.sqrt(2.0 * np.mean(np.sum(patch_in_plane**2, axis=-1), axis=1))  # (S,) disc radius from RMS radius
    plane = np.hypot(along_normal, np.maximum(within_plane - rim, 0.0))
    return {"esl_surface_mean": float(nearest.mean()), "esl_surface_max": float(nearest.max()),
            "esl_plane_mean": float(plane.mean()), "esl_plane_max": float(plane.max())}


def slice_profile(
    points: np.ndarray, height: float, half_thickness: float, bin_mm: float
) -> tuple[np.ndarray, np.ndarray] | None:
    """Depth profile z(x) of the points within ``half_thickness`` of ``height``: bin centres and mean z
    per ``bin_mm`` bin between the slice's 2nd and 98th x-percentiles (empty bins filled linearly), or
    None when the slice is too sparse."""
    sl = points[np.abs(points[:, 1] - height) <= half_thickness]
    if len(sl) < MIN_SLICE_POINTS:
        return None
    lo, hi = np.percentile(sl[:, 0], [2, 98])
    if hi - lo < 8 * bin_mm:
        return None
    edges = np.arange(lo, hi + bin_mm, bin_mm)
    which = np.clip(np.digitize(sl[:, 0], edges) - 1, 0, len(edges) - 2)
    counts = np.bincount(which, minlength=len(edges) - 1)
    sums = np.bincount(which, weights=sl[:, 2], minlength=len(edges) - 1)
    centres = (edges[:-1] + edges[1:]) / 2
    filled = counts > 0
    if filled.sum() < 8:
        return None
    return centres, np.interp(centres, centres[filled], sums[filled] / counts[filled])


def _refine(values: np.ndarray, k: int, grid: np.ndarray) -> float:
    """Sub-grid position of the minimum ``values[k]`` by a parabola through its neighbours."""
    if 0 < k < len(values) - 1:
        a, b, c = values[k - 1], values[k], values[k + 1]
        denom = a - 2 * b + c
        if denom > 0:
            return float(grid[k] + 0.5 * (a - c) / denom * (grid[1] - grid[0]))
    return float(grid[k])


def symmetry_midline(
    points: np.ndarray,
    heights: np.ndarray,
    *,
    half_thickness: float = 6.0,
    bin_mm: float = 4.0,
    reach: float = 0.3,
) -> np.ndarray:
    """Left-right symmetry axis x (H,) of each horizontal slice's depth profile, NaN where too few points.

    For a candidate axis c the asymmetry is ``mean_d (z(c + d) - z(c - d) - 2 a d)^2`` over offsets d up
    to ``reach`` times the slice width, with the odd linear term ``a`` fitted away so a moderate scanner
    yaw (a tilted slice) does not bias the axis; candidates cover the central ``1 - 2 * reach`` of the
    slice (x between its 2nd and 98th percentiles). Variants tried and dropped (a crest-based search
    window, kernel-regression profiles, turning the scan to face +z first) did worse on the phantoms
    and on the PCdare backs.
    """
    out = np.full(len(heights), np.nan)
    for h, xs, zs, span in symmetry_slices(points, heights, half_thickness, bin_mm, reach):
        candidates = np.arange(xs[0] + span, xs[-1] - span + 1e-9, bin_mm / 2)
        if len(candidates) < 3:
            continue
        asym = slice_asymmetry(xs, zs, candidates, span, bin_mm)
        out[h] = _refine(asym, int(asym.argmin()), candidates)
    return out


def symmetry_slices(
    points: np.ndarray, heights: np.ndarray, half_thickness: float, bin_mm: float, reach: float
) -> Iterator[tuple[int, np.ndarray, np.ndarray, float]]:
    """The readable slices of ``points`` (N, 3) mm at ``heights`` (H,) mm for a symmetry search: per slice its index
    h, its depth profile ``xs`` (X,), ``zs`` (X,) mm (:func:`slice_profile`), and the largest offset compared,
    ``reach`` times its width (mm); an axis is only read at least that far inside the profile's ends."""
    points = np.asarray(points, dtype=np.float64)
    for h, height in enumerate(heights):
        prof = slice_profile(points, height, half_thickness, bin_mm)
        if prof is not None:
            xs, zs = prof
            yield h, xs, zs, reach * (xs[-1] - xs[0])


def slice_asymmetry(xs: np.ndarray, zs: np.ndarray, candidates: np.ndarray, span: float, min_offset: float) -> np.ndarray:
    """Left-right asymmetry (C,) mm^2 of one slice's depth profile about each candidate axis.

    ``mean_d (z(c + d) - z(c - d) - 2 a d)^2`` over 24 offsets d from ``min_offset`` to ``span`` mm, with the
    odd linear term ``a`` (a tilted slice) fitted away per candidate. ``xs`` (X,) and ``zs`` (X,) mm: the profile
    (:func:`slice_profile`, read by linear interpolation, held flat beyond its ends); ``candidates`` (C,) x in mm."""
    d = np.linspace(min_offset, span, 24)
    dz = np.interp(candidates[:, None] + d, xs, zs) - np.interp(candidates[:, None] - d, xs, zs)  # (C, D)
    slope = (dz @ d) / (d @ d)  # least-squares odd linear term per candidate
    return ((dz - slope[:, None] * d) ** 2).mean(1)


def furrow_midline(
    points: np.ndarray,
    heights: np.ndarray,
    *,
    half_thickness: float = 6.0,
    bin_mm: float = 4.0,
    window_mm: float = 60.0,
    search_mm: float = 40.0,
) -> np.ndarray:
    """x (H,) of the spinal furrow: per slice, the deepest point of the depth profile minus its moving
    average over ``window_mm`` (a high-pass that removes the back's roundness), searched within
    ``search_mm`` of the slice's symmetry axis (:func:`symmetry_midline`). NaN where undetermined.
    Reliable where the furrow is marked (lumbar), weaker over the flat thoracic back."""
    points = np.asarray(points, dtype=np.float64)
    axis = symmetry_midline(points, heights, half_thickness=half_thickness, bin_mm=bin_mm)
    out = np.full(len(heights), np.nan)
    half_window = max(1, int(round(window_mm / bin_mm / 2)))
    kernel = np.ones(2 * half_window + 1) / (2 * half_window + 1)
    for h, height in enumerate(heights):
        prof = slice_profile(points, height, half_thickness, bin_mm)
        if prof is None or not np.isfinite(axis[h]):
            continue
        xs, zs = prof
        trend = np.convolve(np.pad(zs, half_window, mode="edge"), kernel, mode="valid")
        near = np.abs(xs - axis[h]) <= search_mm
        if near.sum() < 3:
            continue
        xn, detail = xs[near], (zs - trend)[near]
        out[h] = _refine(detail, int(detail.argmin()), xn)
    return out


def back_yaw_rotation(points: np.ndarray) -> np.ndarray:
    """(3, 3) rotation about the y axis that turns the back's normal (the least-variance principal axis
    of the points, in the x-z plane, oriented towards +z) onto +z. Identity for a back facing the scanner."""
    centred = points - points.mean(0)
    normal = np.linalg.eigh(centred.T @ centred)[1][:, 0]
    nx, nz = normal[0], normal[2]
    if nz < 0:
        nx, nz = -nx, -nz
    yaw = np.arctan2(nx, nz)
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, 0.0, -s], [0.0, 1.0, 0.0], [s, 0.0, c]])


MIDLINE_ESTIMATORS: dict[str, MidlineEstimator] = {"symmetry": symmetry_midline, "furrow": furrow_midline}


def lateral_deviation_to_surface(
    points: np.ndarray,
    line: np.ndarray,
    *,
    num_slices: int = 32,
    estimator: Literal["symmetry", "furrow"] | MidlineEstimator = "symmetry",
    margin: float = 0.05,
    align_yaw: bool = False,
) -> dict[str, object]:
    """Lateral distance (mm) between the requested line and the scan's own midline, slice by slice.

    Args:
        points: (N, 3) scan in mm.
        line: (L, 3) requested spinal line (ESL) in mm.
        num_slices: heights evenly spread over the part of the line's height range covered by the
            scan, trimmed by ``margin`` (a fraction) at both ends.
        estimator: ``"symmetry"``, ``"furrow"`` or a :data:`MidlineEstimator`.
        margin: fraction of the height range left out at both ends.
        align_yaw: first turn scan and line together about the vertical axis so the back's principal
            plane faces +z (:func:`back_yaw_rotation`) and measure along the back's own lateral axis.
            Off by default: it did worse on the phantoms (whose arms and one-sided views tilt the
            principal plane) and no better on PCdare.

    Returns:
        ``{"lateral_dev_mean", "lateral_dev_max", "lateral_dev_median"}`` (mm, over slices where the
        midline was found; the max is sensitive to single bad slices, the median is the robust figure),
        ``"valid_slices"`` and the per-slice arrays ``heights``, ``x_line``, ``x_surface`` (mm).
    """
    points, line = _check(points, line)
    if align_yaw:
        rotation = back_yaw_rotation(points)
        center = points.mean(0)
        points, line = (points - center) @ rotation.T + center, (line - center) @ rotation.T + center
    fn = MIDLINE_ESTIMATORS.get(estimator) if isinstance(estimator, str) else estimator
    if fn is None:
        raise ValueError(f"unknown midline estimator {estimator!r}; expected one of {sorted(MIDLINE_ESTIMATORS)} or a callable")
    lo = max(line[:, 1].min(), points[:, 1].min())
    hi = min(line[:, 1].max(), points[:, 1].max())
    if hi <= lo:
        raise ValueError("spine metrics: the requested line and the scan do not overlap in height (y)")
    pad = margin * (hi - lo)
    heights = np.linspace(lo + pad, hi - pad, num_slices)
    x_line = coronal_profile(line, heights)
    x_surface = np.asarray(fn(points, heights), dtype=np.float64)
    ok = np.isfinite(x_surface)
    if not ok.any():
        raise ValueError("spine metrics: no slice of the scan had enough points to find its midline")
    dev = np.abs(x_line[ok] - x_surface[ok])
    return {
        "lateral_dev_mean": float(dev.mean()),
        "lateral_dev_max": float(dev.max()),
        "lateral_dev_median": float(np.median(dev)),
        "valid_slices": int(ok.sum()),
        "heights": heights,
        "x_line": x_line,
        "x_surface": x_surface,
    }


def spine_conditioning_metrics(
    points: np.ndarray,
    line: np.ndarray,
    *,
    num_slices: int = 32,
    estimator: Literal["symmetry", "furrow"] | MidlineEstimator = "symmetry",
) -> dict[str, float]:
    """Both checks for one scan: ``esl_surface_mean/max``, ``esl_plane_mean/max``, ``lateral_dev_mean/max/median``
    (mm), ``valid_slices``."""
    out: dict[str, float] = dict(esl_surface_distance(points, line))
    lat = lateral_deviation_to_surface(points, line, num_slices=num_slices, estimator=estimator)
    out.update({k: lat[k] for k in ("lateral_dev_mean", "lateral_dev_max", "lateral_dev_median", "valid_slices")})
    return out


def surface_asymmetry(
    points: np.ndarray, line: np.ndarray, distance_mm: float = ASYMMETRY_DISTANCE_MM, radius_mm: float = ASYMMETRY_RADIUS_MM
) -> np.ndarray:
    """Left-right depth asymmetry (K,) mm of the back beside each point of ``line`` (K, 3) mm.

    ``z(x + d, y) - z(x - d, y)`` with ``d = distance_mm``, each z the median depth of the scan ``points``
    (N, 3) mm within ``radius_mm`` in x-y (positive: the subject's right side, +x, stands out towards the
    scanner, e.g. a right rib hump). Points without scan on either side are filled by linear interpolation
    along the line (0 when none has both sides)."""
    points = np.asarray(points, dtype=np.float64)
    line = np.asarray(line, dtype=np.float64)
    tree = cKDTree(points[:, :2])
    out = np.full(len(line), np.nan)
    for k, (x, y, _) in enumerate(line):
        right = tree.query_ball_point([x + distance_mm, y], radius_mm)
        left = tree.query_ball_point([x - distance_mm, y], radius_mm)
        if len(right) >= 3 and len(left) >= 3:
            out[k] = np.median(points[right, 2]) - np.median(points[left, 2])
    ok = np.isfinite(out)
    if not ok.any():
        return np.zeros(len(line))
    return np.interp(np.arange(len(line)), np.flatnonzero(ok), out[ok])


def centred_asymmetry_profiles(
    backs: list[np.ndarray],
    line: np.ndarray,
    *,
    distance_mm: float = ASYMMETRY_DISTANCE_MM,
    radius_mm: float | None = None,
    num_keypoints: int = 64,
    trim: float = 0.1,
) -> list[np.ndarray]:
    """The backs' :func:`surface_asymmetry` profiles beside one ESL, ends trimmed, each centred along the line.

    Args:
        backs: clouds (N_i, 3) mm in the line's frame; line: (L, 3) mm ESL, either direction.
        distance_mm, radius_mm, num_keypoints, trim: as :func:`asymmetry_agreement` (the patch radius, when None,
            from the sparsest back).

    Returns:
        One (num_keypoints - 2 * round(trim * num_keypoints),) profile (mm, mean 0) per back.
    """
    checked = [_check(b, line) for b in backs]
    backs, line = [c[0] for c in checked], checked[0][1]
    if radius_mm is None:
        radius_mm = ASYMMETRY_RADIUS_MM * float(np.sqrt(16384 / min(len(b) for b in backs)))
    keypoints = resample_polyline(line, num_keypoints).astype(np.float64)
    cut = int(round(trim * num_keypoints))
    keypoints = keypoints[cut : num_keypoints - cut]
    profiles = [surface_asymmetry(b, keypoints, distance_mm, radius_mm) for b in backs]
    return [p - p.mean() for p in profiles]


def asymmetry_agreement(
    points: np.ndarray,
    reference: np.ndarray,
    line: np.ndarray,
    *,
    distance_mm: float = ASYMMETRY_DISTANCE_MM,
    radius_mm: float | None = None,
    num_keypoints: int = 64,
    trim: float = 0.1,
) -> dict[str, float]:
    """Does a back carry the rib hump / lumbar prominence of its spine? Its left-right depth asymmetry beside
    the ESL against that of a reference back of the same spine (e.g. the true scan).

    Vertebral rotation turns the trunk's cross-section: beside a curve's apex one side of the back stands out
    towards the scanner. Both backs' asymmetry profiles are read at the same ``num_keypoints`` keypoints of
    ``line`` (:func:`surface_asymmetry`, the ISL estimator's reader of the rotation: depth at ``+distance_mm`` minus depth at
    ``-distance_mm`` in x), ``trim`` of the keypoints dropped at each end (neck and pelvis, where the
    patches leave the back) and each profile centred along the line (a constant twist of the posture is not
    the spine's). A back whose surface does not follow the rotation of its spine has a flat profile or one
    uncorrelated with the reference's.

    Args:
        points: (N, 3) mm the back to judge; reference: (M, 3) mm a back of the same spine; line: (L, 3) mm
            its ESL (either direction), in the backs' frame.
        distance_mm: lateral distance of the compared patches from the line.
        radius_mm: x-y radius of each depth patch; None: ``ASYMMETRY_RADIUS_MM * sqrt(16384 / min(N, M))`` (6 mm on
            a dense scan, ~17 mm at 2048 points, ~10 points per patch; fixed-size patches go empty on sparse backs).
        num_keypoints, trim: keypoints of the profile and the share dropped at each end.

    Returns:
        ``asym_corr``: Pearson correlation of the two centred profiles (NaN where either is flat);
        ``asym_amplitude_ratio``: SD of the back's profile over the reference's (1: as pronounced);
        ``asym_reference_sd_mm``: the reference profile's SD (mm), the size of what is being matched.
    """
    back, ref = centred_asymmetry_profiles([points, reference], line, distance_mm=distance_mm, radius_mm=radius_mm,
                                           num_keypoints=num_keypoints, trim=trim)
    back_sd, ref_sd = float(back.std()), float(ref.std())
    corr = float(np.dot(back, ref) / (len(back) * back_sd * ref_sd)) if back_sd > 0 and ref_sd > 0 else float("nan")
    return {
        "asym_corr": corr,
        "asym_amplitude_ratio": back_sd / ref_sd if ref_sd > 0 else float("nan"),
        "asym_reference_sd_mm": ref_sd,
    }
