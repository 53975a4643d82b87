"""The ``spine_estimator`` metric: an independent spinal-line estimator judges generated backs.

An estimator reads each generated back and gives its spinal line; the metric is the error of that line
against the line the back was *conditioned on* (mm, degrees; :func:`pcdiff.estimator.metrics.line_errors`).
Run the same estimator on real (or phantom) scans against their own true lines: that error is the floor
a perfect generator would reach, and the generated value should be read against it, not against 0.
Two estimators (``--estimator``):

``network`` (default): a trained :class:`pcdiff.estimator.module.SpineEstimator` (``--estimator-checkpoint``)::

    python -m pcdiff.eval --metric spine_estimator --generated outputs/generated \
        --estimator-checkpoint outputs/estimator/last.ckpt [--reference data/test]

It predicts the line it was trained on (``esl``, or ``isl``), so each scan must carry that line (and an
``esl`` for the input frame). ``configs/estimator_phantom_judge.yaml`` trains the judge of phantom-conditioned
backs: on the shipped generator's 1000 training phantoms (seed 1), 2048 points, ESL frame (~36 min on a 2-core
CPU). Its floor on 32 held-out phantoms of seed 2 at 2048 points: ESL lateral RMS 2.9 mm, Cobb error 5.0 deg mean
(4.2 median; ``benchmarks/results/judge_backs.md``); it reads the spine partly from the rib hump, as surface
methods do; Gaussian noise of 5 mm (mostly in depth) on the true backs moves its Cobb reading by 2 deg on average
(``--noise-mm`` control rows of ``benchmarks.judge_backs``). Frames: the estimator records the frame it was trained in (``input_frame``).
An ``"esl"``-frame estimator (inputs normalised by the ESL's own ends) judges ESL-conditioned backs, a ``"none"``-frame
one reads millimetres, and a ``"landmarks"``-frame one (C7-DM, the frame a new patient's scan gives) reads scans that
carry C7 and DM: real scans, phantoms, and backs generated for phantom parameters or a subject's file (``pcdiff.generate``
writes the spine's landmarks); a scan without them is refused by name (:func:`scan_landmarks`). So an estimator trained
on generated backs can be scored on held-out true scans (train on synthetic, test on real).

``--cobb-calibration DIR`` (network ESL judge): true backs of other subjects (e.g. phantoms of a seed neither the
judge nor the generator saw; never generated backs) on which the judge's Cobb reading is calibrated
(:mod:`pcdiff.estimator.judge_calibration`, :func:`judge_cobb_calibration`): a keypoint-regression judge reads large
curves flatter than they are, and the least-squares line of the true Cobb angle on the read one takes that bias out
of the floor and of the judged backs alike. Adds ``cobb_calibrated_deg`` / ``cobb_calibrated_abs_err_deg`` per scan
and a calibrated Cobb MAE per set. The shipped judge calibrated on 400 phantoms of seeds 4 and 6: floor 4.9 deg,
the shipped generator's backs 5.2 deg (uncalibrated 5.2 and 6.8; ``benchmarks/results/judge_backs_calibrated400.md``);
the better judge ``pretrained/phantom-esl-judge-v2`` calibrated the same way: floor 4.8 deg, the backs 4.3 deg
(uncalibrated 5.0 and 5.7; ``judge_backs_judge_v2.md``)::

    python -m pcdiff.eval --metric spine_estimator --generated outputs/generated --reference data/test \
        --estimator-checkpoint pretrained/phantom-esl-judge-v2 --cobb-calibration outputs/phantom_s4s6_400

``geometric``: no network, nothing trained on any back. :func:`pcdiff.estimator.geometric.geometric_esl`
with ``method="path"`` (the spinal furrow traced as one path, :mod:`pcdiff.estimator.furrow`) reads the
ESL off each back::

    python -m pcdiff.eval --metric spine_estimator --estimator geometric --generated outputs/generated \
        [--reference data/test] [--isl-fit data/train]

Per back and as means: ESL lateral RMS (x at equal heights), ESL 3D point-to-curve mean / RMS / max, and the
difference of the coronal Cobb angles (:func:`pcdiff.geometry.cobb.cobb_angle`) of the read and the
conditioning ESL. Each scan must carry the ESL it was generated from (an ISL-conditioned back cannot be
judged this way). **Heights**: the reader needs the top and bottom height of the line (on real scans C7 and
the lowest lumbar landmark); generated backs carry no trustworthy landmarks, so the judge takes the heights
of the conditioning ESL's own two ends (:func:`line_end_heights`), and reads the ``--reference`` scans by the
same rule (their own ESL's ends, not their landmarks), so the floor and the judged value are read alike.
A back the reader cannot read (no furrow in half of its bands, no points between the heights) is listed
with its ``error`` in ``per_sample`` and counted in ``backs not read``; the means are over the others.

ISL: only with ``--isl-fit DIR``, real subjects with both lines, e.g. the training folds: an
:class:`pcdiff.estimator.isl_offset.IslOffsetModel` (mean ISL - ESL offset + trunk-width depth regression +
rib-hump lateral gain) is fitted on them (by the same line-end rule) and predicts each judged scan's ISL
from its read ESL, compared with the scan's own ISL where it carries one (reference scans; generated
backs carry only their conditioning line). It is never fitted on generated backs (scans whose JSON holds a
``generated`` record are refused) nor on a ``--reference`` subject (the floor would be in-sample). Without
``--isl-fit`` the output says that only the ESL and its Cobb angle are judged.

Measured floor, true phantom backs 0-5 at 4096 points (their own ESL, ``--estimator geometric``): ESL lateral
RMS 7.2 mm, 3D RMS 7.6 mm, Cobb difference 15.6 deg (the read line bends more than the phantom's: its
Cobb angle was the larger on all six); on the 20 real PCdare backs ESL lateral 6.0 mm and 3D 6.1 mm
with the same line-end rule (Cobb difference 4.9 deg; 5.8 / 6.0 mm with landmark heights,
``benchmarks/results/spine_baselines.md``). The reader needs dense backs: the same six phantoms read 12.7 mm
lateral / 13.1 mm 3D / 23.7 deg at 2048 points and 6.7 / 7.2 mm / 9.4 deg at 16384, so read the floor at the
generated backs' point count (the reference scans are read in full: subsample them to that count first).

This module registers the metric with :mod:`pcdiff.metrics.registry`, which lists it in its
``PLUGIN_MODULES``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from pcdiff.data.sample import BackScan
from pcdiff.estimator.checkpoints import DEFAULT_NUM_POINTS, load_estimator
from pcdiff.estimator.geometric import geometric_esl
from pcdiff.estimator.isl_offset import IslOffsetModel, fit_isl_offset, trunk_width_mm
from pcdiff.estimator.judge_calibration import CobbCalibration, calibrated_rows, fit_cobb_calibration
from pcdiff.estimator.metrics import line_errors, pearson, summarize
from pcdiff.estimator.module import SpineEstimator
from pcdiff.geometry.frames import frame_of, to_mm, to_normalised
from pcdiff.geometry.polyline import orient_top_down, resample_polyline
from pcdiff.metrics.registry import EvalInputs, EvalOutput, Option, register_metric

#: The estimators ``--estimator`` chooses from (see the module docstring).
ESTIMATOR_KINDS = ("network", "geometric")
#: Keypoints of the geometric reader's line (and of the fitted ISL offset).
GEOMETRIC_KEYPOINTS = 64


@torch.no_grad()
def estimate_lines(
    estimator: SpineEstimator,
    backs: np.ndarray | torch.Tensor | list[np.ndarray],
    frame_lines: np.ndarray | torch.Tensor | list[np.ndarray] | None,
    num_points: int | None = None,
    seed: int = 0,
    landmarks: list[np.ndarray] | None = None,
) -> np.ndarray:
    """Predict spinal lines (mm) for backs (mm).

    Args:
        estimator: a trained ``SpineEstimator``.
        backs: (B, N, 3) or a list of (N_i, 3) back surfaces in mm.
        frame_lines: the ESL of each back, (B, L, 3) or a list, mm: defines the input frame of an
            ``"esl"``-frame estimator (its two ends); ignored (may be None) for ``"none"``.
        num_points: points given to the estimator (random subset; all when a back has fewer).
        seed: seed of the subset.
        landmarks: for a ``"landmarks"``-frame estimator (real scans with C7, DL, DR, DM), one (4, 3) array in mm
            per back, in that order.

    Returns:
        (B, K, 3) predicted keypoints in mm, top -> bottom.
    """
    frame = estimator.hparams.input_frame
    if frame not in ("esl", "none") and not (frame == "landmarks" and landmarks is not None):
        raise ValueError(
            f"spine_estimator: the estimator reads scans in the {frame!r} frame, which generated backs cannot "
            "provide (no landmarks); train it with data.normalize=line and data.line=esl (configs/estimator.yaml)"
        )
    backs = [np.asarray(b.detach().cpu() if isinstance(b, torch.Tensor) else b, dtype=np.float32) for b in backs]
    if frame == "esl":
        if frame_lines is None or len(frame_lines) != len(backs):
            raise ValueError("spine_estimator: an 'esl'-frame estimator needs the ESL of every back (frame_lines)")
        frames = [frame_of("line", line=orient_top_down(np.asarray(line, dtype=np.float32))) for line in frame_lines]
    elif frame == "landmarks":
        if len(landmarks) != len(backs):
            raise ValueError(f"spine_estimator: {len(landmarks)} landmark sets for {len(backs)} backs")
        frames = [frame_of("landmarks", landmarks=np.asarray(lm, dtype=np.float64)) for lm in landmarks]
    else:
        frames = [frame_of("none")] * len(backs)
    n = num_points or getattr(estimator, "num_points", DEFAULT_NUM_POINTS)
    rng = np.random.default_rng(seed)
    preds = []
    for back, (center, scale) in zip(backs, frames):
        if back.ndim != 2 or back.shape[1] != 3:
            raise ValueError(f"spine_estimator: expected backs of shape (N, 3) in mm, got {back.shape}")
        pts = back[rng.choice(len(back), n, replace=False)] if len(back) > n else back
        x = torch.from_numpy(to_normalised(pts, center, scale))[None].to(estimator.device)  # (1, n, 3)
        preds.append(to_mm(estimator(x)[0].cpu(), center, scale).numpy())  # (K, 3) mm
    return np.stack(preds)


def spine_estimator_metric(
    estimator: SpineEstimator,
    backs: np.ndarray | torch.Tensor | list[np.ndarray],
    spines: np.ndarray | torch.Tensor | list[np.ndarray],
    esl: np.ndarray | torch.Tensor | list[np.ndarray] | None = None,
    num_points: int | None = None,
    names: list[str] | None = None,
    landmarks: list[np.ndarray] | None = None,
) -> dict[str, Any]:
    """Error of the estimator's line on each back against the line the back should have.

    Args:
        estimator: a trained ``SpineEstimator`` predicting ``estimator.hparams.line``.
        backs: (B, N, 3) (or a list) generated (or real) backs in mm.
        spines: (B, L, 3) (or a list) the line each back was conditioned on (or its true line), mm,
            the same kind of line (ESL/ISL) the estimator predicts.
        esl: each back's ESL in mm for the input frame; defaults to ``spines`` (ESL conditioning).
        num_points: points given to the estimator.
        names: each back's subject name (default ``"0"``, ``"1"``, ...), for ``per_subject``.
        landmarks: for a ``"landmarks"``-frame estimator, each back's (4, 3) C7, DL, DR, DM in mm (:func:`scan_landmarks`).

    Returns:
        ``summarize`` of :func:`pcdiff.estimator.metrics.line_errors` (mean/RMS/max mm, lateral RMS mm,
        Cobb MAE and r), plus ``line``, ``n`` and ``per_subject``: one dict per back, ``{"name": ...,
        **line_errors row}``, in the order given.
    """
    spines_list = [np.asarray(s.detach().cpu() if isinstance(s, torch.Tensor) else s, dtype=np.float32) for s in spines]
    pred = estimate_lines(estimator, backs, esl if esl is not None else spines_list, num_points, landmarks=landmarks)
    k = pred.shape[1]
    true = np.stack([resample_polyline(orient_top_down(s), k) for s in spines_list])
    rows = line_errors(pred, true)
    out: dict[str, Any] = summarize(rows)
    out["line"] = estimator.hparams.line
    names = [str(i) for i in range(len(rows))] if names is None else list(names)
    if len(names) != len(rows):
        raise ValueError(f"spine_estimator: {len(names)} names for {len(rows)} backs")
    out["per_subject"] = [{"name": name, **row} for name, row in zip(names, rows)]
    return out


_KEYS = (("mean_mm", "mean [mm]"), ("rms_mm", "RMS [mm]"), ("max_max_mm", "max [mm]"),
         ("lateral_rms_mm", "lateral RMS [mm]"), ("cobb_mae_deg", "Cobb MAE [deg]"), ("cobb_r", "Cobb r"))


def _lines(scans: list[BackScan], line: str, option: str) -> tuple[list[Any], list[Any]]:
    """(target lines, ESLs) of ``scans``; raises naming the first scan without them."""
    for scan in scans:
        if getattr(scan, line) is None or scan.esl is None:
            need = "an ESL" if line == "esl" else "an ISL and an ESL"
            raise ValueError(
                f"--metric spine_estimator: {option} scan {scan.name!r} has no {line.upper()}; the estimator predicts "
                f"the {line.upper()} and needs {need} per scan (the requested line of a generated scan)"
            )
    return [getattr(s, line) for s in scans], [s.esl for s in scans]


def scan_landmarks(scans: list[BackScan], option: str) -> list[np.ndarray]:
    """Each scan's (4, 3) C7, DL, DR, DM in mm, for a landmark-frame estimator (DL / DR NaN where a scan lacks them:
    the frame uses C7 and DM only); raises naming the first scan without C7 or DM."""
    out = []
    for scan in scans:
        missing = [k for k in ("C7", "DM") if k not in scan.landmarks]
        if missing:
            raise ValueError(
                f"{option} scan {scan.name!r} has no {' and '.join(missing)} landmark; this "
                "estimator reads scans in the landmark frame (C7-DM). Use scans with landmarks (real scans, phantoms, backs "
                "generated for a subject file or phantom parameters) or an ESL-frame estimator (configs/estimator.yaml)"
            )
        out.append(np.stack([np.asarray(scan.landmarks.get(k, np.full(3, np.nan)), np.float64) for k in ("C7", "DL", "DR", "DM")]))
    return out


# ----------------------------------------------------------------------------------------------------
# The geometric judge (no network)
# ----------------------------------------------------------------------------------------------------


def _np(line: Any) -> np.ndarray:
    return np.asarray(line.detach().cpu() if isinstance(line, torch.Tensor) else line, dtype=np.float64)


def line_end_heights(esl: np.ndarray) -> tuple[float, float]:
    """(top, bottom) heights y (mm) of an ESL (L, 3) mm, either direction: the heights of its two ends,
    which the geometric judge reads the back between (generated backs carry no landmarks).

    Raises:
        ValueError: a line that is not (L >= 2, 3) or whose ends are at the same height."""
    line = _np(esl)
    if line.ndim != 2 or line.shape[1] != 3 or len(line) < 2 or not np.isfinite(line).all():
        raise ValueError(f"expected a finite ESL of shape (L >= 2, 3) in mm, got {line.shape}")
    line = orient_top_down(line)
    top, bottom = float(line[0, 1]), float(line[-1, 1])
    if top - bottom < 1.0:
        raise ValueError(f"the ESL's ends lie at the same height (y = {top:.1f} and {bottom:.1f} mm)")
    return top, bottom


def read_esl(points: np.ndarray | torch.Tensor, esl: np.ndarray | torch.Tensor, name: str = "scan") -> np.ndarray:
    """The ESL (64, 3) mm, top -> bottom, that :func:`~pcdiff.estimator.geometric.geometric_esl` (``method="path"``)
    reads off the back ``points`` (N, 3) mm between the heights of the ends of ``esl`` (L, 3) mm."""
    scan = BackScan(name=name, points=_np(points).astype(np.float32))
    return geometric_esl(scan, method="path", num_heights=GEOMETRIC_KEYPOINTS, heights=line_end_heights(esl))


def fit_isl_judge(scans: list[BackScan]) -> IslOffsetModel:
    """An :class:`~pcdiff.estimator.isl_offset.IslOffsetModel` fitted on real subjects with both lines (their
    true ESL; trunk width between the ESL's ends). Refuses generated backs (a ``generated`` record in their
    meta, as :mod:`pcdiff.generate` writes) and scans without an ESL and an ISL."""
    for scan in scans:
        if "generated" in scan.meta:
            raise ValueError(f"--isl-fit: scan {scan.name!r} is a generated back; fit the ISL offset on real subjects only")
        if scan.esl is None or scan.isl is None:
            raise ValueError(f"--isl-fit: scan {scan.name!r} has no {'ESL' if scan.esl is None else 'ISL'}; the fit needs both lines")
    if len(scans) < 2:
        raise ValueError(f"--isl-fit: needs at least 2 subjects with an ESL and an ISL, got {len(scans)}")
    widths = [trunk_width_mm(s.points, *line_end_heights(s.esl)) for s in scans]
    return fit_isl_offset([s.esl for s in scans], [s.isl for s in scans], [s.points for s in scans], widths,
                          num_keypoints=GEOMETRIC_KEYPOINTS)  # fmt: skip


def refuse_shared_subjects(calibration_scans: list[BackScan], judged_names: set[str] | list[str], option: str) -> None:
    """Raise ValueError, naming ``option`` and up to 10 shared subjects, when a calibration set shares a subject with
    the scans the judge scores (it must be independent of them)."""
    shared = sorted({s.name for s in calibration_scans} & set(judged_names))
    if shared:
        raise ValueError(f"{option} shares subjects {shared[:10]} with the judged scans (the scored spines); calibrate on others")


def judge_cobb_calibration(estimator: SpineEstimator, scans: list[BackScan], option: str = "--cobb-calibration") -> CobbCalibration:
    """The network judge's Cobb calibration (:mod:`pcdiff.estimator.judge_calibration`) fitted on true backs: the
    ESL ``estimator`` reads each of ``scans`` against its own ESL, and the true ESL Cobb angle is regressed on the read
    one. Refuses generated backs (a ``generated`` record in their meta) and scans without an ESL; ``option`` names the
    command-line option in errors."""
    for scan in scans:
        if "generated" in scan.meta:
            raise ValueError(f"{option}: scan {scan.name!r} is a generated back; calibrate the judge on true backs only")
        if scan.esl is None:
            raise ValueError(f"{option}: scan {scan.name!r} has no ESL to calibrate the judge's Cobb reading against")
    if estimator.hparams.line != "esl":
        raise ValueError(f"{option}: the estimator predicts the {estimator.hparams.line.upper()}; the calibration is of an ESL judge")
    reads = spine_estimator_metric(estimator, [s.points for s in scans], [s.esl for s in scans],
                                   names=[s.name for s in scans])["per_subject"]  # fmt: skip
    return fit_cobb_calibration([r["cobb_pred_deg"] for r in reads], [r["cobb_true_deg"] for r in reads])


def geometric_spine_metric(
    backs: list[np.ndarray] | np.ndarray | torch.Tensor,
    esls: list[np.ndarray] | np.ndarray | torch.Tensor,
    names: list[str] | None = None,
    isls: list[np.ndarray | None] | None = None,
    isl_model: IslOffsetModel | None = None,
) -> dict[str, Any]:
    """Error of the ESL read off each back (:func:`read_esl`) against the ESL it should have.

    Args:
        backs: (B, N, 3) or a list of (N_i, 3) backs in mm (generated, or real / phantom for the floor).
        esls: (B, L, 3) or a list: the ESL each back was conditioned on (or its true ESL), mm; its ends
            also give the heights the back is read between.
        names: each back's subject name (default ``"0"``, ``"1"``, ...).
        isls: each back's ISL (or None where it has none), compared with ``isl_model``'s ISL estimate.
        isl_model: a fitted ISL offset (:func:`fit_isl_judge`, on other, real subjects); None: no ISL.

    Returns:
        ``summarize`` of the read backs' :func:`~pcdiff.estimator.metrics.line_errors` rows (``lateral_rms_mm``,
        ``rms_mm``, ``mean_mm``, ``max_mm``, ``cobb_abs_err_deg`` = the ESL Cobb difference, ...), plus
        ``n_failed`` (backs that could not be read), ``isl_*`` means and ``isl_n`` with an ISL model, and
        ``per_subject``: one dict per back in the order given, ``{"name", **errors}`` or ``{"name", "error"}``.

    Raises:
        ValueError: counts differ, or no back could be read.
    """
    names = [str(i) for i in range(len(backs))] if names is None else [str(n) for n in names]
    isls = [None] * len(backs) if isls is None else list(isls)
    if not len(backs) == len(esls) == len(names) == len(isls):
        raise ValueError(f"spine_estimator: {len(backs)} backs, {len(esls)} ESLs, {len(names)} names, {len(isls)} ISLs")
    rows: list[dict[str, Any]] = []
    for back, esl, name, isl in zip(backs, esls, names, isls):
        true = orient_top_down(_np(esl))
        try:
            read = read_esl(back, true, name)
        except ValueError as exc:
            rows.append({"name": name, "error": str(exc)})
            continue
        row: dict[str, Any] = {"name": name, **line_errors(read, true)[0]}
        if isl_model is not None and isl is not None:
            pts = _np(back)
            pred = isl_model.predict(read, pts, trunk_width_mm(pts, *line_end_heights(true)))
            isl_row = line_errors(pred, orient_top_down(_np(isl)))[0]
            row.update({f"isl_{k}": v for k, v in isl_row.items()})
        rows.append(row)
    ok = [r for r in rows if "error" not in r]
    if not ok:
        raise ValueError(f"spine_estimator: the geometric reader could read none of the {len(rows)} backs; first: {rows[0]['error']}")
    esl_keys = [k for k in ok[0] if k != "name" and not k.startswith("isl_")]
    out: dict[str, Any] = summarize([{k: r[k] for k in esl_keys} for r in ok])
    out["n_failed"] = len(rows) - len(ok)
    with_isl = [r for r in ok if "isl_rms_mm" in r]
    out["isl_n"] = len(with_isl)
    if with_isl:
        for key in ("mean_mm", "rms_mm", "lateral_rms_mm", "cobb_abs_err_deg"):
            out[f"isl_{key}"] = float(np.mean([r[f"isl_{key}"] for r in with_isl]))
        out["isl_cobb_r"] = pearson([r["isl_cobb_pred_deg"] for r in with_isl], [r["isl_cobb_true_deg"] for r in with_isl])
    out["line"] = "esl"
    out["per_subject"] = rows
    return out


_GEOMETRIC_KEYS = (("lateral_rms_mm", "ESL lateral RMS [mm]"), ("rms_mm", "ESL 3D RMS [mm]"), ("mean_mm", "ESL 3D mean [mm]"),
                   ("max_max_mm", "ESL 3D max [mm]"), ("cobb_mae_deg", "ESL Cobb |difference| [deg]"),
                   ("cobb_r", "ESL Cobb r"), ("n", "backs read"), ("n_failed", "backs not read"))  # fmt: skip
_ISL_KEYS = (("isl_rms_mm", "ISL 3D RMS [mm]"), ("isl_mean_mm", "ISL 3D mean [mm]"), ("isl_lateral_rms_mm", "ISL lateral RMS [mm]"),
             ("isl_cobb_abs_err_deg", "ISL Cobb |difference| [deg]"), ("isl_cobb_r", "ISL Cobb r"), ("isl_n", "backs with an ISL"))  # fmt: skip


def _esl_of(scans: list[BackScan], option: str) -> list[np.ndarray]:
    for scan in scans:
        if scan.esl is None:
            other = " (it carries an ISL: an ISL-conditioned back cannot be judged by the ESL reader)" if scan.isl is not None else ""
            raise ValueError(
                f"--estimator geometric: {option} scan {scan.name!r} has no ESL{other}; the judge compares the ESL read off "
                "each back with the ESL the back was conditioned on (store it in the scan's JSON or an 'esl' array)"
            )
    return [s.esl for s in scans]


def _geometric(inputs: EvalInputs, isl_fit: str | None) -> EvalOutput:
    """The ``spine_estimator`` metric with ``--estimator geometric`` (see the module docstring)."""
    model, notes = None, []
    if isl_fit:
        from pcdiff.eval import load_scans  # here: pcdiff.eval imports this module's registry

        fit_scans = load_scans(isl_fit, "--isl-fit")[0]
        shared = sorted({s.name for s in fit_scans} & {s.name for s in inputs.reference or []})
        if shared:
            raise ValueError(f"--isl-fit and --reference share subjects {shared[:10]}: the floor would be read on subjects the ISL offset was fitted on")
        model = fit_isl_judge(fit_scans)
        notes.append(f"ISL: fitted offset (pcdiff.estimator.isl_offset) on {len(fit_scans)} subjects of {isl_fit}; judged on scans that carry an ISL")
    else:
        notes.append("ESL and ESL Cobb only: no ISL judged (give --isl-fit DIR, real subjects with ESL and ISL, to add it)")
    notes.append("geometric judge: ESL read by geometric_esl(method='path') between the heights of each scan's own ESL ends")
    summary: dict[str, float] = {}
    per_sample: dict[str, list[dict[str, Any]]] = {}
    sets = [("generated", inputs.generated)] + ([("reference", inputs.reference)] if inputs.reference else [])
    for label, scans in sets:
        esls = _esl_of(scans, f"--{label}")
        res = geometric_spine_metric([s.points for s in scans], esls, names=[s.name for s in scans],
                                     isls=[s.isl for s in scans], isl_model=model)  # fmt: skip
        tag = f"geometric judge, {label}" + (" (floor)" if label == "reference" else "")
        keys = _GEOMETRIC_KEYS + (_ISL_KEYS if res["isl_n"] else ())
        summary.update({f"{tag} {name}": float(res[key]) for key, name in keys})
        per_sample[label] = res["per_subject"]
        if res["n_failed"]:
            notes.append(f"{label}: {res['n_failed']} of {len(scans)} backs could not be read (per_sample 'error'); means over the rest")
        if model is not None and not res["isl_n"]:
            notes.append(f"{label}: no scan carries an ISL, so no ISL row")
    return EvalOutput(summary, per_sample, notes)


@register_metric(
    "spine_estimator",
    "error of a spinal-line estimator's line read off each scan against the line it was conditioned on",
    options=(
        Option("--estimator", str, "network", "a trained network (--estimator-checkpoint) or the "
               "network-free geometric reader (furrow path)", ESTIMATOR_KINDS),
        Option("--estimator-checkpoint", str, None, "SpineEstimator checkpoint (.ckpt), e.g. outputs/estimator/last.ckpt"),
        Option("--isl-fit", str, None, "--estimator geometric: real subjects (folder/array with ESL and ISL) to fit the ISL offset on"),
        Option("--cobb-calibration", str, None, "--estimator network (ESL): true backs of other subjects (folder; e.g. "
               "phantoms of another seed) to calibrate the judge's Cobb reading on; adds calibrated Cobb rows"),
    ),
    needs_reference=False,
    uses_points=False,  # reads each full scan (the estimator draws its own subset)
)
def spine_estimator(
    inputs: EvalInputs, estimator_checkpoint: str | None, estimator: str = "network", isl_fit: str | None = None,
    cobb_calibration: str | None = None,
) -> EvalOutput:
    """``spine_estimator`` on the generated scans, and on the reference scans (the floor) when given.

    ``per_sample`` holds, under ``"generated"`` (and ``"reference"``), one row per scan with its subject
    ``name`` and its errors (mm, degrees; see :func:`pcdiff.estimator.metrics.line_errors`). With
    ``cobb_calibration`` (a folder of true backs sharing no subject with the judged scans) each row also gets
    ``cobb_calibrated_deg`` and ``cobb_calibrated_abs_err_deg`` (:func:`judge_cobb_calibration`), and the summary a
    calibrated Cobb MAE."""
    if estimator not in ESTIMATOR_KINDS:
        raise ValueError(f"--estimator: unknown estimator {estimator!r}; choose from {list(ESTIMATOR_KINDS)}")
    if estimator == "geometric":
        if estimator_checkpoint:
            raise ValueError("--estimator geometric reads the line off the surface without a network; drop --estimator-checkpoint "
                             "(or use --estimator network to judge with the checkpoint)")
        if cobb_calibration:
            raise ValueError("--cobb-calibration calibrates a network judge's Cobb reading; drop it with --estimator geometric")
        return _geometric(inputs, isl_fit)
    if isl_fit:
        raise ValueError("--isl-fit belongs to --estimator geometric; a network estimator predicts the line it was trained on")
    if not estimator_checkpoint:
        raise ValueError("--metric spine_estimator needs --estimator-checkpoint (train one: python -m pcdiff.estimator.train "
                         "configs/estimator.yaml), or --estimator geometric for the network-free judge")
    model = load_estimator(estimator_checkpoint, map_location=str(inputs.device))
    line = model.hparams.line
    summary: dict[str, float] = {}
    per_sample: dict[str, list[dict[str, Any]]] = {}
    sets = [("generated", inputs.generated)] + ([("reference", inputs.reference)] if inputs.reference else [])
    calibration, notes = None, []
    if cobb_calibration:
        from pcdiff.eval import load_scans  # here: pcdiff.eval imports this module's registry

        fit_scans = load_scans(cobb_calibration, "--cobb-calibration")[0]
        refuse_shared_subjects(fit_scans, {s.name for _, scans in sets for s in scans}, "--cobb-calibration")
        calibration = judge_cobb_calibration(model, fit_scans)
        notes.append(f"Cobb calibrated on {calibration.n} true backs of {cobb_calibration}: true = "
                     f"{calibration.intercept_deg:.2f} + {calibration.slope:.3f} x read (deg)")
    for label, scans in sets:
        targets, esl = _lines(scans, line, f"--{label}")
        landmarks = scan_landmarks(scans, f"--{label}") if model.hparams.input_frame == "landmarks" else None
        res = spine_estimator_metric(model, [s.points for s in scans], targets, esl=esl, names=[s.name for s in scans],
                                     landmarks=landmarks)
        tag = f"{line.upper()} estimator, {label}" + (" (floor)" if label == "reference" else "")
        summary.update({f"{tag} {name}": float(res[key]) for key, name in _KEYS})
        per_sample[label] = res["per_subject"]
        if calibration is not None:
            calibrated = calibrated_rows(res["per_subject"], calibration)
            for row, cal in zip(per_sample[label], calibrated):
                row.update(cobb_calibrated_deg=cal["cobb_pred_deg"], cobb_calibrated_abs_err_deg=cal["cobb_abs_err_deg"])
            summary[f"{tag} Cobb MAE, calibrated [deg]"] = float(np.mean([c["cobb_abs_err_deg"] for c in calibrated]))
    return EvalOutput(summary, per_sample, notes)
