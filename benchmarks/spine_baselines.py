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

Measures per subject (mean +- SD over the 20 subjects): ESL lateral RMS and 3D RMS, ISL 3D RMS (mm,
:func:`pcdiff.estimator.metrics.line_errors`, point-to-curve), and the absolute difference between the
coronal-tangent Cobb angle (:func:`pcdiff.geometry.cobb.cobb_angle`) of the row's ISL estimate (its ESL
where it has no ISL) and the clinical primary Cobb angle (``CobbAngles.csv``, column ``primary_cobbangle``).
Time: seconds to estimate one back (training means excluded, they take milliseconds).

    python -m benchmarks.spine_baselines [--data ../shared/data/pcdare] [--folds 5]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from pcdiff.data.pcdare import read_pcdare
from pcdiff.data.sample import BackScan
from pcdiff.geometry.frames import landmark_frame
from pcdiff.estimator.geometric import geometric_esl, isl_from_esl, mean_isl_offset
from pcdiff.estimator.metrics import line_errors
from pcdiff.geometry.cobb import cobb_angle
from pcdiff.geometry.polyline import orient_top_down, resample_polyline

from benchmarks.reporting import command_line, hardware_info, machine_was_busy, markdown_table, write_results

#: Keypoints of every estimated line (the estimator's default is 32; 64 keeps the geometric line's detail).
NUM_KEYPOINTS = 64
ROWS = ("mean line", "geometric ESL", "geometric ESL + mean offset", "oracle (true ESL + mean offset)", "true ISL (reference)")


def _landmarks(scan: BackScan) -> np.ndarray:
    """(4, 3) C7, DL, DR, DM in mm, the order :func:`landmark_frame` expects."""
    return np.stack([scan.landmarks[k] for k in ("C7", "DL", "DR", "DM")]).astype(np.float64)


def _resampled(line: np.ndarray) -> np.ndarray:
    return resample_polyline(orient_top_down(line), NUM_KEYPOINTS).astype(np.float64)


def mean_line(train: list[BackScan], which: str) -> np.ndarray:
    """Mean training line (K, 3) in the landmark frame (normalised units)."""
    normed = []
    for scan in train:
        center, scale = landmark_frame(_landmarks(scan))
        normed.append((_resampled(scan.line(which)) - center) / scale)
    return np.mean(np.stack(normed), axis=0)


def fold_split(n: int, folds: int, seed: int = 0) -> np.ndarray:
    """(n,) fold index of each subject: a seeded permutation cut into ``folds`` near-equal chunks."""
    fold_of = np.empty(n, dtype=int)
    for f, chunk in enumerate(np.array_split(np.random.default_rng(seed).permutation(n), folds)):
        fold_of[chunk] = f
    return fold_of


