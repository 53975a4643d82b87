"""The phantom's back surface: a height field z(x, y) over the coronal plane that follows the spine.

Model (millimetres; x lateral, y up, z out of the back; DM at the origin):

* **Outline** (torso breadths: adult/adolescent shoulder half-breadths ~160-200 mm, waist ~110-150 mm,
  hips ~130-170 mm, cf. the ANSUR II survey, Gordon et al. 2014, and calibrated against the PCdare
  scans, whose outline includes the posterior deltoids): a half-width profile through shoulder, chest,
  waist and hip control heights, rounded into the neck above the shoulder line, with the left and
  right halves shifted by the trunk's lateral shift in scoliosis (waist asymmetry) and the shoulder
  line raised on one side (shoulder-height asymmetry, higher on the convex side of a thoracic curve).
* **Cross-section**: a superellipse ``z = D ((1 - |u|^p)^(1/p) - 1)`` of the normalised lateral
  offset ``u`` from the ESL, so the flanks wrap forward to the silhouette.
* **Sagittal shape**: the whole back follows the skin line (ESL) in depth: kyphosis, lordosis.
* **Spinal furrow** along the ESL between the paraspinal muscles (deep in the lumbar region,
  shallow in the thoracic one); the ESL is the furrow's floor, so it lies exactly on the surface.
* **Shoulder blades**: two elliptical bumps lateral to T2-T8.
* **Lumbar dimples** over the posterior superior iliac spines (DL, DR): shallow Gaussian pits
  (Drerup & Hierholzer 1987, *J Biomech* 20:961-970, use them as surface landmarks).
* **Arms** (optional): cylinders hanging beside the trunk from the shoulders, seen from behind
  where they stick out behind the flanks.
* **Rib hump / lumbar prominence**: the trunk cross-section turns with the vertebral rotation,
  by a fraction of it (the surface rotation of rasterstereography is smaller than the vertebral
  rotation, Drerup & Hierholzer 1994), raising the convex side of each curve.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.interpolate import PchipInterpolator

from pcdiff.data.phantom.spine import DEFAULT_VERSION, SpineGeometry, SpineParams, draw_prior


@dataclass
class BodyParams:
    """Generating parameters of one phantom's torso (mm unless stated).

    Attributes:
        shoulder_hw, chest_hw, waist_hw, hip_hw: half-widths of the outline.
        neck_hw: half-width of the neck base.
        shoulder_dy: height of the shoulder line relative to C7 (+ = above).
        shoulder_round: vertical radius over which the shoulder rounds into the neck.
        shoulder_asym: right minus left shoulder height.
        depth_upper, depth_lower: wrap depth D of the cross-section in the thorax and at waist/hips;
            depth_shoulder: at the shoulders (None = depth_upper).
        outline_offset: the outline's centre lies this far right (+x) of the ESL (trunk shift).
        flank_power: 0 = superellipse cross-section; q > 0 = ``z = -D |u|^q``: a flat back whose flanks
            fall away steeply but stay in view down to the depth D at the outline (as in PCdare).
        surface_twist_deg: constant added to the surface rotation (deg; + = right side nearer the
            scanner) over the back but not the flanks: in PCdare the back beside the spine is
            turned right-side-up by ~8 deg in every subject, whichever way the curve goes, while
            the outline does not turn.
        flatness: superellipse exponent p (2 = elliptical, larger = flatter back).
        furrow_lumbar, furrow_thoracic: depth of the spinal furrow; furrow_width its Gaussian sigma.
        scapula_height: bump height; scapula_dx its lateral offset from the ESL; scapula_dy its height
            above DM as a fraction of the C7 height.
        dimple_sep: DL-DR distance; dimple_depth, dimple_sigma: pit depth and width; pelvic_tilt_mm:
            DR height minus DL height.
        surface_rotation: surface rotation as a fraction of the vertebral axial rotation.
        trunk_shift: fraction of the ISL-ESL lateral gap by which the outline follows the vertebral bodies.
        arm_radius: radius of the upper arms hanging beside the trunk (0 = no arms); arm_left,
            arm_right: 1 where that arm is in view, else 0; arm_overlap: how far the arm's axis lies
            inside the trunk outline; arm_depth: how far the arm's axis lies in front of the ESL;
            arm_bottom: lowest height of the arm in the scan, as a fraction of the C7 height (PCdare's
            cut clouds keep only remnants of the arms).
            Where the arm's and the flank's surfaces are both seen at grazing angles, the scanner
            leaves a gap between arm and trunk, as in real scans.
    """

    shoulder_hw: float = 180.0
    chest_hw: float = 170.0
    waist_hw: float = 130.0
    hip_hw: float = 150.0
    neck_hw: float = 60.0
    shoulder_dy: float = -10.0
    shoulder_round: float = 70.0
    shoulder_asym: float = 0.0
    depth_upper: float = 120.0
    depth_lower: float = 90.0
    flatness: float = 2.5
    furrow_lumbar: float = 10.0
    furrow_thoracic: float = 3.0
    furrow_width: float = 20.0
    scapula_height: float = 10.0
    scapula_dx: float = 85.0
    scapula_dy: float = 0.72
    dimple_sep: float = 120.0
    dimple_depth: float = 5.0
    dimple_sigma: float = 12.0
    pelvic_tilt_mm: float = 0.0
    surface_rotation: float = 0.55
    trunk_shift: float = 0.7
    arm_radius: float = 0.0
    arm_left: float = 0.0
    arm_right: float = 0.0
    arm_overlap: float = 10.0
    arm_depth: float = 110.0
    arm_bottom: float = 0.3
    depth_shoulder: float | None = None
    outline_offset: float = 0.0
    flank_power: float = 0.0
    surface_twist_deg: float = 0.0

    def to_dict(self) -> dict[str, float]:
        return {k: (None if v is None else float(v)) for k, v in asdict(self).items()}


#: Body priors by phantom version ("v1" = first guesses from anatomy, "v2" = calibrated on PCdare).
#: Each entry: name -> (low, high) of a uniform draw, or (mean, sd, low, high) of a truncated normal.
BODY_PRIORS: dict[str, dict[str, tuple[float, ...]]] = {
    "v1": dict(
        shoulder_hw=(175.0, 15.0, 145.0, 210.0), chest_hw=(0.85, 0.97), waist_hw=(125.0, 12.0, 100.0, 155.0),
        hip_hw=(150.0, 12.0, 120.0, 180.0), neck_hw=(50.0, 65.0), shoulder_dy=(-10.0, 20.0, -50.0, 30.0),
        shoulder_round=(50.0, 90.0), depth_upper=(100.0, 150.0), depth_lower=(75.0, 110.0), flatness=(2.0, 3.0),
        furrow_lumbar=(6.0, 14.0), furrow_thoracic=(1.5, 5.0), furrow_width=(15.0, 25.0),
        scapula_height=(5.0, 14.0), scapula_dx=(70.0, 95.0), scapula_dy=(0.68, 0.76),
        dimple_sep=(95.0, 15.0, 70.0, 130.0), dimple_depth=(3.0, 8.0), dimple_sigma=(9.0, 14.0),
        pelvic_tilt_mm=(0.0, 3.0, -8.0, 8.0), surface_rotation=(0.4, 0.7), trunk_shift=(0.4, 1.0),
    ),
}
# v2: widths are fractions of the spine length times a shared body-size factor (``size``), so that
# the outline scales with the spine, plus flatter hips, higher shoulders and the wider dimple markers
# of the PCdare annotations (80-210 mm apart there, wider than the textbook PSIS distance).
BODY_PRIORS["v2"] = {
    **BODY_PRIORS["v1"],
    "size": (1.0, 0.07, 0.8, 1.2),
    "shoulder_hw": (0.44, 0.02, 0.38, 0.50), "chest_hw": (0.86, 0.97), "waist_hw": (0.29, 0.02, 0.24, 0.35),
    "hip_hw": (0.40, 0.025, 0.34, 0.46), "neck_hw": (55.0, 70.0), "shoulder_dy": (5.0, 25.0, -40.0, 50.0),
    "shoulder_round": (45.0, 75.0), "depth_upper": (150.0, 210.0), "depth_lower": (140.0, 190.0),
    "flatness": (2.0, 2.8), "dimple_sep": (140.0, 35.0, 75.0, 210.0),
    "arm_radius": (35.0, 48.0), "arm_left": (0.0, 1.0), "arm_right": (0.0, 1.0), "arm_overlap": (-5.0, 25.0),
    "arm_depth": (100.0, 160.0), "arm_bottom": (0.2, 0.55), "depth_shoulder": (100.0, 140.0),
    "surface_rotation": (0.8, 1.3), "surface_twist_deg": (8.0, 3.0, 0.0, 16.0),
    "outline_offset": (-8.0, 8.0, -30.0, 15.0),
}
P_ARM_IN_VIEW = 0.35  # v2: chance that an arm is (partly) in the scan


def sample_body_params(rng: np.random.Generator, spine: SpineParams, version: str = DEFAULT_VERSION) -> BodyParams:
    """Draw :class:`BodyParams` from ``BODY_PRIORS[version]``; shoulder asymmetry follows the spine's curve."""
    if version not in BODY_PRIORS:
        raise ValueError(f"phantom body prior version must be one of {sorted(BODY_PRIORS)}, got {version!r}")
    prior = BODY_PRIORS[version]
    values = {k: draw_prior(rng, prior[k]) for k in prior}
    if "size" in values:  # widths given as fractions of the spine length
        scale = values.pop("size") * spine.length_mm
        for key in ("shoulder_hw", "waist_hw", "hip_hw"):
            values[key] *= scale
    values["chest_hw"] = values["chest_hw"] * values["shoulder_hw"]
    for key in ("arm_left", "arm_right"):
        if key in values:
            values[key] = float(values[key] < P_ARM_IN_VIEW)
    # Shoulder-height asymmetry: higher on the convex side of a thoracic (or double major) curve.
    thoracic = spine.curve_type in ("thoracic", "double_major")
    side = 1.0 if spine.convexity == "right" else -1.0
    values["shoulder_asym"] = float((0.3 * spine.cobb_deg * side if thoracic else 0.0) + rng.normal(0.0, 5.0))
    return BodyParams(**values)


