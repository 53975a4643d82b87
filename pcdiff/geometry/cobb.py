"""Cobb angles and lateral deviation of spinal lines, measured in the coronal (x-y) plane.

The Cobb angle of a radiograph is the angle between the most tilted end vertebrae of a curve.
On a spinal *line* the same quantity is the swing of the coronal tangent angle between two
consecutive turning points of that angle (the inflection points of the line, plus its two ends):
a curve convex to the right turns its tangent one way from its upper to its lower end vertebra.
``cobb_angle`` returns the largest such swing (the primary curve). For a line with one or two
curves this equals the largest difference between any two tangent angles, the simple measure the
PCdare README describes; with three or more curves it does not add up opposite curves.

The tangent is read off a smoothed fit of the coronal profile x(y) (lateral position against height), as a
reader drawing end-plate lines on a radiograph reads the curve, not each wiggle of a traced line:

- Parametrised by height, the tangent angle ``atan(dx/dy)`` stays within (-90, 90) degrees. (Measured
  along the coronal arc length with ``atan2``, a predicted line whose noisy keypoints stepped upwards
  for a moment turned its tangent by ~180 degrees, and Cobb angles of 100-330 degrees came out.)
- The smoothing window is ``smooth_mm`` (50 mm, about two vertebrae) for a clean line, and is widened
  for a jittery one (a network's predicted keypoints): the jitter is estimated from the line itself
  (:func:`line_jitter_mm`) and the window is made just wide enough that the jitter moves the tangent
  by about ``tangent_noise_deg`` (2 degrees), capped at ``MAX_SMOOTH_MM``. Before this, 32 keypoints with
  5 mm of jitter measured ~40 degrees too much (noise tangents of +-10 degrees at each end), 10 mm about
  160 degrees too much.

All inputs are (L, 3) polylines in millimetres in the pcdiff frame (x lateral, y up, z out of the
back); only x and y are used. Lines may be given top->bottom or bottom->top.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import savgol_filter

from pcdiff.geometry.polyline import orient_top_down


#: Default smoothing window of the tangent estimate, in mm of height (about two vertebral heights:
#: removes digitisation noise, keeps curves, which span four or more vertebrae).
DEFAULT_SMOOTH_MM = 50.0
#: Widest window the jitter of a line may ask for (mm of height): about a third of a spine, enough
#: for 10 mm of jitter on 32 keypoints while a single thoracic or lumbar curve still shows.
MAX_SMOOTH_MM = 200.0
#: Target standard deviation (degrees) of the tangent angle that jitter leaves after smoothing.
DEFAULT_TANGENT_NOISE_DEG = 2.0
#: Number of equal-height samples the coronal profile x(y) is resampled to before differentiation.
DEFAULT_SAMPLES = 256
#: Tangent reversals smaller than this (degrees) are treated as noise, not as a new curve.
DEFAULT_MIN_SWING_DEG = 3.0
#: Polynomial order of the Savitzky-Golay fit: quadratic follows circular arcs to < 0.1 deg at 80 deg
#: and has half the end-tangent noise of a cubic (checked on straight lines with 0.5 mm jitter).
POLYORDER = 2


def _check_line(line: np.ndarray, name: str = "line") -> np.ndarray:
    line = np.asarray(line, dtype=np.float64)
    if line.ndim != 2 or line.shape[1] != 3 or len(line) < 2:
        raise ValueError(f"pcdiff.geometry.cobb: expected {name} of shape (L >= 2, 3) in mm, got {line.shape}")
    if not np.all(np.isfinite(line)):
        raise ValueError(f"pcdiff.geometry.cobb: {name} contains NaN or inf")
    return line


def _profile_vertices(line: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Coronal profile of a line (L, 3) mm as vertices sorted by height: (V,) heights y and (V,) x, mm.

    Vertices at the same height (to 1e-6 mm) are averaged, so a line that steps back up (noisy
    keypoints) still gives a function x(y)."""
    y, x = line[:, 1], line[:, 0]
    heights, which = np.unique(np.round(y, 6), return_inverse=True)
    counts = np.bincount(which)
    return heights, np.bincount(which, weights=x) / counts


