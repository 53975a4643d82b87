"""Train on synthetic, test on true scans: how much do estimators pre-trained on each kind of synthetic back read?

A generator is useful for augmentation if what an estimator learns from its backs carries over to true backs. Here
every ``--estimator LABEL=PATH`` (an ESL estimator in the landmark frame, e.g. ``configs/estimator_phantom_landmarks.yaml``
trained on 1000 phantoms, ``configs/estimator_diffusion_landmarks.yaml`` trained on the shipped generator's backs for the
same 1000 phantom spines) reads every ``--scans LABEL=DIR`` (held-out phantoms of another seed; the real PCdare backs)
zero-shot, and its ESL is scored against the scans' own ESL (:func:`pcdiff.estimator.metrics.line_errors`): ESL
lateral RMS at equal heights, 3D point-to-curve RMS (mm), the Cobb angle's difference to the true ESL's (degrees)
and the Cobb correlation. On held-out phantoms, the phantom-trained estimator is the in-distribution reference and the
gap to it is what the generated backs lose (the "train on synthetic, test on real" reading of a generator). Fine-tuning
on real backs is ``benchmarks.estimator_finetune``.

    python -m benchmarks.train_on_synthetic --estimator phantoms=outputs/estimator_phantom_landmarks/last.ckpt \\
        --estimator diffusion=outputs/estimator_diffusion_landmarks/last.ckpt \\
        --scans heldout_phantoms=outputs/phantom_s2_100 --scans pcdare=../shared/data/pcdare
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.estimator_finetune import load_landmark_esl_estimator
from benchmarks.reporting import command_line, finished_run, hardware_info, labelled_path, load_line, markdown_table, publish

#: Measures of each row, (key of a line_errors row, column header).
MEASURES = (("lateral_rms_mm", "ESL lateral RMS [mm]"), ("rms_mm", "ESL 3D RMS [mm]"),
            ("cobb_abs_err_deg", "ESL Cobb error [deg]"))


def read_row(per_scan: list[dict[str, Any]], **labels: str) -> dict[str, Any]:
    """One table row from the ``line_errors`` rows of one estimator on one scan set (``labels``, e.g. ``estimator=...,
    scans=...``, start the row): mean ± SD over the scans of each measure, and the correlation of the read and the true
    ESL Cobb angles."""
    row: dict[str, Any] = {**labels, "n": len(per_scan)}
    for key, _ in MEASURES:
        vals = np.array([r[key] for r in per_scan], dtype=np.float64)
        row[key] = float(vals.mean())
        row[key + "_text"] = f"{vals.mean():.1f} ± {vals.std(ddof=1):.1f}" if len(vals) > 1 else f"{vals.mean():.1f}"
    pred = np.array([r["cobb_pred_deg"] for r in per_scan])
    true = np.array([r["cobb_true_deg"] for r in per_scan])
    row["cobb_r"] = float(np.corrcoef(pred, true)[0, 1]) if len(pred) > 1 and pred.std() > 0 and true.std() > 0 else None
    return row


def evaluate(estimators: dict[str, Path], scan_sets: dict[str, Path], num_points: int, seed: int) -> tuple[list, list]:
    """(table rows, per-scan records) of every estimator on every scan set."""
    from pcdiff.data.readers.dataset import read_dataset
    from pcdiff.estimator.eval_metric import scan_landmarks, spine_estimator_metric

    models = {label: load_landmark_esl_estimator(path, f"--estimator {label}={path}") for label, path in estimators.items()}
    table, records = [], []
    for set_label, folder in scan_sets.items():
        scans = list(read_dataset(folder))
        missing = [s.name for s in scans if s.esl is None]
        if missing:
            raise SystemExit(f"--scans {set_label}: {len(missing)} scans have no ESL to score against (first: {missing[0]})")
        landmarks = scan_landmarks(scans, f"--scans {set_label}")
        for label, model in models.items():
            start = time.perf_counter()
            res = spine_estimator_metric(model, [s.points for s in scans], [s.esl for s in scans], num_points=num_points,
                                         names=[s.name for s in scans], landmarks=landmarks)  # fmt: skip
            per_scan = res["per_subject"]
            row = read_row(per_scan, estimator=label, scans=set_label)
            row["ms_per_scan"] = 1000 * (time.perf_counter() - start) / len(scans)
            table.append(row)
            records += [{"estimator": label, "scans": set_label, **r} for r in per_scan]
    return table, records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--estimator", action="append", required=True, metavar="LABEL=PATH",
                        help="an ESL estimator in the landmark frame (checkpoint or exported folder), repeatable")
    parser.add_argument("--scans", action="append", required=True, metavar="LABEL=DIR",
                        help="a folder of true scans with ESL and C7 / DM landmarks (any layout pcdiff reads), repeatable")
    parser.add_argument("--num-points", type=int, default=2048, help="points each estimator reads per scan")
    parser.add_argument("--seed", type=int, default=0, help="seed of the point subsets")
    parser.add_argument("--stem", default="train_on_synthetic")
    args = parser.parse_args(argv)
    try:
        estimators = dict(labelled_path(v, "--estimator") for v in args.estimator)
        scan_sets = dict(labelled_path(v, "--scans") for v in args.scans)
    except ValueError as exc:
        parser.error(str(exc))
    if len(estimators) != len(args.estimator) or len(scan_sets) != len(args.scans):
        parser.error("each --estimator and --scans label must be given once")
    info, start = hardware_info(), time.perf_counter()
    table, records = evaluate(estimators, scan_sets, args.num_points, args.seed)
    record = finished_run(info, time.perf_counter() - start)
    columns = [("scans", "scans", ""), ("estimator", "pre-trained on", ""), ("n", "scans read", "d")]
    columns += [(f"{key}_text", header, "") for key, header in MEASURES]
    columns += [("cobb_r", "Cobb r", ".2f"), ("ms_per_scan", "ms / scan", ".0f")]
    md = "\n".join([
        "# Train on synthetic, test on true scans: zero-shot ESL estimators", "", f"`{command_line()}`", "",
        markdown_table(table, columns), "",
        f"Mean ± SD over the scans. Each estimator reads {args.num_points} random points of each scan (seed {args.seed}) in"
        " the scan's own C7-DM landmark frame, never having seen a scan of these sets; its ESL is scored against the"
        " scan's ESL (lateral RMS at equal heights, 3D point-to-curve RMS, difference of the coronal tangent Cobb angles"
        " of the read and the true ESL). Estimators: " + ", ".join(f"{k} = `{v}`" for k, v in estimators.items())
        + ". Scans: " + ", ".join(f"{k} = `{v}`" for k, v in scan_sets.items()) + ".",
        "", load_line(record),
    ])
    return publish(args.stem, {**record, "table": table, "per_scan": records}, md)


if __name__ == "__main__":
    raise SystemExit(main())
