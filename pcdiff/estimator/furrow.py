"""The spinal furrow traced down the back as one continuous path: a network-free ESL estimate.

The ESL (the tips of the spinous processes, on the skin) lies at the floor of the spinal furrow, the
narrow V between the paraspinal muscles. On the 20 PCdare backs the drawn line follows that V to within
~2-3 mm over the lumbar and lower thoracic spine; higher up the V fades (upper thoracic spine) and a
per-band reading of it jumps to the scapulae's edges. So the furrow is not read band by band but traced
as the cheapest continuous path through a cost image (dynamic programming, Viterbi):

1. **Depth bands**: the scan is cut into horizontal bands every ``band_step_mm`` between the two heights,
   and each band's depth z(x) is averaged in ``bin_mm`` bins around the trunk's centre (:func:`depth_bands`).
2. **Valley cost**: each band's profile minus its Gaussian-weighted lateral mean at each scale of
   ``scales_mm`` (a high-pass: what is left is the local dip / bump), divided by the band's SD and clipped
   to ``clip`` (a deep valley cannot outvote the path's smoothness by much, nor a bump block it), summed
   over the scales (:func:`valley_cost`). A narrow scale finds the V, a wide one the furrow's trough.
3. **Path**: the path moves at most one bin per band and pays ``smoothness * step**2`` per move
   (:func:`trace_path`). It stays within ``half_width_frac`` of the trunk's width of the trunk's centre or of
   the median left-right symmetry axis (:func:`pcdiff.metrics.spine.symmetry_midline`), whichever is further
   out (on phantoms with arms either can be 40-60 mm off). Bins whose detrending reaches an edge, crop or
   hole cost nothing (``min_coverage``): otherwise the fall of the trunk's side reads as a valley.

4. **Top re-anchoring** (opt-in, ``top_anchor``; off by default): over the top ``top_frac`` of the height
   range (the neck / C7 region) there is no furrow to trace (the mean high-passed profile about the drawn
   line is flat there on PCdare), so the path's top is only carried up by its smoothness and drifts to the
   scapulae's edges. The median left-right symmetry axis of that top part is read instead, and the path is
   shifted by ``top_anchor`` times the difference (at most ``top_max_shift_mm``), the shift falling linearly
   to 0 at the bottom, where the furrow is clear (:func:`top_anchor_shift`).

The x path is smoothed along y (:func:`pcdiff.estimator.geometric.smooth_along_height`) and dropped onto
the surface by :func:`pcdiff.estimator.geometric.geometric_esl` (``method="path"``).

:mod:`pcdiff.estimator.learned_furrow` traces the same path (:func:`search_grid`, :func:`path_through`) through a cost
learned from depth features instead of :func:`valley_cost`.

Measured (ESL lateral RMS, mean over backs; ``benchmarks/spine_baselines.py`` for PCdare):

- PCdare, 20 subjects: 5.7 +- 2.5 mm (symmetry axis, the default of ``geometric_esl``: 8.9 +- 6.4). These
  defaults were picked while looking at these subjects; choosing among 12 settings on the training folds
  only gives 5.8 +- 2.6. The error sits in the upper thoracic third, where the furrow fades
  (RMS by height octile, top to bottom: 8.2 7.8 7.6 6.5 5.6 4.8 3.1 3.2 mm); there is no constant bias
  (mean x error -0.3 mm; per subject, the RMS about its own mean error is 4.1 mm).
- Phantoms 0-7: 6.6 mm at 16384 points (symmetry 12.9), 9.0 at 4096 (symmetry 15.7). Phantoms 100-131:
  4.7 mm at 16384 points (symmetry 8.6; median 4.1 vs 3.1), 11.1 at 4096 (symmetry 9.7; one back 114 mm
  off, a strongly turned sparse back whose path locks onto the far side). Not better everywhere, so it
  is not ``geometric_esl``'s default.
- Top re-anchoring (``top_anchor=1``, ``top_frac=0.15``, ``top_max_shift_mm=15``): choosing in-fold among the 24
  settings ``FURROW_GRID`` x ``top_anchor`` in {0, 1} (training subjects only; 4 of 5 folds pick scales (12,),
  smoothness 3, width 0.3 with the anchor, one the default + anchor) gives 4.4 +- 1.6 mm on PCdare (the 12
  settings without it: 5.8 +- 2.5; octiles top to bottom 5.4 4.7 5.7 5.1 5.4 4.7 2.5 3.1 vs 8.6 7.9 7.5 6.6 6.0
  4.9 3.0 3.2 mm, from x at 64 heights of the overlap). The symmetry axis alone over the top 15 %: 6.0 mm
  RMS at the line's top end vs the path's 8.6. Phantoms (default settings + anchor vs without): 0-7 at 16384
  points 8.1 vs 6.6 mm (max 13.8 vs 11.5), 100-131 at 16384 5.2 vs 4.7 (median 5.0 vs 4.1), 0-7 at 4096 8.9 vs
  9.0. Worse on phantoms (their arms / crops at the top pull the symmetry axis; without the 15 mm cap,
  which was set on the phantoms, phantom 0 was 42 mm off), so it stays opt-in. Measured with scratch
  scripts: ``geometric_esl(scan, method="path", furrow=replace(p, top_anchor=a))`` for every ``p`` of
  ``benchmarks.spine_baselines.FURROW_GRID``, ``select_setting`` per fold of ``fold_split(20, 5)``.
- Tried and weighed for the upper region, not kept: the C7 landmark as a top anchor (its x offset to the
  line's top, fitted on the training folds, leaves 7.3 mm RMS; a soft C7 prior inside the path's cost: 5.7
  in-fold, a post-hoc linear pull: 4.9; averaging it with the symmetry anchor 4.4, no gain for a landmark
  convention); a small-scale ridge term (the mean 3-5 mm high-passed profile about the drawn line shows no
  spinous-process bump in the upper octiles, only the furrow, lying ~2-8 mm to -x of the line); linear
  continuation of the lower half's path upwards (16 mm at the top: the lines bend back towards C7).
- Tried and dropped: a pull towards the band-wise symmetry axis (PCdare 5.6-5.7, phantoms at 4096 points
  worse: 11-15 mm); a local mirror-symmetry cost instead of the high-pass (PCdare 5.6-6.1); larger
  smoothness (10: 6.7; 30: 7.6 mm) -- the lines bend more than a stiff path allows.

Units: mm throughout, pcdiff frame (x lateral, y up, z towards the scanner).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d

from pcdiff.metrics.spine import symmetry_midline

#: Defaults of the tracer (see :class:`FurrowParams`).
DEFAULT_SCALES_MM = (5.0, 25.0)


@dataclass(frozen=True)
class FurrowParams:
    """Settings of :func:`furrow_path_x`.

    Attributes:
        scales_mm: Gaussian sigmas (mm) of the lateral high-pass, one cost term each.
        smoothness: cost of a lateral step of one bin between neighbouring bands (squared steps).
        half_width_frac: the path stays within this fraction of the trunk's width (5-95 % x-percentiles,
            median over bands) of the trunk's centre or of the median symmetry axis.
        clip: (low, high) clip of each normalised cost term.
        bin_mm: lateral bin width (mm); widened to the point spacing for sparse scans.
        band_step_mm: vertical spacing (mm) of the bands.
        half_thickness_mm: half height (mm) of each band; widened to the point spacing for sparse scans.
        min_coverage: bins whose Gaussian weight falls on filled bins for less than this fraction cost 0.
        top_anchor: weight (0-1) of the top re-anchoring (:func:`top_anchor_shift`); 0 (the default) leaves the
            traced path as it is.
        top_frac: fraction of the height range, from the top, over which the re-anchoring reads the symmetry
            axis and the path.
        top_max_shift_mm: the re-anchoring moves the top by at most this (mm): a guard against a symmetry
            axis pulled off by arms or a crop at the top (set on phantoms, not on PCdare).
    """

    scales_mm: tuple[float, ...] = DEFAULT_SCALES_MM
    smoothness: float = 3.0
    half_width_frac: float = 0.2
    clip: tuple[float, float] = (-3.0, 1.0)
    bin_mm: float = 2.0
    band_step_mm: float = 3.0
    half_thickness_mm: float = 4.0
    min_coverage: float = 0.95
    top_anchor: float = 0.0
    top_frac: float = 0.15
    top_max_shift_mm: float = 15.0


def point_spacing_mm(points: np.ndarray) -> float:
    """Typical spacing (mm) of scan ``points`` (N, 3): sqrt of the x-y bounding area (5-95 % percentiles) per point."""
    lo, hi = np.percentile(points[:, :2], [5, 95], axis=0)
    return float(np.sqrt(max((hi - lo).prod(), 1.0) / (0.81 * len(points))))


def trunk_centre_and_width(points: np.ndarray, heights: np.ndarray, half_thickness_mm: float = 5.0) -> tuple[float, float]:
    """Median over the bands at ``heights`` (H,) mm of the trunk's lateral centre and width (mm).

    Per band the trunk spans the 5th to 95th percentile of the points' x (arms and crop edges trimmed).
    Raises ValueError when no band holds points."""
    centres, widths = [], []
    for h in heights:
        sl = points[np.abs(points[:, 1] - h) <= half_thickness_mm, 0]
        if len(sl) >= 10:
            lo, hi = np.percentile(sl, [5, 95])
            centres.append((lo + hi) / 2)
            widths.append(hi - lo)
    if not centres:
        raise ValueError("furrow: no band of the scan holds points between the given heights")
    return float(np.median(centres)), float(np.median(widths))


def depth_bands(
    points: np.ndarray, heights: np.ndarray, x_lo: float, x_hi: float, bin_mm: float, half_thickness_mm: float
) -> tuple[np.ndarray, np.ndarray]:
    """Mean depth of the scan in a grid of bands x lateral bins.

    Args:
        points: (N, 3) scan, mm.
        heights: (H,) band centres y, mm.
        x_lo, x_hi: lateral range (mm) of the bins.
        bin_mm: bin width, mm.
        half_thickness_mm: points within this of a band's height belong to it.

    Returns:
        ``xs`` (X,) bin centres in mm and ``z`` (H, X) mean depth in mm, NaN in empty bins.
    """
    xs = np.arange(x_lo, x_hi + 1e-9, bin_mm)
    z = np.full((len(heights), len(xs)), np.nan)
    order = np.argsort(points[:, 1])
    ys = points[order, 1]
    for b, h in enumerate(heights):
        i0, i1 = np.searchsorted(ys, [h - half_thickness_mm, h + half_thickness_mm + 1e-9])
        sl = points[order[i0:i1]]
        idx = np.round((sl[:, 0] - xs[0]) / bin_mm).astype(int)
        ok = (idx >= 0) & (idx < len(xs))
        counts = np.bincount(idx[ok], minlength=len(xs))
        sums = np.bincount(idx[ok], weights=sl[ok, 2], minlength=len(xs))
        z[b] = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return xs, z


def detrend_lateral(z: np.ndarray, sigma_bins: float, min_coverage: float = 0.0) -> np.ndarray:
    """``z`` (H, X) minus its NaN-aware Gaussian-weighted mean along x (sigma in bins): the local dip (< 0)
    or bump (> 0) of each band's profile. NaN where ``z`` is NaN, and where less than ``min_coverage`` of the
    Gaussian's weight falls on filled bins (next to the scan's edge, a crop or a hole, where the mean is lopsided)."""
    valid = np.isfinite(z)
    weight = gaussian_filter1d(valid.astype(np.float64), sigma_bins, axis=1, mode="constant")
    mean = gaussian_filter1d(np.where(valid, z, 0.0), sigma_bins, axis=1, mode="constant")
    out = z - mean / np.maximum(weight, 1e-9)
    return np.where(weight >= min_coverage, out, np.nan)


def valley_cost(
    z: np.ndarray,
    bin_mm: float,
    scales_mm: tuple[float, ...] = DEFAULT_SCALES_MM,
    clip: tuple[float, float] = (-3.0, 1.0),
    min_coverage: float = 0.95,
) -> np.ndarray:
    """Cost (H, X) of the furrow passing through each bin: low in a valley of the depth profile.

    Sum over ``scales_mm`` of the detrended depth (:func:`detrend_lateral`) divided by its SD over the
    band and clipped to ``clip``. Bins where the detrending is undefined (:func:`detrend_lateral` with
    ``min_coverage``: empty, or next to an edge, crop or hole) cost 0 (neutral). ``z`` (H, X) mm, ``bin_mm`` its bin width."""
    cost = np.zeros_like(z, dtype=np.float64)
    for scale in scales_mm:
        d = detrend_lateral(z, scale / bin_mm, min_coverage)
        finite = np.isfinite(d)
        count = finite.sum(axis=1, keepdims=True)
        mean = np.where(finite, d, 0.0).sum(axis=1, keepdims=True) / np.maximum(count, 1)
        sd = np.sqrt(np.where(finite, (d - mean) ** 2, 0.0).sum(axis=1, keepdims=True) / np.maximum(count, 1))
        sd = np.where(sd > 1e-9, sd, 1.0)
        cost += np.clip(np.where(finite, d / sd, 0.0), *clip)
    return cost


def trace_path(cost: np.ndarray, smoothness: float, max_step: int = 1) -> np.ndarray:
    """Column index (H,) of the cheapest path through ``cost`` (H, X), one column per row.

    The path's total is the sum of its cells' costs plus ``smoothness * step**2`` for every move of
    ``step`` columns between neighbouring rows, ``|step| <= max_step`` (exact, by dynamic programming)."""
    rows, cols = cost.shape
    if rows == 0 or cols == 0:
        raise ValueError(f"trace_path: empty cost image {cost.shape}")
    total = cost[0].astype(np.float64).copy()
    back = np.zeros((rows, cols), dtype=np.int64)
    col = np.arange(cols)
    for r in range(1, rows):
        best = np.full(cols, np.inf)
        arg = np.zeros(cols, dtype=np.int64)
        for step in range(-max_step, max_step + 1):
            src = col - step
            ok = (src >= 0) & (src < cols)
            cand = np.full(cols, np.inf)
            cand[ok] = total[src[ok]] + smoothness * step * step
            better = cand < best
            best[better], arg[better] = cand[better], src[better]
        total = best + cost[r]
        back[r] = arg
    path = np.empty(rows, dtype=np.int64)
    path[-1] = int(np.argmin(total))
    for r in range(rows - 1, 0, -1):
        path[r - 1] = back[r, path[r]]
    return path


def top_anchor_shift(
    x: np.ndarray,
    heights: np.ndarray,
    sym_top: float,
    weight: float = 1.0,
    top_frac: float = 0.15,
    max_shift_mm: float = np.inf,
) -> np.ndarray:
    """The path ``x`` (H,) mm at ``heights`` (H,) mm (either order) re-anchored at its top: ``x`` plus a
    correction linear in height that is ``weight * (sym_top - median x over the top top_frac)``, clipped to
    +-``max_shift_mm``, at the middle of the top ``top_frac`` of the height range and falls to 0 at the lowest
    height (the lower path, read where the furrow is clear, is kept). ``sym_top`` mm: the symmetry axis read
    over that top part."""
    x = np.asarray(x, dtype=np.float64)
    heights = np.asarray(heights, dtype=np.float64)
    lo, hi = float(heights.min()), float(heights.max())
    if hi <= lo or weight == 0.0 or not np.isfinite(sym_top):
        return x.copy()
    t = (hi - heights) / (hi - lo)  # 0 at the top, 1 at the bottom
    top = t <= top_frac
    shift = float(np.clip(weight * (sym_top - float(np.median(x[top]))), -max_shift_mm, max_shift_mm))
    return x + shift * np.clip((1.0 - t) / (1.0 - top_frac / 2), 0.0, 1.0)


@dataclass(frozen=True)
class SearchGrid:
    """The bands x lateral bins a furrow is searched in (:func:`search_grid`).

    Attributes:
        bands: (H,) band heights y in mm, top -> bottom, every ~``band_step_mm``.
        xs: (X,) lateral bin centres (mm) with a margin either side of the search range.
        z: (H, X) mean depth (mm) per band and bin (:func:`depth_bands`), NaN where empty.
        keep: (X,) bool, the bins of the search range itself (the path may only pass there).
        bin_mm: the bin width (mm), widened to the point spacing for sparse scans.
        trunk_centre_mm, trunk_width_mm: the trunk's lateral centre and width (:func:`trunk_centre_and_width`).
        axis_mm: the median left-right symmetry axis over the bands (the trunk's centre where it cannot be read).
    """

    bands: np.ndarray
    xs: np.ndarray
    z: np.ndarray
    keep: np.ndarray
    bin_mm: float
    trunk_centre_mm: float
    trunk_width_mm: float
    axis_mm: float


def search_grid(points: np.ndarray, heights: np.ndarray, params: FurrowParams = FurrowParams()) -> SearchGrid:
    """Bands between the first and last of ``heights`` (mm) and lateral bins within ``params.half_width_frac`` of the
    trunk's width of the trunk's centre or the median symmetry axis (whichever is further out), plus a margin of three
    times the largest ``params.scales_mm`` for the high-pass. ``points`` (N, 3) mm; for sparse scans the bins and
    bands widen to the point spacing. Raises ValueError when no band between the heights holds points."""
    spacing = point_spacing_mm(points)
    bin_mm = max(params.bin_mm, spacing)
    half_thickness = max(params.half_thickness_mm, 1.5 * spacing)
    lo, hi = float(np.min(heights)), float(np.max(heights))
    bands = np.linspace(hi, lo, max(3, int(round((hi - lo) / params.band_step_mm)) + 1))
    trunk_centre, width = trunk_centre_and_width(points, bands)
    sym = symmetry_midline(points, bands[:: max(1, len(bands) // 32)])
    centres = [trunk_centre, float(np.nanmedian(sym))] if np.isfinite(sym).any() else [trunk_centre]
    x_lo, x_hi = min(centres) - params.half_width_frac * width, max(centres) + params.half_width_frac * width
    margin = 3 * max(params.scales_mm)
    xs, z = depth_bands(points, bands, x_lo - margin, x_hi + margin, bin_mm, half_thickness)
    return SearchGrid(bands=bands, xs=xs, z=z, keep=(xs >= x_lo) & (xs <= x_hi), bin_mm=bin_mm,
                      trunk_centre_mm=trunk_centre, trunk_width_mm=width, axis_mm=centres[-1])


def path_through(cost: np.ndarray, grid: SearchGrid, points: np.ndarray, heights: np.ndarray, params: FurrowParams,
                 max_step: int = 1) -> np.ndarray:
    """Lateral position x (H,) mm at ``heights`` (H,) mm of the cheapest path (:func:`trace_path`, ``params.smoothness``,
    steps of at most ``max_step`` bins) through ``cost`` (bands, kept bins of ``grid``), re-anchored at its top
    (:func:`anchor_top`) when ``params.top_anchor`` is set. ``points`` (N, 3) mm, read for the re-anchoring."""
    path = grid.xs[grid.keep][trace_path(cost, params.smoothness, max_step)]
    x = np.interp(heights, grid.bands[::-1], path[::-1])
    return anchor_top(points, x, heights, params)


def anchor_top(points: np.ndarray, x: np.ndarray, heights: np.ndarray, params: FurrowParams) -> np.ndarray:
    """``x`` (H,) mm at ``heights`` (H,) mm re-anchored on the median symmetry axis of the top ``params.top_frac`` of the
    height range (:func:`top_anchor_shift` with ``params.top_anchor`` and ``params.top_max_shift_mm``); unchanged when
    ``params.top_anchor`` is 0 or the axis cannot be read there. ``points`` (N, 3) mm."""
    if params.top_anchor == 0.0:
        return x
    lo, hi = float(np.min(heights)), float(np.max(heights))
    sym_top = symmetry_midline(points, np.linspace(hi, hi - params.top_frac * (hi - lo), 8))
    if not np.isfinite(sym_top).any():
        return x
    return top_anchor_shift(x, heights, float(np.nanmedian(sym_top)), params.top_anchor, params.top_frac,
                            params.top_max_shift_mm)


def furrow_path_x(points: np.ndarray, heights: np.ndarray, params: FurrowParams = FurrowParams()) -> np.ndarray:
    """Lateral position x (H,) mm of the spinal furrow at ``heights`` (H,) mm, traced as one path.

    ``heights`` must be equally spaced and ordered (either direction); the tracer works on its own bands
    every ``params.band_step_mm`` between the first and last height and is interpolated back to ``heights``.
    ``points`` (N, 3) mm. For sparse scans the bins and bands widen to the point spacing.

    Raises:
        ValueError: when no band between the heights holds points.
    """
    points = np.asarray(points, dtype=np.float64)
    heights = np.asarray(heights, dtype=np.float64)
    grid = search_grid(points, heights, params)
    cost = valley_cost(grid.z, grid.bin_mm, params.scales_mm, params.clip, params.min_coverage)
    return path_through(cost[:, grid.keep], grid, points, heights, params)
