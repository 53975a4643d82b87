"""The phantom's scanner: one structured-light view from behind, cropped like the PCdare scans.

What a real single-view back scan looks like (measured on the PCdare scans, see
``benchmarks/realism.py``): only the surface facing the camera is captured, down to grazing angles
of about 70 deg (|n_z| > ~0.3); the points are roughly evenly spread over the surface (the published
clouds are downsampled); the cloud is cut by horizontal planes some 15 mm above C7 and below the
lumbar dimples; the subject stands slightly turned or leaning; there is sensor noise along the
viewing direction and a few small holes.

The scanner here samples the height field of :class:`~pcdiff.data.phantom.surface.BackSurface`:
uniform candidates over the coronal outline, weighted by ``(1 / n_z) ** area_weighting`` so the density is
uniform per unit surface area (1) or per unit area of the camera's view (0), times a banded modulation
(uneven density), kept where the posed surface faces
the camera, cropped, holed, and perturbed by Gaussian noise along the normal. Rejection sampling is
vectorised and repeats until ``num_points`` points are kept, so the count is exact.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from pcdiff.data.phantom.spine import DEFAULT_VERSION, draw_prior
from pcdiff.data.phantom.surface import BackSurface


@dataclass
class ScannerParams:
    """Generating parameters of one phantom scan (mm and degrees).

    Attributes:
        noise_mm: sigma of the Gaussian noise along the surface normal.
        max_view_angle_deg: surfaces seen at a larger angle from the viewing direction are not captured.
        crop_above_c7: the scan ends this far above C7.
        crop_below_dimples: and this far below the lower dimple.
        yaw_deg, pitch_deg, roll_deg: posture of the subject in front of the camera (rotations about
            y, x and z through DM, applied to surface, lines and landmarks alike; a negative yaw brings
            the right side (+x) nearer the scanner).
        density_amp, density_period: relative amplitude and period (mm) of horizontal density bands.
        num_holes: number of small holes; hole_radius: their radii lie in [0.5, 1] x hole_radius.
        depth_shear_deg: after the posture, z += tan(angle) * x: the right side nearer the scanner
            without turning the outline (a back that is twisted or asymmetric rather than rotated).
        area_weighting: 1 = density uniform per unit surface area (oblique flanks denser in the
            camera's view), 0 = uniform per unit area of the camera's view (as the PCdare clouds).
    """

    noise_mm: float = 0.5
    max_view_angle_deg: float = 70.0
    crop_above_c7: float = 15.0
    crop_below_dimples: float = 15.0
    yaw_deg: float = 0.0
    pitch_deg: float = 0.0
    roll_deg: float = 0.0
    density_amp: float = 0.2
    density_period: float = 60.0
    num_holes: int = 1
    hole_radius: float = 12.0
    depth_shear_deg: float = 0.0
    area_weighting: float = 1.0

    def to_dict(self) -> dict[str, float]:
        return {k: (int(v) if k == "num_holes" else float(v)) for k, v in asdict(self).items()}


#: Scanner priors by phantom version; (low, high) uniform or (mean, sd, low, high) truncated normal.
SCANNER_PRIORS: dict[str, dict[str, tuple[float, ...]]] = {
    "v1": dict(
        noise_mm=(0.3, 1.0), max_view_angle_deg=(65.0, 75.0), crop_above_c7=(10.0, 40.0),
        crop_below_dimples=(10.0, 40.0), yaw_deg=(0.0, 4.0, -10.0, 10.0), pitch_deg=(0.0, 2.0, -6.0, 6.0),
        roll_deg=(0.0, 1.5, -5.0, 5.0), density_amp=(0.0, 0.3), density_period=(30.0, 90.0),
        num_holes=(0.0, 4.0), hole_radius=(6.0, 20.0),
    ),
}
# v2: calibrated on PCdare: nearly noise-free (smoothed, downsampled) clouds cut 15 mm above C7 and
# about 15 mm below the lower dimple (the right-side-nearer tilt of the PCdare backs is a surface
# twist of the back, see BodyParams.surface_twist_deg, not a posture: the outline does not turn);
# density uniform in the camera's view.
SCANNER_PRIORS["v2"] = {
    **SCANNER_PRIORS["v1"],
    "noise_mm": (0.01, 0.02), "crop_above_c7": (14.0, 16.0), "crop_below_dimples": (13.0, 19.0),
    "yaw_deg": (0.0, 3.0, -8.0, 8.0), "area_weighting": (0.0, 0.0), "density_amp": (0.0, 0.2), "num_holes": (0.0, 6.0),
    "hole_radius": (8.0, 25.0),
}


def sample_scanner_params(rng: np.random.Generator, version: str = DEFAULT_VERSION) -> ScannerParams:
    """Draw :class:`ScannerParams` from ``SCANNER_PRIORS[version]``."""
    if version not in SCANNER_PRIORS:
        raise ValueError(f"phantom scanner prior version must be one of {sorted(SCANNER_PRIORS)}, got {version!r}")
    values = {k: draw_prior(rng, spec) for k, spec in SCANNER_PRIORS[version].items()}
    values["num_holes"] = int(np.floor(values["num_holes"]))
    return ScannerParams(**values)


def pose_matrix(yaw_deg: float, pitch_deg: float, roll_deg: float, depth_shear_deg: float = 0.0) -> np.ndarray:
    """(3, 3) linear map M = S R_y(yaw) R_x(pitch) R_z(roll) (S: the depth shear); apply as ``points @ M.T``.

    Without shear M is a rotation. Normals map with the inverse transpose (``normals @ inv(M)``).
    """
    a, b, c = np.radians([yaw_deg, pitch_deg, roll_deg])
    ry = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    shear = np.eye(3)
    shear[2, 0] = np.tan(np.radians(depth_shear_deg))
    return shear @ ry @ rx @ rz


def _surface_points(surface: BackSurface, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points (M, 3) and unit normals (M, 3) (towards +z) of the height field at (x, y)."""
    eps = 0.5  # mm; central differences of the analytic height field
    z = surface.height(x, y)
    zx = (surface.height(x + eps, y) - surface.height(x - eps, y)) / (2 * eps)
    zy = (surface.height(x, y + eps) - surface.height(x, y - eps)) / (2 * eps)
    n = np.stack([-zx, -zy, np.ones_like(z)], axis=1)
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    return np.stack([x, y, z], axis=1), n


def scan_surface(
    surface: BackSurface,
    params: ScannerParams,
    num_points: int,
    rng: np.random.Generator,
    landmarks: dict[str, np.ndarray],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sample a single-view scan of ``surface``.

    Args:
        surface: the back surface (body frame, DM at the origin).
        params: scanner parameters.
        num_points: exact number of points to return.
        rng: random generator (the only source of randomness).
        landmarks: body-frame landmarks ``C7``, ``DL``, ``DR`` (crop heights are taken from them).

    Returns:
        ``(points (N, 3), normals (N, 3), R (3, 3))``: posed points in mm (noise included), their unit
        normals, and the pose map that was applied (``p_posed = p_body @ M.T``, see :func:`pose_matrix`).
    """
    if num_points < 1:
        raise ValueError(f"scan_surface: num_points must be >= 1, got {num_points}")
    rot = pose_matrix(params.yaw_deg, params.pitch_deg, params.roll_deg, params.depth_shear_deg)
    rot_normals = np.linalg.inv(rot)  # normals @ inv(M) = (M^-T n)^T
    posed = {k: v @ rot.T for k, v in landmarks.items()}
    y_top = posed["C7"][1] + params.crop_above_c7
    y_bot = min(posed["DL"][1], posed["DR"][1]) - params.crop_below_dimples
    # Candidate box in the body frame, padded for the posture rotation.
    ys = np.linspace(y_bot - 40.0, y_top + 40.0, 64)
    xm, _ = surface.midline(ys)
    left, right = surface.half_widths(ys)
    box = (float((xm - left).min()) - 5.0, float((xm + right).max()) + 5.0, ys[0], ys[-1])
    cos_max = np.cos(np.radians(params.max_view_angle_deg))
    holes_c = np.stack([rng.uniform(box[0], box[1], params.num_holes), rng.uniform(y_bot, y_top, params.num_holes)], 1)
    holes_r = rng.uniform(0.5, 1.0, params.num_holes) * params.hole_radius
    phase = rng.uniform(0.0, 2 * np.pi)
    kept_p, kept_n, count = [], [], 0
    for _ in range(200):
        m = max(4 * num_points, 4096)
        x, y = rng.uniform(box[0], box[1], m), rng.uniform(box[2], box[3], m)
        ok = surface.inside(x, y)
        p, n = _surface_points(surface, x[ok], y[ok])
        pp, nn = p @ rot.T, n @ rot_normals
        nn /= np.linalg.norm(nn, axis=1, keepdims=True)
        vis = (nn[:, 2] > cos_max) & (pp[:, 1] <= y_top) & (pp[:, 1] >= y_bot)
        if params.num_holes:
            d2 = ((pp[:, None, :2] - holes_c[None]) ** 2).sum(-1)
            vis &= ~(d2 < holes_r[None] ** 2).any(1)
        # Uniform per surface area: candidates are uniform in the body's x-y, so weight by 1/n_z.
        band = 1.0 + params.density_amp * np.sin(2 * np.pi * pp[:, 1] / params.density_period + phase)
        weight = band * (cos_max / np.maximum(n[:, 2], cos_max)) ** params.area_weighting / (1.0 + params.density_amp)
        vis &= rng.random(len(weight)) < weight
        kept_p.append(pp[vis])
        kept_n.append(nn[vis])
        count += int(vis.sum())
        if count >= num_points:
            break
    else:
        raise RuntimeError(f"scan_surface: could not collect {num_points} visible points (got {count})")
    pts, nrm = np.concatenate(kept_p), np.concatenate(kept_n)
    pick = rng.choice(len(pts), num_points, replace=False)
    pts, nrm = pts[pick], nrm[pick]
    pts = pts + nrm * rng.normal(0.0, params.noise_mm, (num_points, 1))
    return pts, nrm, rot
