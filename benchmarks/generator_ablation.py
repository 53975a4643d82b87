"""Generator ablation and scaling: which change gives thinner backs that carry their spine, per CPU-minute.

    python -m benchmarks.generator_ablation --variants baseline relative relative_minsnr --train-steps 600
    python -m benchmarks.generator_ablation --variants relative_minsnr --checkpoint relative_minsnr=PATH ...

Every variant starts from ``configs/quickstart.yaml``'s model (the 1.8 M-parameter PVCNN, v-prediction,
EMA, the configured optimiser) as it was before this ablation's changes (``ABLATION_BASE`` undoes the ones the
quickstart has since adopted) and changes one thing; all train on the same phantom scans for the same
optimiser steps, batch and training point count. Each is scored on held-out phantom spines (a subject-wise
test split, never trained on) at ``--eval-points`` points, one back per spine, sampled with the
quickstart's sampler, against the true scans of those spines:

* **surface**: median surface variation (:func:`pcdiff.metrics.surface.surface_variation`, k = 16; 0 for
  a sheet, 1/3 for a blob) and the 1st-99th percentile depth extent (mm), both medians over backs;
* **set**: 1-NNA-CD and COV-CD (generated vs true test set, normalised spine frame);
* **paired**: Chamfer distance (mm, mean of both directions) to the true scan of the same spine;
* **spine**: mean lateral deviation of the back's own midline from the requested ESL, and the requested
  ESL's mean distance to the nearest generated point (mm), at ``--eval-points``;
* **rotation**: does the back carry the rib hump / lumbar prominence of its spine's vertebral rotation? The
  left-right depth asymmetry beside the ESL against the true scan's (:func:`pcdiff.metrics.spine.asymmetry_agreement`):
  median over backs of the profiles' correlation and of their amplitude ratio (1 = as pronounced).

The floor row is a second phantom draw of each test spine: what the true distribution scores. ``--row-phantom-start
LABEL=STRENGTH`` samples a row from a phantom built around each test scan's own ESL and ISL (SDEdit; a row scoring
that start alone is added): on phantoms this is close to circular (the start comes from the model the test scans
come from), so it shows what the sampler keeps of a start at each strength, not realism. ``--second-seed``
samples every row again from other noise: the spread between noise draws, and whether the back's twist is set by
its spine or by the noise.
Writes ``benchmarks/results/<stem>.json`` and ``<stem>.md``.
"""

from __future__ import annotations

import argparse
import copy
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.fidelity import MODES, collect, floor_draws, phantom_modules
from benchmarks.reporting import command_line, hardware_info, markdown_table, timer, write_results
from benchmarks.sampling import sample_backs
from benchmarks.scoring import asymmetry_scores, paired_distances, spine_scores
from benchmarks.training import (
    BENCHMARK_MODEL_OVERRIDES,
    CONFIGS_DIR,
    quiet_lightning,
    read_train_config,
    train_point_diffusion,
)
from pcdiff.geometry.frames import to_mm

log = logging.getLogger("generator_ablation")

#: each variant: (what it changes, model-kwarg overrides, denoiser-kwarg overrides)
VARIANTS: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "baseline": ("configs/quickstart.yaml as shipped", {}, {}),
    "relative": ("+ spine-relative point features", {}, {"spine_relative": True}),
    "minsnr": ("+ Min-SNR-5 loss weighting", {"loss_weighting": "min_snr"}, {}),
    "relative_minsnr": ("+ spine-relative + Min-SNR-5", {"loss_weighting": "min_snr"}, {"spine_relative": True}),
    "box": ("+ fixed voxel box (1.5)", {}, {"voxel_normalize": False, "voxel_extent": 1.5}),
    "relative_box": ("+ spine-relative + fixed voxel box (1.5)", {},
                     {"spine_relative": True, "voxel_normalize": False, "voxel_extent": 1.5}),
    "relative_box_local": ("+ spine-relative + fixed box + local kNN surface blocks (k=16)", {},
                           {"spine_relative": True, "voxel_normalize": False, "voxel_extent": 1.5,
                            "local_neighbors": 16}),
    "straight_box": ("+ spine-straightened frame + fixed voxel box (1.5)", {"straighten": True},
                     {"voxel_normalize": False, "voxel_extent": 1.5}),
    "relative_box_surface": ("+ spine-relative + fixed box + local-plane skip (k=16)", {},
                             {"spine_relative": True, "voxel_normalize": False, "voxel_extent": 1.5,
                              "surface_neighbors": 16}),
    "straight_box_surface": ("+ spine-straightened frame + fixed box + local-plane skip (k=16)", {"straighten": True},
                             {"voxel_normalize": False, "voxel_extent": 1.5, "surface_neighbors": 16}),
}


