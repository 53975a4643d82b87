"""The untwisted frame: the straightened frame with the trunk's turn beside a curve taken out as well.

A scoliotic curve turns the vertebrae, and with them the trunk's cross-section: beside the curve's convex side the
back stands out towards the scanner (rib hump, lumbar prominence). The phantom models this as
``z += tan(rotation(y)) * dx``, tapered towards the flanks, with the rotation growing with the line's lateral
deviation (:class:`pcdiff.data.phantom.surface.BackSurface`); on phantoms the left-right depth asymmetry beside
the ESL correlates at 0.98 with the ESL's own deviation from its chord. A generator in the straightened frame
(:mod:`pcdiff.geometry.frames.straightened`) gets the line's lateral course by construction, but has to learn the
turn, and at CPU budgets it learns about half of it (README, "Does a generated back carry its spine's rotation").

:func:`untwist` removes a turn proportional to the line's deviation from points already straightened by the line:

    z' = z - gain * d(y) * x * taper(x),   taper(x) = exp(-(|x| / width)^4),

where d(y) is the conditioning line's lateral deviation from its chord (the segment between its two ends) at the
point's height (0 beyond the line's ends), and x, z are the straightened coordinates. :func:`retwist` puts it back
(exactly: x and y are not changed). The network then learns the residual turn only; a turn the model gets wrong
(``gain`` too large or too small for the data) stays learnable, as the line's course is in the straightened frame.
``gain`` (dimensionless: depth slope per unit of deviation, in the units of the points) comes from
:func:`fit_twist_gain` on training backs.

Points and lines are in one frame and unit (pcdiff passes normalised coordinates, the conditioning line's length =
1); lines are keypoints ``(B, K, 3)`` top to bottom.
"""

from __future__ import annotations

import numpy as np
import torch

from pcdiff.geometry.frames.straightened import line_at_height

#: Taper width of the turn, in normalised units (the ESL's length = 1): about the trunk's half-width (~160 mm of a
#: ~450 mm line), as the phantom's turn fades at 0.85 of the half-width.
DEFAULT_TWIST_WIDTH = 0.35


def deviation_at_height(line: torch.Tensor, height: torch.Tensor) -> torch.Tensor:
    """(B, N) the line's lateral deviation from its chord at each height: ``x_line(y) - x_chord(y)``, 0 beyond its ends.

    Args:
        line: (B, K, 3) keypoints, top to bottom.
        height: (B, N) query heights, same units.
    """
    on_line, fraction = line_at_height(line, height)
    fraction = fraction.clamp(0.0, 1.0)
    chord_x = line[:, :1, 0] + fraction * (line[:, -1:, 0] - line[:, :1, 0])  # (B, N)
    return on_line[..., 0] - chord_x


def _turn(points: torch.Tensor, line: torch.Tensor, gain: float, width: float) -> torch.Tensor:
    """(B, N) the depth the turn adds at each straightened point."""
    x = points[..., 0]
    return gain * deviation_at_height(line.to(points), points[..., 1]) * x * torch.exp(-((x.abs() / width) ** 4))


def untwist(points: torch.Tensor, line: torch.Tensor, gain: float, width: float = DEFAULT_TWIST_WIDTH) -> torch.Tensor:
    """Straightened points with the line's turn removed: ``z - gain * d(y) * x * taper(x)`` (module docstring).

    Args:
        points: (B, N, 3) points straightened by ``line``.
        line: (B, K, 3) the conditioning keypoints (not straightened), top to bottom, same units.
        gain: depth slope per unit of lateral deviation (:func:`fit_twist_gain`); 0 returns the points unchanged.
        width: taper width, same units.

    Returns:
        (B, N, 3) untwisted points.
    """
    if gain == 0.0:
        return points
    return points - _turn(points, line, gain, width)[..., None] * points.new_tensor([0.0, 0.0, 1.0])


def retwist(points: torch.Tensor, line: torch.Tensor, gain: float, width: float = DEFAULT_TWIST_WIDTH) -> torch.Tensor:
    """Inverse of :func:`untwist` for the same ``line``, ``gain`` and ``width``: (B, N, 3) -> (B, N, 3)."""
    if gain == 0.0:
        return points
    return points + _turn(points, line, gain, width)[..., None] * points.new_tensor([0.0, 0.0, 1.0])


def fit_twist_gain(
    backs: list[np.ndarray], lines: list[np.ndarray], distance: float = 0.11, radius: float = 0.015, width: float = DEFAULT_TWIST_WIDTH
) -> float:
    """Least-squares ``gain`` of :func:`untwist` on training backs: their depth asymmetry beside the line against the
    line's deviation.

    At each keypoint of a back's line, the depth difference ``A`` of the surface ``distance`` either side of the line
    (:func:`pcdiff.metrics.spine.surface_asymmetry`, median depth within ``radius``) is, under the model,
    ``2 * distance * taper(distance) * gain * d``; the gain minimising the squared misfit over every keypoint of every
    back is returned.

    Args:
        backs: per back (N_i, 3) points, in the frame and units of its line (normalised: distance 0.11 is ~50 mm).
        lines: per back (K_i, 3) line keypoints, top to bottom.
        distance, radius, width: in those units.

    Raises:
        ValueError: no back, lists of different lengths, or lines with no lateral deviation at all.
    """
    from pcdiff.metrics.spine import surface_asymmetry  # metrics depend on geometry, not the other way round

    if not backs or len(backs) != len(lines):
        raise ValueError(f"fit_twist_gain: expected as many lines as backs (>= 1), got {len(backs)} and {len(lines)}")
    num, den = 0.0, 0.0
    for points, line in zip(backs, lines):
        line = np.asarray(line, dtype=np.float64)
        asym = surface_asymmetry(np.asarray(points, dtype=np.float64), line, distance_mm=distance, radius_mm=radius)  # (K,)
        d = deviation_at_height(torch.from_numpy(line)[None], torch.from_numpy(line[:, 1])[None])[0].numpy()  # (K,)
        num += float(asym @ d)
        den += float(d @ d)
    if den <= 0:
        raise ValueError("fit_twist_gain: the lines have no lateral deviation from their chords; the gain is undefined")
    return num / den / (2 * distance * float(np.exp(-((distance / width) ** 4))))
