"""Coordinate frames of pcdiff: millimetres, normalised and model space, and the spine-straightened frame.

- :mod:`~pcdiff.geometry.frames.normalisation`: the names of the normalisations (:data:`NORMALIZATIONS`),
  the frame of one scan (:func:`frame_of`: center (3,) mm and scale mm, from its line or landmarks) and
  the maps mm <-> normalised (:func:`to_normalised`, :func:`to_mm`) <-> model space (:func:`to_model`,
  :func:`from_model`).
- :mod:`~pcdiff.geometry.frames.straightened`: each point's offset from the spinal line at its own height
  (:func:`straighten`, :func:`unstraighten`, :func:`line_at_height`).
- :mod:`~pcdiff.geometry.frames.twisted`: the straightened frame with the trunk's turn beside the curve taken out
  (:func:`untwist`, :func:`retwist`, :func:`fit_twist_gain`).
"""

from pcdiff.geometry.frames.normalisation import (
    INVERTIBLE_FROM_LINE,
    LINE_NORMALIZATIONS,
    NORMALIZATIONS,
    Normalization,
    check_normalization,
    frame_name,
    frame_of,
    from_model,
    landmark_frame,
    line_frame,
    to_mm,
    to_model,
    to_normalised,
)
from pcdiff.geometry.frames.straightened import line_at_height, straighten, unstraighten
from pcdiff.geometry.frames.twisted import fit_twist_gain, retwist, untwist

__all__ = [
    "INVERTIBLE_FROM_LINE",
    "LINE_NORMALIZATIONS",
    "NORMALIZATIONS",
    "Normalization",
    "check_normalization",
    "fit_twist_gain",
    "frame_name",
    "frame_of",
    "from_model",
    "landmark_frame",
    "line_at_height",
    "line_frame",
    "retwist",
    "straighten",
    "to_mm",
    "to_model",
    "to_normalised",
    "unstraighten",
    "untwist",
]