#: the baseline's settings where the quickstart has since adopted a variant's change (model, denoiser kwargs)
ABLATION_BASE: tuple[dict[str, Any], dict[str, Any]] = (
    {"straighten": False, "sampler_kwargs": {}},
    {"voxel_normalize": True, "voxel_extent": 1.0, "surface_neighbors": 0, "spine_relative": False},
)


def variant_model_kwargs(name: str, lr_schedule: str | None) -> dict[str, Any]:
    """PointDiffusion kwargs of one variant: the quickstart's model section, reset to ``ABLATION_BASE``, with the
    variant's changes."""
    model = copy.deepcopy(read_train_config(CONFIGS_DIR / "quickstart.yaml")["model"])
    base, denoiser_base = ABLATION_BASE
    _, overrides, denoiser_overrides = VARIANTS[name]
    model.update({**base, **overrides})
    model["denoiser_kwargs"] = {**model.get("denoiser_kwargs", {}), **denoiser_base, **denoiser_overrides}
    if lr_schedule is not None:
        model["lr_schedule"] = lr_schedule
    model.update(BENCHMARK_MODEL_OVERRIDES)
    for key in ("num_points", "num_keypoints", "line", "normalize"):
        model.pop(key, None)
    return model


def score_surface(backs_mm: torch.Tensor) -> dict[str, float]:
    """Median surface variation, median 1-99 % depth and width (x) extents (mm) over backs (B, N, 3) in mm."""
    from pcdiff.metrics.surface import depth_extent, surface_variation

    return {
        "surface_variation": float(surface_variation(backs_mm).median()),
        "depth_extent_mm": float(depth_extent(backs_mm).median()),
        "width_extent_mm": float(depth_extent(backs_mm, axis=0).median()),  # lateral 1-99 %: the outline's width
    }


def score_row(backs: torch.Tensor, test: Any, emd: bool = False, judge_estimator: Any = None) -> dict[str, Any]:
    """Every metric of one row; ``backs`` (S, N, 3) normalised, one per test spine, in test order; with a
    ``judge_estimator`` (a loaded ESL ``SpineEstimator``) also the network judge's columns."""
    from pcdiff.metrics.generation import generation_metrics

    backs_mm = to_mm(backs, test.center, test.scale)
    row: dict[str, Any] = score_surface(backs_mm)
    row.update(generation_metrics(backs, test.points, distances=("cd", "emd") if emd else ("cd",), metrics=("cov", "1nna"),
                                  emd_method="auction"))
    row["paired_cd_mm"] = float(paired_distances(backs, test.points, test.scale, emd=False)["chamfer_mm"].mean())
    cond = spine_scores(backs_mm, test.esl_mm)
    for key, values in cond.items():
        ok = np.isfinite(values)
        row[key] = float(values[ok].mean()) if ok.any() else float("nan")
    row["spine_metric_failed"] = int((~np.isfinite(cond["lateral_mm"])).sum())
    for key, values in asymmetry_scores(backs_mm, to_mm(test.points, test.center, test.scale), test.esl_mm).items():
        row[key] = float(np.nanmedian(values)) if np.isfinite(values).any() else float("nan")
    row.update(judge_row(backs_mm, test.esl_mm, judge_estimator))
    return row


