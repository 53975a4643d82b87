"""The ISL from an ESL and the back's surface: the mean ISL - ESL offset plus two fitted corrections.

:func:`pcdiff.estimator.geometric.isl_from_esl` adds the training subjects' mean ISL - ESL offset to an ESL.
On the 20 PCdare subjects (true ESL, 5 folds) that leaves an ISL RMS of ~17 mm, mostly per-subject
constant offsets: the ISL sits 43-82 mm behind the ESL (SD ~10 mm) and its mean lateral offset from the
ESL has an SD of ~11 mm. :class:`IslOffsetModel` adds, to the mean offset, two least-squares corrections
of 3 numbers in all, fitted on training subjects only:

- **depth** (2 numbers): the subject's mean ISL - ESL depth (z) offset is regressed on the trunk's width
  (:func:`trunk_width_mm`; r = -0.57 on PCdare: wider trunks carry their vertebral bodies deeper);
- **lateral shape** (1 number): the ISL's lateral offset from the ESL, keypoint by keypoint beyond its
  mean, is a multiple of the left-right depth asymmetry of the back beside the ESL (:func:`surface_asymmetry`:
  the rib hump / lumbar prominence that comes with the vertebral rotation; centred along the line, so
  it shapes the line and moves no part of it on average).

Measured on PCdare (``benchmarks/spine_baselines.py``, 5 folds): with the true ESL the ISL RMS goes from
17.0 to 15.3 mm and the Cobb MAE vs the clinical angle from 7.1 to 5.1 deg; with the furrow-path ESL from
18.0 to 16.6 mm and 10.1 to 9.0 deg. What limits it: even with each test subject's own constant x and z
ISL - ESL offsets given (an oracle), the mean-offset ISL keeps 9.4 mm RMS; those constant offsets are
what the surface does not tell (the lateral one, up to 33 mm, correlated |r| <= 0.3 with the trunk's centre,
the symmetry axis, the back's yaw or its local normal). Tried and dropped: a gain on the ESL's own lateral
deviation from its chord (ISL 17.1 vs 17.0 mm, Cobb 8.4 vs 7.1 deg with the true ESL), and with it the
asymmetry (15.3 / 5.7 deg); asymmetry distances 30-90 mm did about the same (Cobb 5.1-6.5 deg, true ESL).

Lines are (K, 3) mm keypoints, top -> bottom at equal arc length (:func:`pcdiff.geometry.polyline.resample_polyline`);
points (N, 3) mm; pcdiff frame (x lateral, y up, z towards the scanner).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pcdiff.estimator.furrow import trunk_centre_and_width
from pcdiff.geometry.polyline import orient_top_down, resample_polyline
# the reader of the rotation asymmetry is a surface measurement, shared with the generator's metrics
from pcdiff.metrics.spine import ASYMMETRY_DISTANCE_MM, ASYMMETRY_RADIUS_MM, surface_asymmetry  # noqa: F401


def trunk_width_mm(points: np.ndarray, top: float, bottom: float, num_bands: int = 16) -> float:
    """Median width (mm) of the trunk over ``num_bands`` bands between heights ``top`` and ``bottom`` (mm):
    per band the spread of the 5th to 95th percentile of the points' x. ``points`` (N, 3) mm."""
    return trunk_centre_and_width(np.asarray(points, dtype=np.float64), np.linspace(top, bottom, num_bands))[1]


@dataclass(frozen=True)
class IslOffsetModel:
    """ISL = ESL + mean offset + depth and lateral corrections (see the module docstring).

    Attributes:
        offset: (K, 3) mm mean ISL - ESL offset of the training subjects, keypoint by keypoint.
        depth_coef: (intercept mm, slope mm per mm of trunk width) of the subject's mean depth offset.
        depth_mean: mean depth offset (mm) of the training subjects (already inside ``offset``).
        lateral_gain: mm of ISL lateral offset per mm of centred surface asymmetry.
    """

    offset: np.ndarray
    depth_coef: tuple[float, float]
    depth_mean: float
    lateral_gain: float

    @property
    def num_keypoints(self) -> int:
        return len(self.offset)

    def predict(self, esl: np.ndarray, points: np.ndarray, width_mm: float) -> np.ndarray:
        """ISL estimate (K, 3) mm from an ESL (L, 3) mm (either direction), the scan ``points`` (N, 3) mm
        and the trunk's width (mm, :func:`trunk_width_mm`)."""
        line = resample_polyline(orient_top_down(np.asarray(esl, dtype=np.float64)), self.num_keypoints).astype(np.float64)
        asym = surface_asymmetry(points, line)
        isl = line + self.offset
        isl[:, 0] += self.lateral_gain * (asym - asym.mean())
        isl[:, 2] += self.depth_coef[0] + self.depth_coef[1] * width_mm - self.depth_mean
        return isl


