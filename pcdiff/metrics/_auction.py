"""Forward auction with epsilon scaling for the dense (n, n) min-cost assignment, compiled with numba.

Bertsekas' auction, Gauss-Seidel (one bid at a time): an unassigned person ``i`` takes its best object
``j`` (least ``cost[i, j] + price[j]``) and raises ``price[j]`` by the gap to its second best plus
``eps``, evicting ``j``'s owner. A phase ends with every person assigned within ``eps`` of its best
(epsilon-complementary slackness); the prices then certify ``dual = sum_i min_j (cost[i, j] + price[j])
- sum_j price[j] <= optimum <= primal``. Phases divide ``eps`` by ``eps_factor``, keeping the assignments
that still satisfy epsilon-CS, until ``primal - dual <= rel_tol * dual``, so that the matching's cost
exceeds the optimum by at most ``rel_tol`` of the optimum. Hand-written because no
maintained library ships an early-stopping, certified assignment solver (scipy and POT solve exactly,
1-3 s a 2048-point pair on this machine); the same function runs interpreted when numba is absent.
"""

from __future__ import annotations

import math

import numpy as np

from ._numba import njit, prange


@njit()
def pair_cost(x: np.ndarray, y: np.ndarray, squared: bool) -> np.ndarray:
    """(n, m) float64 ground cost between ``x`` (n, D) and ``y`` (m, D): Euclidean, or squared Euclidean.

    3-D clouds take an unrolled loop over ``y``'s coordinate columns that LLVM vectorises (about 2.5x
    faster than the generic loop over ``D``; it dominates a coarse auction's time otherwise).
    """
    n, m, dim = x.shape[0], y.shape[0], x.shape[1]
    cost = np.empty((n, m))
    if dim == 3:
        y0, y1, y2 = np.ascontiguousarray(y[:, 0]), np.ascontiguousarray(y[:, 1]), np.ascontiguousarray(y[:, 2])
        for i in range(n):
            a, b, c = x[i, 0], x[i, 1], x[i, 2]
            row = cost[i]
            for j in range(m):
                d = (a - y0[j]) ** 2 + (b - y1[j]) ** 2 + (c - y2[j]) ** 2
                row[j] = d if squared else math.sqrt(d)
        return cost
    for i in range(n):
        for j in range(m):
            d = 0.0
            for a in range(dim):
                t = x[i, a] - y[j, a]
                d += t * t
            cost[i, j] = d if squared else math.sqrt(d)
    return cost


@njit()
def row_minimum(row: np.ndarray, price: np.ndarray) -> float:
    """``min_j (row[j] + price[j])``: a person's best net cost under ``price`` (n,)."""
    best = np.inf
    for k in range(row.shape[0]):
        v = row[k] + price[k]
        if v < best:
            best = v
    return best


@njit()
def auction(cost: np.ndarray, rel_tol: float, eps_factor: float, max_bids: int) -> tuple[np.ndarray, float, float, int]:
    """Certified near-optimal assignment of the square ``cost`` (n, n) float64, from scratch.

    Returns ``(assignment (n,) int64 -- person i gets object assignment[i], primal sum, dual lower bound
    on the optimal sum, bids made)``. ``max_bids`` < 0 means no limit; when the limit is hit the last
    complete phase's matching and bound are returned (still a valid bracket, with a wider gap).
    """
    n = cost.shape[0]
    person = np.full(n, -1, dtype=np.int64)
    best, primal, dual, bids, _ = resume_auction(cost, rel_tol, eps_factor, max_bids, np.zeros(n), person, -1.0)
    return best, primal, dual, bids


