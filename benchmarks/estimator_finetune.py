"""Synthetic pre-training, then fine-tuning on real backs: which synthetic backs help a network ESL estimator? (issue #13)

Issue #13 lists the lever "pre-training on many phantoms, whose lines are known exactly, then fine-tuning on real",
and asks the central question: does synthetic data help an estimator on real backs? Here, per subject-wise fold of
the PCdare backs (the split of ``benchmarks.spine_baselines``), side by side, for every ``--init LABEL=PATH`` (an ESL
estimator in the landmark frame pre-trained on synthetic backs: phantoms, ``configs/estimator_phantom_landmarks.yaml``,
or the generator's backs for the same phantom spines, ``configs/estimator_diffusion_landmarks.yaml``):

- ``LABEL-pretrained, zero-shot``: the pre-trained estimator, never shown a real back;
- ``LABEL-pretrained + fine-tuned``: that estimator trained ``--steps`` more steps on the fold's training subjects;
- ``real only, same steps``: the same network from random weights, the same steps on the same subjects (what the
  pre-training buys);
- ``furrow-path ESL (in-fold)``: the network-free baseline every estimator must beat (``spine_baselines``);
- ``fine-tuned (first init), 8 point draws averaged``: the first init's fine-tuned network read on 8 random point
  subsets, lines averaged;
- ``hybrid``: the furrow path's place with that averaged network line's bends (:mod:`pcdiff.estimator.hybrid`),
  since the furrow path reads where the line is and the network how it bends.

With several ``--seeds`` every trained row is repeated per seed (fine-tune and real-only data order and point draws);
the table gives the mean over subjects and seeds and the range of the per-seed means.

Each row's ESL also becomes an ISL through the fitted offset model (``spine_baselines``' ISL estimator), whose Cobb
angle is scored against the clinical one.

Each estimator reads the test subject's scan in the landmark frame (C7-DM), 2048 random points. Measures per
subject against the drawn ESL (``line_errors``: lateral RMS at equal heights, 3D point-to-curve RMS, mm) and the
ESL Cobb angle's difference to the true ESL's (degrees); mean +- SD over the subjects.

    python -m benchmarks.estimator_finetune --init phantoms=outputs/estimator_phantom_landmarks/last.ckpt \
        --init diffusion=outputs/estimator_diffusion_landmarks/last.ckpt --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.reporting import (DEFAULT_PCDARE, command_line, finished_run, hardware_info, labelled_path, load_line,
                                  markdown_table, publish)
from benchmarks.spine_baselines import fold_split, furrow_lines, landmarks_of, resampled, select_setting, trunk_widths

#: Rows that do not depend on the inits (the per-init rows come from :func:`init_rows`).
SHARED_ROWS = (
    "fine-tuned (first init), 8 point draws averaged",
    "real only, same steps",
    "furrow-path ESL (in-fold)",
    "hybrid: furrow-path place + fine-tuned bends (mean kept)",
    "hybrid: furrow-path place and lean + fine-tuned bends (trend kept)",
)
#: Label of an ``--init`` given as a bare path (the earlier, phantom-only form of the command).
DEFAULT_LABEL = "phantom"
#: Point draws averaged by the test-time-augmentation row (and the hybrids' shape line).
TTA_DRAWS = 8


def init_rows(label: str) -> tuple[str, str]:
    """The zero-shot and fine-tuned row names of the init called ``label``."""
    return f"{label}-pretrained, zero-shot", f"{label}-pretrained + fine-tuned"


def all_rows(labels: list[str]) -> list[str]:
    """Every row of a run with inits ``labels``, in table order."""
    return [row for label in labels for row in init_rows(label)] + list(SHARED_ROWS)


def parse_inits(values: list[str]) -> dict[str, Path]:
    """``LABEL=PATH`` (or a bare ``PATH``, labelled :data:`DEFAULT_LABEL`) values of ``--init`` -> {label: path}.

    Raises:
        ValueError: a label given twice or an empty label or path.
    """
    inits: dict[str, Path] = {}
    for value in values:
        label, path = labelled_path(value, "--init", DEFAULT_LABEL)
        if label in inits:
            raise ValueError(f"--init: label {label!r} given twice")
        inits[label] = path
    return inits


def load_landmark_esl_estimator(path: Path, what: str) -> Any:
    """The ``SpineEstimator`` at ``path`` (checkpoint or exported folder); ``SystemExit`` naming ``what`` (the option as
    given) unless it predicts the ESL in the landmark frame (C7-DM), the frame a new patient's scan gives."""
    from pcdiff.estimator.checkpoints import load_estimator

    model = load_estimator(path)
    if model.hparams.input_frame != "landmarks" or model.hparams.line != "esl":
        raise SystemExit(f"{what}: needs an ESL estimator in the landmark frame (data.normalize=landmarks), got "
                         f"{model.hparams.line.upper()} in the {model.hparams.input_frame!r} frame")
    return model


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
    """One dict per (row, subject, seed): errors in mm / degrees."""
    from pcdiff.data.pcdare import read_pcdare
    from pcdiff.estimator.isl_offset import fit_isl_offset

    zero_shot = {label: load_landmark_esl_estimator(path, f"--init {label}={path}") for label, path in args.inits.items()}
    scans = list(read_pcdare(args.data))
    fold_of = fold_split(len(scans), args.folds)
    furrow, furrow_err = furrow_lines(scans)
    widths = trunk_widths(scans)
    folds = []  # (test subjects, context) per fold: the same for every seed
    for f in range(args.folds):
        train = [s for s, g in zip(scans, fold_of) if g != f]
        test = [s for s, g in zip(scans, fold_of) if g == f]
        choice = select_setting(furrow_err, fold_of != f)
        folds.append((test, FoldContext(
            path={s.name: furrow[s.name][choice][0] for s in test},
            offset_model=fit_isl_offset([s.esl for s in train], [s.isl for s in train], [s.points for s in train],
                                        [widths[s.name] for s in train]),
            widths=widths, fold=f, seed=args.seeds[0])))  # fmt: skip
    out = []
    with tempfile.TemporaryDirectory() as cache:  # the preprocessed scans, shared by every fine-tune of the run
        for seed in args.seeds:
            for test, context in folds:
                out += fold_records(args, zero_shot, test, replace(context, seed=seed), cache)
    return out


