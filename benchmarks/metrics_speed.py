"""Speed of pcdiff's Chamfer / EMD / set metrics against the plain baselines, on 2048-point back scans.

    OMP_NUM_THREADS=2 python -m benchmarks.metrics_speed [--quick] [--sets 100] [--emd-sets 20]
        [--emd-large-sets 100] [--old-emd-sets 10]

Writes ``benchmarks/results/metrics_speed.json`` and ``.md``. Clouds are phantom back scans (mm), two
independent draws of the phantom distribution as "generated" and "reference" sets. Side by side, in one
run (ratios = new / old):

* nearest-neighbour query floor: scipy cKDTree vs pcdiff's numba grid (:mod:`pcdiff.metrics._grid_nn`);
* one Chamfer pair: pcdiff (``chamfer_distance``) vs scipy cKDTree;
* one EMD pair: exact scipy ``linear_sum_assignment`` and POT ``ot.emd``, the NumPy auction and the
  numba auction (time and error vs exact);
* MMD/COV/1-NNA-CD, S vs S: the bounded search (``generation_metrics`` default with numba), the full
  matrix on the grid, the full matrix on KD-trees (the previous pcdiff path) and the plain loop with one
  scipy KD-tree CD per pair (timed on a sample of pairs, extrapolated; stated in the output);
* MMD/COV/1-NNA-EMD: the previous lower-bound search with one exact solve a visited pair vs the bounded
  search (exact mode) on ``--old-emd-sets``; the bounded search in exact and in certified-auction mode
  on ``--emd-sets`` (the measured error of the auction results against exact); the auction mode on
  ``--emd-large-sets`` (the target size), measured.

Each timed block records ``os.getloadavg()`` before it: several jobs may share the 2-core CPU.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from scipy.spatial import cKDTree

from benchmarks.reporting import RESULTS_DIR, machine_was_busy, write_results

from pcdiff.data.phantom import generate_phantom  # noqa: E402
from pcdiff.metrics import chamfer_distance, emd_auction, emd_exact, generation_metrics, pairwise_nearest_means  # noqa: E402
from pcdiff.metrics._grid_nn import build_grids, directed_sums  # noqa: E402
from pcdiff.metrics._numba import is_numba_available  # noqa: E402
from pcdiff.metrics.bounded_search import chamfer_search, emd_search  # noqa: E402
from pcdiff.metrics.generation import DenseDistances, mmd_cov, one_nn_accuracy  # noqa: E402

ALL = ("mmd", "cov", "1nna")


CPU_SECONDS: dict[str, float] = {}  # process CPU time (all threads) of the last ``timed`` call per label


def timed(fn, repeat: int = 1, label: str | None = None):
    """(result of the last call, median wall-clock seconds over ``repeat`` calls); with ``label``, the
    CPU seconds of the last call (all threads of this process: less sensitive to other jobs' load) are
    kept in ``CPU_SECONDS[label]``."""
    times, out = [], None
    for _ in range(repeat):
        start, cpu = time.perf_counter(), time.process_time()
        out = fn()
        times.append(time.perf_counter() - start)
        if label is not None:
            CPU_SECONDS[label] = time.process_time() - cpu
    return out, float(np.median(times))


def load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def phantom_set(first_seed: int, count: int, num_points: int) -> torch.Tensor:
    return torch.from_numpy(np.stack([generate_phantom(first_seed + i, num_points).points for i in range(count)]))


def kdtree_cd(a: np.ndarray, b: np.ndarray) -> float:
    """The plain baseline: squared-sum Chamfer of one pair with two fresh scipy KD-trees."""
    return float((cKDTree(b).query(a)[0] ** 2).mean() + (cKDTree(a).query(b)[0] ** 2).mean())


def lsa_emd(a: np.ndarray, b: np.ndarray) -> float:
    cost = np.linalg.norm(a[:, None] - b[None], axis=-1)
    r, c = linear_sum_assignment(cost)
    return float(cost[r, c].mean())


def dense_metrics(matrix: torch.Tensor, g: int, r: int) -> dict[str, float]:
    return {**mmd_cov(DenseDistances(matrix), g, r), **one_nn_accuracy(DenseDistances(matrix), g, r)}


def query_floor(clouds: np.ndarray) -> dict:
    """Seconds per nearest-neighbour query: all points of clouds[1:] against clouds[0] (cKDTree with
    ``workers=-1``; the grid kernel with one thread per query cloud, numba's default thread count)."""
    queries = np.ascontiguousarray(clouds[1:].reshape(-1, 3))
    _, t_kd = timed(lambda: cKDTree(clouds[0]).query(queries, k=1, workers=-1), 3)
    grids = build_grids(np.ascontiguousarray(clouds[0]), np.array([0, clouds.shape[1]]))
    k, n = clouds.shape[0] - 1, clouds.shape[1]
    src, dst = np.arange(k), np.zeros(k, dtype=np.int64)
    args = (queries, np.arange(k + 1) * n, grids, src, dst, np.zeros(k, dtype=np.int64), np.full(k, n))
    directed_sums(*args)  # compile (cached on disk after the first run)
    _, t_grid = timed(lambda: directed_sums(*args), 3)
    q = len(queries)
    return {"queries": q, "kdtree_us": t_kd / q * 1e6, "grid_us": t_grid / q * 1e6, "ratio_grid_over_kdtree": t_grid / t_kd}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=2048)
    parser.add_argument("--sets", type=int, default=100, help="S: clouds per set for the CD set metrics")
    parser.add_argument("--emd-sets", type=int, default=20, help="sets for the exact-vs-auction EMD set metrics")
    parser.add_argument("--emd-large-sets", type=int, default=100, help="sets for the auction EMD set metrics")
    parser.add_argument("--sections", default="cd,emd", help="comma-separated: cd, emd (which set-metric blocks)")
    parser.add_argument("--stem", default="metrics_speed", help="results file name stem in benchmarks/results/")
    parser.add_argument("--emd-pairs", type=int, default=2, help="pairs for the per-pair EMD timing and error")
    parser.add_argument("--baseline-pairs", type=int, default=300, help="sampled pairs for the KD-tree set baseline")
    parser.add_argument("--skip-kdtree-set", action="store_true", help="skip the full KD-tree CD matrix (slow)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to check the script runs")
    args = parser.parse_args()
    if not is_numba_available():
        raise SystemExit("benchmarks/metrics_speed.py compares the numba kernels: pip install numba")
    if args.quick:
        args.points, args.sets, args.emd_sets, args.emd_large_sets = 256, 8, 4, 6
        args.emd_pairs, args.baseline_pairs = 1, 20
    command = "OMP_NUM_THREADS=%s python -m benchmarks.metrics_speed" % os.environ.get("OMP_NUM_THREADS", "unset")
    command += " --quick" if args.quick else (
        f" --sets {args.sets} --emd-sets {args.emd_sets} --emd-large-sets {args.emd_large_sets}"
        f" --emd-pairs {args.emd_pairs} --sections {args.sections}"
        + (" --skip-kdtree-set" if args.skip_kdtree_set else "")
        + (f" --stem {args.stem}" if args.stem != "metrics_speed" else "")
    )
    res: dict = {
        "command": command,
        "machine": {
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "platform": platform.platform(),
            "torch": torch.__version__, "cuda": torch.cuda.is_available(), "loadavg_start": load(),
        },
        "points": args.points,
        "stem": args.stem,
    }  # fmt: skip
    sections = set(args.sections.split(","))
    n, s = args.points, args.sets
    big = max(s, args.emd_large_sets)
    gen, ref = phantom_set(0, big, n), phantom_set(10_000, big, n)
    g_np, r_np = gen.double().numpy(), ref.double().numpy()

    # --- nearest-neighbour floor and one Chamfer pair ----------------------------------------------
    res["nn_query"] = {"loadavg": load(), **query_floor(np.concatenate([g_np[:11], r_np[:10]]))}
    x, y = gen[:1], ref[:1]
    cd_ours, t_ours = timed(lambda: chamfer_distance(x, y).item(), 5)
    cd_torch, t_torch = timed(lambda: chamfer_distance(x, y, backend="torch").item(), 3)
    cd_ref, t_ref = timed(lambda: kdtree_cd(g_np[0], r_np[0]), 5)
    res["chamfer_pair"] = {
        "pcdiff_auto_s": t_ours, "pcdiff_torch_bruteforce_s": t_torch, "scipy_kdtree_s": t_ref,
        "ratio_pcdiff_over_scipy": t_ours / t_ref, "ratio_torch_over_scipy": t_torch / t_ref,
        "value_mm2": cd_ours, "abs_diff_vs_scipy_mm2": abs(cd_ours - cd_ref), "torch_abs_diff_mm2": abs(cd_torch - cd_ref),
    }  # fmt: skip

    save(res)
    # --- EMD pairs: exact (scipy, POT), NumPy auction, numba auction -------------------------------
    rows = []
    emd_exact(gen[:1, :16], ref[:1, :16], solver="pot")  # warm-up: imports POT, compiles the auction
    emd_auction(gen[:1, :16], ref[:1, :16], bidding="numba")
    res["emd_pair_loadavg"] = load()
    for i in range(args.emd_pairs):
        a, b = gen[i : i + 1], ref[i : i + 1]
        ex_lsa, t_lsa = timed(lambda: lsa_emd(g_np[i], r_np[i]))
        ex_pot, t_pot = timed(lambda: emd_exact(a, b, solver="pot").item())
        gs, t_gs = timed(lambda: emd_auction(a, b, rel_tol=1e-2, bidding="gauss_seidel").emd.item())
        nb, t_nb = timed(lambda: emd_auction(a, b, rel_tol=1e-2, bidding="numba"), 3)
        rows.append({
            "exact_mm": ex_lsa, "pot_minus_scipy_mm": ex_pot - ex_lsa, "scipy_lsa_s": t_lsa, "pot_s": t_pot,
            "numpy_auction_s": t_gs, "numpy_auction_rel_error": (gs - ex_lsa) / ex_lsa,
            "numba_auction_s": t_nb, "numba_auction_rel_error": (nb.emd.item() - ex_lsa) / ex_lsa,
            "numba_auction_lower_bound_mm": nb.lower_bound.item(),
        })  # fmt: skip
    med = {k: float(np.median([r[k] for r in rows])) for k in ("scipy_lsa_s", "pot_s", "numpy_auction_s", "numba_auction_s")}
    res["emd_pair"] = {
        "pairs": rows, **{f"median_{k}": v for k, v in med.items()},
        "max_numpy_auction_rel_error": max(abs(r["numpy_auction_rel_error"]) for r in rows),
        "max_numba_auction_rel_error": max(abs(r["numba_auction_rel_error"]) for r in rows),
    }  # fmt: skip

    save(res)
    # --- CD set metrics, S vs S --------------------------------------------------------------------
    if "cd" in sections:
        cd_section(res, gen, ref, s, args)
    save(res)
    if "emd" in sections:
        emd_section(res, gen, ref, args)
    elif "emd_large" in sections:  # only the auction search at the target size
        res["emd_set_metrics"] = {"target_s": 300.0}
        emd_large(res["emd_set_metrics"], gen, ref, args.emd_large_sets)
    res["machine"]["loadavg_end"] = load()
    write(res)


def cd_section(res: dict, gen: torch.Tensor, ref: torch.Tensor, s: int, args: argparse.Namespace) -> None:
    gs_, rs_ = gen[:s], ref[:s]
    union = torch.cat([gs_, rs_])
    total_pairs = (2 * s) * (2 * s - 1) // 2
    cd = {"sets": s, "pairs": total_pairs, "target_s": 30.0, "loadavg": load()}
    cd_new, cd["bounded_s"] = timed(lambda: generation_metrics(gs_, rs_, distances=("cd",)), label="cd_bounded")
    found = chamfer_search([*gs_, *rs_], s, ALL)
    cd["bounded_query_fraction"], cd["bounded_pairs_completed"] = found.work, found.pairs["exact"]
    grid_m, cd["full_grid_s"] = timed(lambda: (lambda sq: sq + sq.T)(pairwise_nearest_means(union, backend="grid")[0]), label="cd_full_grid")
    grid_vals = {(k.replace("1-NNA", "1-NNA-CD") if k.startswith("1-NNA") else f"{k}-CD"): v for k, v in dense_metrics(grid_m, s, s).items()}
    cd["loadavg_kdtree"] = load()
    if not args.skip_kdtree_set:
        kd_m, cd["full_kdtree_s"] = timed(lambda: (lambda sq: sq + sq.T)(pairwise_nearest_means(union, backend="kdtree")[0]), label="cd_full_kdtree")
        cd["kdtree_matches_grid"] = bool(torch.allclose(kd_m, grid_m, rtol=1e-10))
    rng = np.random.default_rng(0)
    un = union.double().numpy()
    sample = [tuple(rng.choice(2 * s, 2, replace=False)) for _ in range(min(args.baseline_pairs, total_pairs))]
    _, t_sample = timed(lambda: [kdtree_cd(un[i], un[j]) for i, j in sample])
    cd["per_pair_kdtree_loop_s_extrapolated"] = t_sample / len(sample) * total_pairs
    cd["baseline_sampled_pairs"] = len(sample)
    cd["bounded_equals_full_matrix"] = all(abs(cd_new[k] - grid_vals[k]) <= 1e-9 * max(1.0, abs(grid_vals[k])) for k in grid_vals)
    cd["values"] = cd_new
    cd["meets_target"] = cd["bounded_s"] < 30.0
    res["cd_set_metrics"] = cd


def emd_section(res: dict, gen: torch.Tensor, ref: torch.Tensor, args: argparse.Namespace) -> None:
    """MMD/COV/1-NNA-EMD: previous search vs bounded exact vs bounded auction, then the auction at scale."""
    emd: dict = {"target_s": 300.0}
    e = args.emd_sets
    u_e = torch.cat([gen[:e], ref[:e]])
    emd["sets"], emd["loadavg_old"] = e, load()
    old_vals, emd["old_lower_bound_search_exact_s"] = timed(
        lambda: generation_metrics(gen[:e], ref[:e], distances=("emd",), emd_search="lower_bounds"), label="emd_old")  # fmt: skip
    emd["old_pairs_solved"] = old_vals.pop("EMD-pairs")
    emd["loadavg_exact"] = load()
    ex, emd["bounded_exact_s"] = timed(lambda: emd_search(u_e, e, ALL, exact=True), label="emd_bounded_exact")
    ex_named = {(k.replace("1-NNA", "1-NNA-EMD") if k.startswith("1-NNA") else f"{k}-EMD"): v for k, v in dense_metrics(ex.matrix, e, e).items()}  # fmt: skip
    emd["bounded_exact_pairs_touched"] = ex.work
    emd["old_equals_bounded_exact"] = all(abs(old_vals[k] - ex_named[k]) <= 1e-9 * max(1.0, abs(old_vals[k])) for k in old_vals)  # fmt: skip
    emd["loadavg_auction"] = load()
    ap, emd["bounded_auction_s"] = timed(lambda: emd_search(u_e, e, ALL, exact=False, rel_tol=1e-2), label="emd_bounded_auction")
    ex_vals, ap_vals = dense_metrics(ex.matrix, e, e), dense_metrics(ap.matrix, e, e)
    emd["exact_values"], emd["auction_values"] = ex_vals, ap_vals
    emd["exact_solves"], emd["auction_solves"] = ex.pairs, ap.pairs
    emd["auction_mmd_rel_error"] = (ap_vals["MMD"] - ex_vals["MMD"]) / ex_vals["MMD"]
    emd["auction_cov_1nna_abs_diff"] = max(abs(ap_vals[k] - ex_vals[k]) for k in ex_vals if k != "MMD")
    both = torch.isfinite(ex.matrix) & torch.isfinite(ap.matrix) & (ex.matrix > 0)
    emd["auction_max_pair_rel_error"] = float(((ap.matrix - ex.matrix)[both] / ex.matrix[both]).abs().max()) if bool(both.any()) else None
    emd["auction_pairs_checked_vs_exact"] = int(both.sum()) // 2
    res["emd_set_metrics"] = emd

    save(res)
    emd_large(emd, gen, ref, args.emd_large_sets)


def emd_large(emd: dict, gen: torch.Tensor, ref: torch.Tensor, L: int) -> None:
    """The certified auction search on L vs L clouds (the target size), measured."""
    u_l = torch.cat([gen[:L], ref[:L]])
    emd["large_sets"], emd["loadavg_large"] = L, load()
    lg, emd["large_auction_s"] = timed(lambda: emd_search(u_l, L, ALL, exact=False, rel_tol=1e-2), label="emd_large_auction")
    emd["large_pairs_total"], emd["large_pairs_solved"], emd["large_solves"] = (2 * L) * (2 * L - 1) // 2, lg.work, lg.pairs
    emd["large_values"] = dense_metrics(lg.matrix, L, L)
    emd["meets_target"] = bool(emd["large_auction_s"] < 300.0 and L >= 100 and emd.get("auction_mmd_rel_error", 1.0) < 0.01)


def save(res: dict) -> None:
    """Write the JSON so far (an interrupted run keeps its finished sections)."""
    res["cpu_seconds"] = dict(CPU_SECONDS)
    write_results(res["stem"], res, None, RESULTS_DIR)


def write(res: dict) -> None:
    save(res)
    q, c, p, m = res["nn_query"], res["chamfer_pair"], res["emd_pair"], res["machine"]
    lines = [
        "# Metric speed (pcdiff vs plain baselines)",
        "",
        f"`{res['command']}` on {m['cpu_count']} CPU cores, torch threads {m['torch_threads']}, CUDA: {m['cuda']}. "
        f"Load average (1, 5, 15 min) {tuple(m['loadavg_start'])} at start, {tuple(m['loadavg_end'])} at end; "
        + ("other jobs shared the CPU, so every figure is a wall-clock time under that load "
           if machine_was_busy([m["loadavg_start"][0], m["loadavg_end"][0]], m["cpu_count"]) else "the machine was otherwise idle ")
        + f"(each block's load is in `{res['stem']}.json`). Phantom back scans, "
        f"{res['points']} points each, in mm. Ratio = new / old.",
        "",
        "| task | new | old / baseline | ratio |",
        "|---|---|---|---|",
        f"| nearest-neighbour query, {res['points']}-point cloud | {q['grid_us']:.2f} us (numba grid) | {q['kdtree_us']:.2f} us (scipy cKDTree) | {q['ratio_grid_over_kdtree']:.2f} |",
        f"| Chamfer, 1 pair | {c['pcdiff_auto_s'] * 1e3:.1f} ms (`chamfer_distance`, KD-tree on CPU) | {c['scipy_kdtree_s'] * 1e3:.1f} ms (scipy KD-tree) | {c['ratio_pcdiff_over_scipy']:.2f} |",
        f"| Chamfer, 1 pair, PyTorch brute force (differentiable / GPU path) | {c['pcdiff_torch_bruteforce_s'] * 1e3:.1f} ms | {c['scipy_kdtree_s'] * 1e3:.1f} ms | {c['ratio_torch_over_scipy']:.2f} |",
        f"| exact EMD, 1 pair | {p['median_pot_s']:.2f} s (`emd_exact`, POT) | {p['median_scipy_lsa_s']:.2f} s (scipy LSA) | {p['median_pot_s'] / p['median_scipy_lsa_s']:.2f} |",
        f"| auction EMD (certified 1%), 1 pair | {p['median_numba_auction_s']:.3f} s numba, max error {100 * p['max_numba_auction_rel_error']:.3f}% | {p['median_numpy_auction_s']:.2f} s NumPy auction (error {100 * p['max_numpy_auction_rel_error']:.3f}%); {p['median_pot_s']:.2f} s POT exact | {p['median_numba_auction_s'] / p['median_numpy_auction_s']:.2f}; {p['median_numba_auction_s'] / p['median_pot_s']:.2f} |",
    ]
    notes, targets = [], []
    cs = res.get("cd_set_metrics")
    if cs:
        s, kd = cs["sets"], cs.get("full_kdtree_s")
        old = f"{kd:.1f} s (full matrix, KD-trees: the previous path); " if kd else ""
        ratio = f"{cs['bounded_s'] / cs['full_grid_s']:.2f}" + (f"; {cs['bounded_s'] / kd:.2f}" if kd else "")
        lines.append(
            f"| MMD/COV/1-NNA-CD, {s} vs {s} | **{cs['bounded_s']:.1f} s** (bounded search, {100 * cs['bounded_query_fraction']:.0f}% of the queries) "
            f"| {cs['full_grid_s']:.1f} s (full matrix, grid); {old}{cs['per_pair_kdtree_loop_s_extrapolated']:.0f} s "
            f"(KD-tree CD per pair, extrapolated from {cs['baseline_sampled_pairs']} pairs) | {ratio} |"
        )
        notes.append(f"bounded CD search = full-matrix results: {cs['bounded_equals_full_matrix']}"
                     + (f"; grid = KD-tree matrix: {cs['kdtree_matches_grid']}" if kd else ""))  # fmt: skip
        targets.append(f"CD set metrics {s} vs {s} under 30 s: **{'met' if cs['meets_target'] else 'not met'}** "
                       f"({cs['bounded_s']:.1f} s at load {tuple(cs['loadavg'])})")  # fmt: skip
    es = res.get("emd_set_metrics")
    if es and "large_auction_s" in es and "sets" not in es:  # --sections emd_large
        big = es["large_sets"]
        lines.append(f"| MMD/COV/1-NNA-EMD, {big} vs {big}, auction (certified 1%) | **{es['large_auction_s']:.0f} s** ({int(es['large_pairs_solved'])} of {es['large_pairs_total']} pairs touched) | | |")
        notes.append(f"solves per level ({big} vs {big}): {es['large_solves']}")
        targets.append(
            f"EMD set metrics 100 vs 100 under 5 min: **{'met' if es['large_auction_s'] < 300 and big >= 100 else 'not met'}** "
            f"({es['large_auction_s']:.0f} s for {big} vs {big} at load {tuple(es['loadavg_large'])}; the error check vs "
            "exact is in the full run)"
        )
    elif es and "large_auction_s" in es:
        e, big = es["sets"], es["large_sets"]
        lines += [
            f"| MMD/COV/1-NNA-EMD exact, {e} vs {e} | {es['bounded_exact_s']:.0f} s (bounded search, {int(es['bounded_exact_pairs_touched'])} pairs touched) | {es['old_lower_bound_search_exact_s']:.0f} s (previous lower-bound search, {int(es['old_pairs_solved'])} exact solves) | {es['bounded_exact_s'] / es['old_lower_bound_search_exact_s']:.2f} |",
            f"| MMD/COV/1-NNA-EMD, {e} vs {e}, auction (certified 1%) | {es['bounded_auction_s']:.0f} s | {es['bounded_exact_s']:.0f} s bounded exact; {es['old_lower_bound_search_exact_s']:.0f} s previous | {es['bounded_auction_s'] / es['bounded_exact_s']:.2f}; {es['bounded_auction_s'] / es['old_lower_bound_search_exact_s']:.2f} |",
            f"| MMD/COV/1-NNA-EMD, {big} vs {big}, auction (certified 1%) | **{es['large_auction_s']:.0f} s** ({int(es['large_pairs_solved'])} of {es['large_pairs_total']} pairs touched) | | |",
        ]
        notes.append(
            f"bounded exact EMD search = previous search ({e} vs {e}): {es['old_equals_bounded_exact']}; auction mode "
            f"vs exact ({e} vs {e}): MMD-EMD error {100 * es['auction_mmd_rel_error']:.3f}%, largest COV/1-NNA "
            f"difference {es['auction_cov_1nna_abs_diff']:.2f} points, largest error of a pair value both searches "
            f"kept {100 * (es['auction_max_pair_rel_error'] or 0):.3f}% ({es['auction_pairs_checked_vs_exact']} pairs). "
            f"Solves per level ({e} vs {e}): exact mode {es['exact_solves']}, auction mode {es['auction_solves']}; "
            f"{big} vs {big}: {es['large_solves']}"
        )
        targets.append(
            f"EMD set metrics 100 vs 100 under 5 min with < 1% error: **{'met' if es['meets_target'] else 'not met'}** "
            f"({es['large_auction_s']:.0f} s for {big} vs {big} at load {tuple(es['loadavg_large'])})"
        )
    lines += [
        "",
        "CPU seconds of this process (both threads; less sensitive to the other jobs than wall time): "
        + ", ".join(f"{k} {v:.0f}" for k, v in res["cpu_seconds"].items()) + ".",
        "",
        "Checks in this run: " + "; ".join(notes) + ".",
        "",
        "Targets (issue 3): " + "; ".join(targets) + ".",
    ]
    write_results(res["stem"], res, "\n".join(lines), RESULTS_DIR)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
