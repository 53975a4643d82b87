"""Phantom pre-training, then fine-tuning on real backs: does the network ESL estimator beat the furrow path? (issue #13)

Issue #13 lists the lever "pre-training on many phantoms, whose lines are known exactly, then fine-tuning on real".
Here, per subject-wise fold of the PCdare backs (the split of ``benchmarks.spine_baselines``), side by side:

- ``phantom-pretrained, zero-shot``: the ``--init`` estimator (an ESL estimator in the landmark frame trained on
  phantoms, e.g. ``configs/estimator.yaml --config configs/estimator_phantom_landmarks.yaml``), never shown a real back;
- ``phantom-pretrained + fine-tuned``: that estimator trained ``--steps`` more steps on the fold's training subjects;
- ``real only, same steps``: the same network from random weights, the same steps on the same subjects (what the
  pre-training buys);
- ``furrow-path ESL (in-fold)``: the network-free baseline every estimator must beat (``spine_baselines``);
- ``fine-tuned, 8 point draws averaged``: the fine-tuned network read on 8 random point subsets, lines averaged;
- ``hybrid``: the furrow path's place with the averaged network line's bends (:mod:`pcdiff.estimator.hybrid`),
  since the furrow path reads where the line is and the network how it bends.

Each row's ESL also becomes an ISL through the fitted offset model (``spine_baselines``' ISL estimator), whose Cobb
angle is scored against the clinical one.

Each estimator reads the test subject's scan in the landmark frame (C7-DM), 2048 random points. Measures per
subject against the drawn ESL (``line_errors``: lateral RMS at equal heights, 3D point-to-curve RMS, mm) and the
ESL Cobb angle's difference to the true ESL's (degrees); mean +- SD over the subjects.

    python -m benchmarks.estimator_finetune --init outputs/estimator_phantom_landmarks/last.ckpt
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.reporting import DEFAULT_PCDARE, command_line, finished_run, hardware_info, load_line, markdown_table, publish
from benchmarks.spine_baselines import fold_split, furrow_lines, landmarks_of, resampled, select_setting, trunk_widths

ROWS = (
    "phantom-pretrained, zero-shot",
    "phantom-pretrained + fine-tuned",
    "fine-tuned, 8 point draws averaged",
    "real only, same steps",
    "furrow-path ESL (in-fold)",
    "hybrid: furrow-path place + fine-tuned bends (mean kept)",
    "hybrid: furrow-path place and lean + fine-tuned bends (trend kept)",
)
#: Point draws averaged by the test-time-augmentation row (and the hybrids' shape line).
TTA_DRAWS = 8


def train_on(model: Any, data: Path, test_names: list[str], steps: int, lr: float, batch_size: int, seed: int,
             cache_dir: str) -> Any:
    """``model`` (a ``SpineEstimator``) trained ``steps`` optimiser steps on the subjects of ``data`` not in
    ``test_names``, with a fresh optimiser and cosine schedule at ``lr``; returns it in eval mode. ``cache_dir`` holds
    the data module's preprocessed scans, shared by every call of one run (they do not depend on the split)."""
    import lightning as L

    from pcdiff.data.datamodule import BackScanDataModule

    L.seed_everything(seed, workers=True, verbose=False)
    model.hparams.lr = lr
    dm = BackScanDataModule(data_dir=str(data), num_points=2048, num_keypoints=model.hparams.num_keypoints,
                            line="esl", normalize="landmarks", test_keys=list(test_names),
                            batch_size=batch_size, seed=seed, cache_dir=cache_dir)  # fmt: skip
    trainer = L.Trainer(max_steps=steps, limit_val_batches=0, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's notes on workers and the empty validation set
        trainer.fit(model, datamodule=dm)
    return model.eval()


def evaluate(args: argparse.Namespace) -> list[dict[str, Any]]:
    """One dict per (row, subject): errors in mm / degrees."""
    from pcdiff.data.pcdare import read_pcdare
    from pcdiff.estimator.checkpoints import load_estimator
    from pcdiff.estimator.eval_metric import estimate_lines
    from pcdiff.estimator.hybrid import hybrid_line
    from pcdiff.estimator.isl_offset import fit_isl_offset
    from pcdiff.estimator.metrics import line_errors
    from pcdiff.estimator.module import SpineEstimator
    from pcdiff.geometry.cobb import cobb_angle

    scans = list(read_pcdare(args.data))
    fold_of = fold_split(len(scans), args.folds)
    furrow, furrow_err = furrow_lines(scans)
    widths = trunk_widths(scans)
    zero_shot = load_estimator(args.init)
    if zero_shot.hparams.input_frame != "landmarks" or zero_shot.hparams.line != "esl":
        raise SystemExit(f"--init {args.init}: needs an ESL estimator in the landmark frame (data.normalize=landmarks), got "
                         f"{zero_shot.hparams.line.upper()} in the {zero_shot.hparams.input_frame!r} frame")
    out = []
    with tempfile.TemporaryDirectory() as cache:  # the preprocessed scans, shared by every fine-tune of the run
        for f in range(args.folds):
            train = [s for s, g in zip(scans, fold_of) if g != f]
            test = [s for s, g in zip(scans, fold_of) if g == f]
            names = [s.name for s in test]
            start = time.perf_counter()
            tuned = train_on(load_estimator(args.init), args.data, names, args.steps, args.lr, args.batch_size, args.seed, cache)
            tuned_s = time.perf_counter() - start
            fresh = SpineEstimator(num_keypoints=zero_shot.hparams.num_keypoints, net_kwargs=zero_shot.hparams.net_kwargs,
                                   line="esl", input_frame="landmarks")  # fmt: skip
            scratch = train_on(fresh, args.data, names, args.steps, args.lr, args.batch_size, args.seed, cache)
            choice = select_setting(furrow_err, fold_of != f)
            offset_model = fit_isl_offset([s.esl for s in train], [s.isl for s in train], [s.points for s in train],
                                          [widths[s.name] for s in train])  # fmt: skip
            for scan in test:
                true, true_isl = resampled(scan.esl), resampled(scan.isl)

                def read(model: Any, seed: int) -> np.ndarray:
                    return estimate_lines(model, [scan.points], None, num_points=2048, seed=seed, landmarks=[landmarks_of(scan)])[0]

                averaged = np.mean([read(tuned, args.seed + d) for d in range(TTA_DRAWS)], axis=0)
                path = furrow[scan.name][choice][0]
                lines = dict(zip(ROWS, (read(zero_shot, args.seed), read(tuned, args.seed), averaged, read(scratch, args.seed),
                                        path, hybrid_line(path, averaged, "mean"), hybrid_line(path, averaged, "trend"))))
                for row, line in lines.items():
                    e = line_errors(line, true)[0]
                    isl = offset_model.predict(line, scan.points, widths[scan.name])
                    cobb = cobb_angle(isl)
                    out.append({"row": row, "subject": scan.name, "fold": f, "esl_lateral_rms_mm": e["lateral_rms_mm"],
                                "esl_rms_mm": e["rms_mm"], "esl_cobb_err_deg": e["cobb_abs_err_deg"],
                                "isl_rms_mm": line_errors(isl, true_isl)[0]["rms_mm"], "cobb_deg": cobb,
                                "cobb_clinical_deg": scan.meta["cobb"], "cobb_abs_err_deg": abs(cobb - scan.meta["cobb"]),
                                "finetune_s": tuned_s if row == ROWS[1] else None})  # fmt: skip
            logging.getLogger("estimator_finetune").info("fold %d done (fine-tune %.0f s)", f, tuned_s)
    return out


def summarise(per_subject: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean +- SD over subjects of each measure, one dict per row."""
    table = []
    for row in ROWS:
        recs = [r for r in per_subject if r["row"] == row]
        out: dict[str, Any] = {"row": row, "n": len(recs)}
        for key in ("esl_lateral_rms_mm", "esl_rms_mm", "esl_cobb_err_deg", "isl_rms_mm", "cobb_abs_err_deg"):
            vals = np.array([r[key] for r in recs])
            out[key] = float(vals.mean())
            out[key + "_text"] = f"{vals.mean():.1f} ± {vals.std(ddof=1):.1f}"
        times = [r["finetune_s"] for r in recs if r["finetune_s"] is not None]
        out["finetune_s"] = float(np.mean(times)) if times else None
        table.append(out)
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--init", type=Path, required=True, help="phantom-trained ESL estimator, landmark frame (checkpoint or folder)")
    parser.add_argument("--data", type=Path, default=DEFAULT_PCDARE, help="PCdare folder (read in place)")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=150, help="optimiser steps of each fine-tune (and of the real-only control)")
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stem", default="estimator_finetune")
    args = parser.parse_args(argv)
    if args.folds < 2 or args.steps < 1:
        parser.error("--folds must be >= 2 and --steps >= 1")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    info, start = hardware_info(), time.perf_counter()
    per_subject = evaluate(args)
    table = summarise(per_subject)
    wall = time.perf_counter() - start
    record = finished_run(info, wall)
    columns = [("row", "ESL estimator", ""), ("esl_lateral_rms_mm_text", "ESL lateral RMS [mm]", ""),
               ("esl_rms_mm_text", "ESL 3D RMS [mm]", ""), ("esl_cobb_err_deg_text", "ESL Cobb error [deg]", ""),
               ("isl_rms_mm_text", "ISL RMS, + fitted offset [mm]", ""),
               ("cobb_abs_err_deg_text", "Cobb MAE vs clinical, on that ISL [deg]", ""),
               ("finetune_s", "fine-tune per fold [s]", ".0f")]  # fmt: skip
    md = "\n".join([
        f"# Phantom-pretrained network ESL estimator fine-tuned on real backs vs the furrow path (PCdare, {args.folds} folds)",
        "", f"`{command_line()}`", "", markdown_table(table, columns), "",
        f"Mean ± SD over {table[0]['n']} subjects, one seed ({args.seed}). Fine-tune: {args.steps} steps x batch"
        f" {args.batch_size} at 2048 points, lr {args.lr} (cosine), on each fold's training subjects; the real-only row"
        " trains the same network from random weights with the same settings. Landmark frame (C7-DM) for every network"
        " row; the furrow path reads between the landmark heights with its setting chosen on the training subjects."
        " ESL Cobb error: against the true ESL's Cobb angle (not the clinical one, which is the ISL's). ISL: each row's"
        " ESL plus the fitted offset model (pcdiff.estimator.isl_offset, fitted per fold on the training subjects' true"
        " lines, as in spine_baselines); Cobb MAE: coronal tangent Cobb of that ISL against the clinical primary angle."
        f" Averaged row: the fine-tuned network's lines from {TTA_DRAWS} random 2048-point draws of the scan, keypoint"
        " by keypoint (test-time augmentation). Hybrids (pcdiff.estimator.hybrid.hybrid_line): the furrow path's line"
        " with its lateral bends replaced by the averaged network line's, keeping the furrow path's mean lateral place"
        " (or its least-squares lean as well).",
        "", load_line(record, ".0f")
    ])
    payload = {**record, "settings": {k: str(v) for k, v in vars(args).items()}, "table": table, "per_subject": per_subject}
    return publish(args.stem, payload, md)


if __name__ == "__main__":
    raise SystemExit(main())