@dataclass(frozen=True)
class FoldContext:
    """What every row of one (fold, seed) shares: the furrow path of each test subject (name -> (K, 3) mm, the fold's
    in-fold setting), the fold's fitted ISL offset model, trunk widths (name -> mm), the fold index and the seed."""

    path: dict[str, np.ndarray]
    offset_model: Any
    widths: dict[str, float]
    fold: int
    seed: int


def fold_records(args: argparse.Namespace, zero_shot: dict[str, Any], test: list[Any], context: FoldContext,
                 cache: str) -> list[dict[str, Any]]:
    """Records of one fold and seed: each init fine-tuned (and read zero-shot), the real-only control, the furrow path,
    test-time augmentation and the hybrids of the first init, read on the ``test`` subjects."""
    from pcdiff.estimator.checkpoints import load_estimator
    from pcdiff.estimator.eval_metric import estimate_lines
    from pcdiff.estimator.hybrid import hybrid_line
    from pcdiff.estimator.module import SpineEstimator

    names, seed = [s.name for s in test], context.seed
    tuned, tuned_s = {}, {}
    for label, path in args.inits.items():
        start = time.perf_counter()
        tuned[label] = train_on(load_estimator(path), args.data, names, args.steps, args.lr, args.batch_size, seed, cache)
        tuned_s[label] = time.perf_counter() - start
    first = next(iter(zero_shot.values()))
    fresh = SpineEstimator(num_keypoints=first.hparams.num_keypoints, net_kwargs=first.hparams.net_kwargs, line="esl",
                           input_frame="landmarks")  # fmt: skip
    scratch = train_on(fresh, args.data, names, args.steps, args.lr, args.batch_size, seed, cache)
    out = []
    for scan in test:

        def read(model: Any, draw_seed: int) -> np.ndarray:
            return estimate_lines(model, [scan.points], None, num_points=2048, seed=draw_seed, landmarks=[landmarks_of(scan)])[0]

        lines: dict[str, tuple[np.ndarray, float | None]] = {}  # row -> (ESL (K, 3) mm, fine-tune seconds or None)
        for label in args.inits:
            zero_row, tuned_row = init_rows(label)
            lines[zero_row] = (read(zero_shot[label], seed), None)
            lines[tuned_row] = (read(tuned[label], seed), tuned_s[label])
        averaged = np.mean([read(tuned[next(iter(args.inits))], seed + d) for d in range(TTA_DRAWS)], axis=0)
        path = context.path[scan.name]
        shared = (averaged, read(scratch, seed), path, hybrid_line(path, averaged, "mean"), hybrid_line(path, averaged, "trend"))
        lines.update({row: (line, None) for row, line in zip(SHARED_ROWS, shared)})
        out += [line_record(row, line, scan, context, seconds) for row, (line, seconds) in lines.items()]
    logging.getLogger("estimator_finetune").info("seed %d fold %d done (fine-tunes %s s)", seed, context.fold,
                                                 ", ".join(f"{k} {v:.0f}" for k, v in tuned_s.items()))
    return out


