"""The phantom's spine: sagittal profile, scoliotic coronal curves, axial rotation, ISL and ESL.

The spine is built along a parameter ``t`` in [0, 1] from C7 (``t = 0``) to S1 (``t = 1``, the level
of the lumbar dimples, DM). Vertebral levels sit at fixed fractions of that length, from typical
adult vertebra-plus-disc heights (thoracic bodies grow caudally, lumbar ones are the tallest).

* **Sagittal profile** (Bernhardt & Bridwell 1989, *Spine* 14:717-721: in normal spines the T3-T12
  kyphosis averages about 36 deg (range ~10-55) and the lumbar lordosis about 45-65 deg depending on
  the levels measured). The curvature of the internal spinal line is a smooth bump over the thoracic
  levels (kyphosis) and an opposite bump over the lumbar levels (lordosis), integrated twice.
* **Coronal curves** (curve types of the King/Lenke classifications: single thoracic, thoracolumbar,
  lumbar, double major, with compensatory curves of smaller magnitude). The lateral deviation of the
  ISL is a sum of raised-cosine bumps (main curve at the apex, opposite compensatory curves); its
  amplitude is solved so that the coronal tangent Cobb angle of the ISL (the largest swing of the
  tangent angle between two consecutive turning points: the primary curve) equals the requested one.
* **Axial rotation** (Stokes 1994, *Spine* 19:236-248, 3D terminology of spinal deformity; apical
  axial rotation grows with the Cobb angle, roughly a quarter to a half of it, cf. Perdriolle &
  Vidal 1985): vertebral bodies rotate towards the convexity of each curve, proportionally to the
  local lateral deviation, so the spinous processes point towards the concavity.
* **ISL and ESL** (Drerup & Hierholzer 1994, *Clin Biomech* 9:28-36, surface topography /
  rasterstereography): the ESL (tips of the spinous processes, on the skin) lies 40-90 mm behind the
  ISL (vertebral bodies); because the posterior elements rotate towards the concave side, the
  ESL's lateral deviation is smaller than the ISL's.

Frame: millimetres, x lateral (+x the subject's right), y up, z out of the back. The ESL ends at
C7 on top and at DM (the origin) at the bottom; the ISL lies in front of it (negative z).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

LEVELS: tuple[str, ...] = (
    ("C7",) + tuple(f"T{i}" for i in range(1, 13)) + tuple(f"L{i}" for i in range(1, 6)) + ("S1",)
)
# Relative heights of vertebra + disc, C7 .. L5 (S1 is the end point).
_REL_HEIGHTS = np.array([1.0] + [1.05] * 4 + [1.15] * 4 + [1.3] * 4 + [1.6] * 5)
#: Position of each level along the spine, t in [0, 1] (C7 = 0, S1 = 1).
LEVEL_T: dict[str, float] = dict(
    zip(LEVELS, np.concatenate([[0.0], np.cumsum(_REL_HEIGHTS) / _REL_HEIGHTS.sum()]).tolist())
)
CURVE_TYPES = ("none", "thoracic", "thoracolumbar", "lumbar", "double_major")
#: Apex levels allowed for each curve type (the main curve; for double major the thoracic one).
APEX_LEVELS: dict[str, tuple[str, ...]] = {
    "none": ("T6", "T7", "T8", "T9", "T10", "T11", "T12", "L1", "L2"),
    "thoracic": ("T6", "T7", "T8", "T9", "T10"),
    "thoracolumbar": ("T11", "T12", "L1"),
    "lumbar": ("L1", "L2", "L3"),
    "double_major": ("T7", "T8", "T9"),
}
#: Scoliosis is defined clinically as a Cobb angle of 10 deg or more; below that a spine is "none".
SCOLIOSIS_MIN_COBB = 10.0
NUM_SAMPLES = 241  # internal resolution of the lines along t
#: Phantom model versions: "v1" is the first model (kept so benchmarks/realism.py can re-run the
#: "before" figures), "v2" the one calibrated against the PCdare scans (the default).
VERSIONS = ("v1", "v2")
DEFAULT_VERSION = "v2"


@dataclass
class SpineParams:
    """Generating parameters of one phantom spine (all angles in degrees, lengths in mm).

    Attributes:
        length_mm: straight C7-DM distance.
        cobb_deg: coronal Cobb angle of the primary curve of the ISL (tangent method).
        curve_type: one of :data:`CURVE_TYPES`.
        apex: apex level of the primary curve (a name from :data:`LEVELS`); for double major the
            thoracic apex (the lumbar one lies 7 levels lower).
        convexity: ``"right"`` (+x) or ``"left"``: the side the primary curve bulges to.
        secondary_ratio: magnitude of the opposite (compensatory / second major) curve relative to
            the primary one.
        kyphosis_deg: T4-T12 sagittal angle of the ISL.
        lordosis_deg: L1-S1 sagittal angle of the ISL.
        rotation_deg: apical axial rotation of the primary curve, vertebral bodies towards the convexity.
        isl_depth_mm: mean depth of the ISL in front of the ESL (z difference).
        coronal_offset_mm: lateral offset of C7 from DM (coronal balance, + = right).
        sagittal_offset_mm: z offset of C7 from DM on the skin line (+ = C7 further back).
        skin_flattening: fraction by which the skin line's sagittal curvature (kyphosis, lordosis) is
            flatter than the ISL's (soft tissue fills the lordosis; 0 = parallel lines).
    """

    length_mm: float = 440.0
    cobb_deg: float = 0.0
    curve_type: str = "none"
    apex: str = "T8"
    convexity: str = "right"
    secondary_ratio: float = 0.5
    kyphosis_deg: float = 36.0
    lordosis_deg: float = 50.0
    rotation_deg: float = 0.0
    isl_depth_mm: float = 60.0
    coronal_offset_mm: float = 0.0
    sagittal_offset_mm: float = 0.0
    skin_flattening: float = 0.0

    def __post_init__(self) -> None:
        if self.curve_type not in CURVE_TYPES:
            raise ValueError(f"SpineParams.curve_type must be one of {CURVE_TYPES}, got {self.curve_type!r}")
        if self.apex not in LEVELS:
            raise ValueError(f"SpineParams.apex must be a level name in {LEVELS}, got {self.apex!r}")
        if self.convexity not in ("right", "left"):
            raise ValueError(f"SpineParams.convexity must be 'right' or 'left', got {self.convexity!r}")
        if not 0.0 <= self.cobb_deg < 120.0:
            raise ValueError(f"SpineParams.cobb_deg must lie in [0, 120), got {self.cobb_deg}")
        if not 200.0 <= self.length_mm <= 800.0:
            raise ValueError(f"SpineParams.length_mm must lie in [200, 800] mm, got {self.length_mm}")
        if not 0.0 <= self.skin_flattening < 1.0:
            raise ValueError(f"SpineParams.skin_flattening must lie in [0, 1), got {self.skin_flattening}")
        if not 10.0 <= self.isl_depth_mm <= 150.0:
            raise ValueError(f"SpineParams.isl_depth_mm must lie in [10, 150] mm, got {self.isl_depth_mm}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of the parameters."""
        return {k: (float(v) if isinstance(v, (float, np.floating)) else v) for k, v in asdict(self).items()}


