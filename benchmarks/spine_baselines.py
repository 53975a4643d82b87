"""Network-free spinal-line baselines on the real PCdare backs (issue #13): the rows every estimator must beat.

Rows (5 subject-wise folds wherever a training mean is needed; the same fold split as
``benchmarks/augmentation.py --folds 5``, permutation seed 0):

- ``mean line``: the mean training ESL / ISL in the landmark frame (C7-DM; :func:`pcdiff.geometry.frames.landmark_frame`),
  mapped back with the test subject's own landmarks.
- ``geometric ESL``: :func:`pcdiff.estimator.geometric.geometric_esl`, the symmetry / furrow line read off
  the surface between the landmarks' heights (no training at all, no fold needed).
- ``geometric ESL + mean offset``: that ESL plus the training subjects' mean ISL - ESL offset, as an ISL.
- ``oracle``: the *true* ESL plus the mean ISL - ESL offset (ESL errors are 0 by construction).
- ``true ISL`` (reference): the radiographic ISL itself, for its Cobb angle only.
- ``furrow-path ESL (defaults)``: :func:`~pcdiff.estimator.geometric.geometric_esl` with ``method="path"``, the spinal
  furrow traced as one continuous path (:mod:`pcdiff.estimator.furrow`), default settings. Those defaults
  were chosen while looking at these 20 subjects (and 8 phantoms), so this row is not a held-out figure;
- ``furrow-path ESL, settings chosen in-fold``: the held-out figure: per fold, the setting of
  :data:`FURROW_GRID` (24: 2 cost scales x 3 smoothness x 2 search widths x top re-anchoring on the
  symmetry axis off / on) with the lowest mean ESL
  lateral RMS on the *training* subjects, applied to the test subjects.
- ``furrow-path ESL (in-fold) + mean offset`` / ``+ fitted offset``: that ESL plus the mean offset, or
  plus :class:`~pcdiff.estimator.isl_offset.IslOffsetModel` (mean offset + depth ~ trunk width + lateral
  ~ surface asymmetry, 3 least-squares numbers), fitted on the training subjects' true lines.
- ``oracle (true ESL + fitted offset)``: the true ESL plus that model.
- ``learned furrow ESL``: the furrow traced through a cost learned from depth features
  (:mod:`pcdiff.estimator.learned_furrow`), fitted on phantoms alone or on phantoms and the fold's training subjects,
  every choice in-fold (:mod:`benchmarks.learned_furrow_folds`); ``+ fitted offset``: the ISL built on it.
- ``Cobb only`` rows estimate the angle without a line: the training subjects' mean clinical angle (the trivial
  baseline every Cobb figure must beat), and a straight-line fit of the clinical angle on the swing of the back's
  left-right depth asymmetry along an ESL (:mod:`pcdiff.estimator.cobb_regression`; the surface-topography way of
  reading the curve from the rotation), beside the furrow-path ESL (in-fold) or the true ESL (oracle).

The column "fitted on training subjects" says what each row fits (the mean offset is 64 x 3 averaged numbers).

Measures per subject (mean +- SD over the 20 subjects): ESL lateral RMS and 3D RMS, ISL 3D RMS (mm,
:func:`pcdiff.estimator.metrics.line_errors`, point-to-curve) and ISL lateral RMS (x at equal heights: the
coronal-plane shape, the part of the ISL a frontal radiograph shows; also centred, its mean removed, the convention
of Kaiser et al. 2025, with the median and IQR over subjects as they report it), and the absolute difference between the
coronal-tangent Cobb angle (:func:`pcdiff.geometry.cobb.cobb_angle`) of the row's ISL estimate (its ESL
where it has no ISL) and the clinical primary Cobb angle (``CobbAngles.csv``, column ``primary_cobbangle``).
Time: seconds to estimate one back (training means excluded, they take milliseconds).

    python -m benchmarks.spine_baselines [--data ../shared/data/pcdare] [--folds 5] [--phantoms 150]

~12 min on a 2-core CPU, nearly all of it the learned furrow's phantoms (2 min) and its 11 fits per fold.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np

from pcdiff.data.pcdare import radiograph_shift_mm, read_pcdare
from pcdiff.data.sample import BackScan
from pcdiff.geometry.frames import landmark_frame
from pcdiff.estimator.cobb_regression import asymmetry_swing_mm, fit_asymmetry_cobb
from pcdiff.estimator.fit_furrow import PreparedBack, phantom_backs
from pcdiff.estimator.furrow import FurrowParams
from pcdiff.estimator.geometric import geometric_esl, isl_from_esl, landmark_heights, mean_isl_offset
from pcdiff.estimator.isl_offset import fit_isl_offset, trunk_width_mm
from pcdiff.estimator.metrics import line_errors
from pcdiff.geometry.cobb import cobb_angle

from benchmarks.folds import NUM_KEYPOINTS, fold_split, lateral_errors, resampled, select_setting
from benchmarks.learned_furrow_folds import FITS, TRACERS, LearnedFurrowResult, learned_furrow_folds
from benchmarks.reporting import command_line, finished_run, hardware_info, load_line, markdown_table, publish

ROWS = (
    "mean line",
    "geometric ESL",
    "geometric ESL + mean offset",
    "oracle (true ESL + mean offset)",
    "true ISL (reference)",
    "furrow-path ESL (defaults)",
    "furrow-path ESL, settings chosen in-fold",
    "furrow-path ESL (in-fold) + mean offset",
    "furrow-path ESL (in-fold) + fitted offset",
    "oracle (true ESL + fitted offset)",
    "learned furrow ESL, cost fitted on phantoms",
    "learned furrow ESL, cost fitted on real (in-fold)",
    "learned furrow ESL, cost fitted on phantoms + real (in-fold)",
    "learned furrow ESL (phantoms + real) + fitted offset",
    "furrow-path ESL (in-fold) + fitted offset, ISL moved onto the scan (diagnostic)",
    "oracle (true ESL + fitted offset), ISL moved onto the scan (diagnostic)",
    "Cobb only: training subjects' mean angle",
    "Cobb only: fit on the rotation swing beside the furrow-path ESL (in-fold)",
    "Cobb only: fit on the rotation swing beside the learned furrow ESL (phantoms + real)",
    "Cobb only: fit on the rotation swing beside the true ESL (oracle)",
)
#: Rows of the learned furrow (:mod:`benchmarks.learned_furrow_folds`): its fit -> row, and the ISL row built on it.
LEARNED_ROWS = dict(zip(FITS, ROWS[10:13]))
LEARNED_ISL_ROW = ROWS[13]
#: Rows scored against the ISL moved by the radiograph's registration shift (and fitted on training ISLs moved so):
#: diagnostics that use the radiograph's own skin line, which no estimator has (see ``radiograph_shift_mm``).
MOVED_ISL_ROWS = ROWS[14:16]
#: Rows that estimate the Cobb angle alone (no line): a constant, and :mod:`pcdiff.estimator.cobb_regression`.
COBB_ONLY_ROWS = ROWS[16:]
#: What each row fits on the training subjects.
FITTED = {
    "mean line": "mean ESL and ISL, 64 x 3 each",
    "geometric ESL": "nothing",
    "geometric ESL + mean offset": "mean offset, 64 x 3",
    "oracle (true ESL + mean offset)": "mean offset, 64 x 3",
    "true ISL (reference)": "-",
    "furrow-path ESL (defaults)": "nothing (defaults picked on these data)",
    "furrow-path ESL, settings chosen in-fold": "1 of 24 settings",
    "furrow-path ESL (in-fold) + mean offset": "1 of 24 settings; mean offset, 64 x 3",
    "furrow-path ESL (in-fold) + fitted offset": "1 of 24 settings; mean offset, 64 x 3, + 3",
    "oracle (true ESL + fitted offset)": "mean offset, 64 x 3, + 3",
    LEARNED_ROWS["phantoms"]: "1 of 9 tracer settings (cost: 39 weights, on phantoms only)",
    LEARNED_ROWS["real"]: "39 weights; 1 of 9 tracer settings by inner folds",
    LEARNED_ROWS["phantoms + real"]: "39 weights (with phantoms); 1 of 9 tracer settings by inner folds",
    LEARNED_ISL_ROW: "39 weights, 1 of 9 settings; mean offset, 64 x 3, + 3",
    MOVED_ISL_ROWS[0]: "1 of 24 settings; mean offset, 64 x 3, + 3 (on moved ISLs)",
    MOVED_ISL_ROWS[1]: "mean offset, 64 x 3, + 3 (on moved ISLs)",
    COBB_ONLY_ROWS[0]: "1 number",
    COBB_ONLY_ROWS[1]: "1 of 24 settings; 2 numbers",
    COBB_ONLY_ROWS[2]: "39 weights, 1 of 9 settings; 2 numbers",
    COBB_ONLY_ROWS[3]: "2 numbers",
}
#: Settings of the furrow tracer the in-fold row chooses from; the first is the default (FurrowParams()).
FURROW_GRID: tuple[FurrowParams, ...] = tuple(
    FurrowParams(scales_mm=scales, smoothness=smoothness, half_width_frac=width, top_anchor=anchor)
    for anchor in (0.0, 1.0)
    for scales in ((5.0, 25.0), (12.0,))
    for smoothness in (3.0, 1.0, 10.0)
    for width in (0.2, 0.3)
)


def landmarks_of(scan: BackScan) -> np.ndarray:
    """(4, 3) C7, DL, DR, DM in mm, the order :func:`landmark_frame` expects."""
    return np.stack([scan.landmarks[k] for k in ("C7", "DL", "DR", "DM")]).astype(np.float64)


def mean_line(train: list[BackScan], which: str) -> np.ndarray:
    """Mean training line (K, 3) in the landmark frame (normalised units)."""
    normed = []
    for scan in train:
        center, scale = landmark_frame(landmarks_of(scan))
        normed.append((resampled(scan.line(which)) - center) / scale)
    return np.mean(np.stack(normed), axis=0)


def _timed(fn, *args, **kwargs) -> tuple[Any, float]:
    start = time.perf_counter()
    value = fn(*args, **kwargs)
    return value, time.perf_counter() - start


def furrow_lines(scans: list[BackScan]) -> tuple[dict[str, list[tuple[np.ndarray, float]]], np.ndarray]:
    """Every setting of :data:`FURROW_GRID` on every back (no label used) and the ESL errors for the in-fold choice.

    Returns:
        name -> one (furrow-path ESL (K, 3) mm, seconds) per setting, and (S, C) ESL lateral RMS (mm) of each
        setting on each back (against its true ESL; give :func:`select_setting` the training rows only).
    """
    furrow = {scan.name: [_timed(geometric_esl, scan, method="path", furrow=p) for p in FURROW_GRID] for scan in scans}
    errors = np.stack([lateral_errors(furrow[scan.name], scan.esl) for scan in scans])  # (S, C)
    return furrow, errors


def trunk_widths(scans: list[BackScan]) -> dict[str, float]:
    """name -> trunk width (mm, :func:`~pcdiff.estimator.isl_offset.trunk_width_mm`) between the landmarks' heights."""
    return {scan.name: trunk_width_mm(scan.points, *landmark_heights(scan)) for scan in scans}


