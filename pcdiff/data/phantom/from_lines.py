"""A phantom built around given spinal lines: the back the phantom model puts on a measured (or requested) spine.

:func:`generate_phantom` draws a spine from parameters. Here the spine is given as its two lines (ESL on the
skin, ISL through the vertebral bodies, in mm, e.g. a real subject's), and the phantom model supplies the rest: a
body drawn from its prior and the surface that spine and body make, with the rib hump / lumbar prominence that
the spine's axial rotation puts on it (the rotation follows the ISL's curve as in the phantom's own model,
:func:`~pcdiff.data.phantom.spine.spine_geometry`).

The scan is taken without the scanner's posture (no yaw, pitch, roll or shear), so the phantom's ESL is the given
ESL: the back lies on the line, in the line's frame. This is what a generator can start from
(``SpineToBackPipeline(..., init_backs=...)``, SDEdit) when it should keep the phantom's anatomy and redraw the rest.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from pcdiff.data.phantom.generator import generate_phantom
from pcdiff.data.phantom.scanner import ScannerParams, sample_scanner_params
from pcdiff.data.phantom.spine import DEFAULT_VERSION, NUM_SAMPLES, SPINE_PRIORS, SpineGeometry, SpineParams
from pcdiff.data.sample import BackScan
from pcdiff.geometry.cobb import cobb_angle
from pcdiff.geometry.polyline import orient_top_down


def check_line(line: np.ndarray, name: str) -> np.ndarray:
    """``line`` as float64 (L, 3) mm top -> bottom; a ValueError naming ``name`` unless it is finite, has L >= 4 points and
    spans >= 100 mm in height."""
    arr = np.asarray(line, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 3 or len(arr) < 4 or not np.isfinite(arr).all():
        raise ValueError(f"{name}: expected a finite line of shape (L >= 4, 3) in mm, got {np.shape(line)}")
    arr = orient_top_down(arr)
    if arr[0, 1] - arr[-1, 1] < 100.0:
        raise ValueError(f"{name}: spans {arr[0, 1] - arr[-1, 1]:.0f} mm in height (y); a spinal line spans 300-600 mm")
    return arr


def points_at_heights(line: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(T, 3) points of ``line`` (L, 3, top -> bottom) at heights ``y`` (T,), clamped beyond its ends
    (:func:`~pcdiff.geometry.frames.straightened.line_at_height`, the straightened frame's reader)."""
    import torch  # here, not at the top: importing the phantom package stays numpy-only

    from pcdiff.geometry.frames.straightened import line_at_height

    points, _ = line_at_height(torch.as_tensor(line[None]), torch.as_tensor(y[None]))
    return points[0].numpy()


def geometry_from_lines(
    esl_mm: np.ndarray, isl_mm: np.ndarray, rotation_per_cobb: float = 0.35, num_samples: int = NUM_SAMPLES
) -> SpineGeometry:
    """The :class:`SpineGeometry` of two given lines, resampled at ``num_samples`` equally spaced heights.

    The axial rotation follows the phantom's model (:func:`~pcdiff.data.phantom.spine.spine_geometry`): it is
    proportional to the ISL's lateral deviation from its C7-S1 chord, ``rotation_per_cobb * Cobb`` at the apex.
    It is not read from the ESL's offset beside the ISL: on the 20 PCdare subjects that offset (radiograph to
    surface registration included) gave rib humps 2.6x the real ones (median amplitude ratio), the prior 1.7x,
    with the same agreement in shape (median correlation 0.73 vs 0.78).

    Args:
        esl_mm: (L, 3) external spinal line in mm, either direction; its lowest point is DM.
        isl_mm: (M, 3) internal spinal line in mm, read at the ESL's heights (held constant beyond its ends).
        rotation_per_cobb: apical rotation (deg) per degree of the ISL's Cobb angle (the phantom prior's
            range is 0.25-0.45).
        num_samples: T, samples along the lines.

    Returns:
        The geometry in the lines' frame (``t`` 0 at the top, 1 at DM).
    """
    esl, isl = check_line(esl_mm, "esl"), check_line(isl_mm, "isl")
    y = np.linspace(esl[0, 1], esl[-1, 1], num_samples)
    t = np.linspace(0.0, 1.0, num_samples)
    esl_dense, isl_dense = points_at_heights(esl, y), points_at_heights(isl, y)
    deviation = isl_dense[:, 0] - (isl_dense[0, 0] + (isl_dense[-1, 0] - isl_dense[0, 0]) * t)
    peak = float(np.abs(deviation).max())
    cobb = float(cobb_angle(isl_dense))
    rotation = rotation_per_cobb * cobb * deviation / peak if peak > 1e-6 else np.zeros_like(t)
    return SpineGeometry(t=t, isl=isl_dense, esl=esl_dense, rotation_deg=rotation, deviation=deviation)


