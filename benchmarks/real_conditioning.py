"""Conditioning fidelity on real backs (PCdare): does the generator beat copying the nearest training back?

    python -m benchmarks.real_conditioning --mode quick                      # CPU; phantom pre-training + 5 folds
    python -m benchmarks.real_conditioning --mode quick --init phantom.ckpt  # fine-tune a phantom-trained model
    python -m benchmarks.real_conditioning --mode full --device cuda --line esl

Real subjects are read from ``--src`` (default ``../shared/data/pcdare``, never copied) by
``BackScanDataModule(layout="pcdare")``. Subjects are split into ``--folds`` subject-wise folds (5 x 4 for the
20 subjects). Per fold, a ``PointDiffusion`` conditioned on the real spinal line (``--line isl`` by default,
the radiographic internal line; ``esl`` = the line of the spinous processes on the skin) is trained on the
other folds' subjects, starting from a phantom-trained model (``--init`` checkpoint, or ``--pretrain-steps``
on the phantom set with the same line; 0 and no ``--init`` = real data only). For each held-out subject,
``--samples`` backs are generated from its own line and compared with its real back:

* Chamfer (mm, not squared, mean of both directions) and EMD (mm) in millimetres, and Chamfer in the normalised
  spine frame (squared, summed);
* lateral deviation (mm) between the generated back's surface midline and the subject's real ESL
  (:mod:`pcdiff.metrics.spine`);
* 1-NNA (CD and EMD) of the generated backs (first sample per subject) against the held-out real backs, pooled
  over folds.

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
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.reporting import DEFAULT_PCDARE, RESULTS_DIR, command_line, markdown_table, write_results
from benchmarks.retrieval import nearest_spines
from benchmarks.sampling import sample_backs
from benchmarks.scoring import paired_distances, spine_scores, summarize
from benchmarks.training import BENCHMARK_MODEL_OVERRIDES, model_settings, start_run, train_point_diffusion
from pcdiff.geometry.frames import to_mm

log = logging.getLogger("real_conditioning")


@dataclass
class Settings:
    """One configuration; every field is also a command-line option (``--train-steps`` ...)."""

    num_points: int
    folds: int
    train_steps: int  # per fold, on the real training subjects
    pretrain_steps: int  # on phantoms with the same line, once, before the folds (ignored with --init)
    pretrain_scans: int
    batch_size: int
    model_source: str  # "quickstart" (configs/quickstart.yaml) or "configs" (configs/<denoiser>.yaml): pre-training settings
    finetune_lr: float  # peak learning rate on the real subjects (after the phantom start)
    finetune_warmup: int
    sampler: str
    sampler_steps: int
    samples: int  # generated backs per held-out subject
    denoiser: str = "pvcnn"
    num_keypoints: int = 16
    seed: int = 0
    karras: bool = False  # sample on Karras sigmas (most steps at low noise)


MODES: dict[str, Settings] = {
    "quick": Settings(num_points=512, folds=5, train_steps=120, pretrain_steps=800, pretrain_scans=160, batch_size=8,
                      model_source="quickstart", finetune_lr=5e-4, finetune_warmup=20, sampler="dpm++",
                      sampler_steps=20, samples=2),
    "full": Settings(num_points=2048, folds=5, train_steps=2000, pretrain_steps=20000, pretrain_scans=1000,
                     batch_size=16, model_source="configs", finetune_lr=5e-5, finetune_warmup=100, sampler="dpm++",
                     sampler_steps=50, samples=4, num_keypoints=32),
    # seconds: only for the smoke test
    "tiny": Settings(num_points=64, folds=2, train_steps=2, pretrain_steps=2, pretrain_scans=8, batch_size=4,
                     model_source="quickstart", finetune_lr=1e-4, finetune_warmup=1, sampler="dpm++",
                     sampler_steps=2, samples=1),
}


def subject_folds(names: list[str], k: int, seed: int) -> list[list[str]]:
    """Shuffle the subject keys with ``seed`` and cut them into ``k`` folds of (nearly) equal size."""
    if not 2 <= k <= len(names):
        raise ValueError(f"--folds must lie in [2, {len(names)}] (one subject per fold at most), got {k}")
    order = np.random.default_rng(seed).permutation(len(names))
    return [sorted(names[i] for i in part) for part in np.array_split(order, k)]


def make_datamodule(s: Settings, src: Path | None, line: str, cache_dir: Path | None, augment: bool,
                    test_keys: list[str] | None = None) -> Any:
    """PCdare (``src``) or, with ``src=None``, the phantom set of ``pretrain_scans`` scans, in ``line``'s frame."""
    from pcdiff.data.datamodule import BackScanDataModule

    common = dict(num_points=s.num_points, num_keypoints=s.num_keypoints, line=line, normalize="line",
                  augment=augment, batch_size=s.batch_size, seed=s.seed,
                  cache_dir=None if cache_dir is None else str(cache_dir))
    if src is None:
        return BackScanDataModule(data_dir=None, phantom_num_scans=s.pretrain_scans, phantom_seed=s.seed + 1,
                                  val_fraction=0.0, test_fraction=0.0, **common)
    return BackScanDataModule(data_dir=str(src), layout="pcdare", skip_invalid=True, test_keys=test_keys, **common)


