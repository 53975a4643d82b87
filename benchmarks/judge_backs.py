"""Two independent judges read the spine off saved generated backs, beside their floor (issues #12 and #13).

The question: does a generated back carry the spinal line it was asked for, its Cobb angle included? A judge reads
each back's ESL, and its error against the *requested* ESL is set beside the same judge's error on the *true*
phantom of the same spine (the floor: a perfect generator scores it, not 0). Two judges, side by side:

- ``geometric``: the network-free furrow-path reader (:func:`pcdiff.estimator.eval_metric.geometric_spine_metric`);
  nothing trained; it needs dense backs (its floor on phantoms at 2048 points is ~24-30 degrees of Cobb).
- ``network``: a :class:`~pcdiff.estimator.module.SpineEstimator` checkpoint
  (:func:`pcdiff.estimator.eval_metric.spine_estimator_metric`), e.g. ``configs/estimator_phantom_judge.yaml``:
  trained on the generator's own training phantoms (seed 1), never on a generated back nor on the test spines.

Input: ``.npz`` files written by ``python -m benchmarks.generator_ablation ... --save-backs DIR`` (``backs_mm`` (S, N, 3),
``true_mm`` (S, N, 3) the true phantoms, ``esl_mm_<i>`` the requested ESLs, ``names``). Every file must hold the same
spines (the floor is read once, from the first file's ``true_mm``, and checked against the others' names).

Per row: the read ESL's lateral RMS and 3D RMS (mm) against the requested ESL; the mean |Cobb difference| between the
read and the requested ESL (coronal tangent, :func:`pcdiff.geometry.cobb.cobb_angle`), its median, and the share of
backs within 5 degrees (issue #12's target); the Pearson r of the read vs requested Cobb angles; and, paired per spine,
the mean |difference| between the Cobb angle read off the generated back and off the true phantom by the same judge.

With ``--calibrate-on DIR`` (true phantoms of a seed neither the judge nor the generator saw) every network row is
repeated with the judge's Cobb reading calibrated on those phantoms (:mod:`pcdiff.estimator.judge_calibration`): a
keypoint-regression judge reads large curves flatter than they are, and the calibration takes that bias out of its
floor and of the generated backs alike.

    python -m benchmarks.judge_backs --estimator outputs/estimator_phantom_judge/last.ckpt \\
        --backs sde50=outputs/backs_samplers_stage2/sde50.npz --backs unipc20=outputs/backs_samplers_stage2/unipc20.npz
    python -m benchmarks.judge_backs --estimator pretrained/phantom-esl-judge --backs shipped=outputs/backs_shipped100/shipped.npz \\
        --calibrate-on outputs/phantom_s4_200
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.reporting import command_line, finished_run, hardware_info, labelled_path, load_line, markdown_table, publish
from pcdiff.estimator.judge_calibration import CobbCalibration, calibrated_rows

#: Issue #12's Cobb target: the judged Cobb angle within this many degrees of the requested one.
COBB_TOLERANCE_DEG = 5.0
#: Requested ESL Cobb angles from this many degrees up count as large curves (the ESL shows about half the ISL's
#: angle on phantoms, so this is roughly a 40-degree scoliosis).
LARGE_ESL_COBB_DEG = 20.0


def parse_backs(spec: str) -> tuple[str, Path]:
    """``"LABEL=PATH.npz"`` -> (label, path); the file must exist."""
    try:
        label, path = labelled_path(spec, "--backs")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"--backs {label}: {path} does not exist")
    return label, path


def load_backs(path: Path) -> dict[str, Any]:
    """One saved row: ``backs`` (S, N, 3) mm, ``true`` (S, N, 3) mm, ``esl`` list of (L, 3) mm, ``names``."""
    with np.load(path) as z:
        missing = {"backs_mm", "true_mm", "names"} - set(z.files)
        if missing:
            raise ValueError(f"{path}: not a --save-backs file (missing {sorted(missing)})")
        names = [str(n) for n in z["names"]]
        esl = [z[f"esl_mm_{i}"] for i in range(len(names))]
        return {"backs": z["backs_mm"], "true": z["true_mm"], "esl": esl, "names": names}


def judge_row(per_subject: list[dict[str, Any]], floor: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Means over the backs a judge read (``per_subject``: rows of ``line_errors`` with ``name``; unread backs carry
    ``error``), the share within :data:`COBB_TOLERANCE_DEG`, and with ``floor`` (the same judge on the true backs, same
    order) the mean |Cobb read here - Cobb read on the true back| over backs read in both."""
    ok = [r for r in per_subject if "error" not in r]
    if not ok:
        raise ValueError("judge_backs: the judge read none of the backs")
    cobb_err = np.array([r["cobb_abs_err_deg"] for r in ok])
    pred, true = np.array([r["cobb_pred_deg"] for r in ok]), np.array([r["cobb_true_deg"] for r in ok])
    row: dict[str, Any] = {
        "lateral_rms_mm": float(np.mean([r["lateral_rms_mm"] for r in ok])),
        "rms_mm": float(np.mean([r["rms_mm"] for r in ok])),
        "cobb_mae_deg": float(cobb_err.mean()),
        "cobb_median_deg": float(np.median(cobb_err)),
        "within_tolerance": float(np.mean(cobb_err <= COBB_TOLERANCE_DEG)),
        "cobb_mae_small_deg": float(cobb_err[true < LARGE_ESL_COBB_DEG].mean()) if (true < LARGE_ESL_COBB_DEG).any() else None,
        "cobb_mae_large_deg": float(cobb_err[true >= LARGE_ESL_COBB_DEG].mean()) if (true >= LARGE_ESL_COBB_DEG).any() else None,
        "n_large": int((true >= LARGE_ESL_COBB_DEG).sum()),
        "cobb_r": float(np.corrcoef(pred, true)[0, 1]) if pred.std() > 0 and true.std() > 0 else None,
        # least squares of the read angle on the requested one: a slope under 1 is a pull towards the mean
        "cobb_slope": float(np.polyfit(true, pred, 1)[0]) if len(ok) > 1 and true.std() > 0 else None,
        "n_read": len(ok),
        "n_failed": len(per_subject) - len(ok),
    }
    if floor is not None:
        paired = [abs(g["cobb_pred_deg"] - f["cobb_pred_deg"]) for g, f in zip(per_subject, floor)
                  if "error" not in g and "error" not in f]  # fmt: skip
        row["cobb_vs_true_back_deg"] = float(np.mean(paired)) if paired else None
    return row