@njit()
def resume_auction(
    cost: np.ndarray, rel_tol: float, eps_factor: float, max_bids: int, price: np.ndarray, person: np.ndarray, eps: float
) -> tuple[np.ndarray, float, float, int, float]:
    """The auction from a given state: ``price`` (n,) float64 and ``person`` (n,) int64 (-1: unassigned)
    are updated in place, and the first phase runs at ``eps`` (<= 0: the coarse default).

    Any prices are valid, so a state left by an earlier call with a looser ``rel_tol`` continues where it
    stopped (next phase at ``returned eps / eps_factor``) instead of redoing the coarse phases. Returns
    ``(best matching found (n,), its primal sum, best dual lower bound, bids, eps of the last phase)``.
    """
    n = cost.shape[0]
    if n == 1:
        person[0] = 0
        return person.copy(), cost[0, 0], cost[0, 0], 0, eps
    owner = np.full(n, -1, dtype=np.int64)
    queue = np.empty(n, dtype=np.int64)
    net = np.empty(n)  # each person's best net cost under the current prices
    for i in range(n):
        net[i] = row_minimum(cost[i], price)
    scale = cost.sum() + 1e-300
    if eps <= 0:
        eps = cost.mean() / eps_factor  # coarse start, a fraction of a typical cost
    bids = 0
    primal, dual = np.inf, -np.inf
    best_person = person.copy()
    while True:
        # keep the assignments that satisfy epsilon-CS at this epsilon; the others bid again
        owner[:] = -1
        size = 0
        for i in range(n):
            j = person[i]
            if j >= 0 and owner[j] < 0 and cost[i, j] + price[j] <= net[i] + eps:
                owner[j] = i
                continue
            person[i] = -1
            queue[size] = i
            size += 1
        while size > 0:
            if 0 <= max_bids <= bids:
                return best_person, primal, dual, bids, eps
            size -= 1
            i = queue[size]
            best, second, jbest = np.inf, np.inf, -1
            row = cost[i]
            for k in range(n):
                v = row[k] + price[k]
                if v < best:
                    second = best
                    best = v
                    jbest = k
                elif v < second:
                    second = v
            price[jbest] += second - best + eps
            old = owner[jbest]
            if old >= 0:
                person[old] = -1
                queue[size] = old
                size += 1
            owner[jbest] = i
            person[i] = jbest
            bids += 1
        total = 0.0
        lower = 0.0
        for i in range(n):
            total += cost[i, person[i]]
            net[i] = row_minimum(cost[i], price)  # also the next phase's epsilon-CS test
            lower += net[i]
        lower -= price.sum()
        if total < primal:
            primal = total
            best_person[:] = person
        dual = max(dual, lower)
        # (the absolute floor ends phases for identical clouds, where both bounds are 0 up to rounding)
        if primal - dual <= rel_tol * dual or primal - dual <= 1e-12 * scale:
            return best_person, primal, dual, bids, eps
        eps /= eps_factor


@njit(parallel=True)
def auction_pairs(
    points: np.ndarray,
    offsets: np.ndarray,
    first: np.ndarray,
    second: np.ndarray,
    rel_tol: float,
    eps_factor: float,
    prices: np.ndarray,
    persons: np.ndarray,
    eps: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Certified bounds on the Euclidean EMD sum of the cloud pairs ``(first[t], second[t])``, one pair a
    thread, clouds ``points[offsets[s]:offsets[s + 1]]`` ((P, D) float64, equal sizes n).

    ``prices`` (T, n) float64, ``persons`` (T, n) int64 and ``eps`` (T,) are each pair's auction state,
    updated in place (zeros, -1 and 0 for a fresh start; see :func:`resume_auction`), so a pair can be
    tightened later from where it stopped. Returns ``(upper (T,), lower (T,))``: the matching's cost and
    the dual bound, sums (not means).
    """
    t_count = first.shape[0]
    upper = np.empty(t_count)
    lower = np.empty(t_count)
    for t in prange(t_count):
        x = points[offsets[first[t]] : offsets[first[t] + 1]]
        y = points[offsets[second[t]] : offsets[second[t] + 1]]
        start = eps[t] / eps_factor if eps[t] > 0 else -1.0
        _, upper[t], lower[t], _, eps[t] = resume_auction(
            pair_cost(x, y, False), rel_tol, eps_factor, -1, prices[t], persons[t], start
        )
    return upper, lower