def evaluate(scans: list[BackScan], folds: int) -> list[dict[str, Any]]:
    """One dict per (row, subject): errors in mm / degrees and seconds per back."""
    fold_of = fold_split(len(scans), folds)
    geometric: dict[str, tuple[np.ndarray, float]] = {}
    for scan in scans:
        start = time.perf_counter()
        line = geometric_esl(scan)
        geometric[scan.name] = (line, time.perf_counter() - start)
    out = []
    for f in range(folds):
        train = [s for s, g in zip(scans, fold_of) if g != f]
        test = [s for s, g in zip(scans, fold_of) if g == f]
        mean_esl, mean_isl = mean_line(train, "esl"), mean_line(train, "isl")
        offset = mean_isl_offset([s.esl for s in train], [s.isl for s in train], NUM_KEYPOINTS)
        for scan in test:
            center, scale = landmark_frame(_landmarks(scan))
            geo, geo_s = geometric[scan.name]
            start = time.perf_counter()
            geo_isl = isl_from_esl(geo, offset)
            offset_s = time.perf_counter() - start
            estimates = {  # row -> (ESL estimate or None, ISL estimate or None, seconds)
                "mean line": (mean_esl * scale + center, mean_isl * scale + center, 0.0),
                "geometric ESL": (geo, None, geo_s),
                "geometric ESL + mean offset": (geo, geo_isl, geo_s + offset_s),
                "oracle (true ESL + mean offset)": (None, isl_from_esl(scan.esl, offset), offset_s),
                "true ISL (reference)": (None, scan.isl.astype(np.float64), 0.0),
            }
            for row, (esl, isl, seconds) in estimates.items():
                rec: dict[str, Any] = {"row": row, "subject": scan.name, "fold": f, "seconds": seconds,
                                       "cobb_clinical_deg": scan.meta["cobb"]}
                if esl is not None:
                    e = line_errors(esl, _resampled(scan.esl))[0]
                    rec.update(esl_lateral_rms_mm=e["lateral_rms_mm"], esl_rms_mm=e["rms_mm"])
                if isl is not None and row != "true ISL (reference)":
                    rec["isl_rms_mm"] = line_errors(isl, _resampled(scan.isl))[0]["rms_mm"]
                measured = isl if isl is not None else esl
                rec["cobb_deg"] = cobb_angle(measured)
                rec["cobb_abs_err_deg"] = abs(rec["cobb_deg"] - scan.meta["cobb"])
                rec["cobb_from"] = "ISL estimate" if isl is not None else "ESL estimate"
                out.append(rec)
    return out


def summarize_rows(per_subject: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and SD over subjects of every measure, one dict per row of :data:`ROWS`."""
    keys = ("esl_lateral_rms_mm", "esl_rms_mm", "isl_rms_mm", "cobb_abs_err_deg", "seconds")
    table = []
    for row in ROWS:
        recs = [r for r in per_subject if r["row"] == row]
        out: dict[str, Any] = {"row": row, "n": len(recs), "cobb_from": recs[0]["cobb_from"]}
        for key in keys:
            vals = np.array([r[key] for r in recs if key in r], dtype=np.float64)
            out[key] = float(vals.mean()) if len(vals) else None
            out[key + "_sd"] = float(vals.std(ddof=1)) if len(vals) > 1 else None
            out[key + "_text"] = f"{vals.mean():.1f} ± {vals.std(ddof=1):.1f}" if len(vals) > 1 else "-"
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
    args = parser.parse_args(argv)
    if args.folds < 2:
        parser.error("--folds must be >= 2")
    info = hardware_info()
    start = time.perf_counter()
    scans = list(read_pcdare(args.data))
    per_subject = evaluate(scans, args.folds)
    table = summarize_rows(per_subject)
    wall = time.perf_counter() - start
    load_end = [round(x, 2) for x in os.getloadavg()]
    busy = machine_was_busy([info.get("load_average_at_start", [0.0])[0], load_end[0]], os.cpu_count() or 1)
    columns = [("row", "baseline", ""), ("esl_lateral_rms_mm_text", "ESL lateral RMS [mm]", ""),
               ("esl_rms_mm_text", "ESL 3D RMS [mm]", ""), ("isl_rms_mm_text", "ISL RMS [mm]", ""),
               ("cobb_abs_err_deg_text", "Cobb MAE vs clinical [deg]", ""), ("cobb_r", "Cobb r", ".2f"),
               ("cobb_from", "Cobb measured on", ""), ("ms_per_back", "ms / back", ".0f")]
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
        f"Load average at start {info.get('load_average_at_start')}, at end {load_end} on {info['cpu_count']} CPUs"
        f" ({'shared with other jobs' if busy else 'idle'}); wall {wall:.1f} s.",
    ])
    payload = {"command": command_line(), "hardware": info, "load_average_at_end": load_end, "machine_was_busy": busy,
               "wall_s": wall, "folds": args.folds, "num_keypoints": NUM_KEYPOINTS, "data": str(args.data),
               "cobb_reference": "CobbAngles.csv primary_cobbangle (clinical primary Cobb angle)",
               "table": table, "per_subject": per_subject}
    js, mdp = write_results(args.stem, payload, md)
    print(md)
    print(f"wrote {js} and {mdp}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