@dataclass(frozen=True)
class OffsetExample:
    """One training back's share of :func:`fit_isl_offset`: its lines at K keypoints and its surface features.

    Attributes:
        esl, isl: (K, 3) mm true lines, top -> bottom at equal arc length.
        asymmetry: (K,) mm :func:`surface_asymmetry` of the back beside ``esl``.
        width_mm: the trunk's width (:func:`trunk_width_mm`).
    """

    esl: np.ndarray
    isl: np.ndarray
    asymmetry: np.ndarray
    width_mm: float


def offset_example(esl: np.ndarray, isl: np.ndarray, points: np.ndarray, width_mm: float, num_keypoints: int = 64) -> OffsetExample:
    """:class:`OffsetExample` of one back: ``esl`` (L, 3) and ``isl`` (M, 3) mm in either direction, the scan
    ``points`` (N, 3) mm, the trunk width (mm). The surface is read once here, so a back can join many fits."""
    e = resample_polyline(orient_top_down(np.asarray(esl, np.float64)), num_keypoints).astype(np.float64)
    i = resample_polyline(orient_top_down(np.asarray(isl, np.float64)), num_keypoints).astype(np.float64)
    return OffsetExample(esl=e, isl=i, asymmetry=surface_asymmetry(points, e), width_mm=float(width_mm))


def fit_isl_offset_examples(examples: list[OffsetExample], weights: np.ndarray | list[float] | None = None) -> IslOffsetModel:
    """Fit :class:`IslOffsetModel` on prepared backs (:func:`offset_example`), optionally weighted.

    ``weights`` (n,) >= 0, one per back (None: all equal): the mean offset is their weighted mean, the depth
    regression and the lateral gain weighted least squares, so a back of weight 2 counts as two copies of it.

    Raises:
        ValueError: fewer than 2 backs, examples of different K, or weights of the wrong length, negative,
            or with fewer than 2 positive.
    """
    n = len(examples)
    if n < 2:
        raise ValueError(f"fit_isl_offset: expected >= 2 subjects, got {n}")
    if len({len(x.esl) for x in examples} | {len(x.isl) for x in examples}) != 1:
        raise ValueError("fit_isl_offset: every example must have the same number of keypoints")
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (n,) or (w < 0).any() or (w > 0).sum() < 2:
        raise ValueError(f"fit_isl_offset: expected {n} weights >= 0, at least 2 of them positive, got {w.shape} {w[:5]}")
    w = w / w.sum()
    e = np.stack([x.esl for x in examples])
    i = np.stack([x.isl for x in examples])
    offset = np.tensordot(w, i - e, axes=1)
    depth = (i[:, :, 2] - e[:, :, 2]).mean(axis=1)  # (n,) mean depth offset per subject
    widths = np.array([x.width_mm for x in examples], dtype=np.float64)
    depth_mean = float(w @ depth)
    if w @ (widths - w @ widths) ** 2 > 0:
        design = np.stack([np.ones(n), widths], axis=1) * np.sqrt(w)[:, None]
        intercept, slope = np.linalg.lstsq(design, depth * np.sqrt(w), rcond=None)[0]
    else:
        intercept, slope = depth_mean, 0.0
    asym = np.stack([x.asymmetry for x in examples])  # (n, K)
    feature = asym - asym.mean(axis=1, keepdims=True)
    target = i[:, :, 0] - e[:, :, 0] - offset[:, 0]
    ff = float(w @ (feature * feature).sum(axis=1))
    gain = float(w @ (feature * target).sum(axis=1)) / ff if ff > 0 else 0.0
    return IslOffsetModel(offset=offset, depth_coef=(float(intercept), float(slope)), depth_mean=depth_mean, lateral_gain=gain)


def fit_isl_offset(
    esls: list[np.ndarray],
    isls: list[np.ndarray],
    points: list[np.ndarray],
    widths_mm: list[float],
    num_keypoints: int = 64,
    weights: np.ndarray | list[float] | None = None,
) -> IslOffsetModel:
    """Fit :class:`IslOffsetModel` on training subjects (least squares, 3 numbers beyond the mean offset).

    Args:
        esls, isls: per subject the true ESL and ISL, (L_i, 3) and (M_i, 3) mm, either direction.
        points: per subject the scan (N_i, 3) mm.
        widths_mm: per subject the trunk width (mm, :func:`trunk_width_mm`).
        num_keypoints: K, keypoints of the lines and of the model.
        weights: optional (n,) weight of each subject (:func:`fit_isl_offset_examples`).

    Raises:
        ValueError: fewer than 2 subjects or lists of different lengths.
    """
    n = len(esls)
    if n < 2 or not len(isls) == len(points) == len(widths_mm) == n:
        raise ValueError(
            f"fit_isl_offset: expected >= 2 subjects and as many ESLs, ISLs, scans and widths, got "
            f"{len(esls)}, {len(isls)}, {len(points)}, {len(widths_mm)}"
        )
    examples = [offset_example(e, i, p, w, num_keypoints) for e, i, p, w in zip(esls, isls, points, widths_mm)]
    return fit_isl_offset_examples(examples, weights)
