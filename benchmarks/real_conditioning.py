"""Conditioning fidelity on real backs (PCdare): does the generator beat copying the nearest training back?

    python -m benchmarks.real_conditioning                          # the shipped model, fine-tuned per fold (CPU)
    python -m benchmarks.real_conditioning --train-steps 0          # the shipped model zero-shot
    python -m benchmarks.real_conditioning --init none --pretrain-steps 2000   # phantom pre-training here, then folds
    python -m benchmarks.real_conditioning --init none --pretrain-steps 0      # real data only, from scratch
    python -m benchmarks.real_conditioning --phantom-start 0.2 0.25 --fold-dir outputs/folds   # + SDEdit rows; keep folds

Real subjects are read from ``--src`` (default ``../shared/data/pcdare``, never copied) by
``BackScanDataModule(layout="pcdare")``. Subjects are split into ``--folds`` subject-wise folds (5 x 4 for the
20 subjects). Per fold, a ``PointDiffusion`` conditioned on the real spinal line (``--line esl`` by default, the
line of the spinous processes on the skin, which the shipped model was trained with; ``isl`` = the radiographic
internal line) is fine-tuned on the other folds' subjects **through the user's command**: ``python -m pcdiff.train
<--train-config> --config configs/finetune.yaml --model.init_from <--init> --data.data_dir <--src>
--data.test_keys [held-out subjects] ...`` (:func:`benchmarks.training.train_with_cli`), starting from ``--init``
(default: the shipped pipeline folder ``pretrained/phantom-pvcnn``; a training checkpoint works too). With
``--init none`` the start is ``--pretrain-steps`` of phantom training through the same command (or, with 0,
nothing: real data only). For each held-out subject, ``--samples`` backs are generated from its own line and
compared with its real back:

* Chamfer (mm, not squared, mean of both directions) and EMD (mm) in millimetres, and Chamfer in the normalised
  spine frame (squared, summed);
* lateral deviation (mm) between the generated back's surface midline and the subject's real ESL, and the mean
  distance from the real ESL to the back's surface (:mod:`pcdiff.metrics.spine`), beside the 1st-99th percentile
  depth extent of the backs (a thick cloud lies near any line by chance);
* 1-NNA (CD and EMD) of the generated backs (first sample per subject) against the held-out real backs, pooled
  over folds.

With ``--phantom-start S ...`` two more kinds of rows: the phantom of each held-out subject's own ESL and ISL
(:func:`pcdiff.data.phantom.phantom_for_lines`, no model), and the same fold model sampled from that phantom at each
SDEdit strength S (``SpineToBackPipeline(init_backs=, strength=)``), scored like the generator. With
``--respine-start S ...``: the retrieved back moved onto the held-out subject's ESL and turned by the change in
axial rotation (:func:`pcdiff.data.respine.respine_donor`, no model; the turn's gain fitted on the fold's training
subjects, :func:`~pcdiff.data.respine.fit_rotation_gain`; also at the phantom prior's gain 1 and sheared only,
without the turn), and the fold model sampled from the fitted-gain back at each strength S. A respined back is a near-copy of a real training back, which is itself
held out in another fold, so like retrieval its 1-NNA is read per fold, not pooled. ``--fold-dir`` keeps
the fold models (and their recipes) and reuses them in a later run of the same settings.

The baseline is **retrieval**: the training subject (same fold) whose line keypoints are nearest the requested
ones in the normalised frame, its back placed in the requested line's frame. Results go to
``benchmarks/results/real_conditioning.{json,md}`` and a figure of real vs generated vs retrieved backs
(``real_conditioning.png``). PCdare: CC BY-NC-SA 4.0, Kaiser et al., doi 10.1371/journal.pone.0321429 and
10.1038/s41598-025-95902-1.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.reporting import DEFAULT_PCDARE, RESULTS_DIR, ROOT, command_line, markdown_table, write_results
from benchmarks.retrieval import nearest_spines
from benchmarks.sampling import sample_backs
from benchmarks.scoring import asymmetry_scores, paired_distances, spine_scores, summarize
from benchmarks.training import CONFIGS_DIR, read_train_config, start_run, train_with_cli
from pcdiff.data.phantom.from_lines import phantom_for_lines
from pcdiff.data.respine import Donor, fit_rotation_gain, respine_donor
from pcdiff.geometry.frames import to_mm, to_normalised

log = logging.getLogger("real_conditioning")


@dataclass
class Settings:
    """One configuration; every field is also a command-line option (``--train-steps`` ...)."""

    num_points: int  # points per back, generated and real, at evaluation
    train_points: int  # points per back while training (the shipped model was trained at 1024)
    folds: int
    train_steps: int  # per fold, on the real training subjects (0: the start model as it is)
    pretrain_steps: int  # on phantoms with the same line, once, before the folds (only with --init none)
    pretrain_scans: int
    batch_size: int
    finetune_lr: float  # learning rate on the real subjects after a phantom start (configs/finetune.yaml: 5e-4)
    finetune_warmup: int
    sampler: str
    sampler_steps: int
    samples: int  # generated backs per held-out subject
    num_keypoints: int = 16
    seed: int = 0
    karras: bool = True  # sample on Karras sigmas (most steps at low noise), as the shipped pipeline does


MODES: dict[str, Settings] = {
    # the shipped recipe: fine-tune the shipped model 400 steps per fold at the 2048 points it was last trained and
    # is sampled at (a model sampled at more points than it was trained on spreads its backs), ~30 min on 2 CPUs
    "quick": Settings(num_points=2048, train_points=2048, folds=5, train_steps=400, pretrain_steps=0, pretrain_scans=1000,
                      batch_size=8, finetune_lr=5e-4, finetune_warmup=50, sampler="sde-dpm++", sampler_steps=50, samples=2),
    "full": Settings(num_points=2048, train_points=2048, folds=5, train_steps=2000, pretrain_steps=0, pretrain_scans=1000,
                     batch_size=16, finetune_lr=5e-4, finetune_warmup=100, sampler="sde-dpm++", sampler_steps=50, samples=4),
    # seconds: only for the smoke test
    "tiny": Settings(num_points=64, train_points=64, folds=2, train_steps=2, pretrain_steps=2, pretrain_scans=8, batch_size=4,
                     finetune_lr=1e-4, finetune_warmup=1, sampler="dpm++", sampler_steps=2, samples=1),
}
#: the model the benchmark fine-tunes by default, and the training config it was trained with
SHIPPED_PIPELINE = ROOT / "pretrained" / "phantom-pvcnn"
SHIPPED_CONFIG = CONFIGS_DIR / "phantom_pretrain.yaml"
FINETUNE_CONFIG = CONFIGS_DIR / "finetune.yaml"


def subject_folds(names: list[str], k: int, seed: int) -> list[list[str]]:
    """Shuffle the subject keys with ``seed`` and cut them into ``k`` folds of (nearly) equal size."""
    if not 2 <= k <= len(names):
        raise ValueError(f"--folds must lie in [2, {len(names)}] (one subject per fold at most), got {k}")
    order = np.random.default_rng(seed).permutation(len(names))
    return [sorted(names[i] for i in part) for part in np.array_split(order, k)]


def make_datamodule(s: Settings, src: Path, line: str, cache_dir: Path | None, test_keys: list[str]) -> Any:
    """The PCdare subjects at ``s.num_points`` points, un-augmented, in ``line``'s frame, ``test_keys`` held out:
    the real backs the generated ones are scored against, and the retrieval bank."""
    from pcdiff.data.datamodule import BackScanDataModule

    return BackScanDataModule(data_dir=str(src), layout="pcdare", skip_invalid=True, test_keys=test_keys,
                              num_points=s.num_points, num_keypoints=s.num_keypoints, line=line, normalize="line",
                              augment=False, batch_size=s.batch_size, seed=s.seed,
                              cache_dir=None if cache_dir is None else str(cache_dir))


def stack(dataset: Any) -> dict[str, Any]:
    """An un-augmented ``BackScanDataset`` as stacked tensors: points, spine, center, scale, names."""
    items = [dataset[i] for i in range(len(dataset))]
    out = {k: torch.stack([it[k] for it in items]).float() for k in ("points", "spine", "center", "scale")}
    out["names"] = [it["name"] for it in items]
    return out


def evaluate(backs: torch.Tensor, real: dict[str, Any], esl_mm: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Per-subject distances of candidate backs (S, N, 3, normalised, requested frame) to the real backs, whether
    they carry the real back's rotation asymmetry beside its ESL (:func:`~benchmarks.scoring.asymmetry_scores`), and
    :func:`surface_scores`."""
    out = paired_distances(backs, real["points"], real["scale"], emd=True)
    out.update(asymmetry_scores(to_mm(backs, real["center"], real["scale"]),
                                to_mm(real["points"], real["center"], real["scale"]), esl_mm))
    out.update(surface_scores(backs, real, esl_mm))
    return out


