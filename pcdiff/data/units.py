"""Check (and where unambiguous, fix) the units and axes of a back scan on load.

pcdiff's frame (the 4D-Spine convention): millimetres, x lateral (+x = subject's right),
y up (pelvis -> C7), z out of the back towards the scanner. Two mistakes are common in the
wild and are detected here:

* **metres instead of millimetres**: a back is some 300-1000 mm tall, so a scan whose largest
  bounding-box side is 0.15-3 is in metres and is multiplied by 1000; a side of 3-150 (centimetres?
  decimetres?) is ambiguous and refused.
* **y pointing down** (a camera frame): C7 lies below DM. When the depth axis is flipped too
  (the internal line in front of the surface at *positive* z, or the trunk's flanks nearer the
  scanner than the spine), the frame is a 180 degree rotation about x away from pcdiff's,
  which keeps handedness and +x: it is undone with a warning. When only one of the two is
  flipped, fixing it would need a mirror or a left-right swap that the data cannot settle,
  so the scan is refused.

The functions raise :class:`UnitsAxesError` (a ``ValueError``) without a file name; readers catch
it and re-raise their own error naming the file.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace

import numpy as np

from pcdiff.data.sample import BackScan

# Largest bounding-box side of a back scan or spinal line, in millimetres and in metres.
MM_RANGE = (150.0, 3000.0)
M_RANGE = (0.15, 3.0)
# Lines and landmarks only: a spine line is 300-550 mm long; a tilted or short one still > 100 mm.
LINE_MM_RANGE = (100.0, 3000.0)
LINE_M_RANGE = (0.1, 3.0)
# The flanks of the trunk must sit this much (mm) further from the scanner than the spine region
# before the depth direction is trusted from the surface shape alone.
FLANK_MARGIN_MM = 5.0


class UnitsAxesError(ValueError):
    """The units or axes of a scan are wrong and cannot be fixed without guessing."""


class UnitConversionWarning(UserWarning):
    """A scan was converted (metres -> mm, or y-down camera frame -> y up) on load."""


@dataclass(frozen=True)
class FrameCheck:
    """What :func:`check_frame` found.

    Attributes:
        points_scale: factor applied to the scan points (1 or 1000).
        lines_scale: factor applied to the spinal lines and landmarks (1 or 1000).
        flipped: True when (x, y, z) -> (x, -y, -z) was applied.
        y_up: True / False / None (undetermined: no C7 and DM landmarks).
        z_out: True / False / None (undetermined) for "z points towards the scanner".
    """

    points_scale: float = 1.0
    lines_scale: float = 1.0
    flipped: bool = False
    y_up: bool | None = None
    z_out: bool | None = None

    @property
    def changed(self) -> bool:
        return self.points_scale != 1.0 or self.lines_scale != 1.0 or self.flipped


def unit_scale(extent: float, what: str, mm_range=MM_RANGE, m_range=M_RANGE) -> float:
    """Return 1.0 when ``extent`` (largest bounding-box side) looks like mm, 1000.0 when metres.

    Raises:
        UnitsAxesError: when the extent fits neither range.
    """
    if not np.isfinite(extent):
        raise UnitsAxesError(f"{what}: non-finite extent")
    if mm_range[0] <= extent <= mm_range[1]:
        return 1.0
    if m_range[0] <= extent <= m_range[1]:
        return 1000.0
    raise UnitsAxesError(
        f"{what}: largest side {extent:.4g} fits neither millimetres ({mm_range[0]:g}-{mm_range[1]:g}) "
        f"nor metres ({m_range[0]:g}-{m_range[1]:g}); convert it to millimetres"
    )


def _extent(arrays: list[np.ndarray]) -> float:
    stacked = np.concatenate([np.asarray(a, dtype=np.float64).reshape(-1, 3) for a in arrays], axis=0)
    return float((stacked.max(axis=0) - stacked.min(axis=0)).max())


def _z_out_from_lines(esl: np.ndarray | None, isl: np.ndarray | None) -> bool | None:
    """ISL (vertebral bodies) must lie at smaller z than the ESL (skin) when z points out of the back."""
    if esl is None or isl is None or len(esl) < 2 or len(isl) < 2:
        return None
    return bool(np.median(esl[:, 2]) > np.median(isl[:, 2]))


def _z_out_from_surface(points: np.ndarray, spine_x: float) -> bool | None:
    """The flanks of a trunk curve away from a scanner behind it: lower z than the spine region.

    Compares the median z of the central third (in x, around the spine) with the outer sixths.
    Returns None when the difference is under :data:`FLANK_MARGIN_MM` (a flat or odd crop).
    """
    x = points[:, 0] - spine_x
    half_width = 0.5 * (np.percentile(x, 98) - np.percentile(x, 2))
    if half_width <= 0:
        return None
    central = np.abs(x) < half_width / 3
    outer = np.abs(x) > 2 * half_width / 3
    if central.sum() < 10 or outer.sum() < 10:
        return None
    diff = float(np.median(points[central, 2]) - np.median(points[outer, 2]))
    if abs(diff) < FLANK_MARGIN_MM:
        return None
    return diff > 0


def check_frame(scan: BackScan) -> FrameCheck:
    """Work out which conversion (if any) brings ``scan`` to mm / y up / z towards the scanner.

    Units are judged separately for the scan and for its JSON geometry (lines + landmarks), since
    formats exist that store them differently (PCdare: PLY in metres, JSON in mm).

    Raises:
        UnitsAxesError: ambiguous units, or an axis flip that a rotation cannot undo.
    """
    points_scale = unit_scale(_extent([scan.points]), "scan points")
    geometry = [a for a in (scan.esl, scan.isl) if a is not None and len(a) >= 2]
    geometry += [v for k, v in scan.landmarks.items() if k in ("C7", "DL", "DR", "DM")]
    lines_scale = 1.0
    if geometry:
        lines_scale = unit_scale(_extent(geometry), "spinal lines/landmarks", LINE_MM_RANGE, LINE_M_RANGE)

    y_up = None
    if "C7" in scan.landmarks and "DM" in scan.landmarks:
        dy = float(scan.landmarks["C7"][1] - scan.landmarks["DM"][1])
        if dy == 0:
            raise UnitsAxesError("C7 and DM have the same height: cannot tell which way y points")
        y_up = dy > 0

    z_out = _z_out_from_lines(scan.esl, scan.isl)
    if z_out is None:
        spine_x = float(np.median(scan.esl[:, 0])) * lines_scale / points_scale if scan.esl is not None else float(
            np.median(scan.points[:, 0])
        )
        z_out = _z_out_from_surface(scan.points, spine_x)

    flipped = False
    if y_up is False or z_out is False:
        if y_up is False and z_out is False:
            flipped = True
        elif y_up is False and z_out is None:
            raise UnitsAxesError(
                "y points down (C7 below DM) but the depth direction could not be established "
                "(no ISL and no clear trunk curvature): cannot tell a rotation from a mirror; "
                "convert the scan to x right, y up, z towards the scanner"
            )
        elif y_up is False:
            raise UnitsAxesError(
                "y points down (C7 below DM) while z already points towards the scanner: undoing that "
                "needs a mirror or a left-right swap; convert the scan to x right, y up, z towards the scanner"
            )
        else:
            where = "the ISL is behind the surface at larger z than the ESL" if _z_out_from_lines(
                scan.esl, scan.isl
            ) is False else "the trunk's flanks are nearer the scanner than the spine"
            raise UnitsAxesError(
                f"z points into the body ({where}) while y points up"
                + (" (C7 above DM)" if y_up else " (y direction unknown: no C7/DM)")
                + ": undoing that needs a mirror or a left-right swap; convert the scan to x right, y up, "
                "z towards the scanner"
            )
    return FrameCheck(points_scale, lines_scale, flipped, y_up, z_out)


def apply_frame(scan: BackScan, check: FrameCheck) -> BackScan:
    """Return a copy of ``scan`` with ``check``'s scaling and flip applied (normals rotated too)."""
    if not check.changed:
        return scan
    flip = np.array([1.0, -1.0, -1.0], dtype=np.float32) if check.flipped else np.ones(3, np.float32)

    def conv(a: np.ndarray | None, s: float) -> np.ndarray | None:
        return None if a is None else (a.astype(np.float64) * s * flip).astype(np.float32)

    return replace(
        scan,
        points=conv(scan.points, check.points_scale),
        esl=conv(scan.esl, check.lines_scale),
        isl=conv(scan.isl, check.lines_scale),
        landmarks={k: conv(v[None], check.lines_scale)[0] for k, v in scan.landmarks.items()},
        normals=None if scan.normals is None else scan.normals * flip,
        meta=dict(scan.meta),
    )