@dataclass
class BackSurface:
    """A back surface height field built from a spine and body parameters.

    ``height(x, y)`` gives z (mm) for arrays of x, y (mm); ``inside(x, y)`` says whether (x, y)
    lies within the torso outline. Both are vectorised over arbitrary equal shapes.
    """

    geometry: SpineGeometry
    body: BodyParams

    def __post_init__(self) -> None:
        g, b = self.geometry, self.body
        order = np.argsort(g.esl[:, 1])
        self._ys = g.esl[order, 1]
        self._esl_x, self._esl_z = g.esl[order, 0], g.esl[order, 2]
        self._gap = (g.isl[order, 0] - g.esl[order, 0])  # lateral ISL-ESL offset (from rotation)
        self._rot = np.radians(g.rotation_deg[order])
        self.c7_height = float(g.esl[0, 1])
        h = self.c7_height
        # Half-width control points: hips, waist, chest, shoulders (heights as fractions of C7 height).
        heights = np.array([-0.3, 0.0, 0.22, 0.5, 0.75, 1.5]) * h
        widths = np.array([b.hip_hw * 1.05, b.hip_hw, b.waist_hw, b.chest_hw, b.shoulder_hw, b.shoulder_hw])
        self._hw = PchipInterpolator(heights, widths, extrapolate=True)

    # -- profiles along y --------------------------------------------------------------------
    def midline(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """x and z (mm) of the ESL at heights y (clamped to the ESL's range beyond its ends)."""
        return np.interp(y, self._ys, self._esl_x), np.interp(y, self._ys, self._esl_z)

    def half_widths(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Left and right half-widths (mm) of the outline at heights y, measured from the ESL."""
        b = self.body
        hw = self._hw(y)
        shift = b.trunk_shift * np.interp(y, self._ys, self._gap) + b.outline_offset
        out = []
        for side in (-1.0, 1.0):
            w = hw + side * shift
            # Shoulder line: above y_c the outline rounds into the neck over shoulder_round mm.
            top = self.c7_height + b.shoulder_dy + side * 0.5 * b.shoulder_asym
            yc = top - b.shoulder_round
            v = np.clip((y - yc) / b.shoulder_round, 0.0, 1.0)
            w = np.where(y > yc, b.neck_hw + (w - b.neck_hw) * np.sqrt(1.0 - v**2), w)
            out.append(np.maximum(w, b.neck_hw))
        return out[0], out[1]

    def inside(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Boolean mask: (x, y) lies strictly inside the outline of the trunk or of an arm."""
        return self._inside_trunk(x, y) | np.isfinite(self._arm_height(x, y))

    def _inside_trunk(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        xm, _ = self.midline(y)
        left, right = self.half_widths(y)
        dx = x - xm
        return (dx > -left) & (dx < right)

    def _arm_height(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """z (mm) of the back half of the arms at (x, y); -inf where no arm is."""
        b = self.body
        out = np.full(np.shape(x), -np.inf)
        if b.arm_radius <= 0:
            return out
        xm, zm = self.midline(y)
        left, right = self.half_widths(y)
        # Arms hang from just below the shoulder line down past the bottom of the scan.
        below_shoulder = (y < self.c7_height + b.shoulder_dy - 0.8 * b.shoulder_round) & (y > b.arm_bottom * self.c7_height)
        for side, present, hw in ((-1.0, b.arm_left, left), (1.0, b.arm_right, right)):
            if not present:
                continue
            axis = xm + side * (hw - b.arm_overlap + b.arm_radius)
            r2 = b.arm_radius**2 - (x - axis) ** 2
            on = (r2 > 0) & below_shoulder
            out = np.where(on, zm - b.arm_depth + np.sqrt(np.maximum(r2, 0.0)), out)
        return out

    # -- the height field ----------------------------------------------------------------------
    def height(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Surface z (mm) at (x, y): the trunk's, or an arm's where that is nearer the scanner.

        Outside the trunk outline the trunk contributes its silhouette depth only where no arm is.
        """
        trunk = self._trunk_height(x, y)
        arm = self._arm_height(x, y)
        if not np.isfinite(arm).any():
            return trunk
        return np.where(self._inside_trunk(x, y), np.maximum(trunk, arm), np.where(np.isfinite(arm), arm, trunk))

    def _trunk_height(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        b, h = self.body, self.c7_height
        xm, zm = self.midline(y)
        dx = x - xm
        left, right = self.half_widths(y)
        u = np.clip(np.abs(dx) / np.where(dx < 0, left, right), 0.0, 1.0)
        frac = np.clip(y / h, -0.5, 1.5)  # 0 at DM, 1 at C7
        wrap = b.depth_lower + (b.depth_upper - b.depth_lower) * np.clip((frac - 0.2) / 0.35, 0.0, 1.0)
        if b.depth_shoulder is not None:
            wrap = wrap + (b.depth_shoulder - b.depth_upper) * np.clip((frac - 0.65) / 0.2, 0.0, 1.0)
        if b.flank_power > 0:
            z = zm - wrap * u**b.flank_power
        else:
            p = b.flatness
            z = zm + wrap * ((1.0 - u**p) ** (1.0 / p) - 1.0)
        # Spinal furrow: the paraspinal level sits F above the ESL, the ESL at the furrow floor.
        furrow = b.furrow_thoracic + (b.furrow_lumbar - b.furrow_thoracic) * np.clip((0.55 - frac) / 0.35, 0.0, 1.0)
        furrow = furrow * np.clip((1.05 - frac) / 0.15, 0.0, 1.0)  # fades out at the neck
        z = z + furrow * (1.0 - np.exp(-0.5 * (dx / b.furrow_width) ** 2))
        # Shoulder blades.
        for side in (-1.0, 1.0):
            ex = (dx - side * b.scapula_dx) / 35.0
            ey = (y - b.scapula_dy * h) / 65.0
            z = z + b.scapula_height * np.exp(-0.5 * (ex**2 + ey**2))
        # Lumbar dimples at DL (-x) and DR (+x).
        for side in (-1.0, 1.0):
            r2 = (x - side * 0.5 * b.dimple_sep) ** 2 + (y - side * 0.5 * b.pelvic_tilt_mm) ** 2
            z = z - b.dimple_depth * np.exp(-0.5 * r2 / b.dimple_sigma**2)
        # Rib hump / lumbar prominence: the cross-section turns with the vertebrae (convex side up).
        rot = b.surface_rotation * np.interp(y, self._ys, self._rot) + np.radians(b.surface_twist_deg)
        z = z + np.tan(rot) * dx * np.exp(-((u / 0.85) ** 4))
        # Shoulder tops curve forward above the shoulder line.
        top = self.c7_height + b.shoulder_dy
        v = np.clip((y - (top - b.shoulder_round)) / b.shoulder_round, 0.0, 1.0)
        lateral = np.clip((np.abs(dx) - b.neck_hw) / 40.0, 0.0, 1.0)
        z = z - 0.6 * b.depth_upper * (1.0 - np.sqrt(1.0 - v**2)) * lateral
        return z

    def landmarks(self) -> dict[str, np.ndarray]:
        """C7 (top of the ESL), DL, DR on the surface and DM their midpoint, each (3,) mm."""
        b = self.body
        c7 = self.geometry.esl[0]
        pts = {}
        for name, side in (("DL", -1.0), ("DR", 1.0)):
            x, y = np.array([side * 0.5 * b.dimple_sep]), np.array([side * 0.5 * b.pelvic_tilt_mm])
            pts[name] = np.array([x[0], y[0], self.height(x, y)[0]])
        return {"C7": c7.copy(), "DL": pts["DL"], "DR": pts["DR"], "DM": 0.5 * (pts["DL"] + pts["DR"])}