def line_jitter_mm(line: np.ndarray) -> float:
    """Robust estimate (mm) of the lateral jitter of a line's vertices (L, 3) mm.

    Each vertex's lateral offset from the chord of its two neighbours in height (a second difference,
    nearly blind to the smooth curvature of a spine at vertex spacings under ~30 mm), scaled to the
    standard deviation of independent noise (a median absolute deviation, so single kinks do not count).
    0 for lines of fewer than 5 distinct heights.
    """
    heights, x = _profile_vertices(_check_line(line))
    if len(heights) < 5:
        return 0.0
    gaps = np.diff(heights)
    t = gaps[:-1] / (gaps[:-1] + gaps[1:])  # (V-2,) position of each inner vertex between its neighbours
    d2 = x[1:-1] - ((1 - t) * x[:-2] + t * x[2:])
    spread = 1.0 + t**2 + (1 - t) ** 2  # variance of d2 in units of the vertex noise variance
    return float(1.4826 * np.median(np.abs(d2 - np.median(d2)) / np.sqrt(spread)))


def smoothing_window_mm(
    line: np.ndarray,
    smooth_mm: float = DEFAULT_SMOOTH_MM,
    tangent_noise_deg: float = DEFAULT_TANGENT_NOISE_DEG,
    max_mm: float = MAX_SMOOTH_MM,
) -> float:
    """Window (mm) of the tangent fit of ``line`` (L, 3) mm: ``smooth_mm``, widened for jitter.

    A least-squares slope over a window W holding n = W / spacing vertices of jitter sigma has a standard
    deviation of about ``sigma * sqrt(12 / n) / W`` radians; the window is widened until this equals
    ``tangent_noise_deg`` (W = (sigma sqrt(12 spacing) / theta)^(2/3)), never beyond ``max_mm``
    (nor below ``smooth_mm``). 0 keeps 0 (no smoothing).
    """
    if smooth_mm <= 0:
        return 0.0
    heights, _ = _profile_vertices(_check_line(line))
    if len(heights) < 2:
        return smooth_mm
    spacing = (heights[-1] - heights[0]) / (len(heights) - 1)
    wanted = (line_jitter_mm(line) * np.sqrt(12.0 * spacing) / np.radians(tangent_noise_deg)) ** (2.0 / 3.0)
    return float(min(max(smooth_mm, wanted), max(max_mm, smooth_mm)))