def surface_scores(backs: torch.Tensor, real: dict[str, Any], esl_mm: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Per-subject scores of backs (S, N, 3, normalised) that need no real back: the real ESL's distance to their
    surface and lateral deviation from their midline (mm), their 1st-99th percentile depth extent (mm) and surface
    variation."""
    from pcdiff.metrics.surface import depth_extent, surface_variation

    backs_mm = to_mm(backs, real["center"], real["scale"])
    out = spine_scores(backs_mm, esl_mm)
    out["depth_extent_mm"] = depth_extent(backs_mm).numpy()
    out["surface_variation"] = surface_variation(backs_mm).numpy()
    return out


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, Settings]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=sorted(MODES), default="quick")
    parser.add_argument("--src", type=Path, default=DEFAULT_PCDARE, help="PCdare folder (CobbAngles.csv, Upright/<id>/...)")
    parser.add_argument("--line", choices=("isl", "esl"), default="esl", help="conditioning line")
    parser.add_argument("--init", default=str(SHIPPED_PIPELINE),
                        help="model to fine-tune per fold (a pipeline folder or a training checkpoint, as --model.init_from); "
                             "'none': --pretrain-steps of phantom training here first, or real data only with 0")
    parser.add_argument("--train-config", type=Path, default=SHIPPED_CONFIG,
                        help="the training config of the --init model (its architecture); layered under configs/finetune.yaml")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--phantom-start", type=float, nargs="*", default=[], metavar="STRENGTH",
                        help="also rows of the same fold model sampled from a phantom of the subject's own lines "
                             "(pcdiff.data.phantom.phantom_for_lines) at these SDEdit strengths, and the phantom itself")
    parser.add_argument("--respine-start", type=float, nargs="*", default=[], metavar="STRENGTH",
                        help="also rows of the retrieved back moved onto the subject's lines (pcdiff.data.respine, with "
                             "and without the turn), and of the fold model sampled from it at these SDEdit strengths")
    parser.add_argument("--draw", type=int, default=0,
                        help="another draw of the sampling noise and of the start phantoms (0: the default draw); with "
                             "--fold-dir, the spread between draws of the same fold models")
    parser.add_argument("--fold-dir", type=Path, default=None,
                        help="keep each fold's fine-tuned model in DIR/fold<f>/ and reuse the ones already there (same "
                             "held-out subjects and settings), e.g. to score other --phantom-start strengths without "
                             "training again (default: a temporary folder, deleted)")
    parser.add_argument("--twist-gain-fit", action="store_true",
                        help="fine-tune each fold in the untwisted frame with the gain fitted on its training subjects "
                             "(pcdiff.geometry.frames.fit_twist_gain) instead of the start weights' own gain")
    parser.add_argument("--out-stem", default="real_conditioning")
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    for f in dataclasses.fields(Settings):
        kind = {"int": int, "float": float, "str": str, "bool": lambda v: v.lower() in ("1", "true", "yes")}[f.type]
        parser.add_argument("--" + f.name.replace("_", "-"), type=kind, default=None)
    args = parser.parse_args(argv)
    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(Settings) if getattr(args, f.name) is not None}
    settings = dataclasses.replace(MODES[args.mode], **overrides)
    if not (args.src / "Upright").is_dir():
        parser.error(f"--src {args.src}: not a PCdare folder (expected {args.src / 'Upright'}; see ../shared/data/pcdare/README.md)")
    if not args.train_config.is_file():
        parser.error(f"--train-config {args.train_config}: no such file")
    args.init = None if args.init.lower() == "none" else Path(args.init)
    if args.init is not None and not args.init.exists():
        parser.error(f"--init {args.init}: no such checkpoint or pipeline folder ('none' to start without one)")
    for option in ("phantom_start", "respine_start"):
        if any(not 0.0 < v <= 1.0 for v in getattr(args, option)):
            parser.error(f"--{option.replace('_', '-')}: strengths must lie in (0, 1], got {getattr(args, option)}")
    if args.twist_gain_fit and settings.train_steps == 0:
        parser.error("--twist-gain-fit sets the frame of each fold's fine-tune; with --train-steps 0 there is none")
    if args.init is None and settings.pretrain_steps == 0 and settings.train_steps == 0:
        parser.error("--init none with --pretrain-steps 0 and --train-steps 0 leaves an untrained model")
    return args, settings


def cli_settings(s: Settings, line: str, cache_dir: Path | None, max_steps: int, device: str) -> dict[str, Any]:
    """The benchmark's own ``pcdiff.train`` settings (model / data / trainer sections), shared by every run; the
    trainer runs where ``--device`` says (``cuda...`` -> GPU, else CPU)."""
    data = dict(num_points=s.train_points, num_keypoints=s.num_keypoints, line=line, normalize="line", augment=True,
                batch_size=s.batch_size, seed=s.seed, val_fraction=0.0, test_fraction=0.0)
    if cache_dir is not None:
        data["cache_dir"] = str(cache_dir)
    return {"seed_everything": s.seed, "trainer": {"max_steps": max_steps, "accelerator": "gpu" if device.startswith("cuda") else "cpu"},
            "model": {"val_num_samples": 0, "log_images": False}, "data": data}


def kept_or_trained(run_dir: Path, recipe: dict[str, Any], train: Any) -> tuple[Path, float]:
    """A run's checkpoint (a fold's fine-tune, the phantom pre-training): reused when ``run_dir`` holds one trained
    with the same ``recipe`` (configs
    and settings, held-out subjects included), else trained by ``train()`` and recorded in ``run_dir/recipe.json``.

    Returns:
        (checkpoint, training seconds as recorded when it was trained).

    Raises:
        SystemExit: ``run_dir`` holds a checkpoint of another recipe (never overwritten).
    """
    import json

    record, last = run_dir / "recipe.json", run_dir / "last.ckpt"
    if last.exists():
        kept = json.loads(record.read_text()) if record.is_file() else None
        if kept is None or kept.get("recipe") != json.loads(json.dumps(recipe)):
            raise SystemExit(f"{run_dir}: holds a model of other settings or subjects; give --fold-dir a new folder")
        log.info("%s: reusing the model trained there (%.0f s)", run_dir, kept["train_s"])
        return last, float(kept["train_s"])
    checkpoint, train_s = train()
    record.write_text(json.dumps({"recipe": recipe, "train_s": train_s}, indent=1))
    return checkpoint, train_s


def fold_twist_gain(train_scans: list[Any]) -> float:
    """The untwisted frame's gain fitted on a fold's training subjects (:func:`pcdiff.geometry.frames.fit_twist_gain`
    in each scan's ESL "line" frame, as :mod:`benchmarks.twist_gain` reads it), never on the held-out ones."""
    from benchmarks.twist_gain import DISTANCE, RADIUS, normalised
    from pcdiff.geometry.frames import fit_twist_gain

    backs, lines = zip(*(normalised(scan) for scan in train_scans))
    return fit_twist_gain(list(backs), list(lines), DISTANCE, RADIUS)


def untrained_start(train_config: Path, init: Path, s: Settings, line: str) -> Any:
    """``--train-steps 0``: the model of ``train_config`` with the weights of ``init``, as ``pcdiff.train`` builds it."""
    from pcdiff.diffusion.module import PointDiffusion, initial_frame

    model = read_train_config(train_config)["model"]
    model.update(init_from=str(init), num_points=s.train_points, num_keypoints=s.num_keypoints, line=line, normalize="line",
                 **initial_frame(init))
    return PointDiffusion(**model).eval()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args, s = parse_args(argv)
    started, hardware = start_run()
    from pcdiff.data.pcdare import read_pcdare
    from pcdiff.diffusion.module import PointDiffusion, initial_frame

    scans = read_pcdare(args.src, skip_invalid=True)
    if len(scans) < s.folds:
        raise SystemExit(f"{args.src}: {len(scans)} usable subjects, fewer than --folds {s.folds}")
    esl_by_name = {scan.name: scan.esl for scan in scans}
    isl_by_name = {scan.name: scan.isl for scan in scans}
    names = sorted(esl_by_name)
    folds = subject_folds(names, s.folds, s.seed)

    # ---- the starting point: the given model, or phantom pre-training through the CLI
    init, pretrain_s = args.init, None
    if args.cache_dir is not None:
        args.cache_dir.mkdir(parents=True, exist_ok=True)
    if args.fold_dir is not None:  # kept, and reused where a fold's model is already there
        run_root = args.fold_dir
        run_root.mkdir(parents=True, exist_ok=True)
    else:
        run_root = Path(tempfile.mkdtemp(prefix="real_conditioning_", dir=args.cache_dir))  # the folds' own runs
    if init is None and s.pretrain_steps > 0:
        pretrain = cli_settings(s, args.line, args.cache_dir, s.pretrain_steps, args.device)
        pretrain["data"].update(data_dir=None, phantom_num_scans=s.pretrain_scans, phantom_seed=s.seed + 1)
        recipe = {"configs": [str(args.train_config)], "settings": pretrain}
        init, pretrain_s = kept_or_trained(run_root / "pretrain", recipe,
                                           lambda: train_with_cli([args.train_config], pretrain, run_root / "pretrain"))
        log.info("pre-trained on %d phantoms (%s) for %d steps in %.0f s", s.pretrain_scans, args.line, s.pretrain_steps, pretrain_s)

    zero_shot = untrained_start(args.train_config, init, s, args.line) if s.train_steps == 0 else None
    per_subject: list[dict[str, Any]] = []
    extra = candidate_rows(args.phantom_start, args.respine_start)
    pooled: dict[str, list[torch.Tensor]] = {"real": [], "generated": [], "retrieval": [], **{who: [] for who in extra}}
    fold_times = []
    plot_items = []
    for f, held_out in enumerate(folds):
        plain = make_datamodule(s, args.src, args.line, args.cache_dir, held_out)
        plain.setup("fit")
        real, bank = stack(plain.dataset("test")), stack(plain.dataset("train"))
        if set(real["names"]) != set(held_out) or set(real["names"]) & set(bank["names"]):
            raise RuntimeError(f"fold {f}: held-out {real['names']} != {held_out} or overlapping the training subjects")
        esl_mm = [np.asarray(esl_by_name[n], dtype=np.float64) for n in real["names"]]
        if zero_shot is not None:  # the start model as it is, the same for every fold
            module, train_s = zero_shot, 0.0
        else:  # python -m pcdiff.train <config> [--config configs/finetune.yaml] --config <this fold's settings>
            fold = cli_settings(s, args.line, args.cache_dir, s.train_steps, args.device)
            fold["seed_everything"] = s.seed + f
            fold["data"].update(data_dir=str(args.src), layout="pcdare", skip_invalid=True, test_keys=list(held_out))
            configs = [args.train_config]
            if init is not None:
                configs.append(FINETUNE_CONFIG)
                # fine-tuned in the frame the start weights were trained in (straightened / untwisted), or with the
                # untwisting gain of this fold's training subjects
                fold["model"].update(init_from=str(init), lr=s.finetune_lr, warmup_steps=s.finetune_warmup, **initial_frame(init))
            if args.twist_gain_fit:
                twist_gain = fold_twist_gain([scan for scan in scans if scan.name not in held_out])
                fold["model"].update(straighten=True, twist_gain=twist_gain)
            recipe = {"configs": [str(c) for c in configs], "settings": fold}
            checkpoint, train_s = kept_or_trained(run_root / f"fold{f}", recipe,
                                                  lambda: train_with_cli(configs, fold, run_root / f"fold{f}"))
            module = PointDiffusion.load_from_checkpoint(str(checkpoint), map_location="cpu").eval()
        q = len(real["names"])
        noise_seed = 1000 * f + 100_000 * args.draw  # draw 0: the seeds every earlier run used
        draw = [args.draw] if args.draw else []
        spines = real["spine"].repeat(s.samples, 1, 1)  # (samples * Q, K, 3): sample j of subject i at j * Q + i
        def sample(spines: torch.Tensor, **start: Any) -> tuple[torch.Tensor, float]:
            """The fold model's backs for ``spines`` (normalised), from noise or from ``init=``, ``strength=``."""
            return sample_backs(module, spines, num_points=s.num_points, sampler=s.sampler, num_inference_steps=s.sampler_steps,
                                seed=noise_seed, device=args.device,
                                sampler_kwargs={"use_karras_sigmas": True} if s.karras else None, **start)

        backs, sample_s = sample(spines)
        idx, dist = nearest_spines(real["spine"], bank["spine"])
        retrieved = bank["points"][idx]
        gen_scores = [evaluate(backs[j * q : (j + 1) * q], real, esl_mm) for j in range(s.samples)]
        ret_scores = evaluate(retrieved, real, esl_mm)
        # the real back itself, the reference for thickness and ESL; its distances to itself are 0 by definition
        own_scores = {**{k: np.zeros(q) for k in ret_scores}, "asym_corr": np.ones(q), "asym_amplitude_ratio": np.ones(q),
                      **surface_scores(real["points"], real, esl_mm)}
        extra_backs: dict[str, torch.Tensor] = {}
        if args.phantom_start:  # a phantom of each held-out subject's own lines, in its frame; the model sampled from it
            phantoms = torch.stack([
                to_normalised(torch.as_tensor(phantom_for_lines(esl_by_name[n], isl_by_name[n], [s.seed, f, i, *draw],
                                                                s.num_points).points), real["center"][i], real["scale"][i])
                for i, n in enumerate(real["names"])]).float()
            extra_backs["phantom"] = phantoms
            for strength in args.phantom_start:
                extra_backs[sdedit_key(strength)] = sample(real["spine"], init=phantoms, strength=strength)[0]
        if args.respine_start:  # the retrieved back moved onto the subject's lines; the model sampled from it
            turn_gain = fit_rotation_gain([Donor(mm_back(bank, j), esl_by_name[n], isl_by_name[n], n)
                                           for j, n in enumerate(bank["names"])])  # on the training subjects only
            for who, gain in (("respined", turn_gain), ("respined_prior", 1.0), ("respined_shear", 0.0)):
                extra_backs[who] = respined_backs(real, bank, idx, esl_by_name, isl_by_name, gain)
            for strength in args.respine_start:
                extra_backs[sdedit_key(strength, "respine")] = sample(real["spine"], init=extra_backs["respined"],
                                                                      strength=strength)[0]
        extra_scores = {who: evaluate(b, real, esl_mm) for who, b in extra_backs.items()}
        for i, name in enumerate(real["names"]):
            row = {"fold": f, "subject": name, "retrieved": bank["names"][int(idx[i])],
                   "retrieval_line_rms_mm": float(dist[i] * real["scale"][i])}
            for key in gen_scores[0]:
                row[f"gen_{key}"] = float(np.mean([g[key][i] for g in gen_scores]))
                row[f"ret_{key}"] = float(ret_scores[key][i])
                row[f"real_{key}"] = float(own_scores[key][i])
                for who, scores in extra_scores.items():
                    row[f"{who}_{key}"] = float(scores[key][i])
            per_subject.append(row)
        pooled["real"].append(real["points"])
        pooled["generated"].append(backs[:q])
        pooled["retrieval"].append(retrieved)
        for who, b in extra_backs.items():
            pooled[who].append(b)
        fold_times.append({"fold": f, "held_out": held_out, "train_s": train_s, "sample_s_per_back": sample_s / len(spines),
                           **({"turn_gain": turn_gain} if args.respine_start else {}),
                           **({"twist_gain": twist_gain} if args.twist_gain_fit else {})})
        plot_items.append((real, backs[:q], retrieved, esl_mm))
        log.info("fold %d: held out %s; trained %.0f s; gen CD %.1f mm vs retrieval %.1f mm", f, held_out, train_s,
                 np.mean([r["gen_chamfer_mm"] for r in per_subject if r["fold"] == f]),
                 np.mean([r["ret_chamfer_mm"] for r in per_subject if r["fold"] == f]))

    summary = summarize_rows(per_subject, pooled, list(extra), copies=list(respine_candidates(args.respine_start)))
    payload = {
        "benchmark": "real_conditioning", "mode": args.mode, "command": command_line(), "hardware": hardware,
        "settings": dataclasses.asdict(s), "line": args.line, "src": str(args.src), "device": args.device,
        "init": None if init is None else str(init), "init_kind": "given" if args.init else ("phantom pre-training" if init else "none"),
        "pretrain_s": pretrain_s, "model_config": str(args.train_config),
        "training": "python -m pcdiff.train (benchmarks.training.train_with_cli)" if s.train_steps else "none (zero-shot)",
        "folds": fold_times, "summary": summary, "subjects": per_subject, "phantom_start": list(args.phantom_start),
        "respine_start": list(args.respine_start), "draw": args.draw,
    }
    if args.fold_dir is None:
        shutil.rmtree(run_root, ignore_errors=True)  # fold checkpoints are the benchmark's own temporary files
    payload["total_s"] = time.perf_counter() - started
    payload["figure"] = _plot(args.out_dir / f"{args.out_stem}.png", plot_items).name
    write_results(args.out_stem, payload, render_markdown(payload), args.out_dir)
    log.info("wrote %s/%s.{json,md,png} (%.0f s in all)", args.out_dir, args.out_stem, payload["total_s"])
    return payload


def summarize_rows(rows: list[dict[str, Any]], pooled: dict[str, list[torch.Tensor]], extra: list[str] = (),
                   copies: list[str] = ()) -> dict[str, Any]:
    """Mean/std/median over subjects of each metric for generator and retrieval (and the ``extra`` candidates, e.g.
    the phantom and the generator started from it), per-subject wins, and 1-NNA.

    1-NNA (CD and EMD, in %) is computed per fold (the fold's generated or retrieved backs against its held-out
    real backs) and averaged over folds, for both; and pooled over all folds for the generator only: pooled,
    a retrieved back is a real back of a training subject that is itself held out in another fold, so the
    retrieval set would contain exact copies of reference clouds and its pooled 1-NNA would mean nothing. The same
    holds for the ``copies`` among ``extra`` (backs made from a retrieved one): per fold only.
    """
    from pcdiff.metrics.generation import generation_metrics

    keys = [k[4:] for k in rows[0] if k.startswith("gen_")]
    out: dict[str, Any] = {}
    for who in ("gen", "ret", "real", *extra):
        out[who] = {}
        for k in keys:
            values = np.array([r[f"{who}_{k}"] for r in rows])
            ok = np.isfinite(values)  # NaN: the spine metric could not be measured on that back (counted)
            out[who][k] = {**summarize(values[ok]), "unmeasurable": int((~ok).sum())} if ok.any() else {"unmeasurable": len(values)}
    out["generator_wins"] = {k: int(sum(r[f"gen_{k}"] < r[f"ret_{k}"] for r in rows))
                             for k in keys if k not in ("depth_extent_mm", "surface_variation", "asym_corr", "asym_amplitude_ratio")}
    out["subjects"] = len(rows)
    for who in ("generated", "retrieval"):
        per_fold = [generation_metrics(c, real, metrics=("1nna",), emd_method="exact")
                    for c, real in zip(pooled[who], pooled["real"])]
        out[f"{who}_vs_real_per_fold"] = per_fold
        out[f"{who}_vs_real_fold_mean"] = {k: float(np.mean([m[k] for m in per_fold])) for k in ("1-NNA-CD", "1-NNA-EMD")}
    for who in ("generated", *(w for w in extra if w not in copies)):  # none a copy of a real back: pooling is fair
        out[f"{who}_vs_real_pooled"] = generation_metrics(torch.cat(pooled[who]), torch.cat(pooled["real"]), emd_method="exact")
    for who in extra:
        per_fold = [generation_metrics(c, real, metrics=("1nna",), emd_method="exact") for c, real in zip(pooled[who], pooled["real"])]
        out[f"{who}_vs_real_fold_mean"] = {k: float(np.mean([m[k] for m in per_fold])) for k in ("1-NNA-CD", "1-NNA-EMD")}
    return out


def sdedit_key(strength: float, start: str = "") -> str:
    """The result key of the generator started from the subject's phantom (``start=""``, e.g. ``sdedit0.2``) or from
    its respined retrieved back (``"respine"``: ``respine_sdedit0.2``) at ``strength``."""
    return f"{start + '_' if start else ''}sdedit{strength:g}"


def phantom_candidates(strengths: list[float]) -> dict[str, str]:
    """Result key -> table label of the ``--phantom-start`` rows (none without strengths)."""
    if not strengths:
        return {}
    return {"phantom": "phantom of the subject's lines (no model)",
            **{sdedit_key(v): f"generator started from that phantom, strength {v:g}" for v in strengths}}


def respine_candidates(strengths: list[float]) -> dict[str, str]:
    """Result key -> table label of the ``--respine-start`` rows (none without strengths)."""
    if not strengths:
        return {}
    return {"respined": "retrieved back moved onto the subject's lines, turn gain fitted in-fold (no model)",
            "respined_prior": "retrieved back moved onto the subject's lines, turn gain 1 (phantom prior; no model)",
            "respined_shear": "retrieved back sheared onto the subject's ESL, not turned (no model)",
            **{sdedit_key(v, "respine"): f"generator started from the moved back, strength {v:g}" for v in strengths}}


def mm_back(data: dict[str, Any], j: int) -> np.ndarray:
    """(N, 3) float64 mm: back ``j`` of a :func:`stack` in its own frame."""
    return to_mm(data["points"][j].double().numpy(), data["center"][j].double().numpy(), float(data["scale"][j]))


def respined_backs(real: dict[str, Any], bank: dict[str, Any], idx: torch.Tensor,
                   esl_by_name: dict[str, np.ndarray], isl_by_name: dict[str, np.ndarray], rotation_gain: float) -> torch.Tensor:
    """Each retrieved back moved onto its held-out subject's lines (:func:`pcdiff.data.respine.respine_donor`, as
    ``python -m pcdiff.generate --donor-start`` does): the donor's points in its own mm frame, its lines, the subject's.

    Args:
        idx: (Q,) the retrieved backs' rows in ``bank`` (:func:`~benchmarks.retrieval.nearest_spines`).
        real, bank: :func:`stack` of the held-out and the training subjects.
        esl_by_name, isl_by_name: every subject's lines, (L, 3) mm.
        rotation_gain: :func:`~pcdiff.data.respine.respine_back`'s (0: shear only).

    Returns:
        (Q, N, 3) normalised in each held-out subject's frame.
    """
    out = []
    for i, name in enumerate(real["names"]):
        j = int(idx[i])
        donor = bank["names"][j]
        moved = respine_donor(Donor(mm_back(bank, j), esl_by_name[donor], isl_by_name[donor], donor), esl_by_name[name],
                              isl_by_name[name], rotation_gain=rotation_gain)
        out.append(to_normalised(moved.astype(np.float64), real["center"][i].double().numpy(), float(real["scale"][i])))
    return torch.as_tensor(np.stack(out)).float()


def _plot(path: Path, items: list[tuple[dict[str, Any], torch.Tensor, torch.Tensor, list[np.ndarray]]]) -> Path:
    """Real | generated | retrieved back (mm, back view, real ESL drawn) for the first subject of each fold."""
    from pcdiff.viz.static import save_point_cloud_figure

    clouds, spines, titles = [], [], []
    for real, gen, ret, esl in items:
        frame = (real["center"][:1], real["scale"][:1])
        for label, cloud in (("real", real["points"]), ("generated", gen), ("retrieved", ret)):
            clouds.append(to_mm(cloud[:1], *frame)[0].numpy())
            spines.append(esl[0])
            titles.append(f"{real['names'][0]}: {label}")
    return save_point_cloud_figure(path, clouds, spines, titles, views=("back",), clouds_per_row=3)


COLUMNS = [
    ("what", "", ""), ("chamfer_mm", "CD mm", ".2f"), ("emd_mm", "EMD mm", ".2f"), ("chamfer_sq", "CD (norm., sq.)", ".2e"),
    ("lateral_mm", "lateral dev. to real ESL mm", ".2f"), ("esl_to_surface_mm", "real ESL to surface mm", ".2f"),
    ("esl_to_plane_mm", "real ESL to local plane mm", ".2f"), ("depth_extent_mm", "depth 1-99% mm", ".0f"), ("surface_variation", "surface var.", ".3f"),
    ("asym_corr", "rotation: asym. corr.", ".2f"), ("asym_amplitude_ratio", "rotation: asym. amplitude", ".2f"),
    ("unmeasurable", "unmeasurable", "d"),
    ("fold 1-NNA-CD", "1-NNA-CD % (per fold)", ".1f"), ("fold 1-NNA-EMD", "1-NNA-EMD % (per fold)", ".1f"),
    ("pooled 1-NNA-CD", "1-NNA-CD % (pooled)", ".1f"), ("pooled 1-NNA-EMD", "1-NNA-EMD % (pooled)", ".1f"),
]


def render_markdown(p: dict[str, Any]) -> str:
    s, hw, summ = p["settings"], p["hardware"], p["summary"]
    rows = []
    candidates = [("gen", "generator", "generated"), ("ret", "retrieval (nearest training line)", "retrieval"),
                  *((who, label, who) for who, label in candidate_rows(p.get("phantom_start", []), p.get("respine_start", [])).items()),
                  ("real", "real back (reference)", None)]
    for who, label, sets in candidates:
        row = {"what": label, **{k: v.get("mean") for k, v in summ[who].items()},
               "unmeasurable": summ[who]["lateral_mm"]["unmeasurable"]}
        if sets is not None:
            row.update({f"fold {k}": v for k, v in summ[f"{sets}_vs_real_fold_mean"].items()})
        if sets is not None and f"{sets}_vs_real_pooled" in summ:
            row.update({f"pooled {k}": summ[f"{sets}_vs_real_pooled"][k] for k in ("1-NNA-CD", "1-NNA-EMD")})
        rows.append(row)
    wins = summ["generator_wins"]
    lines = [
        f"# Conditioning fidelity on real backs ({p['mode']} mode, line = {p['line'].upper()})",
        "",
        f"Command: `{p['command']}`  ",
        f"Hardware: {hw['platform']}, {hw['cpu_count']} CPUs ({hw['torch_threads']} torch threads), torch {hw['torch']}; "
        f"device `{p['device']}`; total wall time {p['total_s'] / 60:.1f} min  ",
        f"Data: {summ['subjects']} PCdare subjects (Kaiser et al., CC BY-NC-SA 4.0), {s['folds']} subject-wise folds, "
        f"{s['num_points']} points per back, {s['num_keypoints']} line keypoints, normalised in the {p['line'].upper()} frame.  ",
        f"Model: the architecture of {Path(p['model_config']).name}; start: {p['init_kind']}"
        + (f" `{Path(p['init']).name}`" if p["init_kind"] == "given" else "")
        + (f" ({s['pretrain_steps']} steps x batch {s['batch_size']} on {s['pretrain_scans']} phantoms with the same line, "
           f"{p['pretrain_s']:.0f} s)" if p["pretrain_s"] else "")
        + f"; per fold {s['train_steps']} steps x batch {s['batch_size']} x {s['train_points']} points on the training "
        f"subjects through `python -m pcdiff.train`"
        + (f" (lr {s['finetune_lr']:g})" if p["init"] else "") + " "
        f"(mean {np.mean([f['train_s'] for f in p['folds']]):.0f} s); sampler {s['sampler']} {s['sampler_steps']} steps, "
        f"{s['samples']} backs per subject ({np.mean([f['sample_s_per_back'] for f in p['folds']]):.2f} s per back)"
        + (f"; noise and start phantoms of draw {p['draw']}" if p.get("draw") else "") + ".",
        "",
        "Means over held-out subjects (each subject's generated figures averaged over its samples). 1-NNA: the first "
        "generated sample per subject (or the retrieved back) vs the held-out real backs, 50% = indistinguishable; "
        "per fold (averaged over folds) for both, pooled over folds for the generator only (pooled, retrieved backs are "
        "exact copies of other folds' held-out backs).",
        "",
        markdown_table(rows, COLUMNS),
        "",
        *([f"Untwisted frame's gain, fitted on each fold's training subjects (--twist-gain-fit): "
           + ", ".join(f"{f['twist_gain']:.2f}" for f in p["folds"]) + ".", ""] if "twist_gain" in p["folds"][0] else []),
        *([f"Turn gain of the moved backs, fitted on each fold's training subjects: "
           + ", ".join(f"{f['turn_gain']:.2f}" for f in p["folds"]) + ".", ""] if "turn_gain" in p["folds"][0] else []),
        f"Generator better than retrieval, per subject: " + ", ".join(f"{k} {v}/{summ['subjects']}" for k, v in wins.items()) + ".",
        "",
        verdict(summ),
        "",
        targets(summ),
        *(targets(summ, who, label) for who, label in candidate_rows(p.get("phantom_start", []), p.get("respine_start", [])).items() if who != "phantom"),
    ]
    return "\n".join(lines)


def candidate_rows(phantom_start: list[float], respine_start: list[float]) -> dict[str, str]:
    """Result key -> label of the extra rows of ``--phantom-start`` and ``--respine-start`` strengths."""
    return {**phantom_candidates(phantom_start), **respine_candidates(respine_start)}


def targets(summ: dict[str, Any], who: str = "gen", label: str = "generator") -> str:
    """Issue #12's real-back targets, each with its figure: the real ESL >= 40% closer to the generated surface than
    to the retrieved one, with the generated depth extent within 25% of the real one's; paired Chamfer no worse than
    retrieval's; pooled 1-NNA-CD <= 75%."""
    mean = lambda who, k: summ[who][k].get("mean", float("nan"))  # noqa: E731
    closer = {k: 1.0 - mean(who, k) / mean("ret", k) for k in ("esl_to_surface_mm", "esl_to_plane_mm") if k in summ[who]}
    real_closer = {k: 1.0 - mean("real", k) / mean("ret", k) for k in closer}
    depth = mean(who, "depth_extent_mm") / mean("real", "depth_extent_mm")
    sets = "generated" if who == "gen" else who
    pooled = f"{sets}_vs_real_pooled" in summ  # copies of real backs: per fold only
    nna = summ[f"{sets}_vs_real_pooled" if pooled else f"{sets}_vs_real_fold_mean"]["1-NNA-CD"]
    mark = lambda ok: "met" if ok else "NOT met"  # noqa: E731
    reading = {"esl_to_surface_mm": "to the nearest point", "esl_to_plane_mm": "to the local plane of the nearest points"}
    esl = [f"{100 * closer[k]:.1f}% {reading[k]} (>= 40%: {mark(closer[k] >= 0.4)}; the real back itself: "
           f"{100 * real_closer[k]:.1f}%)" for k in closer]
    return "\n".join([
        f"Targets (issue #12), {label}:",
        f"- real ESL closer to the generated surface than to the retrieved one: {'; '.join(esl)}; generated depth "
        f"extent {depth:.2f}x the real one's (within 25%: {mark(abs(depth - 1) <= 0.25)});",
        f"- paired Chamfer {mean(who, 'chamfer_mm'):.2f} vs retrieval {mean('ret', 'chamfer_mm'):.2f} mm "
        f"(no worse: {mark(mean(who, 'chamfer_mm') <= mean('ret', 'chamfer_mm'))});",
        f"- 1-NNA-CD of generated vs held-out real backs, {'pooled' if pooled else 'per fold (near-copies of real backs)'}: "
        f"{nna:.1f}% (<= 75%: {mark(nna <= 75)}).",
    ])


def verdict(summ: dict[str, Any]) -> str:
    """One honest sentence: does the generator beat retrieval on the paired distances and the lateral deviation?"""
    keys = [k for k in ("chamfer_mm", "emd_mm", "lateral_mm") if k in summ["gen"]]
    better = [k for k in keys if summ["gen"][k].get("mean", np.inf) < summ["ret"][k].get("mean", np.inf)]
    if len(better) == len(keys):
        return f"The generator beats retrieval on mean {', '.join(keys)}."
    if not better:
        return f"The generator does NOT beat retrieval: retrieval is better on mean {', '.join(keys)}."
    return f"Mixed: the generator is better on mean {', '.join(better)}, retrieval on {', '.join(k for k in keys if k not in better)}."


if __name__ == "__main__":
    main()
