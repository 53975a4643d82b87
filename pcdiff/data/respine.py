"""A back scan moved onto another spine: a donor's surface carrying the requested spinal line and its rotation.

Given a donor back (a real scan with its ESL and ISL) and a requested pair of lines, :func:`respine_back`

1. **shears** the donor onto the requested ESL: every point moves in x (lateral) and z (depth) by the
   requested ESL minus the donor's ESL at the point's height, so the donor's spinal furrow runs along the
   requested line and the back follows its coronal and sagittal shape (y is kept);
2. **turns** the cross-sections by the change in axial rotation: the phantom's rib-hump / lumbar-prominence
   model (:class:`~pcdiff.data.phantom.surface.BackSurface`: ``z += tan(rotation) * dx``, tapered towards the
   flanks) applied with the requested spine's rotation minus the donor's, both from the phantom's rotation
   model (:func:`~pcdiff.data.phantom.geometry_from_lines`: proportional to the ISL's deviation from its chord).

The result keeps the donor's skin, outline and point layout (a real back's, where the phantom's own surface is
recognisably synthetic) and carries the requested line. It is a start for the generator
(``SpineToBackPipeline(..., init_backs=..., strength=...)``, SDEdit; ``python -m pcdiff.generate --donors DIR
--donor-start S``) or a baseline beside it. The rotation model's constants are the phantom prior's centres; the
turn's overall gain is an argument, fitted on a set of donors by :func:`fit_rotation_gain` (each moved onto
another's lines, against its own real rib hump), or :data:`PCDARE_ROTATION_GAIN` where there are too few.
:func:`rank_donors` orders a set of donors by how near their ESL is to the requested one, and :func:`respine_donor`
places a donor in the requested line's frame before moving it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pcdiff.data.phantom.from_lines import geometry_from_lines, points_at_heights
from pcdiff.data.phantom.spine import DEFAULT_VERSION, SPINE_PRIORS
from pcdiff.data.phantom.surface import BODY_PRIORS
from pcdiff.geometry.frames.normalisation import line_frame, to_mm, to_normalised
from pcdiff.geometry.polyline import orient_top_down, resample_polyline

#: Apical vertebral rotation (deg) per degree of Cobb, and surface rotation per vertebral rotation: the centres of
#: the default phantom prior's ranges.
def _uniform_centre(prior: tuple[float, ...]) -> float:
    if len(prior) != 2:  # (mean, sd, low, high) entries are truncated normals: their centre is not the mean of the tuple
        raise ValueError(f"expected a uniform (low, high) prior, got {prior}")
    return 0.5 * (prior[0] + prior[1])


ROTATION_PER_COBB = _uniform_centre(SPINE_PRIORS[DEFAULT_VERSION]["rotation_per_cobb"])
SURFACE_ROTATION = _uniform_centre(BODY_PRIORS[DEFAULT_VERSION]["surface_rotation"])
#: The turn's gain fitted on the 20 public PCdare backs (:func:`fit_rotation_gain`: 0.446 at 2048 points, 0.451 at
#: 8192): what a single donor, which cannot fit its own, is moved with. The phantom prior's gain 1 gives those backs'
#: rib humps 1.8x their real size (``benchmarks/results/real_conditioning_respine_start.md``).
PCDARE_ROTATION_GAIN = 0.45
#: Fewer donors than this do not fit their own gain (a few near-straight spines carry almost no turn to fit).
MIN_DONORS_TO_FIT = 5
#: Where the turn fades out, as a share of the trunk's half-width (the phantom surface's ``0.85``; here one half-width
#: for the whole back, half its 5-95% x range, where the phantom reads its outline height by height).
TAPER_FRACTION = 0.85


def shear_onto_line(points: np.ndarray, esl_from: np.ndarray, esl_to: np.ndarray) -> np.ndarray:
    """Move each point in x and z by ``esl_to - esl_from`` read at its height (lines clamped beyond their ends).

    Args:
        points: (N, 3) mm, y up.
        esl_from: (L, 3) mm, the line the points carry now.
        esl_to: (M, 3) mm, the line they should carry.

    Returns:
        (N, 3) mm, y unchanged.
    """
    y = points[:, 1]
    shift = points_at_heights(orient_top_down(esl_to), y) - points_at_heights(orient_top_down(esl_from), y)  # (N, 3)
    shift[:, 1] = 0.0
    return points + shift


def surface_rotation_at(esl: np.ndarray, isl: np.ndarray, heights: np.ndarray, *, rotation_per_cobb: float = ROTATION_PER_COBB,
                        surface_rotation: float = SURFACE_ROTATION) -> np.ndarray:
    """The phantom model's surface rotation (radians, + = the right side nearer the scanner) at ``heights`` (H,) mm.

    Vertebral rotation proportional to the ISL's lateral deviation from its chord, ``rotation_per_cobb`` deg
    per deg of Cobb at the apex, times ``surface_rotation``; constant beyond the lines' ends.
    """
    geometry = geometry_from_lines(esl, isl, rotation_per_cobb=rotation_per_cobb)
    order = np.argsort(geometry.esl[:, 1])
    return surface_rotation * np.radians(np.interp(heights, geometry.esl[order, 1], geometry.rotation_deg[order]))


def respine_back(
    points: np.ndarray,
    esl_from: np.ndarray,
    isl_from: np.ndarray,
    esl_to: np.ndarray,
    isl_to: np.ndarray,
    *,
    rotation_gain: float,
) -> np.ndarray:
    """The donor back ``points`` moved onto the requested lines: sheared onto ``esl_to``, turned by the change in rotation.

    Args:
        points: (N, 3) donor back, mm (x right, y up, z towards the scanner), in the requested lines' frame.
        esl_from, isl_from: (L, 3) the donor's ESL and ISL, mm, same frame.
        esl_to, isl_to: (M, 3) the requested ESL and ISL, mm.
        rotation_gain: multiplies the change in surface rotation (0 = shear only, 1 = the phantom prior's centre,
            which gives real backs humps 1.8x too large; :func:`fit_rotation_gain`, :data:`PCDARE_ROTATION_GAIN`).

    Returns:
        (N, 3) float32 mm.
    """
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3 or not np.isfinite(pts).all():
        raise ValueError(f"respine_back: expected finite (N, 3) points in mm, got shape {np.shape(points)}")
    moved = shear_onto_line(pts, np.asarray(esl_from, np.float64), np.asarray(esl_to, np.float64))
    if rotation_gain == 0.0:
        return moved.astype(np.float32)
    y = moved[:, 1]
    turn = np.tan(surface_rotation_at(esl_to, isl_to, y)) - np.tan(surface_rotation_at(esl_from, isl_from, y))  # (N,)
    dx = moved[:, 0] - points_at_heights(orient_top_down(np.asarray(esl_to, np.float64)), y)[:, 0]
    lo, hi = np.percentile(moved[:, 0], [5, 95])
    taper = np.exp(-((np.abs(dx) / (TAPER_FRACTION * 0.5 * (hi - lo))) ** 4))
    moved[:, 2] += rotation_gain * turn * dx * taper
    return moved.astype(np.float32)


def rank_donors(esl_to: np.ndarray, donor_esls: list[np.ndarray], num_keypoints: int = 16) -> np.ndarray:
    """Donor indices, the nearest ESL first: the retrieval baseline's distance (``benchmarks/retrieval.py``).

    Each line is resampled to ``num_keypoints`` equal-arc-length keypoints top -> bottom and normalised in its own
    ``"line"`` frame (:func:`~pcdiff.geometry.frames.normalisation.line_frame`: ends' midpoint and distance); the
    distance is the root-mean-square keypoint distance.

    Args:
        esl_to: (L, 3) mm the requested ESL; donor_esls: T lines (L_i, 3) mm.

    Returns:
        (T,) int64 indices into ``donor_esls``.
    """
    if not donor_esls:
        raise ValueError("rank_donors: no donors")

    def keypoints(line: np.ndarray) -> np.ndarray:
        line = orient_top_down(np.asarray(line, dtype=np.float64))
        return to_normalised(resample_polyline(line, num_keypoints), *line_frame(line))

    query = keypoints(esl_to)
    distances = [np.sqrt(np.mean(np.sum((keypoints(d) - query) ** 2, axis=-1))) for d in donor_esls]
    return np.argsort(distances, kind="stable")


@dataclass(frozen=True)
class Donor:
    """A donor back: points (N, 3) mm in its own frame, its ESL and ISL (L, 3) mm in the same frame, its name."""

    points: np.ndarray
    esl: np.ndarray
    isl: np.ndarray
    name: str = "donor"


def respine_donor(donor: Donor, esl_to: np.ndarray, isl_to: np.ndarray, *, rotation_gain: float) -> np.ndarray:
    """A donor back in its own frame placed on the requested lines: its ESL's line frame mapped onto the requested
    ESL's (a translation and a uniform scale, as retrieval places a back), then :func:`respine_back`.

    Args:
        donor: the back (points (N, 3) mm) and its lines, in its own frame.
        esl_to, isl_to: (M, 3) mm, the requested lines.
        rotation_gain: see :func:`respine_back`.

    Returns:
        (N, 3) float32 mm, in the requested lines' frame.
    """
    frame_from, frame_to = line_frame(donor.esl), line_frame(esl_to)

    def place(x: np.ndarray) -> np.ndarray:
        return to_mm(to_normalised(np.asarray(x, dtype=np.float64), *frame_from), *frame_to)

    return respine_back(place(donor.points), place(donor.esl), place(donor.isl), esl_to, isl_to, rotation_gain=rotation_gain)


def fit_rotation_gain(donors: list[Donor], *, max_gain: float = 2.0) -> float:
    """The turn's gain that makes moved backs carry the donors' own rib humps, fitted on the donors themselves.

    Each donor's nearest other donor (:func:`rank_donors`) is moved onto its lines, sheared only and with the
    turn at gain 1; along the donor's ESL the centred left-right depth asymmetry profiles
    (:func:`pcdiff.metrics.spine.centred_asymmetry_profiles`) of the real back ``a``, the sheared one ``s`` and the
    turned one give the turn's part ``t`` (turned - sheared; linear in the gain). The gain is the least-squares
    ``sum(t . (a - s)) / sum(t . t)`` over all donors, clipped to ``[0, max_gain]``: the phantom prior's rotation
    model scaled to the rib humps these backs actually have (on the 20 PCdare backs, gain 1 gives humps 1.8x
    the real ones).

    Args:
        donors: at least 2 donors.
        max_gain: upper clip.

    Returns:
        The gain for :func:`respine_back` / :func:`respine_donor`.

    Raises:
        ValueError: fewer than 2 donors, or none of the moves turns the back measurably (all spines nearly alike).
    """
    from pcdiff.metrics.spine import centred_asymmetry_profiles  # metrics build on data, not the reverse at import

    if len(donors) < 2:
        raise ValueError(f"fit_rotation_gain: need at least 2 donors, got {len(donors)}")
    esls = [d.esl for d in donors]
    num, den = 0.0, 0.0
    for i, target in enumerate(donors):
        partner = donors[next(int(j) for j in rank_donors(target.esl, esls) if j != i)]
        moved = [respine_donor(partner, target.esl, target.isl, rotation_gain=g) for g in (0.0, 1.0)]
        real, sheared, turned = centred_asymmetry_profiles([target.points, *moved], target.esl)
        turn = turned - sheared
        num += float(turn @ (real - sheared))
        den += float(turn @ turn)
    if den < 1e-6 * len(donors):  # mm^2: no move turns the back; the ratio would be noise
        raise ValueError("fit_rotation_gain: the donors' spines are too alike for any move to turn a back")
    return float(np.clip(num / den, 0.0, max_gain))