def line_record(row: str, line: np.ndarray, scan: Any, context: FoldContext, finetune_s: float | None) -> dict[str, Any]:
    """One record: the ESL estimate ``line`` (K, 3) mm of ``row`` scored against the subject's ESL, and the ISL built
    on it with the fold's offset model scored against the ISL and the clinical Cobb angle."""
    from pcdiff.estimator.metrics import line_errors
    from pcdiff.geometry.cobb import cobb_angle

    e = line_errors(line, resampled(scan.esl))[0]
    isl = context.offset_model.predict(line, scan.points, context.widths[scan.name])
    cobb = cobb_angle(isl)
    return {"row": row, "subject": scan.name, "fold": context.fold, "seed": context.seed,
            "esl_lateral_rms_mm": e["lateral_rms_mm"], "esl_rms_mm": e["rms_mm"], "esl_cobb_err_deg": e["cobb_abs_err_deg"],
            "isl_rms_mm": line_errors(isl, resampled(scan.isl))[0]["rms_mm"], "cobb_deg": cobb,
            "cobb_clinical_deg": scan.meta["cobb"], "cobb_abs_err_deg": abs(cobb - scan.meta["cobb"]),
            "finetune_s": finetune_s}  # fmt: skip


MEASURES = ("esl_lateral_rms_mm", "esl_rms_mm", "esl_cobb_err_deg", "isl_rms_mm", "cobb_abs_err_deg")


def summarise(per_subject: list[dict[str, Any]], rows: list[str]) -> list[dict[str, Any]]:
    """One dict per row: each measure's mean over subjects and seeds, SD over subjects (of the seed-averaged values),
    and the range of the per-seed means (``_seed_range``; one seed: that mean twice)."""
    table = []
    for row in rows:
        recs = [r for r in per_subject if r["row"] == row]
        seeds = sorted({r.get("seed", 0) for r in recs})
        subjects = sorted({r["subject"] for r in recs})
        out: dict[str, Any] = {"row": row, "n": len(subjects), "seeds": len(seeds)}
        for key in MEASURES:
            per_seed = [np.mean([r[key] for r in recs if r.get("seed", 0) == s]) for s in seeds]
            per_subj = np.array([np.mean([r[key] for r in recs if r["subject"] == n]) for n in subjects])
            out[key] = float(np.mean([r[key] for r in recs]))
            out[key + "_sd"] = float(per_subj.std(ddof=1))
            out[key + "_seed_range"] = (float(min(per_seed)), float(max(per_seed)))
            out[key + "_text"] = f"{out[key]:.1f} ± {out[key + '_sd']:.1f}" + (
                f" ({min(per_seed):.1f}-{max(per_seed):.1f})" if len(seeds) > 1 else "")
        times = [r["finetune_s"] for r in recs if r["finetune_s"] is not None]
        out["finetune_s"] = float(np.mean(times)) if times else None
        table.append(out)
    return table