def judge_row(backs_mm: torch.Tensor, esl_mm: list[np.ndarray], estimator: Any = None) -> dict[str, float]:
    """The independent judges (issue #13). The network-free furrow-path reader
    (:func:`pcdiff.estimator.eval_metric.geometric_spine_metric`) reads each back's ESL between the requested ESL's
    ends: mean lateral RMS (mm) of the read line against the requested one, and mean |Cobb difference| (deg). With an
    ``estimator`` (an ESL ``SpineEstimator`` trained on other phantoms, ``configs/estimator_phantom_judge.yaml``) the
    network judge's lateral RMS, mean Cobb error, and mean Cobb error over large requested curves
    (:func:`benchmarks.judge_backs.judge_row`)."""
    from benchmarks.judge_backs import judge_row as summarise_judge
    from pcdiff.estimator.eval_metric import geometric_spine_metric, spine_estimator_metric

    judged = geometric_spine_metric(backs_mm.numpy(), esl_mm)
    row = {"judge_lateral_mm": judged["lateral_rms_mm"], "judge_cobb_deg": judged["cobb_mae_deg"],
           "judge_failed": int(judged["n_failed"])}
    if estimator is not None:
        net = summarise_judge(spine_estimator_metric(estimator, backs_mm.numpy(), esl_mm)["per_subject"])
        row.update(net_judge_lateral_mm=net["lateral_rms_mm"], net_judge_cobb_deg=net["cobb_mae_deg"],
                   net_judge_cobb_large_deg=net["cobb_mae_large_deg"])
    return row


def second_seed_row(backs_seed1: torch.Tensor, backs: torch.Tensor, test: Any) -> dict[str, float]:
    """A row's second noise draw (S, N, 3, normalised, one back per test spine): its 1-NNA-CD and rotation correlation
    against the true scans, and the median correlation of its rotation profiles with the first draw's."""
    from pcdiff.metrics.generation import generation_metrics

    second_mm = to_mm(backs_seed1, test.center, test.scale)
    true = asymmetry_scores(second_mm, to_mm(test.points, test.center, test.scale), test.esl_mm)
    draws = asymmetry_scores(second_mm, to_mm(backs, test.center, test.scale), test.esl_mm)
    return {
        "seed1_1-NNA-CD": generation_metrics(backs_seed1, test.points, distances=("cd",), metrics=("1nna",))["1-NNA-CD"],
        "seed1_asym_corr": float(np.nanmedian(true["asym_corr"])),
        "asym_corr_between_seeds": float(np.nanmedian(draws["asym_corr"])),
    }


def save_backs(path: Path, backs_mm: torch.Tensor, test: Any) -> None:
    """Write one row's backs (S, N, 3) mm beside the true test scans (mm), requested ESLs (mm) and spine names.

    Refuses to overwrite an existing file (a previous run's backs are kept)."""
    if path.exists():
        raise FileExistsError(f"{path} exists; choose another --save-backs folder")
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, backs_mm=backs_mm.numpy(), true_mm=to_mm(test.points, test.center, test.scale).numpy(),
                        names=np.asarray(test.names), **{f"esl_mm_{i}": e for i, e in enumerate(test.esl_mm)})


def parse_row_sampler(spec: str) -> tuple[str, tuple[str, int, dict[str, Any]]]:
    """``"LABEL=SAMPLER:STEPS[:karras]"`` -> (label, (sampler alias, steps, sampler kwargs)).

    >>> parse_row_sampler("fast=dpm++:20:karras")
    ('fast', ('dpm++', 20, {'use_karras_sigmas': True}))
    """
    label, sep, rest = spec.partition("=")
    parts = rest.split(":")
    if not sep or not label or len(parts) not in (2, 3) or not parts[1].isdigit() or int(parts[1]) < 1 \
            or (len(parts) == 3 and parts[2] != "karras"):
        raise argparse.ArgumentTypeError(f"--row-sampler {spec!r}: expected LABEL=SAMPLER:STEPS[:karras], "
                                         "e.g. reference=ddpm:1000 or fast=dpm++:20:karras")
    return label, (parts[0], int(parts[1]), {"use_karras_sigmas": True} if len(parts) == 3 else {})