def ensure_frame(scan: BackScan, source: str = "") -> BackScan:
    """Check ``scan`` and convert it to pcdiff's frame, warning with :class:`UnitConversionWarning`.

    Args:
        scan: a freshly read scan.
        source: file name for the warning text.

    Raises:
        UnitsAxesError: when the units or axes are ambiguous (see module docstring).
    """
    check = check_frame(scan)
    if check.changed:
        what = []
        if check.points_scale != 1.0:
            what.append("scan points metres -> mm")
        if check.lines_scale != 1.0:
            what.append("spinal lines/landmarks metres -> mm")
        if check.flipped:
            what.append("y-down camera frame rotated 180 deg about x: (x, y, z) -> (x, -y, -z)")
        warnings.warn(f"{source or scan.name}: converted on load ({'; '.join(what)})", UnitConversionWarning,
                      stacklevel=2)
    return apply_frame(scan, check)


def line_surface_distance(line: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Distance (L,) in the inputs' units from each line vertex (L, 3) to its nearest scan point (N, 3)."""
    from scipy.spatial import cKDTree

    dist, _ = cKDTree(np.asarray(points, dtype=np.float64)).query(np.asarray(line, dtype=np.float64))
    return dist


# A surface line drawn on the scan lies within a few mm of it; the vertebral bodies 40-90 mm deep.
ESL_MAX_MEDIAN_MM = 25.0
ISL_MAX_MEDIAN_MM = 200.0


def check_lines_on_surface(
    scan: BackScan,
    esl_max_mm: float = ESL_MAX_MEDIAN_MM,
    isl_max_mm: float = ISL_MAX_MEDIAN_MM,
    quantile: float = 0.5,
) -> dict[str, float]:
    """Check that the spinal lines sit where they should relative to the surface (mm frame).

    Args:
        scan: a scan in mm.
        esl_max_mm, isl_max_mm: largest allowed ``quantile`` of the line-to-surface distances.
        quantile: 0.5 (median, default) tolerates holes under part of a line; a stricter check
            (e.g. 0.9) suits data whose line was drawn on the scan itself.

    Returns:
        the ``quantile`` of each present line's vertex-to-nearest-scan-point distances (mm).

    Raises:
        UnitsAxesError: when a line exceeds its limit (a sign of the wrong line or wrong units).
    """
    label = "median" if quantile == 0.5 else f"{100 * quantile:g}th percentile"
    out = {}
    for which, limit in (("esl", esl_max_mm), ("isl", isl_max_mm)):
        line = getattr(scan, which)
        if line is None or len(line) < 2:
            continue
        value = float(np.quantile(line_surface_distance(line, scan.points), quantile))
        if value > limit:
            raise UnitsAxesError(
                f"{which.upper()} lies {value:.1f} mm ({label}) from the scan surface, expected <= {limit:g} mm: "
                "wrong line, or lines and scan in different units/frames"
            )
        out[which] = value
    return out