def paired_difference(per_subject: list[dict[str, Any]], row: str, reference: str) -> dict[str, Any]:
    """``row`` minus ``reference`` per (subject, seed), for each measure: the mean, the range of the per-seed means,
    and how many subjects ``row`` beats on average over the seeds (a negative difference is better)."""
    ref = {(r["subject"], r.get("seed", 0)): r for r in per_subject if r["row"] == reference}
    recs = [r for r in per_subject if r["row"] == row]
    out: dict[str, Any] = {"row": row, "reference": reference}
    for key in MEASURES:
        diff = {(r["subject"], r.get("seed", 0)): r[key] - ref[(r["subject"], r.get("seed", 0))][key] for r in recs}
        seeds, subjects = sorted({k[1] for k in diff}), sorted({k[0] for k in diff})
        per_seed = [np.mean([v for k, v in diff.items() if k[1] == s]) for s in seeds]
        better = sum(np.mean([v for k, v in diff.items() if k[0] == n]) < 0 for n in subjects)
        out[key] = float(np.mean(list(diff.values())))
        out[key + "_seed_range"] = (float(min(per_seed)), float(max(per_seed)))
        out[key + "_better"] = int(better)
        out[key + "_text"] = (f"{out[key]:+.1f}" + (f" ({min(per_seed):+.1f} to {max(per_seed):+.1f})" if len(seeds) > 1 else "")
                              + f", {better}/{len(subjects)} better")
    return out


#: Clinical Cobb band edges (degrees) of the per-band table: mild < 25, moderate 25-40, large >= 40 (the large-curve
#: backs of ``configs/estimator_mix_large_diffusion_landmarks.yaml`` are drawn with Cobb >= 40).
COBB_BAND_EDGES = (25.0, 40.0)


def band_names(edges: tuple[float, ...] = COBB_BAND_EDGES) -> list[str]:
    """Readable names of the bands that ``edges`` cut: ``["< 25", "25-40", ">= 40"]``."""
    inner = [f"{lo:.0f}-{hi:.0f}" for lo, hi in zip(edges[:-1], edges[1:])]
    return [f"< {edges[0]:.0f}", *inner, f">= {edges[-1]:.0f}"]


