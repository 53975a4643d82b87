"""The central question of issue #13 asked of the network-free estimator: does fitting its ISL offset model on
synthetic backs (phantoms, diffusion backs) as well as, or instead of, real backs help on held-out real backs?

The estimator: the furrow-path ESL read off the back (:func:`pcdiff.estimator.geometric.geometric_esl`,
``method="path"``, one of 12 settings chosen per fold on the training subjects, as
``benchmarks/spine_baselines.py`` does), then the ISL from :class:`pcdiff.estimator.isl_offset.IslOffsetModel`
(mean ISL - ESL offset, depth ~ trunk width, lateral gain on the back's left-right asymmetry). Its only
trained part is that offset model, fitted on (surface, ESL, ISL) triples; this benchmark changes what it is
fitted on and nothing else.

Test: the 20 PCdare subjects, 5 subject-wise folds (:func:`benchmarks.spine_baselines.fold_split`, the
split of spine_baselines and ``benchmarks/augmentation.py --folds 5``). Two ESLs at test time: the furrow-path
ESL (the estimator as used) and the true ESL (the oracle, which isolates the offset model).

Training sets of the offset model, per fold (rows; see :data:`ROWS`): phantoms only, real only (the fold's 16
training subjects), phantoms + real, real + diffusion, phantoms + real + diffusion, real + diffusion backs of
large curves (Cobb >= 40 deg), each mixture also with the real and the synthetic backs weighted equally
(``equal weight``: the 16 real backs carry half the total weight). Extra rows: phantoms of large curves +
real, and phantoms sampled at ``--dense-points`` (the same spines, denser scans: at 4096 points the 6 mm
asymmetry patches of :func:`~pcdiff.estimator.isl_offset.surface_asymmetry` are mostly empty, see the notes), and
diffusion only. Control rows: real + the diffusion backs' own phantoms (:func:`twin_phantoms`: the same spines
and point count, the phantom's surface instead of the generated one), which tells what the generated surface adds.

With ``--donors``, rows of donor backs (:func:`donor_sets`): the same phantom spines carried by real backs, the
fold's training subjects moved onto them (``python -m pcdiff.generate --donor-start``'s start without the model,
:func:`pcdiff.data.respine.respine_donor`), labelled with the spines' own ESL and ISL: what a real skin adds to the
phantom spines over the phantom's surface.

Phantoms: :func:`pcdiff.data.phantom.generate_phantom` at ``--phantom-points`` (4096) points, ``--phantoms``
(100) per draw, ``--draws`` (3) draws of disjoint seeds (draw d: seeds 20000 + 1000 d + j; large curves: 20500
+ 1000 d + j with ``spine_prior={"cobb_min": 40}``). Rows with phantoms are fitted and scored once per draw.
Diffusion backs: ``--diffusion`` (``outputs/diffusion_backs_phantom_spines.npz``: ``points`` (S, N, 3) mm,
``esl`` (S, L, 3) the line each back was generated from, ``isl`` (S, L2, 3) its phantom's ISL, ``cobb`` (S,)
deg, ``seed`` (S,)); rows that need it are skipped, with a note, when the file is missing. One fixed set: the
diffusion rows have no draw spread of their own.

Measures per subject: ISL RMS (point-to-curve 3D) and ISL lateral RMS (x at equal heights) in mm
(:func:`pcdiff.estimator.metrics.line_errors`), and |Cobb of the ISL estimate - clinical primary Cobb|
(``CobbAngles.csv``, ``primary_cobbangle``). Reported as mean +- SD over the 20 subjects (each subject's value
averaged over the draws), the SD over draws of the 20-subject mean, the paired difference from ``real only``
(mean +- SD over subjects, subjects improved, Wilcoxon signed-rank p), and per clinical Cobb band.

    python -m benchmarks.isl_augmentation [--data ../shared/data/pcdare] [--diffusion outputs/diffusion_backs_phantom_spines.npz]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from scipy.spatial import cKDTree
from scipy.stats import wilcoxon

from benchmarks.reporting import ROOT, command_line, hardware_info, load_line, markdown_table, publish
from benchmarks.spine_baselines import (NUM_KEYPOINTS, resampled, fold_split, furrow_lines, run_record, select_setting,
                                        trunk_widths)
from pcdiff.data.pcdare import read_pcdare
from pcdiff.data.phantom.generator import generate_phantom
from pcdiff.data.respine import Donor, fit_rotation_gain, rank_donors, respine_donor
from pcdiff.data.sample import BackScan
from pcdiff.estimator.geometric import landmark_heights
from pcdiff.estimator.isl_offset import (
    ASYMMETRY_DISTANCE_MM,
    ASYMMETRY_RADIUS_MM,
    OffsetExample,
    fit_isl_offset_examples,
    offset_example,
    trunk_width_mm,
)
from pcdiff.estimator.metrics import line_errors
from pcdiff.geometry.cobb import cobb_angle

DEFAULT_DIFFUSION = ROOT / "outputs" / "diffusion_backs_phantom_spines.npz"
#: Above the seeds of the diffusion backs' phantoms (7000-7139 in the first file) and everything else in pcdiff.
PHANTOM_SEED_BASE = 20000
DRAW_STRIDE = 1000
LARGE_SEED_SHIFT = 500
LARGE_COBB_DEG = 40.0
#: (low, high, label) of the clinical Cobb bands, low <= cobb < high.
COBB_BANDS = ((0.0, 20.0, "< 20°"), (20.0, 40.0, "20-40°"), (40.0, np.inf, ">= 40°"))
MEASURES = ("isl_rms_mm", "isl_lateral_rms_mm", "cobb_abs_err_deg")
ESLS = ("furrow", "true")
REFERENCE_ROW = "real only"


@dataclass(frozen=True)
class TrainingSet:
    """One row: the sources the offset model is fitted on and whether real and synthetic weigh equally.

    Sources: ``real`` (the fold's training subjects), ``phantoms``, ``phantoms_large`` (Cobb >= 40),
    ``phantoms_dense`` (the ``phantoms`` spines at ``--dense-points``), ``diffusion``, ``diffusion_large``,
    ``twins`` and ``twins_large`` (:func:`twin_phantoms`: the diffusion backs' own phantoms), ``donors`` and
    ``donors_large`` (:func:`donor_sets`: the ``phantoms`` / ``phantoms_large`` spines carried by the fold's own
    training backs, moved onto them).
    """

    name: str
    sources: tuple[str, ...]
    equal_weight: bool = False


ROWS: tuple[TrainingSet, ...] = (
    TrainingSet("phantoms only", ("phantoms",)),
    TrainingSet("real only", ("real",)),
    TrainingSet("phantoms + real", ("phantoms", "real")),
    TrainingSet("phantoms + real, equal weight", ("phantoms", "real"), True),
    TrainingSet("extra: diffusion only", ("diffusion",)),
    TrainingSet("real + diffusion", ("real", "diffusion")),
    TrainingSet("real + diffusion, equal weight", ("real", "diffusion"), True),
    TrainingSet("phantoms + real + diffusion", ("phantoms", "real", "diffusion")),
    TrainingSet("phantoms + real + diffusion, equal weight", ("phantoms", "real", "diffusion"), True),
    TrainingSet("real + diffusion (Cobb >= 40)", ("real", "diffusion_large")),
    TrainingSet("real + diffusion (Cobb >= 40), equal weight", ("real", "diffusion_large"), True),
    TrainingSet("control: the diffusion backs' own phantoms only", ("twins",)),
    TrainingSet("control: real + the diffusion backs' own phantoms", ("real", "twins")),
    TrainingSet("control: real + the diffusion backs' own phantoms, equal weight", ("real", "twins"), True),
    TrainingSet("control: real + those phantoms (Cobb >= 40)", ("real", "twins_large")),
    TrainingSet("control: real + those phantoms (Cobb >= 40), equal weight", ("real", "twins_large"), True),
    TrainingSet("extra: phantoms (Cobb >= 40) + real", ("phantoms_large", "real")),
    TrainingSet("extra: phantoms (Cobb >= 40) + real, equal weight", ("phantoms_large", "real"), True),
    TrainingSet("extra: donor backs only", ("donors",)),
    TrainingSet("real + donor backs", ("real", "donors")),
    TrainingSet("real + donor backs, equal weight", ("real", "donors"), True),
    TrainingSet("real + donor backs (Cobb >= 40)", ("real", "donors_large")),
    TrainingSet("real + donor backs (Cobb >= 40), equal weight", ("real", "donors_large"), True),
    TrainingSet("extra: dense phantoms only", ("phantoms_dense",)),
    TrainingSet("extra: dense phantoms + real", ("phantoms_dense", "real")),
    TrainingSet("extra: dense phantoms + real, equal weight", ("phantoms_dense", "real"), True),
)


def balanced_weights(is_real: np.ndarray) -> np.ndarray:
    """(n,) weights under which the real backs and the synthetic backs carry equal total weight.

    Each real back gets ``n / (2 n_real)`` and each synthetic one ``n / (2 n_synthetic)`` (mean weight 1);
    with only one kind present every back gets 1."""
    is_real = np.asarray(is_real, dtype=bool)
    n, n_real = len(is_real), int(is_real.sum())
    if n_real in (0, n):
        return np.ones(n)
    return np.where(is_real, n / (2 * n_real), n / (2 * (n - n_real)))


def cobb_band(cobb_deg: float) -> str:
    """Label of the :data:`COBB_BANDS` band holding ``cobb_deg``."""
    for low, high, label in COBB_BANDS:
        if low <= cobb_deg < high:
            return label
    raise ValueError(f"cobb_band: no band holds {cobb_deg}")


def phantom_seeds(draw: int, count: int, large: bool = False) -> range:
    """Seeds of ``count`` phantoms of draw ``draw``: disjoint across draws, between the plain and the large-curve
    sets, and from the seeds below :data:`PHANTOM_SEED_BASE` that the diffusion backs and the rest of pcdiff use
    (:func:`main` notes any overlap with the diffusion backs' seeds)."""
    if not 0 < count <= LARGE_SEED_SHIFT or draw < 0:
        raise ValueError(f"phantom_seeds: need 0 <= draw and 0 < count <= {LARGE_SEED_SHIFT}, got {draw}, {count}")
    start = PHANTOM_SEED_BASE + DRAW_STRIDE * draw + (LARGE_SEED_SHIFT if large else 0)
    return range(start, start + count)


def asymmetry_coverage(points: np.ndarray, line: np.ndarray) -> float:
    """Fraction of the keypoints of ``line`` (K, 3) mm at which :func:`~pcdiff.estimator.isl_offset.surface_asymmetry`
    finds scan on both sides (>= 3 points within its radius); the rest it interpolates."""
    tree = cKDTree(np.asarray(points, dtype=np.float64)[:, :2])
    ok = [len(tree.query_ball_point([x + s * ASYMMETRY_DISTANCE_MM, y], ASYMMETRY_RADIUS_MM)) >= 3
          for x, y, _ in np.asarray(line, dtype=np.float64) for s in (1, -1)]
    return float(np.mean(np.reshape(ok, (-1, 2)).all(axis=1)))


@dataclass
class SyntheticSet:
    """Prepared synthetic backs of one source and draw: offset examples, Cobb (deg), seeds, asymmetry coverage."""

    examples: list[OffsetExample]
    cobb: np.ndarray
    seeds: np.ndarray
    coverage: float
    num_points: int = 0


def phantom_set(seeds: Sequence[int], num_points: int, spine_prior: dict[str, Any] | None = None) -> SyntheticSet:
    """Generate the phantoms of ``seeds`` (ints) and prepare them for the offset fit (width between C7 and DM)."""
    examples, cobb, cover = [], [], []
    for seed in seeds:
        scan = generate_phantom(int(seed), num_points, spine_prior=spine_prior)
        ex = offset_example(scan.esl, scan.isl, scan.points, trunk_width_mm(scan.points, *landmark_heights(scan)), NUM_KEYPOINTS)
        examples.append(ex)
        cobb.append(scan.meta["cobb"])
        cover.append(asymmetry_coverage(scan.points, ex.esl))
    return SyntheticSet(examples, np.array(cobb), np.array(list(seeds)), float(np.mean(cover)), num_points)


def load_diffusion(path: Path) -> tuple[SyntheticSet | None, str]:
    """The diffusion backs of ``path`` prepared for the offset fit, or None with a note when the file is missing.

    Width between the ends (highest and lowest y) of the ESL each back was generated from (the backs carry no
    landmarks). Raises ValueError naming the file when arrays are missing or of the wrong shape."""
    path = Path(path)
    if not path.exists():
        return None, f"{path} not found: the diffusion rows are skipped"
    with np.load(path) as data:
        missing = {"points", "esl", "isl", "cobb", "seed"} - set(data.files)
        if missing:
            raise ValueError(f"{path}: missing arrays {sorted(missing)} (has {sorted(data.files)})")
        points, esl, isl = (np.asarray(data[k], dtype=np.float64) for k in ("points", "esl", "isl"))
        cobb, seed = np.asarray(data["cobb"], dtype=np.float64), np.asarray(data["seed"])
        extra = {"large": np.asarray(data["large"], dtype=bool)} if "large" in data.files else {}
    s = len(points)
    if points.ndim != 3 or points.shape[2] != 3 or esl.shape[0] != s or isl.shape[0] != s or esl.ndim != 3 \
            or isl.ndim != 3 or cobb.shape != (s,) or seed.shape != (s,):
        raise ValueError(f"{path}: expected points (S, N, 3), esl (S, L, 3), isl (S, L2, 3), cobb (S,), seed (S,), got "
                         f"{points.shape}, {esl.shape}, {isl.shape}, {cobb.shape}, {seed.shape}")
    examples, cover = [], []
    for p, e, i in zip(points, esl, isl):
        ex = offset_example(e, i, p, trunk_width_mm(p, e[:, 1].max(), e[:, 1].min()), NUM_KEYPOINTS)
        examples.append(ex)
        cover.append(asymmetry_coverage(p, ex.esl))
    note = (f"{path.name}: {s} backs of {points.shape[1]} points, Cobb {cobb.min():.0f}-{cobb.max():.0f} deg,"
            f" {int((cobb >= LARGE_COBB_DEG).sum())} with Cobb >= {LARGE_COBB_DEG:.0f}, phantom seeds {seed.min()}-{seed.max()}"
            + (f", {int(flag.sum())} flagged `large` (drawn for large curves; all are in the Cobb >= 40 rows)"
               if (flag := extra.get("large")) is not None else ""))
    return SyntheticSet(examples, cobb, seed, float(np.mean(cover)), points.shape[1]), note


def twin_phantoms(diffusion: SyntheticSet, tolerance_mm: float = 0.5) -> tuple[SyntheticSet | None, str]:
    """The phantoms the diffusion backs' lines came from (:func:`generate_phantom` of their seeds, at their point
    count): same spines, phantom surfaces instead of generated ones, the control that tells what the generated
    surface adds. None with a note when a regenerated phantom's lines differ from the file's by > ``tolerance_mm``."""
    twins = phantom_set(diffusion.seeds, diffusion.num_points)
    worst = max(max(np.abs(t.esl - d.esl).max(), np.abs(t.isl - d.isl).max()) for t, d in zip(twins.examples, diffusion.examples))
    if worst > tolerance_mm:
        return None, f"the diffusion backs' seeds do not regenerate their lines (up to {worst:.1f} mm off): no twin-phantom rows"
    return twins, f"twin phantoms: generate_phantom(seed, {diffusion.num_points}) reproduces the diffusion backs' ESL and ISL (max {worst:.2g} mm)"


def large_curves(synthetic: SyntheticSet, min_cobb: float = LARGE_COBB_DEG) -> SyntheticSet | None:
    """The backs of ``synthetic`` with Cobb >= ``min_cobb`` (None when fewer than 2)."""
    keep = np.flatnonzero(synthetic.cobb >= min_cobb)
    if len(keep) < 2:
        return None
    return SyntheticSet([synthetic.examples[k] for k in keep], synthetic.cobb[keep], synthetic.seeds[keep], synthetic.coverage,
                        synthetic.num_points)


def donor_sets(scans: list[BackScan], train: np.ndarray, spines: list[SyntheticSet]) -> list[SyntheticSet]:
    """Donor backs of one fold: each spine of ``spines`` (per draw) carried by the nearest of the fold's training
    backs, moved onto its lines (:func:`pcdiff.data.respine.respine_donor`, full density, turn gain fitted on the
    training backs, :func:`~pcdiff.data.respine.fit_rotation_gain`); the spines' own ESL and ISL are the labels.
    Only training subjects are donors, so no held-out surface enters a fit."""
    donors = [Donor(scans[k].points, scans[k].esl, scans[k].isl, scans[k].name) for k in train]
    gain = fit_rotation_gain(donors)
    esls = [d.esl for d in donors]
    out = []
    for spine_set in spines:
        examples, cover = [], []
        for ex in spine_set.examples:
            moved = respine_donor(donors[int(rank_donors(ex.esl, esls)[0])], ex.esl, ex.isl, rotation_gain=gain)
            examples.append(offset_example(ex.esl, ex.isl, moved, trunk_width_mm(moved, ex.esl[0, 1], ex.esl[-1, 1]), NUM_KEYPOINTS))
            cover.append(asymmetry_coverage(moved, examples[-1].esl))
        out.append(SyntheticSet(examples, spine_set.cobb, spine_set.seeds, float(np.mean(cover)), 0))
    return out


def evaluate(
    scans: list[BackScan], folds: int, synthetic: dict[str, list[SyntheticSet]], rows: tuple[TrainingSet, ...] = ROWS,
    per_fold: dict[str, str] | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Fit the offset model of every row, fold and draw; score it on the fold's test subjects.

    Args:
        scans: the real subjects (true ESL, ISL, landmarks, ``meta["cobb"]`` the clinical angle).
        folds: subject-wise folds (:func:`~benchmarks.spine_baselines.fold_split`).
        synthetic: source -> one :class:`SyntheticSet` per draw (a source with one set is shared by all draws).
            Rows needing a source absent here are left out.
        rows: the training sets.
        per_fold: source -> the ``synthetic`` source whose spines it takes: its sets are built per fold from
            the fold's training backs (:func:`donor_sets`), e.g. ``{"donors": "phantoms"}``.

    Returns:
        One record per (row, draw, subject, ESL kind) and one per (row, draw, fold) with the fitted parameters.
    """
    fold_of = fold_split(len(scans), folds)
    furrow, furrow_err = furrow_lines(scans)
    widths = trunk_widths(scans)
    real = [offset_example(s.esl, s.isl, s.points, widths[s.name], NUM_KEYPOINTS) for s in scans]
    records, fits = [], []
    for f in range(folds):
        train = np.flatnonzero(fold_of != f)
        choice = select_setting(furrow_err, fold_of != f)
        fold_synthetic = {**synthetic, **{src: donor_sets(scans, train, synthetic[spines])
                                          for src, spines in (per_fold or {}).items() if synthetic.get(spines)}}
        for row in rows:
            if any(src != "real" and not fold_synthetic.get(src) for src in row.sources):
                continue
            draws = max([len(fold_synthetic[src]) for src in row.sources if src != "real"], default=1)
            for d in range(draws):
                examples, is_real = [], []
                for src in row.sources:
                    sets = fold_synthetic.get(src, [])
                    chosen = [real[k] for k in train] if src == "real" else sets[min(d, len(sets) - 1)].examples
                    examples += chosen
                    is_real += [src == "real"] * len(chosen)
                weights = balanced_weights(np.array(is_real)) if row.equal_weight else None
                model = fit_isl_offset_examples(examples, weights)
                fits.append({"row": row.name, "draw": d, "fold": f, "n_real": int(sum(is_real)),
                             "n_synthetic": len(is_real) - int(sum(is_real)),
                             "offset_mean_mm": model.offset.mean(axis=0).tolist(), "depth_slope": model.depth_coef[1],
                             "offset_x_swing_mm": float(np.ptp(model.offset[:, 0])),
                             "lateral_gain": model.lateral_gain})
                for k in np.flatnonzero(fold_of == f):
                    scan = scans[k]
                    for kind, esl in (("furrow", furrow[scan.name][choice][0]), ("true", scan.esl)):
                        isl = model.predict(esl, scan.points, widths[scan.name])
                        e = line_errors(isl, resampled(scan.isl))[0]
                        cobb = cobb_angle(isl)
                        records.append({"row": row.name, "draw": d, "fold": f, "subject": scan.name, "esl": kind,
                                        "cobb_clinical_deg": float(scan.meta["cobb"]),
                                        "band": cobb_band(float(scan.meta["cobb"])), "isl_rms_mm": e["rms_mm"],
                                        "isl_lateral_rms_mm": e["lateral_rms_mm"], "cobb_deg": cobb,
                                        "cobb_abs_err_deg": abs(cobb - float(scan.meta["cobb"]))})
    return records, fits


def per_subject(records: list[dict[str, Any]], row: str, esl: str, measure: str) -> dict[str, float]:
    """subject -> ``measure`` of ``row`` with ``esl``, averaged over the draws."""
    by: dict[str, list[float]] = {}
    for r in records:
        if r["row"] == row and r["esl"] == esl:
            by.setdefault(r["subject"], []).append(r[measure])
    return {s: float(np.mean(v)) for s, v in by.items()}


def summarize(records: list[dict[str, Any]], fits: list[dict[str, Any]], rows: tuple[TrainingSet, ...] = ROWS) -> list[dict[str, Any]]:
    """One dict per (row present in ``records``, ESL kind): mean / SD over subjects, SD over draws, the paired
    difference from :data:`REFERENCE_ROW`, per-band means, and the fitted parameters averaged over folds and draws."""
    table = []
    for esl in ESLS:
        for row in rows:
            recs = [r for r in records if r["row"] == row.name and r["esl"] == esl]
            if not recs:
                continue
            draws = sorted({r["draw"] for r in recs})
            out: dict[str, Any] = {"row": row.name, "esl": esl, "draws": len(draws),
                                   "n_subjects": len({r["subject"] for r in recs})}
            for m in MEASURES:
                subj = per_subject(records, row.name, esl, m)
                vals = np.array(list(subj.values()))
                out[m] = float(vals.mean())
                out[m + "_sd_subjects"] = float(vals.std(ddof=1))
                draw_means = [np.mean([r[m] for r in recs if r["draw"] == d]) for d in draws]
                out[m + "_sd_draws"] = float(np.std(draw_means, ddof=1)) if len(draws) > 1 else None
                out[m + "_text"] = f"{vals.mean():.1f} ± {vals.std(ddof=1):.1f}" + (
                    f" (draws ± {out[m + '_sd_draws']:.2f})" if len(draws) > 1 else "")
                ref = per_subject(records, REFERENCE_ROW, esl, m)
                common = sorted(set(ref) & set(subj))
                if row.name != REFERENCE_ROW and common:
                    diff = np.array([subj[s] - ref[s] for s in common])
                    out[m + "_diff"] = float(diff.mean())
                    out[m + "_diff_sd"] = float(diff.std(ddof=1))
                    out[m + "_diff_better"] = int((diff < 0).sum())
                    out[m + "_diff_p"] = float(wilcoxon(diff).pvalue) if np.any(diff != 0) else 1.0
                    out[m + "_diff_text"] = (f"{diff.mean():+.1f} ± {diff.std(ddof=1):.1f} ({(diff < 0).sum()}/{len(diff)},"
                                             f" p={out[m + '_diff_p']:.2g})")
                for _, _, band in COBB_BANDS:
                    band_subj = {r["subject"] for r in recs if r["band"] == band}
                    out[f"{m}_band_{band}"] = float(np.mean([subj[s] for s in band_subj])) if band_subj else None
            fit = [x for x in fits if x["row"] == row.name]
            out["n_real"] = float(np.mean([x["n_real"] for x in fit]))
            out["n_synthetic"] = float(np.mean([x["n_synthetic"] for x in fit]))
            out["offset_mean_mm"] = np.mean([x["offset_mean_mm"] for x in fit], axis=0).round(1).tolist()
            out["depth_slope"] = float(np.mean([x["depth_slope"] for x in fit]))
            out["offset_x_swing_mm"] = float(np.mean([x["offset_x_swing_mm"] for x in fit]))
            out["lateral_gain"] = float(np.mean([x["lateral_gain"] for x in fit]))
            table.append(out)
    return table


def _clear(t: dict[str, Any], m: str) -> bool:
    """Whether row ``t``'s paired difference from real only in ``m`` exceeds the spread (|mean| > 2 SE and p < 0.05)."""
    return abs(t[m + "_diff"]) > 2 * t[m + "_diff_sd"] / np.sqrt(t["n_subjects"]) and t[m + "_diff_p"] < 0.05


def _headline(table: list[dict[str, Any]]) -> list[str]:
    """Per ESL kind: does any synthetic row beat real only beyond the spread, which row does best, and the
    large-curve band."""
    lines = []
    big = COBB_BANDS[-1][2]
    for esl, label in (("furrow", "furrow-path ESL"), ("true", "true ESL (oracle)")):
        ref = next(t for t in table if t["row"] == REFERENCE_ROW and t["esl"] == esl)
        rows = [t for t in table if t["esl"] == esl and t["row"] != REFERENCE_ROW]
        if not rows:
            continue
        for m, name, unit in (("isl_rms_mm", "ISL RMS", "mm"), ("cobb_abs_err_deg", "Cobb MAE", "°")):
            best = min(rows, key=lambda t: t[m])
            better = [t["row"] for t in rows if t[m + "_diff"] < 0 and _clear(t, m)]
            worse = [t["row"] for t in rows if t[m + "_diff"] > 0 and _clear(t, m)]
            draw_sd = [t[m + "_sd_draws"] for t in rows if t[m + "_sd_draws"] is not None]
            lines.append(
                f"- **{label}, {name}**: real only {ref[m]:.1f} {unit}; best row with synthetic backs `{best['row']}`"
                f" {best[m]:.1f} {unit} (Δ {best[m + '_diff']:+.1f}, p = {best[m + '_diff_p']:.2g}). Better than real only"
                f" beyond the paired spread: {', '.join(better) or 'none'}; worse beyond it: {', '.join(worse) or 'none'}."
                + (f" SD over phantom draws {min(draw_sd):.2f}-{max(draw_sd):.2f} {unit}." if draw_sd else ""))
        if ref[f"cobb_abs_err_deg_band_{big}"] is None:
            continue
        band_best = min(rows, key=lambda t: t[f"cobb_abs_err_deg_band_{big}"])
        lines.append(f"- **{label}, Cobb {big}** (the band where synthetic large curves should help most): real only"
                     f" {ref[f'cobb_abs_err_deg_band_{big}']:.1f}°, best synthetic row `{band_best['row']}`"
                     f" {band_best[f'cobb_abs_err_deg_band_{big}']:.1f}°; ISL RMS real only {ref[f'isl_rms_mm_band_{big}']:.1f} mm,"
                     f" best synthetic {min(t[f'isl_rms_mm_band_{big}'] for t in rows):.1f} mm.")
    ref = next(t for t in table if t["row"] == REFERENCE_ROW and t["esl"] == "furrow")
    for t in table:
        if t["esl"] == "furrow" and t["n_real"] == 0:
            lines.append(
                f"- What `{t['row']}` learns differently from real backs (fitted parameters, mean over folds and draws):"
                f" lateral gain {t['lateral_gain']:.2f} vs {ref['lateral_gain']:.2f} real, depth slope {t['depth_slope']:+.3f}"
                f" vs {ref['depth_slope']:+.3f} mm per mm of trunk width, mean ISL - ESL offset (x, y, z) {t['offset_mean_mm']}"
                f" vs {ref['offset_mean_mm']} mm, swing of the mean lateral offset along the line (max - min over the"
                f" keypoints, the population's typical ISL-beyond-ESL curve shape) {t['offset_x_swing_mm']:.1f} vs"
                f" {ref['offset_x_swing_mm']:.1f} mm.")
    return lines


def _verdict(table: list[dict[str, Any]]) -> list[str]:
    """Plain-words lines: each row against real only, per ESL, with the paired spread."""
    lines = _headline(table) + ["", "Row by row (paired difference from real only; 2 SE = twice its standard error):", ""]
    for esl, label in (("furrow", "furrow-path ESL (the estimator as used)"), ("true", "true ESL (oracle)")):
        ref = next(t for t in table if t["row"] == REFERENCE_ROW and t["esl"] == esl)
        lines.append(f"- With the {label}, real only: ISL {ref['isl_rms_mm']:.1f} mm, lateral {ref['isl_lateral_rms_mm']:.1f} mm,"
                     f" Cobb {ref['cobb_abs_err_deg']:.1f}°.")
        for t in table:
            if t["esl"] != esl or t["row"] == REFERENCE_ROW:
                continue
            parts = []
            for m, unit, name in (("isl_rms_mm", "mm", "ISL"), ("cobb_abs_err_deg", "°", "Cobb")):
                se = t[m + "_diff_sd"] / np.sqrt(t["n_subjects"])
                clear = _clear(t, m)
                word = "better" if t[m + "_diff"] < 0 else "worse"
                parts.append(f"{name} {t[m + '_diff']:+.1f} {unit} ({word}; {'beyond' if clear else 'within'} the paired"
                             f" spread, 2 SE = {2 * se:.1f}, p = {t[m + '_diff_p']:.2g})")
            lines.append(f"  - {t['row']}: " + "; ".join(parts))
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/pcdare"), help="PCdare folder (read in place)")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--diffusion", type=Path, default=DEFAULT_DIFFUSION, help="npz of diffusion backs (skipped when missing)")
    parser.add_argument("--phantoms", type=int, default=100, help="phantoms per draw")
    parser.add_argument("--draws", type=int, default=3, help="phantom draws (disjoint seed ranges)")
    parser.add_argument("--phantom-points", type=int, default=4096)
    parser.add_argument("--dense-points", type=int, default=16384, help="points of the 'dense phantoms' rows (0: skip them)")
    parser.add_argument("--donors", action="store_true",
                        help="also rows of donor backs: the phantom spines carried by each fold's training backs (pcdiff.data.respine)")
    parser.add_argument("--stem", default="isl_augmentation", help="results file stem in benchmarks/results/")
    args = parser.parse_args(argv)
    if args.folds < 2 or args.draws < 1 or args.phantoms < 2:
        parser.error("need --folds >= 2, --draws >= 1, --phantoms >= 2")
    info = hardware_info()
    start = time.perf_counter()
    notes: list[str] = []
    scans = list(read_pcdare(args.data))
    synthetic: dict[str, list[SyntheticSet]] = {
        "phantoms": [phantom_set(phantom_seeds(d, args.phantoms), args.phantom_points) for d in range(args.draws)],
        "phantoms_large": [phantom_set(phantom_seeds(d, args.phantoms, large=True), args.phantom_points,
                                       {"cobb_min": LARGE_COBB_DEG}) for d in range(args.draws)],
    }
    if args.dense_points:
        synthetic["phantoms_dense"] = [phantom_set(phantom_seeds(d, args.phantoms), args.dense_points) for d in range(args.draws)]
    diffusion, note = load_diffusion(args.diffusion)
    notes.append(note)
    if diffusion is not None:
        synthetic["diffusion"] = [diffusion]
        large = large_curves(diffusion)
        if large is None:
            notes.append(f"fewer than 2 diffusion backs with Cobb >= {LARGE_COBB_DEG:.0f}: that row is skipped")
        else:
            synthetic["diffusion_large"] = [large]
        twins, note = twin_phantoms(diffusion)
        notes.append(note)
        if twins is not None:
            synthetic["twins"] = [twins]
            if large_curves(twins) is not None:
                synthetic["twins_large"] = [large_curves(twins)]
        ours = {int(s) for k, sets in synthetic.items() if k.startswith("phantoms") for x in sets for s in x.seeds}
        shared = sorted(ours & {int(s) for s in diffusion.seeds})
        notes.append(f"phantom seeds of this benchmark shared with the diffusion backs' seeds: {len(shared)}"
                     + (f" (e.g. {shared[:5]}: the same phantom spine in both sets)" if shared else ""))
    real_cover = float(np.mean([asymmetry_coverage(s.points, resampled(s.esl)) for s in scans]))
    coverage = {"real": real_cover, **{k: float(np.mean([x.coverage for x in v])) for k, v in synthetic.items()}}
    per_fold = {"donors": "phantoms", "donors_large": "phantoms_large"} if args.donors else {}
    records, fits = evaluate(scans, args.folds, synthetic, per_fold=per_fold)
    table = summarize(records, fits)
    wall = time.perf_counter() - start
    record = run_record(args, info, wall)
    bands = {label: sorted({r["subject"] for r in records if r["band"] == label}) for _, _, label in COBB_BANDS}
    band_text = ", ".join(f"{label}: {len(v)}" for label, v in bands.items())
    main_cols = [("row", "offset model fitted on", ""), ("n_real", "real", ".0f"), ("n_synthetic", "synthetic", ".0f"),
                 ("isl_rms_mm_text", "ISL RMS [mm]", ""), ("isl_rms_mm_diff_text", "Δ ISL vs real only", ""),
                 ("isl_lateral_rms_mm_text", "ISL lateral RMS [mm]", ""),
                 ("cobb_abs_err_deg_text", "Cobb MAE [deg]", ""), ("cobb_abs_err_deg_diff_text", "Δ Cobb vs real only", "")]
    band_cols = [("row", "offset model fitted on", "")] + [
        (f"{m}_band_{label}", f"{name} {label} [{unit}]", ".1f")
        for m, name, unit in (("isl_rms_mm", "ISL", "mm"), ("cobb_abs_err_deg", "Cobb", "deg")) for _, _, label in COBB_BANDS]
    param_cols = [("row", "offset model fitted on", ""), ("offset_mean_mm", "mean ISL-ESL offset x, y, z [mm]", ""),
                  ("offset_x_swing_mm", "lateral offset swing along the line [mm]", ".1f"),
                  ("depth_slope", "depth slope [mm/mm width]", ".3f"), ("lateral_gain", "lateral gain", ".3f")]
    sections = []
    for esl, title in (("furrow", "Furrow-path ESL read off the test back (the estimator as used)"),
                       ("true", "True ESL (oracle: isolates the offset model)")):
        rows = [t for t in table if t["esl"] == esl]
        sections += [f"## {title}", "", markdown_table(rows, main_cols), "", f"Per clinical Cobb band ({band_text} subjects):",
                     "", markdown_table(rows, band_cols), ""]
    md = "\n".join([
        f"# ISL offset model fitted on synthetic vs real backs, scored on PCdare ({len(scans)} subjects, {args.folds} subject-wise folds)",
        "",
        f"`{command_line()}`",
        "",
        "The estimator is network-free: furrow-path ESL (setting chosen in-fold) + the fitted ISL offset model"
        " (pcdiff.estimator.isl_offset). Only the offset model's training set changes between rows.",
        "",
        "## Verdict", "", "VERDICT_PLACEHOLDER", "",
        *sections,
        "## Fitted parameters (mean over folds and draws; furrow and true-ESL rows share them)", "",
        markdown_table([t for t in table if t["esl"] == "furrow"], param_cols), "",
        "## Notes", "",
        f"- Mean ± SD over the {len(scans)} subjects (each averaged over the draws); `draws ±` the SD over the"
        f" {args.draws} phantom draws of the {len(scans)}-subject mean. Δ: paired difference from `real only`, mean ± SD"
        " over subjects (subjects improved / all, Wilcoxon signed-rank p). Cobb: coronal tangent method on the ISL"
        " estimate vs the clinical primary Cobb angle (CobbAngles.csv `primary_cobbangle`).",
        f"- Phantoms: {args.phantoms} per draw at {args.phantom_points} points, {args.draws} draws, seeds"
        f" {PHANTOM_SEED_BASE} + {DRAW_STRIDE} d + j (large curves: + {LARGE_SEED_SHIFT}, spine_prior cobb_min"
        f" {LARGE_COBB_DEG:.0f}); "
        + (f"dense rows: the same spines at {args.dense_points} points. " if args.dense_points else "dense rows skipped. ")
        + f"Real: the fold's"
        f" {len(scans) - len(scans) // args.folds} training subjects. Equal weight: real and synthetic backs each carry half"
        " the total weight of the fit (weighted mean offset and weighted least squares).",
        "- Asymmetry coverage (fraction of ESL keypoints where surface_asymmetry finds >= 3 points within"
        f" {ASYMMETRY_RADIUS_MM:.0f} mm on both sides, the rest is interpolated): "
        + ", ".join(f"{k} {v:.2f}" for k, v in coverage.items()) + ".",
        *[f"- {n}" for n in notes],
        f"- {load_line(record)}",
    ])
    verdict = "\n".join(_verdict(table))
    md = md.replace("VERDICT_PLACEHOLDER", verdict)
    payload = {**record, "diffusion": str(args.diffusion), "phantoms_per_draw": args.phantoms, "draws": args.draws,
               "phantom_points": args.phantom_points, "dense_points": args.dense_points, "notes": notes,
               "asymmetry_coverage": coverage, "cobb_bands": bands,
               "rows": [{"name": r.name, "sources": list(r.sources), "equal_weight": r.equal_weight} for r in ROWS],
               "table": table, "fits": fits, "per_subject": records}
    return publish(args.stem, payload, md)


if __name__ == "__main__":
    raise SystemExit(main())
