"""``generate_phantom``: spine -> back surface -> scanner, one seeded synthetic back scan."""

from __future__ import annotations

from typing import Any

import numpy as np

from pcdiff.data.phantom.scanner import ScannerParams, sample_scanner_params, scan_surface
from pcdiff.data.phantom.spine import (
    DEFAULT_VERSION,
    VERSIONS,
    SpineGeometry,
    SpineParams,
    sample_spine_params,
    spine_geometry,
)
from pcdiff.data.phantom.surface import BackSurface, BodyParams, sample_body_params
from pcdiff.data.sample import BackScan

LINE_POINTS = 100  # samples of the ESL and ISL written with each scan


def _as_rng(seed_or_rng: int | np.random.Generator) -> np.random.Generator:
    if isinstance(seed_or_rng, np.random.Generator):
        return seed_or_rng
    if isinstance(seed_or_rng, (int, np.integer)) or (
        isinstance(seed_or_rng, (list, tuple)) and all(isinstance(s, (int, np.integer)) for s in seed_or_rng)
    ):
        return np.random.default_rng(seed_or_rng)
    raise TypeError(f"generate_phantom: expected an int seed or a numpy Generator, got {type(seed_or_rng).__name__}")


def _resample_t(line: np.ndarray, k: int) -> np.ndarray:
    """Resample a dense line (T, 3) at k equally spaced values of its parameter t (levels stay aligned)."""
    src = np.linspace(0.0, 1.0, len(line))
    dst = np.linspace(0.0, 1.0, k)
    return np.stack([np.interp(dst, src, line[:, d]) for d in range(3)], axis=1)


def generate_phantom(
    seed_or_rng: int | np.random.Generator,
    num_points: int = 4096,
    params: SpineParams | None = None,
    name: str | None = None,
    *,
    version: str = DEFAULT_VERSION,
    body: BodyParams | None = None,
    scanner: ScannerParams | None = None,
    spine_prior: dict[str, Any] | None = None,
    geometry: SpineGeometry | None = None,
) -> BackScan:
    """Generate one synthetic back scan.

    The generator is split into four independent random streams (spine, body, scanner, sampling), so
    passing ``params`` for the spine leaves the body and scanner draws of a seed unchanged.

    Args:
        seed_or_rng: an int seed (or a sequence of ints) or a ``numpy.random.Generator``.
        num_points: number of surface points N.
        params: spine parameters; drawn with :func:`sample_spine_params` (``spine_prior`` overrides)
            when None.
        name: subject key; defaults to ``"phantom"``.
        version: phantom model version, one of :data:`VERSIONS`.
        body, scanner: fixed body / scanner parameters instead of drawing them.
        spine_prior: keyword overrides for :func:`sample_spine_params` (e.g. ``cobb_min``, ``curve_types``).
        geometry: dense spinal lines to build the back around instead of ``spine_geometry(params)`` (e.g. a
            measured spine, :func:`pcdiff.data.phantom.phantom_for_lines`); ``params`` then only summarise it
            for the body prior (length, curve, convexity) and must be given.

    Returns:
        A :class:`BackScan`: points (N, 3) float32 mm and normals (N, 3), ESL and ISL (100, 3) top->bottom,
        landmarks C7/DL/DR/DM, and meta with ``dataset="phantom"``, ``cobb`` (deg) and ``phantom``
        (version and all spine/body/scanner parameters).
    """
    if version not in VERSIONS:
        raise ValueError(f"generate_phantom: version must be one of {VERSIONS}, got {version!r}")
    rng = _as_rng(seed_or_rng)
    rng_spine, rng_body, rng_scanner, rng_sample = rng.spawn(4)
    if geometry is not None and params is None:
        raise ValueError("generate_phantom: a given geometry needs the params that summarise it")
    if params is None:
        params = sample_spine_params(rng_spine, version=version, **(spine_prior or {}))
    elif spine_prior:
        raise ValueError("generate_phantom: give either params or spine_prior, not both")
    body = body if body is not None else sample_body_params(rng_body, params, version=version)
    scanner = scanner if scanner is not None else sample_scanner_params(rng_scanner, version=version)
    geometry = geometry if geometry is not None else spine_geometry(params)
    surface = BackSurface(geometry, body)
    landmarks = surface.landmarks()
    points, normals, rot = scan_surface(surface, scanner, num_points, rng_sample, landmarks)
    esl = _resample_t(geometry.esl, LINE_POINTS) @ rot.T
    isl = _resample_t(geometry.isl, LINE_POINTS) @ rot.T
    name = name or "phantom"
    meta = {
        "dataset": "phantom",
        "id": name,
        "cobb": float(params.cobb_deg),
        "phantom": {
            "version": version,
            "spine": params.to_dict(),
            "body": body.to_dict(),
            "scanner": scanner.to_dict(),
        },
    }
    return BackScan(
        name=name,
        points=points,
        esl=esl,
        isl=isl,
        landmarks={k: v @ rot.T for k, v in landmarks.items()},
        meta=meta,
        normals=normals,
    )