def summary_params(geometry: SpineGeometry) -> SpineParams:
    """:class:`SpineParams` summarising a given geometry for the body prior (size, shoulder asymmetry).

    Length = C7-DM distance, Cobb = the ISL's coronal Cobb angle, convexity = the side of the ISL's largest
    deviation from its chord, curve type from the apex height (thoracic above 45% of the way down, lumbar
    below 60%, thoracolumbar between; ``none`` under 10 deg), ISL depth = the median ESL-ISL z gap.
    """
    length = float(np.clip(np.linalg.norm(geometry.esl[0] - geometry.esl[-1]), 200.0, 800.0))
    cobb = float(np.clip(cobb_angle(geometry.isl), 0.0, 119.0))
    apex = int(np.argmax(np.abs(geometry.deviation)))
    convexity = "right" if geometry.deviation[apex] >= 0 else "left"
    t_apex = float(geometry.t[apex])
    curve_type = "none" if cobb < 10.0 else "thoracic" if t_apex < 0.45 else "lumbar" if t_apex > 0.6 else "thoracolumbar"
    depth = float(np.clip(np.median(geometry.esl[:, 2] - geometry.isl[:, 2]), 10.0, 150.0))
    return SpineParams(length_mm=length, cobb_deg=cobb, curve_type=curve_type, convexity=convexity, isl_depth_mm=depth)


def unposed_scanner(rng: np.random.Generator, version: str = DEFAULT_VERSION) -> ScannerParams:
    """Scanner parameters drawn from the prior (noise, holes, crop, density), with the posture removed."""
    drawn = sample_scanner_params(rng, version=version)
    return dataclasses.replace(drawn, yaw_deg=0.0, pitch_deg=0.0, roll_deg=0.0, depth_shear_deg=0.0)


def phantom_for_lines(
    esl_mm: np.ndarray,
    isl_mm: np.ndarray,
    seed: int | list[int],
    num_points: int = 4096,
    *,
    name: str | None = None,
    version: str = DEFAULT_VERSION,
) -> BackScan:
    """A phantom back scan around the given lines, in their frame (its ESL is the given ESL).

    Args:
        esl_mm: (L, 3) ESL in mm.
        isl_mm: (M, 3) ISL in mm (its curve sets the axial rotation and so the rib hump).
        seed: seed of the body, the rotation per degree of Cobb (from the prior), the scanner's noise and the
            sampling.
        num_points: N points.
        name: subject key (default ``"phantom"``).
        version: phantom model version.

    Returns:
        A :class:`BackScan` (points (N, 3) mm in the lines' frame, ESL/ISL (100, 3), landmarks); ``meta["phantom"]``
        holds the summary spine parameters and ``meta["from_lines"] = True``.
    """
    rng_rotation, rng_scanner = np.random.default_rng([*np.atleast_1d(seed).tolist(), 1]).spawn(2)
    low, high = SPINE_PRIORS[version]["rotation_per_cobb"]
    geometry = geometry_from_lines(esl_mm, isl_mm, rotation_per_cobb=float(rng_rotation.uniform(low, high)))
    origin = geometry.esl[-1].copy()
    body_frame = dataclasses.replace(geometry, esl=geometry.esl - origin, isl=geometry.isl - origin)
    params = summary_params(body_frame)
    scanner = unposed_scanner(rng_scanner, version)
    scan = generate_phantom(seed, num_points, params, name, version=version, scanner=scanner, geometry=body_frame)
    scan.meta["from_lines"] = True
    return dataclasses.replace(
        scan,
        points=(scan.points + origin).astype(np.float32),
        esl=scan.esl + origin,
        isl=scan.isl + origin,
        landmarks={k: v + origin for k, v in scan.landmarks.items()},
    )
