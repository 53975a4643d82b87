"""How much of a landmark-frame estimator's zero-shot error on real backs is the landmark convention? (issue #13)

A phantom's C7 and DM lie within ~2 mm of its ESL's two ends; PCdare places them elsewhere (C7 beside the ESL's top, DM below and in
front of its bottom). An estimator pre-trained on phantoms, or on generated backs for phantom spines, reads a real
scan in the frame of the real landmarks and so puts its line where a phantom's would sit. Here, per subject-wise fold
(the split of ``benchmarks.spine_baselines``), each ``--estimator LABEL=PATH`` reads every test subject zero-shot twice:
with its raw C7 and DM, and with C7 and DM moved by the *training* subjects' mean offsets from their ESL's ends
(6 numbers per fold, :func:`mean_landmark_offsets`), i.e. mapped to the phantoms' convention. Scored against the
subject's ESL (:func:`pcdiff.estimator.metrics.line_errors`): lateral RMS, 3D RMS (mm), ESL Cobb difference (deg).

    python -m benchmarks.landmark_convention --estimator phantoms=outputs/estimator_phantom_landmarks/last.ckpt \\
        --estimator diffusion=outputs/estimator_diffusion_landmarks/last.ckpt
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.estimator_finetune import load_landmark_esl_estimator
from benchmarks.reporting import (DEFAULT_PCDARE, command_line, finished_run, hardware_info, labelled_path, load_line,
                                  markdown_table, publish)
from benchmarks.spine_baselines import fold_split, landmarks_of, resampled
from benchmarks.train_on_synthetic import MEASURES, read_row
from pcdiff.geometry.polyline import orient_top_down


def landmark_offsets(scan: Any) -> np.ndarray:
    """(2, 3) mm: the scan's C7 minus its ESL's top end, and its DM minus its ESL's bottom end."""
    esl = orient_top_down(np.asarray(scan.esl, np.float64))
    return np.stack([np.asarray(scan.landmarks["C7"], np.float64) - esl[0], np.asarray(scan.landmarks["DM"], np.float64) - esl[-1]])


def mean_landmark_offsets(scans: list[Any]) -> np.ndarray:
    """(2, 3) mm: the mean of :func:`landmark_offsets` over ``scans`` (the training subjects of a fold)."""
    return np.mean([landmark_offsets(s) for s in scans], axis=0)


def mapped_landmarks(landmarks: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """(4, 3) C7, DL, DR, DM (mm) with C7 and DM moved by minus ``offsets`` (2, 3) mm: onto where the ESL's ends would
    lie by the training subjects' convention (a phantom's landmarks, whose offsets are 0, do not move)."""
    out = np.array(landmarks, dtype=np.float64, copy=True)
    out[0] -= offsets[0]
    out[3] -= offsets[1]
    return out


def evaluate(estimators: dict[str, Path], scans: list[Any], folds: int, seed: int) -> list[dict[str, Any]]:
    """One record per (estimator, landmarks raw / mapped, subject of ``scans``): its ``line_errors`` row."""
    from pcdiff.estimator.eval_metric import estimate_lines
    from pcdiff.estimator.metrics import line_errors

    fold_of = fold_split(len(scans), folds)
    out = []
    for label, path in estimators.items():
        model = load_landmark_esl_estimator(path, f"--estimator {label}={path}")
        for f in range(folds):
            offsets = mean_landmark_offsets([s for s, g in zip(scans, fold_of) if g != f])
            for scan in (s for s, g in zip(scans, fold_of) if g == f):
                raw = landmarks_of(scan)
                for landmarks_used, lms in (("raw", raw), ("mapped in-fold", mapped_landmarks(raw, offsets))):
                    pred = estimate_lines(model, [scan.points], None, num_points=2048, seed=seed, landmarks=[lms])[0]
                    out.append({"estimator": label, "landmarks": landmarks_used, "subject": scan.name, "fold": f,
                                **line_errors(pred, resampled(scan.esl))[0]})  # fmt: skip
    return out


def summarise(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """:func:`benchmarks.train_on_synthetic.read_row` per (estimator, landmarks), in order of first appearance."""
    groups = dict.fromkeys((r["estimator"], r["landmarks"]) for r in records)
    return [read_row([r for r in records if (r["estimator"], r["landmarks"]) == (est, lms)], estimator=est, landmarks=lms)
            for est, lms in groups]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--estimator", action="append", required=True, metavar="LABEL=PATH",
                        help="an ESL estimator in the landmark frame (checkpoint or exported folder), repeatable")
    parser.add_argument("--data", type=Path, default=DEFAULT_PCDARE, help="PCdare folder (read in place)")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0, help="seed of the 2048-point subsets")
    parser.add_argument("--stem", default="landmark_convention")
    args = parser.parse_args(argv)
    try:
        estimators = dict(labelled_path(v, "--estimator") for v in args.estimator)
    except ValueError as exc:
        parser.error(str(exc))
    if args.folds < 2:
        parser.error("--folds must be >= 2")
    from pcdiff.data.pcdare import read_pcdare

    info, start = hardware_info(), time.perf_counter()
    scans = list(read_pcdare(args.data))
    records = evaluate(estimators, scans, args.folds, args.seed)
    table = summarise(records)
    record = finished_run(info, time.perf_counter() - start)
    offs = np.stack([landmark_offsets(s) for s in scans])  # (S, 2, 3)
    convention = (f"C7 - ESL top: mean {np.round(offs[:, 0].mean(0), 1).tolist()} mm, SD {np.round(offs[:, 0].std(0, ddof=1), 1).tolist()};"
                  f" DM - ESL bottom: mean {np.round(offs[:, 1].mean(0), 1).tolist()} mm, SD {np.round(offs[:, 1].std(0, ddof=1), 1).tolist()}"
                  " (x lateral, y up, z towards the scanner)")
    columns = [("estimator", "pre-trained on", ""), ("landmarks", "C7 / DM given", ""), ("n", "subjects", "d")]
    columns += [(f"{key}_text", header, "") for key, header in MEASURES]
    md = "\n".join([
        f"# Landmark convention: zero-shot landmark-frame ESL estimators on PCdare ({args.folds} folds)", "",
        f"`{command_line()}`", "", markdown_table(table, columns), "",
        "Mean ± SD over subjects, never a real back in training. `raw`: the scan's own C7 and DM define the frame;"
        " `mapped in-fold`: C7 and DM moved by the mean offset of the fold's training subjects' landmarks from their ESL's"
        " ends (6 numbers), the convention of the phantoms the estimators were trained on (their C7 and DM lie within ~2 mm of the ESL's"
        " ends). Over all subjects: " + convention + ".",
        "", load_line(record),
    ])
    return publish(args.stem, {**record, "table": table, "per_subject": records}, md)


if __name__ == "__main__":
    raise SystemExit(main())