_PRIOR_V1: dict[str, Any] = dict(
    length_mean=440.0, length_sd=32.0, length_min=380.0, length_max=520.0,
    cobb_min=0.0, cobb_max=80.0,
    # Fraction of straight spines ("none"); the rest draw a Cobb angle in [max(cobb_min, 10), cobb_max].
    p_straight=0.25,
    curve_types=CURVE_TYPES,
    # Relative frequency of the scoliotic curve types (thoracic curves are the most common in AIS).
    curve_probs={"thoracic": 0.4, "thoracolumbar": 0.2, "lumbar": 0.2, "double_major": 0.2},
    p_right=0.75,  # right convex thoracic curves dominate in adolescent idiopathic scoliosis
    kyphosis_mean=36.0, kyphosis_sd=10.0, kyphosis_min=10.0, kyphosis_max=60.0,
    lordosis_mean=50.0, lordosis_sd=10.0, lordosis_min=25.0, lordosis_max=75.0,
    rotation_per_cobb=(0.25, 0.45),
    isl_depth_min=45.0, isl_depth_max=80.0,
    coronal_offset_sd=8.0, sagittal_offset_sd=12.0,
    skin_flattening=(0.0, 0.0),
)
#: Spine priors by phantom version ("v1": the first model; "v2": calibrated on the PCdare scans, whose
#: skin lines bow less in the lumbar region than a 50 deg lordosis would make them, and peak lower).
SPINE_PRIORS: dict[str, dict[str, Any]] = {
    "v1": _PRIOR_V1,
    "v2": {**_PRIOR_V1, "kyphosis_mean": 34.0, "kyphosis_min": 10.0, "kyphosis_max": 65.0,
           "lordosis_mean": 38.0, "lordosis_min": 20.0, "lordosis_max": 65.0, "skin_flattening": (0.0, 0.3)},
}
#: Default distribution of :func:`sample_spine_params` (the newest version); override any key by keyword.
SPINE_PRIOR: dict[str, Any] = SPINE_PRIORS[DEFAULT_VERSION]