def by_cobb_band(per_subject: list[dict[str, Any]], rows: list[str],
                 edges: tuple[float, ...] = COBB_BAND_EDGES) -> list[dict[str, Any]]:
    """One dict per row: for each clinical Cobb band, the mean over its subjects and the seeds of the ESL 3D RMS (mm)
    and the clinical Cobb error on the row's ISL (degrees), as text ``"10.2 mm / 7.1°"``; ``n_<band>`` counts the
    subjects. A band with no subject reads ``None``."""
    names = band_names(edges)
    table = []
    for row in rows:
        recs = [r for r in per_subject if r["row"] == row]
        out: dict[str, Any] = {"row": row}
        for name, lo, hi in zip(names, (-np.inf, *edges), (*edges, np.inf)):
            inside = [r for r in recs if lo <= r["cobb_clinical_deg"] < hi]
            out["n_" + name] = len({r["subject"] for r in inside})
            out[name] = (f"{np.mean([r['esl_rms_mm'] for r in inside]):.1f} mm / "
                         f"{np.mean([r['cobb_abs_err_deg'] for r in inside]):.1f}°") if inside else None
        table.append(out)
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--init", action="append", required=True, metavar="[LABEL=]PATH",
                        help="a pre-trained ESL estimator in the landmark frame (checkpoint or folder), repeatable; a bare "
                             f"PATH is labelled {DEFAULT_LABEL!r}")
    parser.add_argument("--data", type=Path, default=DEFAULT_PCDARE, help="PCdare folder (read in place)")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=150, help="optimiser steps of each fine-tune (and of the real-only control)")
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="one fine-tune (and real-only control) per seed")
    parser.add_argument("--stem", default="estimator_finetune")
    args = parser.parse_args(argv)
    if args.folds < 2 or args.steps < 1:
        parser.error("--folds must be >= 2 and --steps >= 1")
    try:
        args.inits = parse_inits(args.init)
    except ValueError as exc:
        parser.error(str(exc))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    info, start = hardware_info(), time.perf_counter()
    per_subject = evaluate(args)
    table = summarise(per_subject, all_rows(list(args.inits)))
    labels = list(args.inits)
    paired = [paired_difference(per_subject, init_rows(label)[1], SHARED_ROWS[1]) for label in labels]
    against_first = [paired_difference(per_subject, init_rows(label)[1], init_rows(labels[0])[1]) for label in labels[1:]]
    paired_columns = [("row", "fine-tuned from", "")] + [(f"{key}_text", f"{name} difference", "") for key, name in
                                                         zip(MEASURES, ("ESL lateral [mm]", "ESL 3D [mm]", "ESL Cobb [deg]",
                                                                        "ISL [mm]", "clinical Cobb [deg]"))]
    bands = by_cobb_band(per_subject, [init_rows(label)[1] for label in labels] + list(SHARED_ROWS[1:3]))
    band_columns = [("row", "ESL estimator", "")] + [(name, f"Cobb {name}° (n={bands[0]['n_' + name]})", "")
                                                     for name in band_names()]
    wall = time.perf_counter() - start
    record = finished_run(info, wall)
    columns = [("row", "ESL estimator", ""), ("esl_lateral_rms_mm_text", "ESL lateral RMS [mm]", ""),
               ("esl_rms_mm_text", "ESL 3D RMS [mm]", ""), ("esl_cobb_err_deg_text", "ESL Cobb error [deg]", ""),
               ("isl_rms_mm_text", "ISL RMS, + fitted offset [mm]", ""),
               ("cobb_abs_err_deg_text", "Cobb MAE vs clinical, on that ISL [deg]", ""),
               ("finetune_s", "fine-tune per fold [s]", ".0f")]  # fmt: skip
    md = "\n".join([
        f"# Synthetic-pretrained network ESL estimators fine-tuned on real backs vs the furrow path (PCdare, {args.folds} folds)",
        "", f"`{command_line()}`", "", markdown_table(table, columns), "",
        "Pre-training against none (each fine-tuned row minus `real only, same steps`, the same subject and seed; mean"
        " over subjects and seeds, the range of the per-seed means, and the subjects better on average over seeds):",
        "", markdown_table(paired, paired_columns), "",
        *([f"Each other init against the first (`{labels[0]}`), fine-tuned rows, the same subject and seed:", "",
           markdown_table(against_first, paired_columns), ""] if against_first else []),
        "By clinical Cobb band (ESL 3D RMS / Cobb MAE vs clinical on the row's ISL; mean over the band's subjects and"
        " the seeds):", "", markdown_table(bands, band_columns), "",
        f"Mean ± SD over {table[0]['n']} subjects (SD of each subject's mean over seeds), seeds {args.seeds}"
        + (" (the range of the per-seed means in brackets)" if len(args.seeds) > 1 else "") + ". Pre-trained inits: "
        + ", ".join(f"{label} = `{path}`" for label, path in args.inits.items()) + f". Fine-tune: {args.steps} steps x batch"
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
    payload = {**record, "settings": {k: str(v) for k, v in vars(args).items()}, "table": table, "paired": paired,
               "against_first": against_first, "bands": bands, "per_subject": per_subject}
    return publish(args.stem, payload, md)


if __name__ == "__main__":
    raise SystemExit(main())