def _label_value(spec: str, option: str, ok: Any, expected: str) -> tuple[str, float]:
    """``LABEL=NUMBER`` -> (label, number), refused with ``option`` and ``expected`` unless ``ok(number)``."""
    label, _, value = spec.partition("=")
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not label or not ok(number):
        raise argparse.ArgumentTypeError(f"{option} {spec!r}: expected {expected}")
    return label, number


def parse_row_guidance(spec: str) -> tuple[str, float]:
    """``LABEL=SCALE`` -> (label, scale), e.g. ``g2=2.0``; a scale must be a number >= 0."""
    return _label_value(spec, "--row-guidance", lambda v: v >= 0, "LABEL=SCALE with SCALE >= 0, e.g. g2=2.0")


PHANTOM_START_SEED = 104729  # seeds [this, i] the --row-phantom-start phantoms: neither the test scans' nor the floor's


def parse_row_phantom_start(spec: str) -> tuple[str, float]:
    """``LABEL=STRENGTH`` -> (label, strength in (0, 1]), e.g. ``ps02=0.2``."""
    return _label_value(spec, "--row-phantom-start", lambda v: 0.0 < v <= 1.0,
                        "LABEL=STRENGTH with STRENGTH in (0, 1], e.g. ps02=0.2")


def phantom_starts(test: Any, data_dir: Path, num_points: int) -> torch.Tensor:
    """A phantom around each test scan's own (posed) ESL and ISL, another body and scanner draw
    (:func:`pcdiff.data.phantom.phantom_for_lines`), in the test scan's normalised frame: (S, N, 3)."""
    from pcdiff.data.io import read_subject
    from pcdiff.data.phantom.from_lines import phantom_for_lines
    from pcdiff.geometry.frames import to_normalised

    out = []
    for i, name in enumerate(test.names):
        scan = read_subject(data_dir / name)
        points = phantom_for_lines(scan.esl, scan.isl, [PHANTOM_START_SEED, i], num_points).points
        out.append(to_normalised(torch.as_tensor(points), test.center[i], test.scale[i]))
    return torch.stack(out).float()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="*", default=None, choices=sorted(VARIANTS),
                        help="variants to train (default: all, or none when only --checkpoint rows are given)")
    parser.add_argument("--train-steps", type=int, default=600)
    parser.add_argument("--train-points", type=int, default=1024)
    parser.add_argument("--eval-points", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--train-scans", type=int, default=200)
    parser.add_argument("--test-scans", type=int, default=32)
    parser.add_argument("--num-keypoints", type=int, default=16)
    parser.add_argument("--phantom-seed", type=int, default=0,
                        help="seed of the phantom set (train and test split); score a model trained on phantom seed 0 "
                             "(the quickstart) or 1 (the shipped model) on another seed so no test back was trained on")
    parser.add_argument("--emd", action="store_true", help="also 1-NNA-EMD and COV-EMD (about 3 min for 100 vs 100)")
    parser.add_argument("--sampler", default=None, help="default: the quickstart's sampler")
    parser.add_argument("--steps", type=int, default=None, help="sampler steps (default: the quickstart's)")
    parser.add_argument("--karras", action="store_true",
                        help="sample with Karras sigmas (steps concentrated at low noise, where a back gets thin)")
    parser.add_argument("--lr-schedule", default=None, help="override the quickstart's LR schedule (e.g. constant_with_warmup)")
    parser.add_argument("--checkpoint", action="append", default=[], metavar="VARIANT=PATH",
                        help="score this checkpoint (.ckpt) or exported pipeline folder (pretrained/phantom-pvcnn) as "
                             "VARIANT instead of training it (repeatable); a label that is not a variant adds a row of "
                             "its own (e.g. step2000=outputs/phantom_pretrain/step2000.ckpt)")
    parser.add_argument("--row-sampler", action="append", default=[], type=parse_row_sampler,
                        metavar="LABEL=SAMPLER:STEPS[:karras]",
                        help="sample this row with its own sampler instead of --sampler/--steps/--karras, to compare "
                             "samplers side by side on one checkpoint (e.g. reference=ddpm:1000, fast=dpm++:20:karras)")
    parser.add_argument("--row-guidance", action="append", default=[], type=parse_row_guidance, metavar="LABEL=SCALE",
                        help="sample this row with classifier-free guidance at SCALE (default 1: conditional only), "
                             "e.g. two labels on one checkpoint to compare scales side by side")
    parser.add_argument("--row-phantom-start", action="append", default=[], type=parse_row_phantom_start,
                        metavar="LABEL=STRENGTH",
                        help="sample this row from a phantom of each test spine's own lines at this SDEdit strength "
                             "(a 'phantom of the lines' row, that start alone, is added)")
    parser.add_argument("--second-seed", action="store_true",
                        help="sample every row again from other noise (seed 1): its 1-NNA-CD and rotation correlation "
                             "(the spread between noise draws), and how far the two draws' rotation profiles agree "
                             "(1: the twist of the back is set by the spine; ~0: by the noise)")
    parser.add_argument("--density-scaled-skip", nargs="*", default=[], metavar="VARIANT",
                        help="rows (checkpoint labels) whose local-plane skip fits its plane over k scaled with the "
                             "point count (k x N / --train-points) instead of a fixed k")
    parser.add_argument("--save-checkpoints", type=Path, default=None, help="folder for <variant>.ckpt")
    parser.add_argument("--save-backs", type=Path, default=None,
                        help="folder for <variant>.npz: each row's generated backs (mm, (S, N, 3)), the test scans, "
                             "their requested ESLs and names, for plots and diagnostics without resampling")
    parser.add_argument("--judge-estimator", type=Path, default=None,
                        help="SpineEstimator checkpoint or exported folder (ESL, trained on other phantoms: pretrained/phantom-esl-judge) "
                             "adding the network judge's columns: ESL lateral RMS and Cobb error read off each back")
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--stem", default="generator_ablation")
    return parser.parse_args(argv)


def load_scored_model(path: str | Path) -> Any:
    """A model to score: a ``PointDiffusion`` training checkpoint (``.ckpt``) or an exported pipeline folder
    (``python -m pcdiff.export``, e.g. the shipped ``pretrained/phantom-pvcnn``), in eval mode on the CPU."""
    from pcdiff.diffusion.module import PointDiffusion
    from pcdiff.pipelines.spine_to_back import SpineToBackPipeline

    if Path(path).is_dir():
        pipe = SpineToBackPipeline.from_pretrained(path)
        pipe.denoiser.eval()
        return pipe
    return PointDiffusion.load_from_checkpoint(path, map_location="cpu").eval()


def density_scaled_skips(model: Any, train_points: int) -> list[Any] | None:
    """Make the local-plane skip of every denoiser that samples or trains in ``model`` (a checkpoint's weights and
    their EMA copy, or a pipeline's one denoiser) fit its plane over k scaled with the point count
    (``reference_points = train_points``); returns those skips, or None when a denoiser has none."""
    denoisers = [model.denoiser] + ([model.sampling_denoiser] if hasattr(model, "sampling_denoiser") else [])
    skips = [getattr(d, "surface_skip", None) for d in denoisers]
    if None in skips:
        return None
    for skip in skips:
        skip.reference_points = train_points
    return skips


def main(argv: list[str] | None = None) -> dict[str, Any]:
    import dataclasses

    args = parse_args(argv)
    judge = None
    if args.judge_estimator is not None:
        from pcdiff.estimator.eval_metric import load_estimator

        judge = load_estimator(args.judge_estimator)
        if judge.hparams.line != "esl":
            raise SystemExit(f"--judge-estimator {args.judge_estimator} predicts the {judge.hparams.line.upper()}; the judge reads the ESL")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    quiet_lightning()
    hardware = hardware_info()
    load_start = os.getloadavg()[0]
    quick = read_train_config(CONFIGS_DIR / "quickstart.yaml")["model"]
    sampler = args.sampler or quick["sampler"]
    steps = args.steps or quick["num_inference_steps"]
    sampler_kwargs = {"use_karras_sigmas": True} if args.karras else {}
    checkpoints = dict(spec.split("=", 1) for spec in args.checkpoint)
    row_samplers = dict(args.row_sampler)
    row_guidance = dict(args.row_guidance)
    row_phantom_start = dict(args.row_phantom_start)

    base = dataclasses.replace(
        MODES["quick"], num_points=args.train_points, train_scans=args.train_scans, test_scans=args.test_scans,
        batch_size=args.batch_size, num_keypoints=args.num_keypoints, seed=args.phantom_seed,
    )
    evaluation = dataclasses.replace(base, num_points=args.eval_points)
    with timer() as t_data:
        data_dir, dm, plain = phantom_modules(base, evaluation, args.cache_dir)
        test = collect(plain.dataset("test"))
        floor_points, test.esl_mm = floor_draws(test, data_dir, evaluation)
    log.info("data: %d test spines at %d points (%.0f s)", len(test.names), args.eval_points, t_data["s"])

    rows = [{"variant": "floor", "change": "second phantom draw", **score_row(floor_points, test, args.emd, judge)}]
    starts = phantom_starts(test, data_dir, args.eval_points) if row_phantom_start else None
    if starts is not None:
        rows.append({"variant": "phantom of the lines", "change": "phantom_for_lines of each test scan's ESL + ISL (no model)",
                     **score_row(starts, test, args.emd, judge)})
    true_surface = score_surface(to_mm(test.points, test.center, test.scale))
    variants = args.variants if args.variants is not None else ([] if checkpoints else list(VARIANTS))
    names = variants + [label for label in checkpoints if label not in variants]
    unknown = sorted((set(row_samplers) | set(row_guidance) | set(row_phantom_start)) - set(names))
    if unknown:
        raise SystemExit(f"--row-sampler / --row-guidance / --row-phantom-start name rows that do not exist: {unknown}; "
                         f"rows: {names}")
    if args.save_backs is not None and any((args.save_backs / f"{name}.npz").exists() for name in names):
        raise SystemExit(f"--save-backs {args.save_backs} already holds backs of these rows; choose another folder")
    for name in names:
        change = VARIANTS[name][0] if name in VARIANTS else f"checkpoint {checkpoints[name]}"
        loads = [os.getloadavg()[0]]
        if name in checkpoints:
            module, train_s = load_scored_model(checkpoints[name]), None
            if name in args.density_scaled_skip:
                skips = density_scaled_skips(module, args.train_points)
                if skips is None:
                    raise SystemExit(f"--density-scaled-skip {name}: the checkpoint has no local-plane skip")
                change += f" (skip k scaled: {skips[-1].neighbors_at(args.eval_points)} at {args.eval_points} points)"
        else:
            save = None if args.save_checkpoints is None else args.save_checkpoints / f"{name}.ckpt"
            module, train_s = train_point_diffusion(
                dm, max_steps=args.train_steps, seed=0, save_checkpoint=save, gradient_clip_val=1.0,
                **variant_model_kwargs(name, args.lr_schedule),
            )
        loads.append(os.getloadavg()[0])
        row_sampler, row_steps, row_kwargs = row_samplers.get(name, (sampler, steps, sampler_kwargs))
        draw = dict(num_points=args.eval_points, sampler=row_sampler, num_inference_steps=row_steps,
                    sampler_kwargs=row_kwargs, guidance_scale=row_guidance.get(name, 1.0))
        if name in row_phantom_start:
            draw.update(init=starts, strength=row_phantom_start[name])
        backs, sample_s = sample_backs(module, test.spine, seed=0, **draw)
        if args.save_backs is not None:
            save_backs(args.save_backs / f"{name}.npz", to_mm(backs, test.center, test.scale), test)
        sampled_with = f"{row_sampler} x {row_steps}{' Karras' if row_kwargs.get('use_karras_sigmas') else ''}"
        if name in row_guidance:
            sampled_with += f", guidance {row_guidance[name]:g}"
        if name in row_phantom_start:
            sampled_with += f", from the phantom of the lines at strength {row_phantom_start[name]:g}"
        row = {"variant": name, "change": change, "sampler": sampled_with, "train_s": train_s, "sample_s": sample_s,
               "load_1min": max(loads), **score_row(backs, test, args.emd, judge)}
        if args.second_seed:
            row.update(second_seed_row(sample_backs(module, test.spine, seed=1, **draw)[0], backs, test))
        log.info("%s: %s", name, {k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()})
        rows.append(row)

    columns = [
        ("variant", "variant", ""), ("change", "change", ""),
        *([("sampler", "sampler", "")] if row_samplers or row_guidance or row_phantom_start else []),
        ("surface_variation", "surface var.", ".4f"), ("depth_extent_mm", "depth 1-99% (mm)", ".0f"),
        ("width_extent_mm", "width 1-99% (mm)", ".0f"),
        ("1-NNA-CD", "1-NNA-CD %", ".1f"), ("COV-CD", "COV-CD %", ".1f"),
        *([("1-NNA-EMD", "1-NNA-EMD %", ".1f"), ("COV-EMD", "COV-EMD %", ".1f")] if args.emd else []),
        ("paired_cd_mm", "paired CD (mm)", ".1f"),
        ("lateral_mm", "midline lateral (mm)", ".1f"), ("esl_to_surface_mm", "ESL to surface (mm)", ".1f"),
        ("esl_to_plane_mm", "ESL to local plane (mm)", ".1f"),
        ("asym_corr", "rotation: asym. corr.", ".2f"), ("asym_amplitude_ratio", "rotation: asym. amplitude", ".2f"),
        *([("seed1_1-NNA-CD", "seed 1: 1-NNA-CD %", ".1f"), ("seed1_asym_corr", "seed 1: asym. corr.", ".2f"),
           ("asym_corr_between_seeds", "asym. corr. seed 0 vs 1", ".2f")] if args.second_seed else []),
        ("judge_lateral_mm", "judge: ESL lateral (mm)", ".1f"), ("judge_cobb_deg", "judge: ESL Cobb diff. (deg)", ".1f"),
        *([("net_judge_lateral_mm", "net judge: ESL lateral (mm)", ".1f"), ("net_judge_cobb_deg", "net judge: Cobb error (deg)", ".1f"),
           ("net_judge_cobb_large_deg", "net judge: Cobb error, large curves (deg)", ".1f")] if judge is not None else []),
        ("train_s", "train (s)", ".0f"), ("sample_s", "sample (s)", ".0f"), ("load_1min", "load", ".1f"),
    ]
    settings = {k: v for k, v in vars(args).items() if k not in ("cache_dir",)}
    settings.update(sampler=sampler, sampler_steps=steps, sampler_kwargs=sampler_kwargs)
    markdown = "\n".join([
        (f"# Generator ablation: {args.train_steps} steps x batch {args.batch_size} x {args.train_points} points, "
         if variants else "# Generator checkpoints "
         "(each trained elsewhere: the `change` column names the checkpoint; its step count is in the name), ")
        + f"scored at {args.eval_points} points on {len(test.names)} held-out phantoms (phantom seed {args.phantom_seed})",
        "", "```bash", command_line(), "```", "",
        f"True test scans: surface variation {true_surface['surface_variation']:.4f}, depth extent "
        f"{true_surface['depth_extent_mm']:.0f} mm, width extent {true_surface['width_extent_mm']:.0f} mm. Sampler{' (rows without their own)' if row_samplers else ''}: {sampler} x {steps}{' (Karras sigmas)' if args.karras else ''}. Load at start {load_start:.1f} "
        f"on {hardware.get('cpu_count')} cores (the `load` column is the highest 1-min load seen per row).",
        "", markdown_table(rows, columns), "",
    ])
    payload = {"settings": settings, "hardware": hardware, "true": true_surface, "rows": rows}
    write_results(args.stem, payload, markdown)
    print(markdown)
    return payload


if __name__ == "__main__":
    started = time.perf_counter()
    main()
    log.info("total %.0f s", time.perf_counter() - started)