def draw_prior(rng: np.random.Generator, spec: tuple[float, ...]) -> float:
    """One draw from a prior spec: ``(low, high)`` uniform or ``(mean, sd, low, high)`` truncated normal."""
    if len(spec) == 2:
        return float(rng.uniform(*spec))
    mean, sd, lo, hi = spec
    for _ in range(100):  # rejection; the bounds hold at least ~1 sd of mass in every prior here
        v = rng.normal(mean, sd)
        if lo <= v <= hi:
            return float(v)
    return float(np.clip(mean, lo, hi))


def sample_spine_params(rng: np.random.Generator, *, version: str = DEFAULT_VERSION, **overrides: Any) -> SpineParams:
    """Draw :class:`SpineParams` from ``SPINE_PRIORS[version]`` (keys overridable by keyword).

    ``curve_types`` selects the allowed types; with ``"none"`` among them a fraction ``p_straight`` of the
    draws are straight spines with a Cobb angle below ``SCOLIOSIS_MIN_COBB``. ``cobb_min``/``cobb_max``
    bound every draw (scoliotic ones get at least ``SCOLIOSIS_MIN_COBB``).
    """
    if version not in SPINE_PRIORS:
        raise ValueError(f"sample_spine_params: version must be one of {sorted(SPINE_PRIORS)}, got {version!r}")
    base = SPINE_PRIORS[version]
    unknown = set(overrides) - set(base)
    if unknown:
        raise ValueError(f"sample_spine_params: unknown prior keys {sorted(unknown)}; valid: {sorted(base)}")
    p = {**base, **overrides}
    types = tuple(p["curve_types"])
    bad = set(types) - set(CURVE_TYPES)
    if bad or not types:
        raise ValueError(f"sample_spine_params: curve_types must be a non-empty subset of {CURVE_TYPES}, got {types}")
    lo, hi = float(p["cobb_min"]), float(p["cobb_max"])
    if not 0.0 <= lo <= hi < 120.0:
        raise ValueError(f"sample_spine_params: need 0 <= cobb_min <= cobb_max < 120, got {lo}, {hi}")
    probs = p["curve_probs"]
    scoliotic = [t for t in types if t != "none"]
    can_straight = lo < SCOLIOSIS_MIN_COBB and "none" in types
    can_curve = bool(scoliotic) and hi >= SCOLIOSIS_MIN_COBB
    if not (can_straight or can_curve):
        raise ValueError(f"sample_spine_params: no curve type in {types} is possible with Cobb in [{lo}, {hi}]")
    straight = can_straight and (not can_curve or rng.random() < p["p_straight"])
    if straight:
        curve_type, cobb = "none", float(rng.uniform(lo, min(hi, SCOLIOSIS_MIN_COBB)))
    else:
        w = np.array([probs.get(t, 1.0) for t in scoliotic], dtype=float)
        curve_type = str(rng.choice(scoliotic, p=w / w.sum()))
        cobb = float(rng.uniform(max(lo, SCOLIOSIS_MIN_COBB), hi))
    apex = str(rng.choice(APEX_LEVELS[curve_type]))
    right = rng.random() < p["p_right"]
    if curve_type in ("lumbar", "thoracolumbar"):
        right = not right  # lumbar curves are mostly left convex
    secondary = float(rng.uniform(0.75, 1.0) if curve_type == "double_major" else rng.uniform(0.3, 0.7))
    return SpineParams(
        length_mm=draw_prior(rng, (p["length_mean"], p["length_sd"], p["length_min"], p["length_max"])),
        cobb_deg=cobb,
        curve_type=curve_type,
        apex=apex,
        convexity="right" if right else "left",
        secondary_ratio=secondary,
        kyphosis_deg=draw_prior(rng, (p["kyphosis_mean"], p["kyphosis_sd"], p["kyphosis_min"], p["kyphosis_max"])),
        lordosis_deg=draw_prior(rng, (p["lordosis_mean"], p["lordosis_sd"], p["lordosis_min"], p["lordosis_max"])),
        rotation_deg=float(cobb * rng.uniform(*p["rotation_per_cobb"])),
        isl_depth_mm=float(rng.uniform(p["isl_depth_min"], p["isl_depth_max"])),
        coronal_offset_mm=float(rng.normal(0.0, p["coronal_offset_sd"])),
        sagittal_offset_mm=float(rng.normal(0.0, p["sagittal_offset_sd"])),
        skin_flattening=draw_prior(rng, p["skin_flattening"]),
    )