def evaluate(scans: list[BackScan], folds: int, phantoms: list[PreparedBack]) -> tuple[list[dict[str, Any]], LearnedFurrowResult]:
    """One dict per (row, subject): errors in mm / degrees and seconds per back; and the learned furrow's lines and
    in-fold choices (:func:`benchmarks.learned_furrow_folds.learned_furrow_folds`, its cost fitted with ``phantoms``)."""
    fold_of = fold_split(len(scans), folds)
    learned = learned_furrow_folds(scans, fold_of, phantoms)
    geometric = {scan.name: _timed(geometric_esl, scan) for scan in scans}
    furrow, furrow_err = furrow_lines(scans)
    widths = trunk_widths(scans)
    moved_isl = {s.name: s.isl.astype(np.float64) - radiograph_shift_mm(s) for s in scans}
    out = []
    for f in range(folds):
        train = [s for s, g in zip(scans, fold_of) if g != f]
        test = [s for s, g in zip(scans, fold_of) if g == f]
        mean_esl, mean_isl = mean_line(train, "esl"), mean_line(train, "isl")
        offset = mean_isl_offset([s.esl for s in train], [s.isl for s in train], NUM_KEYPOINTS)
        choice = select_setting(furrow_err, fold_of != f)
        model, moved_model = (fit_isl_offset([s.esl for s in train], [isl(s) for s in train], [s.points for s in train],
                                             [widths[s.name] for s in train], NUM_KEYPOINTS)
                              for isl in (lambda s: s.isl, lambda s: moved_isl[s.name]))
        for scan in test:
            center, scale = landmark_frame(landmarks_of(scan))
            geo, geo_s = geometric[scan.name]
            geo_isl, offset_s = _timed(isl_from_esl, geo, offset)
            path_default, path_default_s = furrow[scan.name][0]
            path, path_s = furrow[scan.name][choice]
            path_isl_fitted, fitted_s = _timed(model.predict, path, scan.points, widths[scan.name])
            learned_esl = {fit: learned.lines[fit][scan.name] for fit in FITS}  # fit -> (ESL, seconds)
            learned_pr, learned_pr_s = learned_esl["phantoms + real"]
            estimates = {  # row -> (ESL estimate or None, ISL estimate or None, seconds)
                "mean line": (mean_esl * scale + center, mean_isl * scale + center, 0.0),
                "geometric ESL": (geo, None, geo_s),
                "geometric ESL + mean offset": (geo, geo_isl, geo_s + offset_s),
                "oracle (true ESL + mean offset)": (None, isl_from_esl(scan.esl, offset), offset_s),
                "true ISL (reference)": (None, scan.isl.astype(np.float64), 0.0),
                "furrow-path ESL (defaults)": (path_default, None, path_default_s),
                "furrow-path ESL, settings chosen in-fold": (path, None, path_s),
                "furrow-path ESL (in-fold) + mean offset": (path, isl_from_esl(path, offset), path_s + offset_s),
                "furrow-path ESL (in-fold) + fitted offset": (path, path_isl_fitted, path_s + fitted_s),
                "oracle (true ESL + fitted offset)": (None, model.predict(scan.esl, scan.points, widths[scan.name]), fitted_s),
                **{LEARNED_ROWS[fit]: (esl, None, seconds) for fit, (esl, seconds) in learned_esl.items()},
                LEARNED_ISL_ROW: (learned_pr, model.predict(learned_pr, scan.points, widths[scan.name]), learned_pr_s + fitted_s),
                MOVED_ISL_ROWS[0]: (path, moved_model.predict(path, scan.points, widths[scan.name]), path_s + fitted_s),
                MOVED_ISL_ROWS[1]: (None, moved_model.predict(scan.esl, scan.points, widths[scan.name]), fitted_s),
            }
            for row, (esl, isl, seconds) in estimates.items():
                rec: dict[str, Any] = {"row": row, "subject": scan.name, "fold": f, "seconds": seconds,
                                       "cobb_clinical_deg": scan.meta["cobb"]}
                if row.startswith("furrow-path ESL (in-fold)") or row == "furrow-path ESL, settings chosen in-fold":
                    rec["furrow_setting"] = dataclasses.asdict(FURROW_GRID[choice])  # every field, new ones too
                for fit, learned_row in LEARNED_ROWS.items():
                    if row == learned_row or (fit == "phantoms + real" and row == LEARNED_ISL_ROW):
                        rec["learned_tracer"] = dict(zip(("smoothness", "top_anchor"), learned.chosen[fit][f]))
                if esl is not None:
                    e = line_errors(esl, resampled(scan.esl))[0]
                    rec.update(esl_lateral_rms_mm=e["lateral_rms_mm"], esl_rms_mm=e["rms_mm"])
                if isl is not None and row != "true ISL (reference)":
                    e = line_errors(isl, resampled(moved_isl[scan.name] if row in MOVED_ISL_ROWS else scan.isl))[0]
                    rec.update(isl_rms_mm=e["rms_mm"], isl_lateral_rms_mm=e["lateral_rms_mm"],
                               isl_lateral_shape_rms_mm=e["lateral_shape_rms_mm"])
                measured = isl if isl is not None else esl
                rec["cobb_deg"] = cobb_angle(measured)
                rec["cobb_abs_err_deg"] = abs(rec["cobb_deg"] - scan.meta["cobb"])
                rec["cobb_from"] = "ISL estimate" if isl is not None else "ESL estimate"
                out.append(rec)
        swing_esls = {COBB_ONLY_ROWS[1]: {s.name: furrow[s.name][choice][0] for s in scans},
                      COBB_ONLY_ROWS[2]: {name: line for name, (line, _) in learned.lines["phantoms + real"].items()}}
        out += cobb_only_records(train, test, f, swing_esls)
    return out, learned


