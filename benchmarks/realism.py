"""How real is the phantom? Real PCdare backs against phantoms, per phantom version.

    python -m benchmarks.realism [--data ../shared/data/pcdare] [--versions v1 v2] [--repeats 5]

For each phantom version, as many phantoms as real backs are generated (``--repeats`` independent sets)
and compared with the real scans:

* **1-NNA under Chamfer** (Lopez-Paz & Oquab 2017, as used for point clouds by PointFlow): every cloud
  of the union real + phantom is classified by its nearest neighbour (leave-one-out, squared Chamfer);
  50% = indistinguishable, 100% = always told apart. Clouds are normalised in the spine frame
  (origin between C7 and DM, scale |C7 - DM|; ``--frame esl`` uses the ESL's end points instead) and
  randomly resampled to the same number of points. A phantom-vs-phantom control (two sets of the same
  version) shows the level an indistinguishable pair reaches with so few clouds.
* **Side-by-side distributions** (:func:`scan_stats`): spine length, ESL length, dimple separation, ISL
  depth behind the skin line, torso widths and depth relative to the spine length, surface noise, point
  density (uniformity, covered area), hole fraction, cropping above C7 / below DM.

Writes ``benchmarks/results/realism.json``, ``realism.md`` and ``realism.png``.
The real data (PCdare, CC BY-NC-SA 4.0, Kaiser et al., doi 10.1371/journal.pone.0321429 and
10.1038/s41598-025-95902-1) is read from ``--data`` and never copied.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.spatial import cKDTree

from benchmarks.reporting import DEFAULT_PCDARE, RESULTS_DIR, write_results
from pcdiff.data.pcdare import isl_depth, read_pcdare
from pcdiff.data.phantom import VERSIONS, generate_phantom
from pcdiff.data.sample import BackScan
from pcdiff.geometry.frames import landmark_frame, line_frame
from pcdiff.geometry.polyline import arc_length, orient_top_down
from pcdiff.metrics.chamfer import pairwise_chamfer
from pcdiff.metrics.generation import DenseDistances, one_nn_accuracy

FRAMES = ("landmarks", "c7_on_esl", "esl")
SCOLIOTIC = ("thoracic", "thoracolumbar", "lumbar", "double_major")
STAT_POINTS = 4096  # clouds are resampled to this many points before the density-dependent statistics
DENSE_PHANTOM_POINTS = 50_000  # a phantom at the real scans' density (~1.4 mm spacing), for the noise estimate

#: name -> (label, unit) of every statistic of :func:`scan_stats`.
STATS = {
    "spine_length_mm": ("C7-DM distance", "mm"),
    "esl_length_mm": ("ESL arc length", "mm"),
    "dimple_sep_mm": ("DL-DR distance", "mm"),
    "isl_depth_mm": ("ISL depth behind ESL (median)", "mm"),
    "width_hip": ("torso width at 10% C7-DM height / L", "1"),
    "width_waist": ("torso width at 30% / L", "1"),
    "width_chest": ("torso width at 55% / L", "1"),
    "width_shoulder": ("torso width at 80% / L", "1"),
    "depth": ("depth z-range (1-99%) / L", "1"),
    "noise_mm": ("surface noise (RMS off a local quadric, dense)", "mm"),
    "area": ("covered area / L^2 (3% L cells)", "1"),
    "density_cv": ("density unevenness (CV of kNN radius)", "1"),
    "hole_fraction": ("hole fraction inside the outline", "1"),
    "crop_above_c7": ("scan top above C7 / L", "1"),
    "crop_below_dm": ("scan bottom below DM / L", "1"),
}


def _subsample(points: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    return points[rng.choice(len(points), n, replace=len(points) < n)]


def surface_noise(points: np.ndarray, rng: np.random.Generator, num_queries: int = 400, radius: float = 6.0) -> float:
    """Median RMS residual (mm) of a local quadric z = f(x, y) fitted within ``radius`` mm of query points.

    Needs a dense cloud (real scans: ~1.4 mm spacing). The quadric absorbs the back's curvature at that
    scale, so the residual is the sensor noise (plus texture finer than ~6 mm).
    """
    tree = cKDTree(points)
    residuals = []
    for q in points[rng.choice(len(points), num_queries, replace=False)]:
        idx = tree.query_ball_point(q, radius)
        if len(idx) < 15:
            continue
        p = points[idx] - q
        # Fit in the local tangent frame: PCA normal = direction of least variance.
        _, _, vt = np.linalg.svd(p - p.mean(0), full_matrices=False)
        local = p @ vt.T
        u, v, w = local[:, 0], local[:, 1], local[:, 2]
        design = np.stack([np.ones_like(u), u, v, u * u, u * v, v * v], axis=1)
        coef, *_ = np.linalg.lstsq(design, w, rcond=None)
        residuals.append(np.sqrt(np.mean((w - design @ coef) ** 2)))
    return float(np.median(residuals))


def scan_stats(scan: BackScan, dense: np.ndarray | None, rng: np.random.Generator) -> dict[str, float]:
    """Descriptive statistics of one scan (see :data:`STATS`).

    Args:
        scan: the scan (mm) with ESL, ISL and landmarks C7, DL, DR, DM; its points are resampled to
            :data:`STAT_POINTS` for the density-dependent statistics.
        dense: (M, 3) mm, the same back at scanner density, for the noise estimate (None: noise NaN).
        rng: random generator for the resampling.
    """
    lm = scan.landmarks
    c7, dm = lm["C7"].astype(np.float64), lm["DM"].astype(np.float64)
    length = float(np.linalg.norm(c7 - dm))
    pts = _subsample(scan.points.astype(np.float64), STAT_POINTS, rng)
    h = (pts[:, 1] - dm[1]) / (c7[1] - dm[1])  # 0 at DM, 1 at C7

    def width(level: float) -> float:
        band = pts[np.abs(h - level) < 0.05, 0]
        return float(np.percentile(band, 99) - np.percentile(band, 1)) / length if len(band) > 20 else float("nan")

    # Occupancy grid in the x-y projection (cells of 3% L): holes = empty cells between a row's ends.
    cell = 0.03 * length
    ij = np.floor((pts[:, :2] - pts[:, :2].min(0)) / cell).astype(int)
    grid = np.zeros(ij.max(0) + 1, dtype=bool)
    grid[ij[:, 0], ij[:, 1]] = True
    inside = empty = 0
    for col in grid.T:  # one row of constant y
        occ = np.flatnonzero(col)
        if len(occ):
            span = col[occ[0] : occ[-1] + 1]
            inside += len(span)
            empty += int((~span).sum())
    knn_r = cKDTree(pts).query(pts, k=9)[0][:, -1]
    return {
        "spine_length_mm": length,
        "esl_length_mm": float(arc_length(scan.line("esl"))[-1]),
        "dimple_sep_mm": float(np.linalg.norm(lm["DL"] - lm["DR"])),
        "isl_depth_mm": isl_depth(scan.line("esl"), scan.line("isl")),
        "width_hip": width(0.1),
        "width_waist": width(0.3),
        "width_chest": width(0.55),
        "width_shoulder": width(0.8),
        "depth": float(np.percentile(pts[:, 2], 99) - np.percentile(pts[:, 2], 1)) / length,
        "noise_mm": surface_noise(dense.astype(np.float64), rng) if dense is not None else float("nan"),
        "area": float(grid.sum()) * cell**2 / length**2,
        "density_cv": float(knn_r.std() / knn_r.mean()),
        "hole_fraction": empty / max(inside, 1),
        "crop_above_c7": float(pts[:, 1].max() - c7[1]) / length,
        "crop_below_dm": float(dm[1] - pts[:, 1].min()) / length,
    }


def normalise(scan: BackScan, num_points: int, frame: str, rng: np.random.Generator) -> np.ndarray:
    """(num_points, 3) float32 cloud in the spine frame: (x - center) / scale, randomly resampled."""
    if frame == "landmarks":
        center, scale = landmark_frame(np.stack([scan.landmarks[k] for k in ("C7", "DL", "DR", "DM")]))
    elif frame == "esl":
        center, scale = line_frame(scan.line("esl"))
    elif frame == "c7_on_esl":
        # C7 taken as the ESL's top end (on the midline), DM from the dimples. In PCdare the C7 marker
        # lies 20-50 mm right of the drawn line's top; in the phantom both coincide.
        top = orient_top_down(scan.line("esl"))[0]
        center, scale = landmark_frame(np.stack([top, scan.landmarks["DL"], scan.landmarks["DR"], scan.landmarks["DM"]]))
    else:
        raise ValueError(f"normalise: frame must be one of {FRAMES}, got {frame!r}")
    return ((_subsample(scan.points, num_points, rng) - center) / scale).astype(np.float32)


def nna_between(xs: np.ndarray, ys: np.ndarray) -> float:
    """1-NNA (a fraction in [0, 1]) under squared Chamfer between clouds xs (A, N, 3) and ys (B, N, 3):
    :func:`pcdiff.metrics.generation.one_nn_accuracy` (leave-one-out) on the union xs + ys."""
    total = len(xs) + len(ys)
    distances = DenseDistances(pairwise_chamfer(torch.from_numpy(np.concatenate([xs, ys]))))
    percent = one_nn_accuracy(distances, len(xs), len(ys))["1-NNA"]
    return round(percent * total / 100) / total  # correct clouds / all clouds, exactly (not a rounded percentage)


def summarise(values: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    out = {}
    for key in STATS:
        v = np.array([x[key] for x in values], dtype=np.float64)
        v = v[np.isfinite(v)]
        out[key] = {"mean": float(v.mean()), "sd": float(v.std()), "min": float(v.min()), "max": float(v.max()),
                    "p10": float(np.percentile(v, 10)), "p90": float(np.percentile(v, 90)), "n": int(len(v))}
    return out


def run(args: argparse.Namespace) -> dict:
    start = time.perf_counter()
    real = read_pcdare(args.data)
    if len(real) == 0:
        raise SystemExit(f"realism: no PCdare subject could be read from {args.data}")
    n = len(real)
    rng = np.random.default_rng(args.seed)
    # The phantoms' Cobb angles span the real cohort's clinical range (the comparison is about shape,
    # not about the cohort's case mix); --cobb-range prior keeps the generator's default prior.
    cobbs = [s.meta["cobb"] for s in real if s.meta.get("cobb") is not None]
    spine_prior = {}
    if args.cobb_range == "cohort" and cobbs:
        spine_prior = {"cobb_min": float(min(cobbs)), "cobb_max": float(max(cobbs)), "curve_types": SCOLIOTIC}
    real_stats = [scan_stats(s, s.points, rng) for s in real]
    real_clouds = {f: np.stack([normalise(s, args.num_points, f, rng) for s in real]) for f in FRAMES}
    result = {"real": {"n": n, "stats": summarise(real_stats), "per_subject": real_stats}, "versions": {}}
    timing = {"read_real_s": time.perf_counter() - start}
    for version in args.versions:
        t0 = time.perf_counter()
        nna = {f: [] for f in FRAMES}
        control = []
        stats = []
        sets = []
        for r in range(args.repeats + 1):  # the last set is only the control's second set
            phantoms = [generate_phantom([args.seed, 1000 + r, i], STAT_POINTS, version=version, spine_prior=spine_prior)
                        for i in range(n)]
            sets.append({f: np.stack([normalise(p, args.num_points, f, rng) for p in phantoms]) for f in nna})
            if r == args.repeats:
                break
            for f in nna:
                nna[f].append(nna_between(real_clouds[f], sets[-1][f]))
            for i, p in enumerate(phantoms):
                # The noise estimate needs a dense phantom (slow): only for the first set.
                dense = generate_phantom([args.seed, 1000 + r, i], DENSE_PHANTOM_POINTS, version=version,
                                         spine_prior=spine_prior).points if r == 0 else None
                stats.append(scan_stats(p, dense, rng))
        for r in range(args.repeats):
            control.append(nna_between(sets[r][args.frame], sets[r + 1][args.frame]))
        summary = summarise(stats)
        real_s = result["real"]["stats"]
        inside = {k: float(np.mean([real_s[k]["min"] <= s[k] <= real_s[k]["max"] for s in stats if np.isfinite(s[k])]))
                  for k in STATS}
        result["versions"][version] = {
            "nna": {f: {"mean": float(np.mean(v)), "sd": float(np.std(v)), "runs": v} for f, v in nna.items()},
            "nna_control_phantom_vs_phantom": {"mean": float(np.mean(control)), "sd": float(np.std(control)), "runs": control},
            "stats": summary,
            "fraction_inside_real_range": inside,
            "per_scan": stats,
        }
        timing[f"{version}_s"] = time.perf_counter() - t0
        print(f"{version}: 1-NNA {args.frame} {np.mean(nna[args.frame]):.3f} +- {np.std(nna[args.frame]):.3f}, "
              f"control {np.mean(control):.3f} ({timing[f'{version}_s']:.0f} s)", flush=True)
    result["settings"] = {"data": str(args.data), "num_points": args.num_points, "repeats": args.repeats,
                          "seed": args.seed, "frame": args.frame, "phantom_spine_prior": spine_prior, "stat_points": STAT_POINTS,
                          "dense_phantom_points": DENSE_PHANTOM_POINTS, "versions": list(args.versions),
                          "command": "python -m benchmarks.realism " + " ".join(args.argv),
                          "machine": platform.platform(), "torch_threads": torch.get_num_threads()}
    result["timing_s"] = timing
    return result


def render_markdown(result: dict) -> str:
    """The Markdown report of a :func:`run` result."""
    versions = list(result["versions"])
    real = result["real"]["stats"]
    frame = result["settings"]["frame"]
    lines = [
        "# Phantom realism: PCdare real backs vs phantoms",
        "",
        f"{result['real']['n']} real backs (PCdare, CC BY-NC-SA 4.0, Kaiser et al.) vs {result['real']['n']} phantoms per set, "
        f"{result['settings']['repeats']} sets per version; clouds of {result['settings']['num_points']} points.",
        f"Command: `{result['settings']['command']}`",
        "",
        "## 1-NNA under squared Chamfer (50% = indistinguishable)",
        "",
        "| version | C7-DM frame (landmarks) | C7 on the ESL's top | ESL end points frame | control: phantom vs phantom |",
        "|---|---|---|---|---|",
    ]
    for v in versions:
        r = result["versions"][v]
        c = r["nna_control_phantom_vs_phantom"]
        cells = " | ".join(f"{100 * r['nna'][f]['mean']:.1f} ± {100 * r['nna'][f]['sd']:.1f}%" for f in FRAMES)
        lines.append(f"| {v} | {cells} | {100 * c['mean']:.1f} ± {100 * c['sd']:.1f}% ({frame} frame) |")
    lines += ["", "## Distributions: mean ± sd [min, max]; 'in' = share of phantoms inside the real range", "",
              "| statistic | real | " + " | ".join(f"{v} | in" for v in versions) + " |",
              "|---|---|" + "---|---|" * len(versions)]
    for key, (label, unit) in STATS.items():
        fmt = lambda s: f"{s['mean']:.3g} ± {s['sd']:.2g} [{s['min']:.3g}, {s['max']:.3g}]"  # noqa: E731
        row = f"| {label} ({unit}) | {fmt(real[key])} | "
        row += " | ".join(f"{fmt(result['versions'][v]['stats'][key])} | "
                          f"{100 * result['versions'][v]['fraction_inside_real_range'][key]:.0f}%" for v in versions)
        lines.append(row + " |")
    lines += ["", "Timing (s): " + ", ".join(f"{k} {v:.0f}" for k, v in result["timing_s"].items()), ""]
    return "\n".join(lines)


def plot(result: dict, real_scans_png: Path, args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    versions = list(result["versions"])
    keys = list(STATS)
    ncol = 5
    nrow_stats = int(np.ceil(len(keys) / ncol))
    fig = plt.figure(figsize=(4 * ncol, 3.2 * nrow_stats + 5.5))
    gs = fig.add_gridspec(nrow_stats + 2, ncol, height_ratios=[1] * nrow_stats + [1.1, 1.1])
    colors = {"real": "k", **{v: c for v, c in zip(versions, ["tab:orange", "tab:blue", "tab:green"])}}
    for k, key in enumerate(keys):
        ax = fig.add_subplot(gs[k // ncol, k % ncol])
        groups = [("real", [s[key] for s in result["real"]["per_subject"]])]
        groups += [(v, [s[key] for s in result["versions"][v]["per_scan"]]) for v in versions]
        for j, (name, vals) in enumerate(groups):
            vals = np.asarray(vals, dtype=float)
            vals = vals[np.isfinite(vals)]
            ax.scatter(j + np.random.default_rng(j).uniform(-0.2, 0.2, len(vals)), vals, s=6, alpha=0.5, color=colors[name])
            ax.boxplot([vals], positions=[j], widths=0.5, showfliers=False)
        ax.set_xticks(range(len(groups)), [g[0] for g in groups])
        ax.set_title(f"{STATS[key][0]}", fontsize=8)
    # Example clouds, normalised (landmark frame), seen from the scanner, coloured by z (same scale).
    rng = np.random.default_rng(0)
    real = read_pcdare(args.data, ids=None)[:ncol]
    for j, scan in enumerate(real):
        ax = fig.add_subplot(gs[nrow_stats, j])
        p = normalise(scan, 3000, "landmarks", rng)
        ax.scatter(p[:, 0], p[:, 1], c=p[:, 2], s=1, cmap="viridis", vmin=-0.25, vmax=0.12)
        ax.set_aspect("equal"); ax.set_xlim(-0.6, 0.6); ax.set_ylim(-0.65, 0.65); ax.set_title(f"real {scan.name}", fontsize=8)
    for j in range(ncol):
        ax = fig.add_subplot(gs[nrow_stats + 1, j])
        scan = generate_phantom([args.seed, 1000, j], 3000, version=versions[-1],
                                spine_prior=result["settings"]["phantom_spine_prior"])
        p = normalise(scan, 3000, "landmarks", rng)
        ax.scatter(p[:, 0], p[:, 1], c=p[:, 2], s=1, cmap="viridis", vmin=-0.25, vmax=0.12)
        sp = scan.meta["phantom"]["spine"]
        ax.set_aspect("equal"); ax.set_xlim(-0.6, 0.6); ax.set_ylim(-0.65, 0.65)
        ax.set_title(f"phantom {versions[-1]}: {sp['curve_type']} {sp['cobb_deg']:.0f} deg", fontsize=8)
    fig.tight_layout()
    fig.savefig(real_scans_png, dpi=65)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_PCDARE, help="PCdare folder (CobbAngles.csv, Upright/)")
    parser.add_argument("--versions", nargs="+", choices=VERSIONS, default=list(VERSIONS))
    parser.add_argument("--repeats", type=int, default=5, help="independent phantom sets per version")
    parser.add_argument("--num-points", type=int, default=2048, help="points per cloud for the Chamfer 1-NNA")
    parser.add_argument("--frame", choices=FRAMES, default="landmarks", help="frame of the control 1-NNA")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cobb-range", choices=("cohort", "prior"), default="cohort",
                        help="phantom Cobb angles: the real cohort's clinical range (scoliotic curves) or the default prior")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    parser.add_argument("--plot-only", action="store_true", help="redraw realism.png from an existing realism.json")
    args = parser.parse_args(argv)
    args.argv = argv if argv is not None else sys.argv[1:]
    if not (args.data / "Upright").is_dir():
        raise SystemExit(f"realism: {args.data} is not a PCdare folder (no Upright/); pass --data")
    if args.plot_only:
        plot(json.loads((args.out / "realism.json").read_text(encoding="utf-8")), args.out / "realism.png", args)
        return 0
    result = run(args)
    write_results("realism", result, render_markdown(result), args.out, indent=1)
    plot(result, args.out / "realism.png", args)
    print((args.out / "realism.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