def coronal_tangent_angles(
    line: np.ndarray,
    smooth_mm: float = DEFAULT_SMOOTH_MM,
    num_samples: int = DEFAULT_SAMPLES,
    tangent_noise_deg: float = DEFAULT_TANGENT_NOISE_DEG,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Smoothed tangent angle of the coronal profile x(y) of a spinal line.

    The coronal profile (:func:`_profile_vertices`) is resampled to ``num_samples`` equally spaced
    heights and differentiated with a quadratic Savitzky-Golay filter whose window spans
    :func:`smoothing_window_mm` of height (``smooth_mm``, widened for a jittery line; the polynomial
    fit keeps the end tangents unbiased, unlike a Gaussian blur with edge padding). Height, not arc
    length, is the parameter: the arc length of a jittery line is mostly jitter (sorted by height, its
    nearly level zig-zags would dominate an arc-length parametrisation).

    Args:
        line: (L, 3) polyline in mm.
        smooth_mm: smoothing window in mm of height for a clean line; 0 disables smoothing
            (finite differences).
        num_samples: resampling density.
        tangent_noise_deg: tangent noise the jitter may leave (widens the window, see above).

    Returns:
        ``(s, angles, xy)``: (S,) height drop below the line's top in mm, (S,) tangent angle in degrees
        measured from the downward vertical, within (-90, 90) (positive = the line heads towards +x,
        the subject's right, as it descends), and (S, 2) the resampled coronal points in mm, top first.
    """
    line = _check_line(line)
    heights, x = _profile_vertices(line)
    if len(heights) < 2:
        raise ValueError("pcdiff.geometry.cobb: the line has zero length in height (y)")
    grid = np.linspace(heights[-1], heights[0], num_samples)  # top -> bottom
    xs = np.interp(grid, heights, x)
    step = grid[0] - grid[1]  # mm of height per sample
    window_mm = smoothing_window_mm(line, smooth_mm, tangent_noise_deg)
    window = int(round(window_mm / step)) | 1  # odd number of samples
    if window_mm > 0 and window >= 5:
        window = min(window, num_samples if num_samples % 2 else num_samples - 1)
        slope = savgol_filter(xs, window, polyorder=POLYORDER, deriv=1, delta=step, mode="interp")
    else:
        slope = np.gradient(xs, step)
    angles = np.degrees(np.arctan(slope))  # slope = mm towards +x per mm descended
    return grid[0] - grid, angles, np.stack([xs, grid], axis=1)


@dataclass(frozen=True)
class CobbCurve:
    """One curve of a spinal line: the tangent swing between two consecutive turning points.

    Attributes:
        angle: Cobb angle of the curve in degrees (>= 0).
        top_mm: height drop (mm below the line's top) of the upper end of the curve.
        bottom_mm: same for the lower end.
        convexity: "right" when the curve bulges towards +x (tangent angle decreasing downwards), else "left".
    """

    angle: float
    top_mm: float
    bottom_mm: float
    convexity: str


def _turning_points(values: np.ndarray, min_swing: float) -> list[int]:
    """Indices of the ends and of the alternating extrema of ``values`` (zig-zag with hysteresis)."""
    turns = [0]
    direction = 0  # +1 rising, -1 falling, 0 undecided
    extreme = 0
    for i in range(1, len(values)):
        v = values[i]
        if direction == 0:
            if abs(v - values[0]) >= min_swing:
                direction = 1 if v > values[0] else -1
                extreme = i
            elif abs(v - values[0]) > abs(values[extreme] - values[0]):
                extreme = i
            continue
        if (v - values[extreme]) * direction > 0:
            extreme = i  # the running extreme moves on
        elif abs(v - values[extreme]) >= min_swing:
            turns.append(extreme)  # a confirmed reversal
            direction = -direction
            extreme = i
    if turns[-1] != len(values) - 1:
        turns.append(len(values) - 1)
    return turns


def cobb_curves(
    line: np.ndarray,
    smooth_mm: float = DEFAULT_SMOOTH_MM,
    min_swing_deg: float = DEFAULT_MIN_SWING_DEG,
    num_samples: int = DEFAULT_SAMPLES,
    tangent_noise_deg: float = DEFAULT_TANGENT_NOISE_DEG,
) -> list[CobbCurve]:
    """All curves of a spinal line (L, 3) mm, from top to bottom (see the module docstring)."""
    s, angles, _ = coronal_tangent_angles(line, smooth_mm, num_samples, tangent_noise_deg)
    turns = _turning_points(angles, min_swing_deg)
    curves = []
    for a, b in zip(turns[:-1], turns[1:]):
        swing = angles[b] - angles[a]
        curves.append(CobbCurve(float(abs(swing)), float(s[a]), float(s[b]), "right" if swing < 0 else "left"))
    return curves


def cobb_angle(
    line: np.ndarray,
    smooth_mm: float = DEFAULT_SMOOTH_MM,
    min_swing_deg: float = DEFAULT_MIN_SWING_DEG,
    num_samples: int = DEFAULT_SAMPLES,
    tangent_noise_deg: float = DEFAULT_TANGENT_NOISE_DEG,
) -> float:
    """Primary Cobb angle (degrees, 0-180) of a spinal line (L, 3) in mm: the largest coronal tangent swing.

    Coronal tangent method: the coronal profile x(y) is resampled, smoothed over ``smooth_mm`` of height
    (widened for a jittery line, see the module docstring) and split at the turning points of its
    tangent angle (reversals under ``min_swing_deg`` are ignored); the largest swing of one curve is
    returned. A straight line gives ~0.
    """
    return max(c.angle for c in cobb_curves(line, smooth_mm, min_swing_deg, num_samples, tangent_noise_deg))


def coronal_profile(line: np.ndarray, heights: np.ndarray) -> np.ndarray:
    """Lateral position x (mm) of a line (L, 3) mm at the given heights y (H,) mm, by linear interpolation.

    Heights outside the line's y-range raise ValueError (no extrapolation). Assumes the line is
    monotone in y, as spinal lines are; where it is not, x is interpolated over the y-sorted points.
    """
    line = _check_line(line)
    heights = np.asarray(heights, dtype=np.float64)
    order = np.argsort(line[:, 1], kind="stable")
    y, x = line[order, 1], line[order, 0]
    if heights.size and (heights.min() < y[0] - 1e-6 or heights.max() > y[-1] + 1e-6):
        raise ValueError(
            f"pcdiff.geometry.cobb: heights [{heights.min():.1f}, {heights.max():.1f}] mm lie outside "
            f"the line's y-range [{y[0]:.1f}, {y[-1]:.1f}] mm"
        )
    return np.interp(heights, y, x)


def lateral_deviation(line: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
    """Signed lateral deviation (L,) in mm of each point of ``line`` (L, 3) from a straight reference.

    The reference is the straight line through two points (2, 3) mm, by default the line's own top
    and bottom ends (for the ESL this is the C7-DM line of surface topography). The deviation is the
    horizontal (x) offset from the reference at the point's height: positive = towards +x (right).
    """
    line = _check_line(line)
    ref = orient_top_down(line)[[0, -1]] if reference is None else _check_line(reference, "reference")
    if ref.shape != (2, 3):
        raise ValueError(f"pcdiff.geometry.cobb: expected reference of shape (2, 3), got {ref.shape}")
    (x0, y0), (x1, y1) = ref[0, :2], ref[1, :2]
    if abs(y1 - y0) < 1e-9:
        raise ValueError("pcdiff.geometry.cobb: the reference has no vertical extent")
    x_ref = x0 + (line[:, 1] - y0) * (x1 - x0) / (y1 - y0)
    return line[:, 0] - x_ref


def lateral_deviation_error(pred: np.ndarray, true: np.ndarray, num_heights: int = 64, centred: bool = False) -> float:
    """RMS lateral deviation error (mm) of a predicted line against the true one, both (L, 3) mm.

    Both lateral deviations are taken from the *true* line's C7-DM reference (its two ends), so this
    is the RMS of ``x_pred(y) - x_true(y)`` over ``num_heights`` heights evenly spread over the part of
    the true line's height range that the prediction also covers. Raises when they do not overlap.

    ``centred=True`` removes the mean of that difference first (its SD over the heights): the error of
    the line's coronal *shape*, blind to a constant sideways shift. This is the convention of Kaiser et
    al. 2025 (PCdare; each line centred on its own mean, x only), whose ISL RMSE it makes comparable.
    """
    pred, true = _check_line(pred, "pred"), _check_line(true, "true")
    lo = max(pred[:, 1].min(), true[:, 1].min())
    hi = min(pred[:, 1].max(), true[:, 1].max())
    if hi <= lo:
        raise ValueError("pcdiff.geometry.cobb: predicted and true lines do not overlap in height")
    heights = np.linspace(lo, hi, num_heights)
    diff = coronal_profile(pred, heights) - coronal_profile(true, heights)
    if centred:
        diff = diff - diff.mean()
    return float(np.sqrt(np.mean(diff**2)))