def stack(dataset: Any) -> dict[str, Any]:
    """An un-augmented ``BackScanDataset`` as stacked tensors: points, spine, center, scale, names."""
    items = [dataset[i] for i in range(len(dataset))]
    out = {k: torch.stack([it[k] for it in items]).float() for k in ("points", "spine", "center", "scale")}
    out["names"] = [it["name"] for it in items]
    return out


def evaluate(backs: torch.Tensor, real: dict[str, Any], esl_mm: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Per-subject distances of candidate backs (S, N, 3, normalised, requested frame) to the real backs."""
    out = paired_distances(backs, real["points"], real["scale"], emd=True)
    out.update(spine_scores(to_mm(backs, real["center"], real["scale"]), esl_mm))
    return out


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, Settings]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=sorted(MODES), default="quick")
    parser.add_argument("--src", type=Path, default=DEFAULT_PCDARE, help="PCdare folder (CobbAngles.csv, Upright/<id>/...)")
    parser.add_argument("--line", choices=("isl", "esl"), default="isl", help="conditioning line")
    parser.add_argument("--init", type=Path, default=None, help="phantom-trained PointDiffusion checkpoint to fine-tune")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cache-dir", type=Path, default=None)
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
    if settings.denoiser not in ("pvcnn", "pointnet2", "transformer"):
        parser.error(f"--denoiser: expected pvcnn, pointnet2 or transformer, got {settings.denoiser!r}")
    if settings.model_source not in ("quickstart", "configs"):
        parser.error(f"--model-source must be 'quickstart' or 'configs', got {settings.model_source!r}")
    return args, settings


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args, s = parse_args(argv)
    started, hardware = start_run()
    from pcdiff.data.pcdare import read_pcdare

    scans = read_pcdare(args.src, skip_invalid=True)
    if len(scans) < s.folds:
        raise SystemExit(f"{args.src}: {len(scans)} usable subjects, fewer than --folds {s.folds}")
    esl_by_name = {scan.name: scan.esl for scan in scans}
    names = sorted(esl_by_name)
    folds = subject_folds(names, s.folds, s.seed)
    accel = "gpu" if args.device.startswith("cuda") else "cpu"
    fresh_kwargs, clip, config = model_settings(s.denoiser, s.model_source)
    finetune_kwargs = dict(lr=s.finetune_lr, warmup_steps=s.finetune_warmup, **BENCHMARK_MODEL_OVERRIDES)

    # ---- the phantom-trained starting point
    init, pretrain_s = args.init, None
    if init is None and s.pretrain_steps > 0:
        from pcdiff.data.datamodule import default_cache_dir

        init = (args.cache_dir or default_cache_dir()) / f"real_conditioning_pretrain_{args.mode}_{args.line}.ckpt"
        _, pretrain_s = train_point_diffusion(
            make_datamodule(s, None, args.line, args.cache_dir, augment=True), max_steps=s.pretrain_steps, seed=s.seed,
            accelerator=accel, gradient_clip_val=clip, save_checkpoint=init, **fresh_kwargs)
        log.info("pre-trained on %d phantoms (%s) for %d steps in %.0f s", s.pretrain_scans, args.line, s.pretrain_steps, pretrain_s)

    per_subject: list[dict[str, Any]] = []
    pooled: dict[str, list[torch.Tensor]] = {"real": [], "generated": [], "retrieval": []}
    fold_times = []
    plot_items = []
    for f, held_out in enumerate(folds):
        dm = make_datamodule(s, args.src, args.line, args.cache_dir, augment=True, test_keys=held_out)
        plain = make_datamodule(s, args.src, args.line, args.cache_dir, augment=False, test_keys=held_out)
        plain.setup("fit")
        real, bank = stack(plain.dataset("test")), stack(plain.dataset("train"))
        if set(real["names"]) != set(held_out) or set(real["names"]) & set(bank["names"]):
            raise RuntimeError(f"fold {f}: held-out {real['names']} != {held_out} or overlapping the training subjects")
        esl_mm = [np.asarray(esl_by_name[n], dtype=np.float64) for n in real["names"]]
        if init is not None:  # fine-tune: the checkpoint's settings, a fine-tuning learning rate
            module, train_s = train_point_diffusion(dm, max_steps=s.train_steps, seed=s.seed + f, init_checkpoint=init,
                                                    accelerator=accel, gradient_clip_val=clip, **finetune_kwargs)
        else:  # real data only, from scratch, with the config's settings
            module, train_s = train_point_diffusion(dm, max_steps=s.train_steps, seed=s.seed + f, accelerator=accel,
                                                    gradient_clip_val=clip, **fresh_kwargs)
        q = len(real["names"])
        spines = real["spine"].repeat(s.samples, 1, 1)  # (samples * Q, K, 3): sample j of subject i at j * Q + i
        backs, sample_s = sample_backs(module, spines, num_points=s.num_points, sampler=s.sampler,
                                       num_inference_steps=s.sampler_steps, seed=1000 * f, device=args.device,
                                       sampler_kwargs={"use_karras_sigmas": True} if s.karras else None)
        idx, dist = nearest_spines(real["spine"], bank["spine"])
        retrieved = bank["points"][idx]
        gen_scores = [evaluate(backs[j * q : (j + 1) * q], real, esl_mm) for j in range(s.samples)]
        ret_scores = evaluate(retrieved, real, esl_mm)
        for i, name in enumerate(real["names"]):
            row = {"fold": f, "subject": name, "retrieved": bank["names"][int(idx[i])],
                   "retrieval_line_rms_mm": float(dist[i] * real["scale"][i])}
            for key in gen_scores[0]:
                row[f"gen_{key}"] = float(np.mean([g[key][i] for g in gen_scores]))
                row[f"ret_{key}"] = float(ret_scores[key][i])
            per_subject.append(row)
        pooled["real"].append(real["points"])
        pooled["generated"].append(backs[:q])
        pooled["retrieval"].append(retrieved)
        fold_times.append({"fold": f, "held_out": held_out, "train_s": train_s, "sample_s_per_back": sample_s / len(spines)})
        plot_items.append((real, backs[:q], retrieved, esl_mm))
        log.info("fold %d: held out %s; trained %.0f s; gen CD %.1f mm vs retrieval %.1f mm", f, held_out, train_s,
                 np.mean([r["gen_chamfer_mm"] for r in per_subject if r["fold"] == f]),
                 np.mean([r["ret_chamfer_mm"] for r in per_subject if r["fold"] == f]))

    summary = summarize_rows(per_subject, pooled)
    payload = {
        "benchmark": "real_conditioning", "mode": args.mode, "command": command_line(), "hardware": hardware,
        "settings": dataclasses.asdict(s), "line": args.line, "src": str(args.src), "device": args.device,
        "init": None if init is None else str(init), "init_kind": "given" if args.init else ("phantom pre-training" if init else "none"),
        "pretrain_s": pretrain_s, "model_config": str(config), "model": fresh_kwargs, "gradient_clip_val": clip,
        "folds": fold_times, "summary": summary, "subjects": per_subject,
    }
    payload["total_s"] = time.perf_counter() - started
    payload["figure"] = _plot(args.out_dir / f"{args.out_stem}.png", plot_items).name
    write_results(args.out_stem, payload, render_markdown(payload), args.out_dir)
    log.info("wrote %s/%s.{json,md,png} (%.0f s in all)", args.out_dir, args.out_stem, payload["total_s"])
    return payload


def summarize_rows(rows: list[dict[str, Any]], pooled: dict[str, list[torch.Tensor]]) -> dict[str, Any]:
    """Mean/std/median over subjects of each metric for generator and retrieval, per-subject wins, and 1-NNA.

    1-NNA (CD and EMD, in %) is computed per fold (the fold's generated or retrieved backs against its held-out
    real backs) and averaged over folds, for both; and pooled over all folds for the generator only: pooled,
    a retrieved back is a real back of a training subject that is itself held out in another fold, so the
    retrieval set would contain exact copies of reference clouds and its pooled 1-NNA would mean nothing.
    """
    from pcdiff.metrics.generation import generation_metrics

    keys = [k[4:] for k in rows[0] if k.startswith("gen_")]
    out: dict[str, Any] = {}
    for who in ("gen", "ret"):
        out[who] = {}
        for k in keys:
            values = np.array([r[f"{who}_{k}"] for r in rows])
            ok = np.isfinite(values)  # NaN: the spine metric could not be measured on that back (counted)
            out[who][k] = {**summarize(values[ok]), "unmeasurable": int((~ok).sum())} if ok.any() else {"unmeasurable": len(values)}
    out["generator_wins"] = {k: int(sum(r[f"gen_{k}"] < r[f"ret_{k}"] for r in rows)) for k in keys}
    out["subjects"] = len(rows)
    for who in ("generated", "retrieval"):
        per_fold = [generation_metrics(c, real, metrics=("1nna",), emd_method="exact")
                    for c, real in zip(pooled[who], pooled["real"])]
        out[f"{who}_vs_real_per_fold"] = per_fold
        out[f"{who}_vs_real_fold_mean"] = {k: float(np.mean([m[k] for m in per_fold])) for k in ("1-NNA-CD", "1-NNA-EMD")}
    out["generated_vs_real_pooled"] = generation_metrics(torch.cat(pooled["generated"]), torch.cat(pooled["real"]),
                                                         emd_method="exact")
    return out


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
    ("unmeasurable", "unmeasurable", "d"),
    ("fold 1-NNA-CD", "1-NNA-CD % (per fold)", ".1f"), ("fold 1-NNA-EMD", "1-NNA-EMD % (per fold)", ".1f"),
    ("pooled 1-NNA-CD", "1-NNA-CD % (pooled)", ".1f"), ("pooled 1-NNA-EMD", "1-NNA-EMD % (pooled)", ".1f"),
]


def render_markdown(p: dict[str, Any]) -> str:
    s, hw, summ = p["settings"], p["hardware"], p["summary"]
    rows = []
    for who, label, sets in (("gen", "generator", "generated"), ("ret", "retrieval (nearest training line)", "retrieval")):
        row = {"what": label, **{k: v.get("mean") for k, v in summ[who].items()},
               "unmeasurable": summ[who]["lateral_mm"]["unmeasurable"]}
        row.update({f"fold {k}": v for k, v in summ[f"{sets}_vs_real_fold_mean"].items()})
        if sets == "generated":
            row.update({f"pooled {k}": summ["generated_vs_real_pooled"][k] for k in ("1-NNA-CD", "1-NNA-EMD")})
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
        f"Model: {s['denoiser']} with the settings of {Path(p['model_config']).name}; start: {p['init_kind']}"
        + (f" ({s['pretrain_steps']} steps x batch {s['batch_size']} on {s['pretrain_scans']} phantoms with the same line, "
           f"{p['pretrain_s']:.0f} s)" if p["pretrain_s"] else "")
        + f"; per fold {s['train_steps']} steps x batch {s['batch_size']} on the training subjects"
        + (f" (lr {s['finetune_lr']:g})" if p["init"] else "") + " "
        f"(mean {np.mean([f['train_s'] for f in p['folds']]):.0f} s); sampler {s['sampler']} {s['sampler_steps']} steps, "
        f"{s['samples']} backs per subject ({np.mean([f['sample_s_per_back'] for f in p['folds']]):.2f} s per back).",
        "",
        "Means over held-out subjects (each subject's generated figures averaged over its samples). 1-NNA: the first "
        "generated sample per subject (or the retrieved back) vs the held-out real backs, 50% = indistinguishable; "
        "per fold (averaged over folds) for both, pooled over folds for the generator only (pooled, retrieved backs are "
        "exact copies of other folds' held-out backs).",
        "",
        markdown_table(rows, COLUMNS),
        "",
        f"Generator better than retrieval, per subject: " + ", ".join(f"{k} {v}/{summ['subjects']}" for k, v in wins.items()) + ".",
        "",
        verdict(summ),
    ]
    return "\n".join(lines)


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
