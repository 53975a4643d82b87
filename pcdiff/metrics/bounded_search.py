"""Nearest-neighbour searches over sets of clouds that evaluate expensive distances only where needed.

MMD, COV and 1-NNA need, for each cloud, only its *nearest* cloud (among all others for 1-NNA, among
the other set for MMD/COV), not the whole distance matrix. Both searches below keep, for every pair of
clouds, a certified interval ``[lower, upper]`` around the exact distance and tighten it only for pairs
that can still be some cloud's nearest neighbour: a pair is dropped once its lower bound reaches the best
upper bound of every row it belongs to. Every row then ends with a certified winner: ties aside, the
nearest neighbours are those of the full exact matrix (tested).

* :func:`chamfer_search` -- squared-sum Chamfer. Lower bounds are partial sums: the nearest-neighbour
  terms are >= 0, so the sum over the first k points (random order) of both clouds, divided by N, bounds
  the full CD from below; pairs grow k over ``CD_LEVELS`` until they are dropped or complete (exact).
* :func:`emd_search` -- Euclidean EMD (mean matched distance). Lower bounds: the distance between
  centroids (Jensen) and the max-sliced 1-D W1 on fixed unit directions (projections are 1-Lipschitz;
  :mod:`._sliced`), then the dual bound of the auction. Upper bounds: the cost of the auction's matching.
  Levels: the cheap bounds, auctions stopped at coarse certified gaps, the auction at ``rel_tol`` (the
  reported value: within ``rel_tol`` of the exact EMD), and for near-ties a tighter auction and finally
  the exact solver, so the winners (COV, 1-NNA) are exact and MMD is within ``rel_tol``. Each pair's
  auction state (prices, matching, epsilon) is kept between levels, so climbing a level continues the
  auction instead of restarting it (states are dropped once a pair can no longer be anyone's nearest).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ._auction import auction_pairs
from ._grid_nn import build_grids, directed_sums
from ._sliced import sliced_w1_bound
from .emd import emd_exact

CD_LEVELS = (1 / 32, 1 / 8, 1 / 4, 1 / 2, 1.0)  # fractions of each cloud's points summed per level


@dataclass
class SearchResult:
    """Distances the set metrics need, ``inf`` where a pair was dropped, and how much work was done."""

    matrix: torch.Tensor  # (S, S) float64: exact (CD) or certified (EMD) distance of the kept pairs, else inf
    work: float  # CD: fraction of the S (S - 1) N nearest-neighbour queries of the full matrix; EMD: pairs solved
    pairs: dict[str, int]  # EMD: solves at each level (by name; a pair may climb several); CD: pairs completed


def candidate_masks(g: int, r: int, metrics: Sequence[str]) -> list[torch.Tensor]:
    """(S, S) boolean masks of "row q may take column c as nearest neighbour", one per search needed:
    every other cloud (1-NNA), the other set (MMD rows in R, COV rows in G)."""
    s = g + r
    is_gen = torch.arange(s) < g
    masks = []
    if "1nna" in metrics:
        masks.append(~torch.eye(s, dtype=torch.bool))
    if "mmd" in metrics or "cov" in metrics:
        cross = is_gen[:, None] != is_gen[None, :]
        if "mmd" not in metrics:
            cross &= is_gen[:, None]
        if "cov" not in metrics:
            cross &= ~is_gen[:, None]
        masks.append(cross)
    return masks


def pairs_still_needed(
    lower: torch.Tensor,
    upper: torch.Tensor,
    masks: list[torch.Tensor],
    final: torch.Tensor,
    level: torch.Tensor | None = None,
) -> torch.Tensor:
    """(S, S) boolean, symmetric: pairs whose interval must be tightened.

    For each row and mask: the winner ``w`` is the candidate with the least upper bound; a row is settled
    when ``w`` is ``final`` and no other candidate's lower bound is below ``w``'s upper bound. In unsettled
    rows every candidate with ``lower < upper[w]`` (``w`` included) is requested; with ``level`` (S, S)
    (how far each pair has been tightened), only those of them at the row's lowest level, so a winner is
    not driven to the costly levels while a rival could still be pruned by a cheap one.
    """
    need = torch.zeros_like(lower, dtype=torch.bool)
    rows = torch.arange(lower.shape[0])
    for mask in masks:
        up = torch.where(mask, upper, torch.inf)
        w = up.argmin(1)
        uw = up[rows, w]
        alive = mask & (lower < uw[:, None])
        others = alive.clone()
        others[rows, w] = False
        unsettled = others.any(1) | ~final[rows, w]
        request = alive & unsettled[:, None]
        if level is not None:
            lowest = torch.where(request, level, torch.iinfo(level.dtype).max).amin(1, keepdim=True)
            request &= level == lowest
        need |= request
    return need | need.T


def first_candidates(proxy: torch.Tensor, masks: list[torch.Tensor]) -> torch.Tensor:
    """(S, S) boolean, symmetric: each row's candidate of least ``proxy`` (S, S) under each mask -- the
    pairs solved first, to give every row an upper bound."""
    pick = torch.zeros_like(proxy, dtype=torch.bool)
    rows = torch.arange(proxy.shape[0])
    for mask in masks:
        pick[rows, torch.where(mask, proxy, torch.inf).argmin(1)] = True
    return pick | pick.T


def chamfer_search(clouds: torch.Tensor | list[torch.Tensor], g: int, metrics: Sequence[str], seed: int = 0) -> SearchResult:
    """Squared-sum Chamfer distances the set metrics need among ``clouds`` ([G..., R...], each (N_s, 3)).

    Exact values for the pairs kept (``inf`` for dropped ones); clouds may differ in point count. Needs
    numba (the grid kernels of :mod:`._grid_nn`).
    """
    rng = np.random.default_rng(seed)
    pts = [c.detach().cpu().double().numpy() for c in clouds]
    sizes = np.array([len(p) for p in pts], dtype=np.int64)
    # a random visiting order makes every partial sum a representative fraction of the full one
    flat = np.ascontiguousarray(np.concatenate([p[rng.permutation(len(p))] for p in pts]))
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    grids = build_grids(flat, offsets)
    s = len(pts)
    a_idx, b_idx = np.triu_indices(s, 1)
    level = np.full(len(a_idx), -1)
    sums = np.zeros((len(a_idx), 2))  # directed partial sums a -> b and b -> a
    lower = torch.zeros(s, s, dtype=torch.float64)
    upper = torch.full((s, s), torch.inf, dtype=torch.float64)
    queries = 0

    def advance(sel: np.ndarray, to_level: np.ndarray) -> None:
        nonlocal queries
        a, b = a_idx[sel], b_idx[sel]
        start_a = np.where(level[sel] < 0, 0, np.ceil(np.take(CD_LEVELS, level[sel]) * sizes[a])).astype(np.int64)
        start_b = np.where(level[sel] < 0, 0, np.ceil(np.take(CD_LEVELS, level[sel]) * sizes[b])).astype(np.int64)
        stop_a = np.ceil(np.take(CD_LEVELS, to_level) * sizes[a]).astype(np.int64)
        stop_b = np.ceil(np.take(CD_LEVELS, to_level) * sizes[b]).astype(np.int64)
        sq, _ = directed_sums(
            flat, offsets, grids, np.concatenate([a, b]), np.concatenate([b, a]),
            np.concatenate([start_a, start_b]), np.concatenate([stop_a, stop_b]),
        )  # fmt: skip
        queries += int((stop_a - start_a).sum() + (stop_b - start_b).sum())
        sums[sel, 0] += sq[: len(a)]
        sums[sel, 1] += sq[len(a) :]
        level[sel] = to_level
        bound = torch.from_numpy(sums[sel, 0] / sizes[a] + sums[sel, 1] / sizes[b])
        lower[a, b] = lower[b, a] = bound
        done = torch.from_numpy(to_level == len(CD_LEVELS) - 1)
        upper[a[done], b[done]] = upper[b[done], a[done]] = bound[done]

    advance(np.arange(len(a_idx)), np.zeros(len(a_idx), dtype=np.int64))
    # first upper bounds: complete each row's most promising candidate (least partial mean)
    estimate = torch.zeros(s, s, dtype=torch.float64)
    estimate[a_idx, b_idx] = estimate[b_idx, a_idx] = torch.from_numpy(sums.sum(1) / (2 * np.ceil(CD_LEVELS[0] * sizes[a_idx])))
    masks = candidate_masks(g, s - g, metrics)
    first = first_candidates(estimate, masks)[a_idx, b_idx].numpy()
    advance(np.flatnonzero(first), np.full(int(first.sum()), len(CD_LEVELS) - 1))
    while True:
        final = torch.isfinite(upper)
        need = pairs_still_needed(lower, upper, masks, final)[a_idx, b_idx].numpy() & (level < len(CD_LEVELS) - 1)
        sel = np.flatnonzero(need)
        if len(sel) == 0:
            break
        advance(sel, level[sel] + 1)
    matrix = upper.clone()
    matrix.fill_diagonal_(0.0)
    full = float(sizes.sum() * (s - 1))
    return SearchResult(matrix, queries / full, {"exact": int((level == len(CD_LEVELS) - 1).sum())})


def emd_search(
    clouds: torch.Tensor,
    g: int,
    metrics: Sequence[str],
    *,
    exact: bool,
    rel_tol: float = 1e-2,
    coarse_tols: Sequence[float] = (0.3, 0.1),
    eps_factor: float = 4.0,
    directions: int = 64,
    progress: Callable[[str, int], None] | None = None,
) -> SearchResult:
    """Euclidean EMD distances the set metrics need among ``clouds`` (S, N, 3) ([G..., R...]).

    ``exact=False``: kept pairs carry the auction's matching cost, within ``rel_tol`` of the exact EMD
    (certified); the nearest neighbours are exact (near-ties resolved by tighter solves). ``exact=True``:
    kept pairs carry the exact EMD (POT/scipy), auction bounds only prune. ``coarse_tols``: the certified
    gaps of the pruning levels below ``rel_tol``; ``directions``: of the sliced lower bound. Needs numba.
    Returns mean distances (units); ``pairs`` counts the solves per level.
    """
    s, n = clouds.shape[:2]
    centroids = clouds.detach().cpu().double().mean(1)
    lower = torch.maximum(torch.cdist(centroids, centroids), sliced_w1_bound(clouds, directions))
    lower.fill_diagonal_(0.0)
    upper = torch.full((s, s), torch.inf, dtype=torch.float64)
    # levels: 0 cheap bounds, 1..len(tols) auctions at these certified gaps, len(tols) + 1 exact
    coarse = [t for t in coarse_tols if t > rel_tol]
    tols = coarse if exact else [*coarse, rel_tol, rel_tol / 100]
    names = [f"auction {t:g}" for t in tols] + ["exact"]
    top = len(tols) + 1
    final_level = top if exact else len(coarse) + 1  # the level whose values are reported
    level = torch.zeros(s, s, dtype=torch.long)
    counts = dict.fromkeys(names, 0)
    flat = np.ascontiguousarray(clouds.detach().cpu().double().numpy().reshape(-1, 3))
    offsets = np.arange(s + 1, dtype=np.int64) * n
    masks = candidate_masks(g, s - g, metrics)
    a_idx, b_idx = torch.triu_indices(s, s, 1)
    states: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, float]] = {}  # (a, b) -> prices, matching, eps

    def solve(a: torch.Tensor, b: torch.Tensor, to_level: int) -> None:
        if to_level <= len(tols):
            keys = list(zip(a.tolist(), b.tolist()))
            fresh = (np.zeros(n), np.full(n, -1, dtype=np.int32), 0.0)
            saved = [states.get(k, fresh) for k in keys]
            prices = np.stack([state[0] for state in saved])
            persons = np.stack([state[1] for state in saved]).astype(np.int64)
            eps = np.array([state[2] for state in saved])
            up, lo = auction_pairs(flat, offsets, a.numpy(), b.numpy(), tols[to_level - 1], eps_factor, prices, persons, eps)
            # copies (int32 matchings), so the batch arrays are freed: ~24 KB a pair of 2048 points
            states.update((k, (prices[t].copy(), persons[t].astype(np.int32), float(eps[t]))) for t, k in enumerate(keys))
            up, lo = torch.from_numpy(up / n), torch.from_numpy(lo / n)
        else:
            up = lo = emd_exact(clouds[a], clouds[b])
        lower[a, b] = lower[b, a] = torch.maximum(lower[a, b], lo)
        upper[a, b] = upper[b, a] = torch.minimum(upper[a, b], up)
        level[a, b] = level[b, a] = to_level
        counts[names[to_level - 1]] += len(a)
        if progress is not None:
            progress(names[to_level - 1], len(a))

    first = first_candidates(lower, masks)[a_idx, b_idx]  # sliced-W1 order: likely nearest first
    solve(a_idx[first], b_idx[first], final_level)
    while True:
        need = pairs_still_needed(lower, upper, masks, level >= final_level, level)[a_idx, b_idx]
        need &= level[a_idx, b_idx] < top
        needed = set(zip(a_idx[need].tolist(), b_idx[need].tolist()))
        for key in [k for k in states if k not in needed]:
            del states[key]  # this pair is nobody's nearest any more: its auction will not be resumed
        if not bool(need.any()):
            break
        a, b = a_idx[need], b_idx[need]
        nxt = level[a, b] + 1
        for lv in nxt.unique().tolist():
            sel = nxt == lv
            solve(a[sel], b[sel], int(lv))
    matrix = torch.where(level >= final_level, upper, torch.inf)  # the winners are all at the final level
    matrix.fill_diagonal_(0.0)
    return SearchResult(matrix, float(int((level > 0).sum()) // 2), counts)