def cobb_only_records(
    train: list[BackScan], test: list[BackScan], fold: int, swing_esls: dict[str, dict[str, np.ndarray]]
) -> list[dict[str, Any]]:
    """The :data:`COBB_ONLY_ROWS` of one fold: the training subjects' mean clinical angle, and the straight-line fit
    of the clinical angle on the rotation swing (:mod:`pcdiff.estimator.cobb_regression`) read beside an ESL
    estimate (``swing_esls``: row -> name -> (K, 3) mm, every subject's held-out estimate; one entry per estimate row
    of :data:`COBB_ONLY_ROWS`) or the true ESL (the last row), fitted on the training subjects and applied to the test
    subjects."""
    clinical = np.array([s.meta["cobb"] for s in train], dtype=np.float64)
    esl_of = {row: (lambda s, lines=lines: lines[s.name]) for row, lines in swing_esls.items()}
    esl_of[COBB_ONLY_ROWS[-1]] = lambda s: resampled(s.esl)
    models = {row: fit_asymmetry_cobb([asymmetry_swing_mm(s.points, esl(s)) for s in train], clinical) for row, esl in esl_of.items()}
    out = []
    for scan in test:
        for row in COBB_ONLY_ROWS:
            if row == COBB_ONLY_ROWS[0]:
                cobb, seconds, source = float(clinical.mean()), 0.0, "training mean"
            else:
                cobb, seconds = _timed(models[row].predict, scan.points, esl_of[row](scan))
                source = "rotation swing"
            out.append({"row": row, "subject": scan.name, "fold": fold, "seconds": seconds, "cobb_clinical_deg": scan.meta["cobb"],
                        "cobb_deg": cobb, "cobb_abs_err_deg": abs(cobb - scan.meta["cobb"]), "cobb_from": source})  # fmt: skip
    return out


