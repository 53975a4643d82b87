"""Parametric synthetic back scans ("phantoms"): spine model, back surface, single-view scanner.

``generate_phantom(seed)`` returns a :class:`~pcdiff.data.sample.BackScan` in millimetres (x right,
y up, z towards the scanner) with ESL, ISL, landmarks C7/DL/DR/DM and its generating parameters in
``meta["phantom"]``; ``phantom_for_lines(esl, isl, seed)`` builds one around given spinal lines. See the docstrings of :mod:`.spine`, :mod:`.surface` and :mod:`.scanner` for the
model and its published sources.
"""

from pcdiff.data.phantom.generator import DEFAULT_VERSION, VERSIONS, generate_phantom
from pcdiff.data.phantom.from_lines import geometry_from_lines, phantom_for_lines
from pcdiff.data.phantom.scanner import ScannerParams, sample_scanner_params
from pcdiff.data.phantom.spine import (
    CURVE_TYPES,
    LEVELS,
    SPINE_PRIOR,
    SpineParams,
    sample_spine_params,
    spine_geometry,
    spine_lines,
)
from pcdiff.data.phantom.surface import BackSurface, BodyParams, sample_body_params

__all__ = [
    "CURVE_TYPES",
    "DEFAULT_VERSION",
    "LEVELS",
    "SPINE_PRIOR",
    "VERSIONS",
    "BackSurface",
    "BodyParams",
    "ScannerParams",
    "SpineParams",
    "generate_phantom",
    "geometry_from_lines",
    "phantom_for_lines",
    "sample_body_params",
    "sample_scanner_params",
    "sample_spine_params",
    "spine_geometry",
    "spine_lines",
]