def _bump(t: np.ndarray, center: float, half_width: float) -> np.ndarray:
    """Raised-cosine bump (T,): 1 at ``center``, 0 beyond ``half_width`` (C1-smooth)."""
    u = np.clip((t - center) / half_width, -1.0, 1.0)
    return np.cos(0.5 * np.pi * u) ** 2


def _integrate(f: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Cumulative trapezoid integral of f (T,) over t (T,), starting at 0."""
    return np.concatenate([[0.0], np.cumsum(0.5 * (f[1:] + f[:-1]) * np.diff(t))])


def coronal_shape(params: SpineParams, t: np.ndarray) -> np.ndarray:
    """Unit-amplitude lateral deviation (T,) of the ISL along t: + towards the primary convexity.

    The main curve is a raised-cosine bump of the lateral deviation centred at the apex; its end
    vertebrae (steepest tilt) lie half a half-width either side. Opposite bumps above and/or below
    model compensatory curves (or, for double major, the lumbar major curve).
    """
    ta = LEVEL_T[params.apex]
    r = params.secondary_ratio
    ct = params.curve_type
    if ct == "double_major":
        tl = LEVEL_T[LEVELS[min(LEVELS.index(params.apex) + 7, len(LEVELS) - 2)]]
        return _bump(t, ta, 0.3) - r * _bump(t, tl, 0.3)
    if ct == "thoracic":
        return _bump(t, ta, 0.32) - r * _bump(t, min(ta + 0.42, 0.95), 0.28)
    if ct == "lumbar":
        return _bump(t, ta, 0.3) - r * _bump(t, max(ta - 0.42, 0.18), 0.3)
    if ct == "thoracolumbar":
        return _bump(t, ta, 0.3) - 0.6 * r * (_bump(t, max(ta - 0.4, 0.1), 0.25) + _bump(t, min(ta + 0.35, 0.98), 0.2))
    return _bump(t, ta, 0.35) - r * _bump(t, min(ta + 0.4, 0.98), 0.3)  # "none": a mild S


def _tangent_swing_deg(x: np.ndarray, y: np.ndarray) -> float:
    """Primary-curve Cobb angle (deg) of the noise-free curve x(y): the largest swing of the coronal
    tangent angle between two consecutive turning points (its local extrema, plus both ends)."""
    ang = np.degrees(np.arctan2(np.gradient(x), -np.gradient(y)))
    d = np.diff(ang)
    turns = np.flatnonzero(d[1:] * d[:-1] < 0) + 1  # sign changes of the derivative
    ext = ang[np.concatenate([[0], turns, [len(ang) - 1]])]
    return float(np.abs(np.diff(ext)).max())


def _solve_amplitude(shape: np.ndarray, y: np.ndarray, offset: np.ndarray, cobb: float) -> float:
    """Amplitude A >= 0 (mm) such that x = A * shape + offset has the requested tangent swing."""
    if cobb <= 0:
        return 0.0
    lo, hi = 0.0, 50.0
    while _tangent_swing_deg(hi * shape + offset, y) < cobb:
        hi *= 2.0
        if hi > 1e5:
            raise ValueError(f"spine: cannot reach a Cobb angle of {cobb} deg with this curve shape")
    for _ in range(50):  # bisection: the swing grows monotonically with A once A dominates the offset
        mid = 0.5 * (lo + hi)
        if _tangent_swing_deg(mid * shape + offset, y) < cobb:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


@dataclass
class SpineGeometry:
    """Dense spine geometry along t (T samples, top -> bottom), all in mm / degrees.

    Attributes:
        t: (T,) parameter, 0 at C7 and 1 at S1/DM.
        isl: (T, 3) internal spinal line.
        esl: (T, 3) external spinal line (on the skin; ESL[-1] = DM = origin).
        rotation_deg: (T,) axial rotation of the vertebrae (+ = body turned towards +x).
        deviation: (T,) signed lateral deviation of the ISL from its C7-S1 chord (mm, + = right).
    """

    t: np.ndarray
    isl: np.ndarray
    esl: np.ndarray
    rotation_deg: np.ndarray
    deviation: np.ndarray


def spine_geometry(params: SpineParams, num_samples: int = NUM_SAMPLES) -> SpineGeometry:
    """Build the dense ISL/ESL of a spine (see the module docstring for the model)."""
    t = np.linspace(0.0, 1.0, num_samples)
    height = float(params.length_mm)  # vertical extent; rescaled below so |C7 - DM| = length_mm
    y = (1.0 - t) * height
    # Sagittal: curvature of z(t) (deg of tangent per unit t): kyphosis bump (z'' < 0) over the thoracic
    # levels, lordosis bump (z'' > 0) over the lumbar ones; each normalised to its angle between its levels.
    kb = _bump(t, 0.5 * (LEVEL_T["T1"] + LEVEL_T["T12"]), 0.5 * (LEVEL_T["T12"] - LEVEL_T["C7"]) + 0.05)
    lb = _bump(t, LEVEL_T["L4"], LEVEL_T["S1"] - LEVEL_T["T12"])
    seg = lambda b, a, c: np.trapezoid(b[(t >= LEVEL_T[a]) & (t <= LEVEL_T[c])], t[(t >= LEVEL_T[a]) & (t <= LEVEL_T[c])])  # noqa: E731
    curv = -params.kyphosis_deg * kb / seg(kb, "T4", "T12") + params.lordosis_deg * lb / seg(lb, "L1", "S1")
    psi = np.radians(_integrate(curv, t))  # tangent angle relative to the top tangent
    z_isl = _integrate(np.tan(psi) * height, t)
    # Coronal: shape, C7 offset, amplitude solved for the Cobb angle.
    shape = coronal_shape(params, t)
    shape = shape - (shape[0] + (shape[-1] - shape[0]) * t)  # zero at both ends (C7 and S1 on the chord)
    sign = 1.0 if params.convexity == "right" else -1.0
    offset = params.coronal_offset_mm * (1.0 - t)
    amp = _solve_amplitude(shape, y, offset, params.cobb_deg)
    deviation = sign * amp * shape
    x_isl = deviation + offset
    # Axial rotation follows the local deviation: apex of the primary curve = rotation_deg.
    peak = np.abs(shape).max()
    rotation = sign * params.rotation_deg * (shape / peak if peak > 0 else shape)
    # Depth of the spinous processes behind the vertebral bodies: shallower at the top, deeper lumbar;
    # the skin line keeps only (1 - skin_flattening) of the ISL's sagittal bow off its C7-S1 chord.
    depth = params.isl_depth_mm * (0.85 + 0.3 * t)
    bow = z_isl - (z_isl[0] + (z_isl[-1] - z_isl[0]) * t)
    depth = depth - params.skin_flattening * (bow - np.median(bow))
    # Spinous processes point backwards and turn with the vertebra towards the concavity (-rotation).
    rot = np.radians(rotation)
    esl = np.stack([x_isl - depth * np.sin(rot), y, z_isl + depth * np.cos(rot)], axis=1)
    isl = np.stack([x_isl, y, z_isl], axis=1)
    # Sagittal balance of the skin line: C7 sits sagittal_offset_mm behind DM (shear in z along y).
    esl_z_tilt = (esl[0, 2] - esl[-1, 2]) - params.sagittal_offset_mm
    shear = np.stack([np.zeros_like(t), np.zeros_like(t), -esl_z_tilt * (1.0 - t)], axis=1)
    origin = esl[-1] + shear[-1]
    esl, isl = esl + shear - origin, isl + shear - origin
    scale = params.length_mm / np.linalg.norm(esl[0] - esl[-1])
    return SpineGeometry(t=t, isl=isl * scale, esl=esl * scale, rotation_deg=rotation, deviation=deviation * scale)


def spine_lines(params: SpineParams, num_points: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """The (ESL, ISL) of a spine, each (num_points, 3) float32 mm, ordered top (C7) -> bottom (S1/DM).

    The ESL ends at C7 and DM (the origin); the ISL lies ``isl_depth_mm`` or so in front (negative z).
    """
    g = spine_geometry(params)
    idx = np.linspace(0, len(g.t) - 1, num_points)
    pick = lambda line: np.stack([np.interp(idx, np.arange(len(g.t)), line[:, d]) for d in range(3)], 1)  # noqa: E731
    return pick(g.esl).astype(np.float32), pick(g.isl).astype(np.float32)