def summarize_rows(per_subject: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and SD over subjects of every measure, one dict per row of :data:`ROWS`."""
    keys = ("esl_lateral_rms_mm", "esl_rms_mm", "isl_rms_mm", "isl_lateral_rms_mm", "isl_lateral_shape_rms_mm",
            "cobb_abs_err_deg", "seconds")
    table = []
    for row in ROWS:
        recs = [r for r in per_subject if r["row"] == row]
        out: dict[str, Any] = {"row": row, "n": len(recs), "cobb_from": recs[0]["cobb_from"], "fitted": FITTED[row]}
        for key in keys:
            vals = np.array([r[key] for r in recs if key in r], dtype=np.float64)
            out[key] = float(vals.mean()) if len(vals) else None
            out[key + "_sd"] = float(vals.std(ddof=1)) if len(vals) > 1 else None
            out[key + "_text"] = f"{vals.mean():.1f} ± {vals.std(ddof=1):.1f}" if len(vals) > 1 else "-"
            out[key + "_median"] = float(np.median(vals)) if len(vals) else None
            q25, q75 = np.percentile(vals, [25, 75]) if len(vals) > 1 else (np.nan, np.nan)
            out[key + "_median_text"] = f"{np.median(vals):.1f} ({q75 - q25:.1f})" if len(vals) > 1 else "-"
        cobb = np.array([r["cobb_deg"] for r in recs])
        clinical = np.array([r["cobb_clinical_deg"] for r in recs])
        out["cobb_r"] = float(np.corrcoef(cobb, clinical)[0, 1]) if cobb.std() > 0 else None
        out["ms_per_back"] = 1000 * out["seconds"]
        table.append(out)
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/pcdare"), help="PCdare folder (read in place)")
    parser.add_argument("--folds", type=int, default=5, help="subject-wise folds for the training means")
    parser.add_argument("--stem", default="spine_baselines", help="results file stem in benchmarks/results/")
    parser.add_argument("--phantoms", type=int, default=150, help="phantoms the learned furrow's cost is fitted on")
    parser.add_argument("--phantom-seed", type=int, default=7, help="their dataset seed (none is a PCdare subject)")
    parser.add_argument("--phantom-points", type=int, default=48000, help="their points (PCdare backs hold 41-60k)")
    args = parser.parse_args(argv)
    if args.folds < 2:
        parser.error("--folds must be >= 2")
    if args.phantoms < 1 or args.phantom_points < 1000:
        parser.error("--phantoms must be >= 1 and --phantom-points >= 1000")
    info = hardware_info()
    start = time.perf_counter()
    scans = list(read_pcdare(args.data))
    per_subject, learned = evaluate(scans, args.folds, phantom_backs(args.phantoms, args.phantom_seed, args.phantom_points))
    table = summarize_rows(per_subject)
    shifts = np.stack([radiograph_shift_mm(scan) for scan in scans])
    shift_summary = (f"lateral RMS {np.sqrt(np.mean(shifts[:, 0] ** 2)):.1f} mm (max |x| {np.abs(shifts[:, 0]).max():.1f}),"
                     f" depth SD {shifts[:, 2].std(ddof=1):.1f} mm (mean {shifts[:, 2].mean():.1f})")
    wall = time.perf_counter() - start
    record = run_record(args, info, wall)
    columns = [("row", "baseline", ""), ("esl_lateral_rms_mm_text", "ESL lateral RMS [mm]", ""),
               ("esl_rms_mm_text", "ESL 3D RMS [mm]", ""), ("isl_rms_mm_text", "ISL RMS [mm]", ""),
               ("isl_lateral_rms_mm_text", "ISL lateral RMS [mm]", ""),
               ("isl_lateral_shape_rms_mm_text", "ISL lateral shape RMS, centred [mm]", ""),
               ("isl_lateral_shape_rms_mm_median_text", "the same, median (IQR) [mm]", ""),
               ("cobb_abs_err_deg_text", "Cobb MAE vs clinical [deg]", ""),
               ("cobb_abs_err_deg_median_text", "Cobb error, median (IQR) [deg]", ""), ("cobb_r", "Cobb r", ".2f"),
               ("cobb_from", "Cobb measured on", ""), ("fitted", "fitted on training subjects", ""),
               ("ms_per_back", "ms / back", ".0f")]
    md = "\n".join([
        f"# Network-free spinal-line baselines on PCdare ({len(scans)} subjects, {args.folds} subject-wise folds)",
        "",
        f"`{command_line()}`",
        "",
        markdown_table(table, columns),
        "",
        "Mean ± SD over subjects. Lines compared at 64 keypoints; RMS = point-to-curve 3D, lateral RMS = x at equal"
        " heights. Cobb: coronal tangent method (pcdiff.geometry.cobb) on the row's ISL estimate (its ESL where it has"
        " none) vs the clinical primary Cobb angle (CobbAngles.csv, `primary_cobbangle`). The oracle uses the true ESL"
        " (ESL errors 0 by construction). Time: estimating one back, training means excluded.",
        "",
        "ISL lateral shape RMS, centred: the lateral error at equal heights with its mean removed (the coronal shape,"
        " blind to a constant sideways shift; pcdiff.geometry.cobb.lateral_deviation_error(centred=True)). Kaiser et al."
        " 2025 report their ISL RMSE on PCdare this way (x only, each line centred on its own mean; median 6.9 mm, IQR"
        " 3.3, 30 patients), so the median column is the one to compare with theirs. The issue's ISL target is the 3D"
        " RMS column, which also counts the constant offset and the depth. Their Cobb error (median 3.4°, IQR 6.8) is"
        " that of a linear fit of asymmetry indices to the clinical angle on the same patients (four postures), not"
        " held out; every Cobb figure here is held out (upright only).",
        "",
        "Rows marked (diagnostic): PCdare's ISL comes from a radiograph registered to the scan, and the radiograph's own"
        " skin line (`eslLinePts`) lies off the scan's line by a per-subject constant (pcdiff.data.pcdare."
        "radiograph_shift_mm: mean x and z difference at shared heights). These rows move every ISL, training and"
        " test, by that shift before fitting and scoring: what the estimator would score if the radiograph sat where"
        " the scan is. They use radiograph data no estimator has; they are not results, they size the registration"
        " part of the ISL error. Shift over the subjects: " + shift_summary + ".",
        "",
        "Furrow-path rows: the spinal furrow traced as one path (pcdiff.estimator.furrow). The `(defaults)` row uses"
        " settings picked while looking at these 20 subjects; the `in-fold` rows pick one of 24 settings (12 tracer settings, each with and without the top re-anchored on"
        " the symmetry axis) per fold on"
        " the training subjects only. The fitted offset (pcdiff.estimator.isl_offset) adds to the mean offset a"
        " depth ~ trunk width regression (2 numbers) and a lateral gain on the back's left-right depth asymmetry"
        " 50 mm either side of the ESL (1 number), fitted on the training subjects' true lines.",
        "",
        "Learned-furrow rows (pcdiff.estimator.learned_furrow; benchmarks.learned_furrow_folds): the furrow traced"
        " through a cost of 39 weights (13 depth features x 3 height nodes) fitted as a conditional logit of the true"
        f" ESL's bin per band, on {args.phantoms} phantoms (seed {args.phantom_seed}, {args.phantom_points} points;"
        " their ESL is exact) alone, on the fold's training subjects alone, or on both (equal weight per source, band"
        " for band). The tracer setting (smoothness x top re-anchoring, 9) is chosen per fold on the training subjects"
        " (phantoms row) or by an inner 4-fold split of them (the other rows). Chosen per fold: "
        + "; ".join(f"{fit}: {learned.chosen[fit]}" for fit in LEARNED_ROWS) + ". Its time per back includes the"
        " features. The features were designed while looking at these 20 subjects; every fitted number and"
        " setting is chosen without the held-out subject.",
        "",
        "Cobb-only rows: no line, only the angle. `training subjects' mean angle` predicts every test subject's Cobb as"
        " the mean clinical angle of the fold's training subjects. The rotation-swing fits (pcdiff.estimator."
        "cobb_regression) regress the clinical angle, on the training subjects, on the swing (max - min along the"
        " line) of the left-right depth difference 50 mm either side of the ESL (the furrow-path ESL with the fold's"
        " setting, the learned furrow's held-out ESL, or the true ESL), and apply the line to the test subjects.",
        "",
        load_line(record),
    ])
    learned_record = {"phantoms": args.phantoms, "phantom_seed": args.phantom_seed, "phantom_points": args.phantom_points,
                      "tracers": TRACERS, "chosen": learned.chosen}
    return publish(args.stem, {**record, "learned_furrow": learned_record, "table": table, "per_subject": per_subject}, md)


def run_record(args: argparse.Namespace, info: dict[str, Any], wall: float) -> dict[str, Any]:
    """The keys every PCdare spine benchmark's JSON starts with (:func:`benchmarks.reporting.finished_run`, then folds,
    keypoints, data folder, the Cobb reference); read the load now, at the end."""
    return {**finished_run(info, wall), "folds": args.folds, "num_keypoints": NUM_KEYPOINTS, "data": str(args.data),
            "cobb_reference": "CobbAngles.csv primary_cobbangle (clinical primary Cobb angle)"}


if __name__ == "__main__":
    raise SystemExit(main())
