"""Speed of pcdiff's Chamfer / EMD / set metrics against the plain baselines, on 2048-point back scans.

    OMP_NUM_THREADS=2 python benchmarks/metrics_speed.py [--quick] [--sets 100] [--emd-sets 20]

Writes ``benchmarks/results/metrics_speed.json`` and ``.md``. Clouds are phantom back scans (mm), two
independent draws of the phantom distribution as "generated" and "reference" sets. Side by side:

* one Chamfer pair: pcdiff (batched PyTorch kNN) vs scipy cKDTree;
* one EMD pair: exact scipy ``linear_sum_assignment``, exact POT ``ot.emd`` (pcdiff's ``emd_exact``
  uses POT when installed, else scipy) and pcdiff's auction approximation (time and error vs exact);
* MMD/COV/1-NNA-CD for S vs S clouds: pcdiff (``generation_metrics``, KD-trees over the union, each
  tree queried once with all points) vs the plain loop over all pairs with one scipy KD-tree CD per pair
  (timed on a random sample of pairs and extrapolated to all of them, stated in the output);
* MMD/COV/1-NNA-EMD: the pruned exact search on ``--emd-sets`` vs ``--emd-sets`` clouds (measured),
  and the time the full exact matrix would take for S vs S (extrapolated from the per-pair time).

The machine's load (``os.getloadavg()``) is recorded before and after: several jobs may share the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from scipy.spatial import cKDTree

from pcdiff.data.phantom import generate_phantom
from pcdiff.metrics import chamfer_distance, emd_auction, emd_exact, generation_metrics

RESULTS = Path(__file__).resolve().parent / "results"


def timed(fn, repeat: int = 1):
    """(result of the last call, median seconds over ``repeat`` calls)."""
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return out, float(np.median(times))


def phantom_set(first_seed: int, count: int, num_points: int) -> torch.Tensor:
    return torch.from_numpy(np.stack([generate_phantom(first_seed + i, num_points).points for i in range(count)]))


def kdtree_cd(a: np.ndarray, b: np.ndarray) -> float:
    """The plain baseline: squared-sum Chamfer of one pair with two fresh scipy KD-trees."""
    return float((cKDTree(b).query(a)[0] ** 2).mean() + (cKDTree(a).query(b)[0] ** 2).mean())


def lsa_emd(a: np.ndarray, b: np.ndarray) -> float:
    cost = np.linalg.norm(a[:, None] - b[None], axis=-1)
    r, c = linear_sum_assignment(cost)
    return float(cost[r, c].mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=2048)
    parser.add_argument("--sets", type=int, default=100, help="S: clouds per set for the CD set metrics")
    parser.add_argument("--emd-sets", type=int, default=20, help="clouds per set for the measured EMD set metrics")
    parser.add_argument("--emd-pairs", type=int, default=3, help="pairs for the per-pair EMD timing and error")
    parser.add_argument("--baseline-pairs", type=int, default=300, help="sampled pairs for the KD-tree set baseline")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to check the script runs")
    args = parser.parse_args()
    if args.quick:
        args.points, args.sets, args.emd_sets, args.emd_pairs, args.baseline_pairs = 512, 8, 4, 2, 20
    res: dict = {
        "command": "OMP_NUM_THREADS=%s python benchmarks/metrics_speed.py%s"
        % (os.environ.get("OMP_NUM_THREADS", "unset"), " --quick" if args.quick else ""),
        "machine": {
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(),
            "torch": torch.__version__,
            "cuda": torch.cuda.is_available(),
            "loadavg_start": os.getloadavg(),
        },
        "points": args.points,
    }
    n = args.points
    s = args.sets
    gen, ref = phantom_set(0, s, n), phantom_set(10_000, s, n)
    g_np, r_np = gen.double().numpy(), ref.double().numpy()

    # --- one Chamfer pair -------------------------------------------------------------------------
    x, y = gen[:1], ref[:1]
    cd_ours, t_ours = timed(lambda: chamfer_distance(x, y).item(), 5)  # auto: KD-tree on CPU
    cd_torch, t_torch = timed(lambda: chamfer_distance(x, y, backend="torch").item(), 5)  # the GPU path
    cd_ref, t_ref = timed(lambda: kdtree_cd(g_np[0], r_np[0]), 5)
    res["chamfer_pair"] = {
        "pcdiff_auto_s": t_ours, "pcdiff_torch_bruteforce_s": t_torch, "scipy_kdtree_s": t_ref,
        "ratio_pcdiff_over_scipy": t_ours / t_ref, "ratio_torch_over_scipy": t_torch / t_ref,
        "value_mm2": cd_ours, "abs_diff_vs_scipy_mm2": abs(cd_ours - cd_ref), "torch_abs_diff_mm2": abs(cd_torch - cd_ref),
    }  # fmt: skip

    # --- EMD pairs: exact (scipy, POT) and auction ------------------------------------------------
    rows = []
    emd_exact(gen[:1, :16], ref[:1, :16], solver="pot")  # warm-up: the first call imports POT
    emd_auction(gen[:1, :16], ref[:1, :16])
    for i in range(args.emd_pairs):
        a, b = gen[i : i + 1], ref[i : i + 1]
        ex_lsa, t_lsa = timed(lambda: lsa_emd(g_np[i], r_np[i]))
        ex_pot, t_pot = timed(lambda: emd_exact(a, b, solver="pot").item())
        auc, t_auc = timed(lambda: emd_auction(a, b, rel_tol=1e-2))
        rows.append({
            "exact_mm": ex_lsa, "pot_minus_scipy_mm": ex_pot - ex_lsa, "auction_mm": auc.emd.item(),
            "auction_lower_bound_mm": auc.lower_bound.item(), "auction_rel_error": (auc.emd.item() - ex_lsa) / ex_lsa,
            "scipy_lsa_s": t_lsa, "pot_s": t_pot, "auction_s": t_auc,
        })  # fmt: skip
    res["emd_pair"] = {
        "pairs": rows,
        "median_scipy_lsa_s": float(np.median([r["scipy_lsa_s"] for r in rows])),
        "median_pot_s": float(np.median([r["pot_s"] for r in rows])),
        "median_auction_s": float(np.median([r["auction_s"] for r in rows])),
        "max_auction_rel_error": float(max(abs(r["auction_rel_error"]) for r in rows)),
    }

    # --- CD set metrics, S vs S --------------------------------------------------------------------
    cd_set, t_cd_set = timed(lambda: generation_metrics(gen, ref, distances=("cd",)))
    total_pairs = (2 * s) * (2 * s - 1) // 2  # gen-gen, ref-ref and gen-ref, each unordered pair once
    union = np.concatenate([g_np, r_np])
    rng = np.random.default_rng(0)
    sample = [tuple(rng.choice(2 * s, 2, replace=False)) for _ in range(min(args.baseline_pairs, total_pairs))]
    _, t_sample = timed(lambda: [kdtree_cd(union[i], union[j]) for i, j in sample])
    t_baseline = t_sample / len(sample) * total_pairs
    res["cd_set_metrics"] = {
        "sets": s, "pairs": total_pairs, "pcdiff_s": t_cd_set,
        "baseline_kdtree_per_pair_loop_s_extrapolated": t_baseline,
        "baseline_sampled_pairs": len(sample),
        "ratio_pcdiff_over_baseline": t_cd_set / t_baseline, "target_s": 30.0, "meets_target": t_cd_set < 30.0,
        "values": cd_set,
    }  # fmt: skip

    # --- EMD set metrics: pruned exact search, measured on a smaller set ---------------------------
    e = args.emd_sets
    emd_set, t_emd_set = timed(lambda: generation_metrics(gen[:e], ref[:e], distances=("emd",), emd_method="exact"))
    e_pairs = (2 * e) * (2 * e - 1) // 2
    per_pair = min(res["emd_pair"]["median_pot_s"], res["emd_pair"]["median_scipy_lsa_s"])
    per_pair_auction = res["emd_pair"]["median_auction_s"]
    fraction = emd_set["EMD-pairs"] / e_pairs
    res["emd_set_metrics"] = {
        "measured_sets": e, "measured_s": t_emd_set, "pairs_solved": emd_set["EMD-pairs"], "pairs_total": e_pairs,
        "fraction_solved": emd_set["EMD-pairs"] / e_pairs,
        "full_matrix_s_extrapolated_for_measured_sets": per_pair * e_pairs,
        f"full_matrix_s_extrapolated_for_{s}_vs_{s}": per_pair * total_pairs,
        f"pruned_s_extrapolated_for_{s}_vs_{s}_at_same_fraction": per_pair * total_pairs * fraction,
        f"pruned_auction_s_extrapolated_for_{s}_vs_{s}_at_same_fraction": per_pair_auction * total_pairs * fraction,
        "target_s": 300.0, "values": emd_set,
    }  # fmt: skip
    res["emd_set_metrics"]["meets_target"] = bool(
        min(per_pair, per_pair_auction) * total_pairs * fraction < 300.0
        and res["emd_pair"]["max_auction_rel_error"] < 0.01
    )
    res["machine"]["loadavg_end"] = os.getloadavg()
    write(res)


def write(res: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "metrics_speed.json").write_text(json.dumps(res, indent=2, default=float))
    c, p, cs, es = res["chamfer_pair"], res["emd_pair"], res["cd_set_metrics"], res["emd_set_metrics"]
    s, e = cs["sets"], es["measured_sets"]
    lines = [
        "# Metric speed (pcdiff vs plain baselines)",
        "",
        f"`{res['command']}` on {res['machine']['cpu_count']} CPU cores, torch threads "
        f"{res['machine']['torch_threads']}, CUDA: {res['machine']['cuda']}; load average "
        f"{tuple(round(v, 1) for v in res['machine']['loadavg_start'])} at start, "
        f"{tuple(round(v, 1) for v in res['machine']['loadavg_end'])} at end (other jobs shared the CPU).",
        f"Phantom back scans, {res['points']} points each, in mm.",
        "",
        "| task | pcdiff | baseline | ratio |",
        "|---|---|---|---|",
        f"| Chamfer, 1 pair | {c['pcdiff_auto_s'] * 1e3:.1f} ms (`chamfer_distance`, KD-tree on CPU) | {c['scipy_kdtree_s'] * 1e3:.1f} ms (scipy KD-tree) | {c['ratio_pcdiff_over_scipy']:.2f} |",
        f"| Chamfer, 1 pair, PyTorch brute force (differentiable / GPU path) | {c['pcdiff_torch_bruteforce_s'] * 1e3:.1f} ms | {c['scipy_kdtree_s'] * 1e3:.1f} ms | {c['ratio_torch_over_scipy']:.2f} |",
        f"| exact EMD, 1 pair | {p['median_pot_s']:.2f} s (`emd_exact`, POT) | {p['median_scipy_lsa_s']:.2f} s (scipy LSA) | {p['median_pot_s'] / p['median_scipy_lsa_s']:.2f} |",
        f"| auction EMD (certified 1%), 1 pair | {p['median_auction_s']:.2f} s, max error {100 * p['max_auction_rel_error']:.3f}% | {p['median_scipy_lsa_s']:.2f} s (exact LSA) | {p['median_auction_s'] / p['median_scipy_lsa_s']:.2f} |",
        f"| MMD/COV/1-NNA-CD, {s} vs {s} | {cs['pcdiff_s']:.1f} s | {cs['baseline_kdtree_per_pair_loop_s_extrapolated']:.1f} s (KD-tree per pair, extrapolated from {cs['baseline_sampled_pairs']} pairs) | {cs['ratio_pcdiff_over_baseline']:.2f} |",
        f"| MMD/COV/1-NNA-EMD exact, {e} vs {e} | {es['measured_s']:.0f} s (pruned: {int(es['pairs_solved'])}/{es['pairs_total']} pairs solved) | {es['full_matrix_s_extrapolated_for_measured_sets']:.0f} s (full matrix, extrapolated) | {es['measured_s'] / es['full_matrix_s_extrapolated_for_measured_sets']:.2f} |",
        f"| MMD/COV/1-NNA-EMD, {s} vs {s} (extrapolated at the same pruned fraction) | ~{es[f'pruned_s_extrapolated_for_{s}_vs_{s}_at_same_fraction'] / 60:.0f} min exact, ~{es[f'pruned_auction_s_extrapolated_for_{s}_vs_{s}_at_same_fraction'] / 60:.0f} min auction | ~{es[f'full_matrix_s_extrapolated_for_{s}_vs_{s}'] / 3600:.1f} h (full exact matrix, extrapolated) | |",
        "",
        f"Targets (issue 3): CD set metrics {s} vs {s} under 30 s: **{'met' if cs['meets_target'] else 'not met'}** "
        f"({cs['pcdiff_s']:.1f} s). EMD set metrics {s} vs {s} under 5 min with < 1% error: "
        f"**{'met' if es['meets_target'] else 'not met'}** -- the pruned exact search has 0% error but solves one "
        f"exact EMD (median {min(p['median_pot_s'], p['median_scipy_lsa_s']):.2f} s here) per surviving pair; "
        f"the auction approximation's measured error is {100 * p['max_auction_rel_error']:.3f}% (certified <= 1%) "
        f"and it takes {p['median_auction_s']:.2f} s a pair on this CPU (Gauss-Seidel bids in NumPy), "
        f"{p['median_auction_s'] / min(p['median_pot_s'], p['median_scipy_lsa_s']):.2f}x the faster exact solver's time; "
        "its vectorised (Jacobi) mode is meant for batched GPU use, untested on a GPU here.",
    ]
    (RESULTS / "metrics_speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
