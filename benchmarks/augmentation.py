"""Does synthetic data help a spinal-line estimator when real data is scarce? (issues 6 and 8 part 4)

Study mode (default): a fixed held-out "real" test set; the estimator is trained on n real scans
(n = 25, 50, 100, 200) under each condition, over several seeds:

    mean-line        no network: predicts the training mean line (the floor any estimator must beat)
    real             n real scans, no augmentation
    real+geo         n real scans with geometric augmentation (rotation about y, scaling, ~1 mm jitter)
    real+synth       n real + m synthetic scans for spinal lines drawn from the training distribution
    real+synth-cobb  n real + m synthetic scans for rarer large curves (Cobb >= --large-cobb)

Every trained condition runs the same number of optimiser steps, so extra data is not extra compute.
"real" is the embedded phantom unless ``--real-dir`` names a folder (4D-Spine, generic or PCdare).
The synthetic scans come from ``--generator`` (an exported ``SpineToBackPipeline`` folder or a training
checkpoint, loaded with :func:`pcdiff.generate.load_pipeline`): rows are
labelled ``diffusion``. Without a generator the synthetic scans are more phantoms, labelled
``phantom``: with phantoms as the "real" data that is simply more real data, an upper bound for what
a perfect generator could add, not a result about diffusion.

Folds mode (``--folds K --real-dir DIR``, issue 8 part 4): subject-wise K folds of the real subjects;
per fold the estimator is trained on phantoms only, real only, phantoms + real, and (with a generator)
real + generated scans, and tested on the held-out subjects: ISL error (RMS / max mm), Cobb angle of
the predicted line against the true line's and against the clinical Cobb (``meta["cobb"]``).

Inputs are normalised in the ESL frame (centre between the ESL's ends, scale = their distance:
the C7..DM frame of surface topography, available for real, phantom and generated scans alike);
the target is ``--line`` (default ISL). Outputs: ``benchmarks/results/augmentation[_folds]_<tag>.json``,
``.md`` and ``.png``.

    python -m benchmarks.augmentation --quick                     # ~10 min on a CPU, phantoms
    python -m benchmarks.augmentation --generator outputs/pipeline # diffusion-augmented
    python -m benchmarks.augmentation --quick --real-dir ../shared/data/pcdare --folds 5
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from benchmarks.reporting import RESULTS_DIR, write_results
from pcdiff.data.datamodule import ARRAY_KEYS, JITTER_MM, TYPICAL_SPINE_MM, BackScanDataset, stack_samples
from pcdiff.data.io import read_dataset
from pcdiff.data.phantom import DEFAULT_VERSION, generate_phantom, sample_spine_params, spine_lines
from pcdiff.data.sample import BackScan
from pcdiff.data.transforms import Compose, Normalize, ResampleLine, ResamplePoints, default_augment, scan_to_sample
from pcdiff.estimator.metrics import line_errors, pearson, summarize
from pcdiff.estimator.module import SpineEstimator
from pcdiff.geometry.frames import to_mm
from pcdiff.geometry.polyline import orient_top_down, resample_polyline

log = logging.getLogger("augmentation")

#: Network sizes: the quick one trains in seconds on a CPU.
MODEL_PRESETS: dict[str, dict[str, Any]] = {
    "quick": dict(width=16, num_centres=(64, 16), radii=(0.1, 0.25), num_neighbours=(16, 16), widths=(64, 128),
                  global_dim=128, head_dim=128, dropout=0.1),
    "full": dict(),  # SpineEstimator defaults
}


@dataclass
class Settings:
    """Everything a run depends on (stored in the results file)."""

    line: str = "isl"
    num_points: int = 256
    num_keypoints: int = 32
    steps: int = 100
    batch_size: int = 16
    lr: float = 2e-3
    model: str = "quick"
    n_values: tuple[int, ...] = (25, 50, 100, 200)
    m_synthetic: int = 100
    seeds: tuple[int, ...] = (0, 1)
    n_test: int = 40
    large_cobb: float = 40.0
    test_large_cobb: float = 30.0
    gen_steps: int = 20
    conditions: tuple[str, ...] = ("mean-line", "real", "real+geo", "real+synth", "real+synth-cobb")
    extra: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------- data


def _name_seed(name: str) -> int:
    return int(hashlib.sha1(name.encode()).hexdigest()[:8], 16)


def prepare(scans: list[BackScan], s: Settings) -> dict[str, Any]:
    """Scans (mm) -> arrays as the data module caches them, normalised in the ESL frame.

    Returns ``ARRAY_KEYS`` arrays plus ``names`` and ``cobb_clinical`` ((S,), NaN where unknown).
    """
    pipe = Compose([Normalize("line", line="esl"), ResampleLine(s.num_keypoints, which=s.line),
                    ResamplePoints(s.num_points, "random")])
    rows = [pipe(scan_to_sample(sc), np.random.default_rng([0, _name_seed(sc.name)])) for sc in scans]
    out: dict[str, Any] = stack_samples(rows)
    out["names"] = [sc.name for sc in scans]
    out["cobb_clinical"] = np.array([float(sc.meta.get("cobb", np.nan)) for sc in scans])
    return out


def subset(arrays: dict[str, Any], idx: np.ndarray) -> dict[str, Any]:
    idx = np.asarray(idx, dtype=np.int64)
    out = {k: arrays[k][idx] for k in (*ARRAY_KEYS, "cobb_clinical")}
    out["names"] = [arrays["names"][i] for i in idx]
    return out


def concat(parts: list[dict[str, Any]]) -> dict[str, Any]:
    out = {k: np.concatenate([p[k] for p in parts]) for k in (*ARRAY_KEYS, "cobb_clinical")}
    out["names"] = [n for p in parts for n in p["names"]]
    return out


def phantoms(n: int, seed: int, prefix: str, **prior: Any) -> list[BackScan]:
    """``n`` phantom scans (4096 points) with spine prior overrides ``prior``; named ``<prefix><i>``."""
    return [
        generate_phantom(np.random.default_rng([seed, i]), num_points=4096, name=f"{prefix}{i}", spine_prior=prior or None)
        for i in range(n)
    ]


def lines_like(train: list[BackScan], m: int, rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    """``m`` (ESL, ISL) pairs in mm drawn from the empirical distribution of ``train``'s lines.

    Each is a random convex combination of two training subjects' lines (resampled to 100 points,
    top -> bottom, in their ESL frames' orientation; placed at the first subject's position), a
    simple way to sample near the training distribution without fitting a model to ~20 subjects.
    """
    lines = [(resample_polyline(orient_top_down(sc.esl), 100), resample_polyline(orient_top_down(sc.isl), 100))
             for sc in train]
    out = []
    for _ in range(m):
        i, j = rng.choice(len(lines), 2, replace=len(lines) < 2)
        w = rng.uniform()
        ci, cj = lines[i][0].mean(0), lines[j][0].mean(0)
        esl = w * lines[i][0] + (1 - w) * (lines[j][0] - cj + ci)
        isl = w * lines[i][1] + (1 - w) * (lines[j][1] - cj + ci)
        out.append((esl, isl))
    return out


class Generator:
    """A source of synthetic scans for given (ESL, ISL) lines in mm: diffusion, or phantoms as stand-in."""

    def __init__(self, path: str | None, s: Settings) -> None:
        self.s, self.pipe = s, None
        self.label, self.guidance_scale = "phantom", 1.0
        if path is not None:
            from pcdiff.generate import load_pipeline

            is_ckpt = Path(path).suffix == ".ckpt"
            self.pipe, defaults = load_pipeline(path if is_ckpt else None, None if is_ckpt else path, None)
            self.guidance_scale = defaults["guidance_scale"]
            self.pipe.set_progress_bar_config(disable=True)
            self.label = "diffusion"

    def from_prior(self, m: int, seed: int, prefix: str, **prior: Any) -> list[BackScan]:
        """``m`` synthetic scans for spines drawn from the phantom prior (with ``prior`` overrides)."""
        if self.pipe is None:
            return phantoms(m, seed, prefix, **prior)
        rng = np.random.default_rng(seed)
        pairs = [spine_lines(sample_spine_params(rng, **prior)) for _ in range(m)]
        return self.from_lines(pairs, seed, prefix)

    def from_lines(self, pairs: list[tuple[np.ndarray, np.ndarray]], seed: int, prefix: str) -> list[BackScan]:
        """Synthetic scans conditioned on the given (ESL, ISL) pairs (diffusion only)."""
        if self.pipe is None:
            raise ValueError("generating for given lines needs --generator (a SpineToBackPipeline folder)")
        cond_idx = 0 if self.pipe.config.line == "esl" else 1
        scans = []
        for start in range(0, len(pairs), 16):
            chunk = pairs[start : start + 16]
            gens = [torch.Generator().manual_seed(seed * 100003 + start + k) for k in range(len(chunk))]
            out = self.pipe([p[cond_idx] for p in chunk], num_inference_steps=self.s.gen_steps, generator=gens,
                            guidance_scale=self.guidance_scale,
                            num_points=max(self.s.num_points, self.pipe.config.num_points))
            for k, (back, (esl, isl)) in enumerate(zip(out.backs, chunk)):
                scans.append(BackScan(name=f"{prefix}{start + k}", points=back, esl=esl, isl=isl))
        return scans


def surface_check(scans: list[BackScan]) -> dict[str, float]:
    """Median over scans of the ESL-to-surface distance and of the surface midline's lateral deviation from
    the ESL (mm, :func:`pcdiff.metrics.spine.spine_conditioning_metrics`): does a back follow its line?"""
    from pcdiff.metrics.spine import spine_conditioning_metrics

    rows = [spine_conditioning_metrics(sc.points, sc.esl) for sc in scans]
    return {k: float(np.nanmedian([r[k] for r in rows])) for k in ("esl_surface_mean", "lateral_dev_mean")}


# ----------------------------------------------------------------------------------------- training


def train(arrays: dict[str, Any], s: Settings, seed: int, augment: bool) -> SpineEstimator:
    """Train a fresh estimator for ``s.steps`` optimiser steps on ``arrays`` (normalised)."""
    L.seed_everything(seed, workers=True, verbose=False)
    jitter = JITTER_MM / TYPICAL_SPINE_MM
    aug = default_augment(jitter_sigma=jitter, jitter_clip=3 * jitter) if augment else None
    ds = BackScanDataset(arrays, arrays["names"], np.arange(len(arrays["names"])), augment=aug)
    loader = DataLoader(ds, batch_size=min(s.batch_size, len(ds)), shuffle=True, drop_last=True)
    model = SpineEstimator(num_keypoints=s.num_keypoints, line=s.line, input_frame="esl", lr=s.lr,
                           net_kwargs=MODEL_PRESETS[s.model])
    trainer = L.Trainer(max_steps=s.steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, accelerator="cpu", devices=1, num_sanity_val_steps=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(model, loader)
    return model.eval()


@torch.no_grad()
def predict(model: SpineEstimator | np.ndarray, arrays: dict[str, Any]) -> np.ndarray:
    """(S, K, 3) predicted keypoints in mm; ``model`` may be a fixed (K, 3) normalised line (mean-line)."""
    center, scale = torch.from_numpy(arrays["center"]), torch.from_numpy(arrays["scale"])
    if isinstance(model, np.ndarray):
        pred = torch.from_numpy(np.broadcast_to(model, arrays["spine"].shape).copy())
    else:
        pts = torch.from_numpy(arrays["points"])
        pred = torch.cat([model(pts[i : i + 32]) for i in range(0, len(pts), 32)])
    return to_mm(pred, center, scale).numpy()


def evaluate(model: SpineEstimator | np.ndarray, arrays: dict[str, Any]) -> list[dict[str, Any]]:
    """Per-subject errors (mm, degrees) on ``arrays``, with the clinical Cobb where known."""
    true = to_mm(torch.from_numpy(arrays["spine"]), torch.from_numpy(arrays["center"]),
                 torch.from_numpy(arrays["scale"])).numpy()
    rows = line_errors(predict(model, arrays), true)
    for r, name, cc in zip(rows, arrays["names"], arrays["cobb_clinical"]):
        r["name"], r["cobb_clinical_deg"] = name, float(cc)
    return rows


def run_condition(cond: str, real: dict[str, Any], synth: dict[str, dict[str, Any]], s: Settings, seed: int):
    """Train (or build) the estimator of one condition; returns the model or the mean line."""
    if cond == "mean-line":
        return real["spine"].mean(0)
    if cond in ("real", "real+geo"):
        return train(real, s, seed, augment=cond == "real+geo")
    if cond in ("real+synth", "real+synth-cobb"):
        return train(concat([real, synth[cond]]), s, seed, augment=False)
    raise ValueError(f"unknown condition {cond!r}")


def metrics_of(rows: list[dict[str, Any]], s: Settings) -> dict[str, float]:
    """Summary over all test subjects plus the large-Cobb subset (true-line Cobb >= s.test_large_cobb)."""
    out = summarize([{k: v for k, v in r.items() if k != "name"} for r in rows])
    out["n_test"] = out.pop("n")
    large = [r for r in rows if r["cobb_true_deg"] >= s.test_large_cobb]
    out["n_large"] = len(large)
    if large:
        big = summarize([{k: v for k, v in r.items() if k != "name"} for r in large])
        out["large_mean_mm"], out["large_cobb_mae_deg"] = big["mean_mm"], big["cobb_mae_deg"]
    return out


# ----------------------------------------------------------------------------------------- study


def study(args: argparse.Namespace, s: Settings) -> dict[str, Any]:
    gen = Generator(args.generator, s)
    t0 = time.time()
    if args.real_dir:
        real_scans = [sc for sc in read_dataset(Path(args.real_dir), layout=args.layout, skip_invalid=True)
                      if sc.esl is not None and sc.isl is not None]
        perm = np.random.default_rng(0).permutation(len(real_scans))
        n_test = min(s.n_test, len(real_scans) // 3)
        test_scans = [real_scans[i] for i in perm[:n_test]]
        pool_scans = [real_scans[i] for i in perm[n_test:]]
        source = f"real folder {args.real_dir}"
    else:
        test_scans = phantoms(s.n_test, 1, "test_")
        pool_scans = phantoms(max(s.n_values), 2, "pool_")
        source = "phantom (stand-in for real scans)"
    test, pool = prepare(test_scans, s), prepare(pool_scans, s)
    n_values = [n for n in s.n_values if n <= len(pool_scans)]
    if not n_values:
        raise ValueError(f"the real training pool has {len(pool_scans)} scans, fewer than every n in {s.n_values}")
    synth_scans: dict[str, list[BackScan]] = {}
    if "real+synth" in s.conditions:
        if args.real_dir and gen.pipe is not None:
            pairs = lines_like(pool_scans, s.m_synthetic, np.random.default_rng(3))
            synth_scans["real+synth"] = gen.from_lines(pairs, 3, "synth_")
        else:
            synth_scans["real+synth"] = gen.from_prior(s.m_synthetic, 3, "synth_")
    if "real+synth-cobb" in s.conditions:
        synth_scans["real+synth-cobb"] = gen.from_prior(s.m_synthetic, 4, "synthcobb_", cobb_min=s.large_cobb)
    synth = {k: prepare(v, s) for k, v in synth_scans.items()}
    synth_quality = {k: surface_check(v) for k, v in synth_scans.items()}
    log.info("synthetic scans vs their ESL (mm): %s", synth_quality)
    log.info("data ready in %.0f s: %d test, %d pool, synthetic %s", time.time() - t0, len(test_scans),
             len(pool_scans), {k: len(v["names"]) for k, v in synth.items()})
    results = []
    for n in n_values:
        for seed in s.seeds:
            idx = np.random.default_rng([seed, n]).choice(len(pool_scans), n, replace=False)
            real = subset(pool, idx)
            for cond in s.conditions:
                t = time.time()
                rows = evaluate(run_condition(cond, real, synth, s, seed), test)
                m = metrics_of(rows, s)
                label = gen.label if cond.startswith("real+synth") else ""
                results.append(dict(n=n, condition=cond, synthetic_source=label, seed=seed, seconds=time.time() - t, **m))
                log.info("n=%d seed=%d %-16s mean %.2f mm  lat %.2f mm  Cobb MAE %.2f deg  (%.0f s)", n, seed, cond,
                         m["mean_mm"], m["lateral_rms_mm"], m["cobb_mae_deg"], time.time() - t)
    return dict(mode="study", source=source, synthetic_source=gen.label, generator=args.generator,
                synthetic_quality=synth_quality, real_test_quality=surface_check(test_scans),
                n_test=len(test_scans), test_n_large=results[0]["n_large"], results=results)


# ----------------------------------------------------------------------------------------- folds


def folds(args: argparse.Namespace, s: Settings) -> dict[str, Any]:
    if not args.real_dir:
        raise ValueError("--folds needs --real-dir (e.g. ../shared/data/pcdare)")
    gen = Generator(args.generator, s)
    scans = [sc for sc in read_dataset(Path(args.real_dir), layout=args.layout, skip_invalid=True)
             if sc.esl is not None and sc.isl is not None]
    if len(scans) < args.folds:
        raise ValueError(f"{args.real_dir}: {len(scans)} usable subjects, fewer than --folds {args.folds}")
    real = prepare(scans, s)
    phantom = prepare(phantoms(s.m_synthetic, 5, "phantom_"), s)
    perm = np.random.default_rng(0).permutation(len(scans))
    fold_of = np.empty(len(scans), dtype=int)
    for f, chunk in enumerate(np.array_split(perm, args.folds)):
        fold_of[chunk] = f
    conditions = ["mean-line", "phantom-only", "real-only", "phantom+real"] + (["real+diffusion"] if gen.pipe else [])
    per_subject: list[dict[str, Any]] = []
    for seed in s.seeds:
        for f in range(args.folds):
            tr, te = np.flatnonzero(fold_of != f), np.flatnonzero(fold_of == f)
            train_real, test = subset(real, tr), subset(real, te)
            for cond in conditions:
                t = time.time()
                if cond == "mean-line":
                    model = train_real["spine"].mean(0)
                elif cond == "phantom-only":
                    model = train(phantom, s, seed, augment=True)
                elif cond == "real-only":
                    model = train(train_real, s, seed, augment=True)
                elif cond == "phantom+real":
                    # repeat the real subjects so they are about half of what the net sees
                    reps = max(1, int(round(len(phantom["names"]) / max(len(tr), 1))))
                    model = train(concat([phantom] + [train_real] * reps), s, seed, augment=True)
                else:
                    pairs = lines_like([scans[i] for i in tr], s.m_synthetic, np.random.default_rng([seed, f]))
                    generated = prepare(gen.from_lines(pairs, seed * 10 + f, f"gen{f}_"), s)
                    model = train(concat([train_real, generated]), s, seed, augment=True)
                rows = evaluate(model, test)
                for r in rows:
                    per_subject.append(dict(condition=cond, seed=seed, fold=f, **r))
                log.info("seed=%d fold=%d %-14s RMS %.1f mm  Cobb MAE %.1f deg  (%.0f s)", seed, f, cond,
                         np.mean([r["rms_mm"] for r in rows]), np.mean([r["cobb_abs_err_deg"] for r in rows]),
                         time.time() - t)
    summary = []
    for cond in conditions:
        per_seed = []
        for seed in s.seeds:
            rows = [r for r in per_subject if r["condition"] == cond and r["seed"] == seed]
            fold_rms = [np.mean([r["rms_mm"] for r in rows if r["fold"] == f]) for f in range(args.folds)]
            per_seed.append(dict(
                rms_mm=float(np.mean([r["rms_mm"] for r in rows])),
                max_mm=float(np.mean([r["max_mm"] for r in rows])),
                lateral_rms_mm=float(np.mean([r["lateral_rms_mm"] for r in rows])),
                cobb_mae_true_deg=float(np.mean([r["cobb_abs_err_deg"] for r in rows])),
                cobb_r_true=pearson([r["cobb_pred_deg"] for r in rows], [r["cobb_true_deg"] for r in rows]),
                cobb_mae_clinical_deg=float(np.nanmean([abs(r["cobb_pred_deg"] - r["cobb_clinical_deg"]) for r in rows])),
                cobb_r_clinical=pearson([r["cobb_pred_deg"] for r in rows], [r["cobb_clinical_deg"] for r in rows]),
                fold_rms_sd_mm=float(np.std(fold_rms)),
            ))
        agg = {k: (float(np.mean([p[k] for p in per_seed])), float(np.std([p[k] for p in per_seed]))) for k in per_seed[0]}
        summary.append(dict(condition=cond, **{k: v[0] for k, v in agg.items()}, **{f"{k}_sd_seeds": v[1] for k, v in agg.items()}))
    true_rows = [r for r in per_subject if r["condition"] == "mean-line" and r["seed"] == s.seeds[0]]
    reference = dict(
        true_isl_cobb_vs_clinical_mae_deg=float(np.nanmean([abs(r["cobb_true_deg"] - r["cobb_clinical_deg"]) for r in true_rows])),
        true_isl_cobb_vs_clinical_r=pearson([r["cobb_true_deg"] for r in true_rows], [r["cobb_clinical_deg"] for r in true_rows]),
    )
    return dict(mode="folds", source=f"real folder {args.real_dir}", folds=args.folds, n_subjects=len(scans),
                phantoms=len(phantom["names"]), synthetic_source=gen.label if gen.pipe else None,
                reference=reference, summary=summary, per_subject=per_subject)


# ----------------------------------------------------------------------------------------- reports

_STUDY_COLS = (("mean_mm", "mean 3D mm"), ("max_mm", "max 3D mm"), ("lateral_rms_mm", "lateral RMS mm"),
               ("cobb_mae_deg", "Cobb MAE deg"), ("large_cobb_mae_deg", "Cobb MAE, large curves"))


def _quality_lines(res: dict[str, Any]) -> list[str]:
    if "synthetic_quality" not in res:
        return []
    fmt = lambda q: f"ESL-surface {q['esl_surface_mean']:.1f} mm, surface-midline vs ESL {q['lateral_dev_mean']:.1f} mm"  # noqa: E731
    parts = [f"{k}: {fmt(q)}" for k, q in res["synthetic_quality"].items()]
    return [f"Do the backs follow their ESL (medians)? real test scans: {fmt(res['real_test_quality'])}; " + "; ".join(parts), ""]


def study_table(res: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    rows = res["results"]
    agg = []
    for n in sorted({r["n"] for r in rows}):
        for cond in dict.fromkeys(r["condition"] for r in rows):
            rs = [r for r in rows if r["n"] == n and r["condition"] == cond]
            if not rs:
                continue
            a = dict(n=n, condition=cond, synthetic_source=rs[0]["synthetic_source"], seeds=len(rs))
            for key, _ in _STUDY_COLS:
                vals = [r[key] for r in rs if key in r]
                if vals:
                    a[key], a[key + "_sd"] = float(np.mean(vals)), float(np.std(vals))
            agg.append(a)
    lines = [f"Test set: {res['n_test']} scans from {res['source']} (phantom {res['settings']['extra'].get('phantom_version', '?')}; "
             f"{res['test_n_large']} with true-line Cobb >= "
             f"the large-curve threshold). Synthetic scans: **{res['synthetic_source']}**. Mean ± SD over seeds.", "",
             *_quality_lines(res),
             "| n real | condition | " + " | ".join(h for _, h in _STUDY_COLS) + " |",
             "|---:|---|" + "---:|" * len(_STUDY_COLS)]
    for a in agg:
        cond = a["condition"] + (f" ({a['synthetic_source']})" if a["synthetic_source"] else "")
        cells = [f"{a[k]:.2f} ± {a[k + '_sd']:.2f}" if k in a else "-" for k, _ in _STUDY_COLS]
        lines.append(f"| {a['n']} | {cond} | " + " | ".join(cells) + " |")
    return agg, "\n".join(lines) + "\n"


def study_plot(agg: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for ax, (key, label) in zip(axes, (("mean_mm", "mean 3D error (mm)"), ("lateral_rms_mm", "RMS lateral error (mm)"),
                                       ("cobb_mae_deg", "Cobb MAE (deg)"))):
        for cond in dict.fromkeys(a["condition"] for a in agg):
            rs = [a for a in agg if a["condition"] == cond and key in a]
            ax.errorbar([a["n"] for a in rs], [a[key] for a in rs], yerr=[a[key + "_sd"] for a in rs],
                        marker="o", capsize=3, label=cond + (f" ({rs[0]['synthetic_source']})" if rs[0]["synthetic_source"] else ""))
        ax.set_xscale("log")
        ax.minorticks_off()
        ax.set_xticks(sorted({a["n"] for a in agg}), [str(n) for n in sorted({a["n"] for a in agg})])
        ax.set_xlabel("real training scans n")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


_FOLD_COLS = (("rms_mm", "ISL RMS mm"), ("max_mm", "ISL max mm"), ("lateral_rms_mm", "lateral RMS mm"),
              ("cobb_mae_true_deg", "Cobb MAE vs true line"), ("cobb_r_true", "r vs true"),
              ("cobb_mae_clinical_deg", "Cobb MAE vs clinical"), ("cobb_r_clinical", "r vs clinical"))


def folds_table(res: dict[str, Any]) -> str:
    ref = res["reference"]
    lines = [f"{res['n_subjects']} real subjects ({res['source']}), {res['folds']} subject-wise folds; phantoms: "
             f"{res['phantoms']} (phantom {res['settings']['extra'].get('phantom_version', '?')}). Mean ± SD over seeds (per-seed values pool all held-out subjects); "
             "'fold SD' is the spread of the per-fold RMS.",
             f"Reference: the Cobb of the *true* ISL vs the clinical Cobb: MAE {ref['true_isl_cobb_vs_clinical_mae_deg']:.1f} deg, "
             f"r = {ref['true_isl_cobb_vs_clinical_r']:.2f}.", "",
             "| condition | " + " | ".join(h for _, h in _FOLD_COLS) + " | fold SD mm |",
             "|---|" + "---:|" * (len(_FOLD_COLS) + 1)]
    for row in res["summary"]:
        cells = [f"{row[k]:.2f} ± {row[k + '_sd_seeds']:.2f}" for k, _ in _FOLD_COLS]
        lines.append(f"| {row['condition']} | " + " | ".join(cells) + f" | {row['fold_rms_sd_mm']:.1f} |")
    return "\n".join(lines) + "\n"


def folds_plot(res: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conds = [r["condition"] for r in res["summary"]]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    for ax, (key, label) in zip(axes, (("rms_mm", "ISL RMS error (mm)"), ("cobb_mae_clinical_deg", "Cobb MAE vs clinical (deg)"))):
        vals = [r[key] for r in res["summary"]]
        sds = [r[key + "_sd_seeds"] for r in res["summary"]]
        ax.bar(conds, vals, yerr=sds, capsize=4, color="tab:blue", alpha=0.7)
        ax.set_ylabel(label)
        ax.tick_params(axis="x", rotation=20)
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle(f"Spinal-line estimation on {res['n_subjects']} real subjects, {res['folds']} folds", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ----------------------------------------------------------------------------------------- CLI


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, Settings]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small network, 256 points, 100 steps, 2 seeds (~10 min on a 2-core CPU)")
    p.add_argument("--real-dir", help="folder of real scans (4D-Spine, generic or PCdare layout); default: phantoms")
    p.add_argument("--layout", default="auto", help="layout of --real-dir (auto, 4dspine, generic, pcdare)")
    p.add_argument("--generator", help="SpineToBackPipeline folder (python -m pcdiff.export) or a training .ckpt")
    p.add_argument("--folds", type=int, default=0, help="subject-wise K-fold mode on --real-dir (issue 8 part 4)")
    p.add_argument("--line", choices=("isl", "esl"), default="isl", help="line to predict")
    p.add_argument("--n", type=int, nargs="+", help="numbers of real training scans")
    p.add_argument("--m", type=int, help="synthetic scans per synthetic condition (folds: phantoms)")
    p.add_argument("--seeds", type=int, nargs="+", help="training seeds")
    p.add_argument("--steps", type=int, help="optimiser steps per training run")
    p.add_argument("--points", type=int, help="points per scan")
    p.add_argument("--n-test", type=int, help="held-out test scans (study mode)")
    p.add_argument("--large-cobb", type=float, default=40.0, help="minimum Cobb of the rare-curve synthetic scans")
    p.add_argument("--tag", help="suffix of the results files (default quick/full)")
    p.add_argument("--out", default=str(RESULTS_DIR), help="results folder (default benchmarks/results)")
    args = p.parse_args(argv)
    if args.quick:
        s = Settings(line=args.line)
    else:
        s = Settings(line=args.line, num_points=2048, steps=2000, model="full", seeds=(0, 1, 2), m_synthetic=200,
                     n_test=100, lr=1e-3)
    for attr, val in (("n_values", args.n), ("m_synthetic", args.m), ("seeds", args.seeds), ("steps", args.steps),
                      ("num_points", args.points), ("n_test", args.n_test)):
        if val is not None:
            setattr(s, attr, tuple(val) if isinstance(val, list) else val)
    s.large_cobb = args.large_cobb
    return args, s


def main(argv: list[str] | None = None) -> Path:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S", force=True)
    for noisy in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    args, s = parse_args(argv)
    s.extra["phantom_version"] = DEFAULT_VERSION
    tag = args.tag or ("quick" if args.quick else "full")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    if args.folds:
        res = folds(args, s)
        res["settings"] = asdict(s)
        stem = out / f"augmentation_folds_{tag}"
        table = folds_table(res)
        folds_plot(res, stem.with_suffix(".png"))
    else:
        res = study(args, s)
        res["settings"] = asdict(s)
        stem = out / f"augmentation_{tag}"
        agg, table = study_table(res)
        res["aggregate"] = agg
        study_plot(agg, stem.with_suffix(".png"), f"Estimator ({s.line.upper()}) test error vs real training size; "
                   f"synthetic = {res['synthetic_source']}")
    res["seconds"] = time.time() - t0
    res["command"] = "python -m benchmarks.augmentation " + " ".join(argv if argv is not None else __import__("sys").argv[1:])
    markdown = f"# {stem.name}\n\n`{res['command']}` ({res['seconds'] / 60:.1f} min)\n\n{table}"
    write_results(stem.name, res, markdown, stem.parent, indent=1)
    print(table)
    print(f"wrote {stem}.json/.md/.png in {res['seconds'] / 60:.1f} min")
    return stem


if __name__ == "__main__":
    main()