def noisy_backs(backs: np.ndarray, sigma_mm: float, seed: int = 0) -> np.ndarray:
    """``backs`` (S, N, 3) mm plus Gaussian noise of SD ``sigma_mm`` in depth (z) and 0.3x that in x and y: a thick
    back that keeps its spine (the control for a judge's sensitivity to thickness)."""
    if sigma_mm < 0:
        raise ValueError(f"--noise-mm must be >= 0, got {sigma_mm}")
    noise = np.random.default_rng(seed).normal(0.0, sigma_mm, backs.shape) * np.array([0.3, 0.3, 1.0])
    return (backs + noise).astype(np.float32)


def judge(name: str, backs: np.ndarray, esl: list[np.ndarray], names: list[str], estimator: Any) -> list[dict[str, Any]]:
    """Per-back rows of one judge (``"geometric"`` or ``"network"``) on backs (S, N, 3) mm against their ESLs."""
    from pcdiff.estimator.eval_metric import geometric_spine_metric, spine_estimator_metric

    if name == "geometric":
        return geometric_spine_metric(backs, esl, names=names)["per_subject"]
    return spine_estimator_metric(estimator, backs, esl, names=names)["per_subject"]


def calibration_of(estimator: Any, folder: Path, test_names: list[str]) -> CobbCalibration:
    """The network judge's Cobb calibration fitted on the true backs in ``folder``
    (:func:`pcdiff.estimator.eval_metric.judge_cobb_calibration`); refuses a folder sharing a subject name with the
    scored spines (it must be independent of them)."""
    from pcdiff.data.io import read_dataset
    from pcdiff.estimator.eval_metric import judge_cobb_calibration, refuse_shared_subjects

    scans = read_dataset(folder)
    try:
        refuse_shared_subjects(scans, test_names, f"--calibrate-on {folder}")
    except ValueError as err:
        raise SystemExit(str(err)) from None
    return judge_cobb_calibration(estimator, scans, "--calibrate-on")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backs", type=parse_backs, action="append", required=True, metavar="LABEL=PATH.npz",
                        help="a --save-backs file of generator_ablation (repeatable; same spines in every file)")
    parser.add_argument("--estimator", type=Path, default=None,
                        help="SpineEstimator checkpoint or exported folder (ESL, 'esl' frame; the shipped pretrained/phantom-esl-judge) for "
                             "the network judge; without it only the geometric judge")
    parser.add_argument("--noise-mm", type=float, nargs="*", default=[],
                        help="control rows: the true phantoms plus Gaussian noise of this SD (mm; in depth, 0.3x sideways and"
                             " up), as thick as generated backs or thicker: how far a back's thickness alone moves a judge")
    parser.add_argument("--calibrate-on", type=Path, default=None, metavar="DIR",
                        help="true phantom backs of a seed neither the judge nor the generator saw (e.g. python -m "
                             "pcdiff.data.synth --out DIR --n 200 --seed 4): the network judge reads them, a straight "
                             "line maps its Cobb reading to the true angle, and every network row is repeated with "
                             "the calibrated reading (pcdiff.estimator.judge_calibration)")
    parser.add_argument("--stem", default="judge_backs", help="results file stem in benchmarks/results/")
    args = parser.parse_args(argv)
    if args.calibrate_on is not None and args.estimator is None:
        parser.error("--calibrate-on calibrates the network judge: give --estimator too")
    info, start = hardware_info(), time.perf_counter()
    estimator = None
    if args.estimator is not None:
        from pcdiff.estimator.eval_metric import load_estimator

        estimator = load_estimator(args.estimator)
        if estimator.hparams.line != "esl":
            parser.error(f"--estimator {args.estimator} predicts the {estimator.hparams.line.upper()}; the judge reads the ESL")
    judges = ["geometric"] + (["network"] if estimator is not None else [])
    rows = [(label, load_backs(path)) for label, path in args.backs]
    first = rows[0][1]
    for label, data in rows[1:]:
        if data["names"] != first["names"]:
            parser.error(f"--backs {label}: its spines differ from {rows[0][0]}'s; every file must hold the same test spines")
    calibration = None if args.calibrate_on is None else calibration_of(estimator, args.calibrate_on, first["names"])
    table, per_back = [], {}
    for judge_name in judges:
        floor = judge(judge_name, first["true"], first["esl"], first["names"], estimator)
        reads = [("true phantoms (floor)", "floor", floor)]
        for sigma in args.noise_mm:
            noisy = noisy_backs(first["true"], sigma)
            reads.append((f"true phantoms + {sigma:g} mm noise (control)", f"noise{sigma:g}",
                          judge(judge_name, noisy, first["esl"], first["names"], estimator)))
        for label, data in rows:
            reads.append((label, label, judge(judge_name, data["backs"], data["esl"], data["names"], estimator)))
        readers = [(judge_name, reads)]
        if judge_name == "network" and calibration is not None:  # the same readings, their Cobb angle calibrated
            readers.append(("network, calibrated", [(t, k, calibrated_rows(r, calibration)) for t, k, r in reads]))
        for reader, reader_reads in readers:
            floor = reader_reads[0][2]
            for i, (title, key, read) in enumerate(reader_reads):
                per_back[f"{reader}/{key}"] = read
                table.append({"judge": reader, "backs": title, **judge_row(read, floor if i else None)})
    wall = time.perf_counter() - start
    record = finished_run(info, wall)
    columns = [("judge", "judge", ""), ("backs", "backs", ""), ("lateral_rms_mm", "ESL lateral RMS [mm]", ".1f"),
               ("rms_mm", "ESL 3D RMS [mm]", ".1f"), ("cobb_mae_deg", "Cobb error vs requested, mean [deg]", ".1f"),
               ("cobb_median_deg", "median [deg]", ".1f"),
               ("cobb_mae_small_deg", f"mean, requested ESL Cobb < {LARGE_ESL_COBB_DEG:g} deg", ".1f"),
               ("cobb_mae_large_deg", f"mean, >= {LARGE_ESL_COBB_DEG:g} deg", ".1f"), ("n_large", "backs >= that", "d"), ("within_tolerance", f"share within {COBB_TOLERANCE_DEG:g} deg", ".0%"),
               ("cobb_r", "Cobb r", ".2f"), ("cobb_slope", "slope of read on requested Cobb", ".2f"), ("cobb_vs_true_back_deg", "Cobb difference to the true back, same judge [deg]", ".1f"),
               ("n_read", "backs read", "d"), ("n_failed", "not read", "d")]  # fmt: skip
    md = "\n".join([
        f"# Judges of generated backs: the ESL and its Cobb angle read off {len(first['names'])} backs per row",
        "",
        f"`{command_line()}`",
        "",
        markdown_table(table, columns),
        "",
        "Each judge reads the ESL off every back between the requested ESL's ends. Errors are against the requested"
        " ESL (for the floor, the true phantom's own ESL, which is the requested one). Cobb: coronal tangent angle of"
        " the read vs the requested ESL. The last Cobb column pairs each generated back with the true phantom of the"
        " same spine, both read by the same judge. Judges: `geometric` = the furrow-path reader (nothing trained);"
        f" `network` = {args.estimator} (trained on phantoms of another seed, never on generated backs).",
        "",
        *([] if calibration is None else [
            f"`network, calibrated`: the same readings with the Cobb angle mapped to {calibration.intercept_deg:.2f} +"
            f" {calibration.slope:.3f} x read (deg), the least-squares line of the true ESL Cobb on the read one over"
            f" {calibration.n} true phantoms of `{args.calibrate_on}`, which neither the judge nor the generator saw"
            " (never fitted on generated backs; pcdiff.estimator.judge_calibration).", ""]),
        "Files: " + ", ".join(f"{label} = `{path}`" for label, path in args.backs) + ".",
        "",
        load_line(record)
    ])
    payload = {**record, "estimator": str(args.estimator) if args.estimator else None,
               "calibration": None if calibration is None
               else {**dataclasses.asdict(calibration), "folder": str(args.calibrate_on)},
               "files": {label: str(path) for label, path in args.backs}, "table": table, "per_back": per_back}
    return publish(args.stem, payload, md)


if __name__ == "__main__":
    raise SystemExit(main())
