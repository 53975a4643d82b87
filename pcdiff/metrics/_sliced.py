"""Max-sliced 1-D Wasserstein lower bounds on the Euclidean EMD between equal-size clouds, with numba.

Projection onto a unit vector is 1-Lipschitz, so the W1 between two clouds' projections (the mean
absolute difference of their sorted projections) never exceeds their EMD; the maximum over a set of
fixed directions is a lower bound that costs ``O(N)`` a pair and direction once each cloud's projections
are sorted. Hand-written because the bounded EMD search needs it for all ``S^2 / 2`` pairs of a set
(~20 000 for 100 vs 100): the batched PyTorch version materialised (S, N, K) differences per row and took
~13 s at S = 200, 16 directions; this kernel does 64 directions in a few seconds.
"""

from __future__ import annotations

import numpy as np
import torch

from ._numba import njit, prange


@njit(parallel=True)
def _max_sorted_w1(projections: np.ndarray, out: np.ndarray) -> None:
    """``out[a, b] = max(out[a, b], mean_i |p[a, i] - p[b, i]|)`` over all pairs, ``projections`` (S, N)
    sorted along N, ``out`` (S, S) float64 updated in place (each unordered pair by one thread)."""
    s, n = projections.shape
    for a in prange(s):
        for b in range(a + 1, s):
            acc = 0.0
            for i in range(n):
                acc += abs(projections[a, i] - projections[b, i])
            v = acc / n
            if v > out[a, b]:
                out[a, b] = v
                out[b, a] = v


def unit_directions(count: int, dim: int = 3, seed: int = 0) -> np.ndarray:
    """(count, dim) float64 unit vectors, Gaussian directions from ``seed`` (reproducible)."""
    dirs = np.random.default_rng(seed).standard_normal((count, dim))
    return dirs / np.linalg.norm(dirs, axis=1, keepdims=True)


def sliced_w1_bound(clouds: torch.Tensor, directions: int = 64, seed: int = 0) -> torch.Tensor:
    """(S, S) float64 lower bound on the Euclidean EMD (mean matched distance) between clouds (S, N, D).

    The maximum, over ``directions`` fixed unit vectors plus the axes, of the 1-D W1 between the
    projected clouds. Units of the input; zero diagonal.
    """
    pts = clouds.detach().cpu().double().numpy()
    s, _, dim = pts.shape
    out = np.zeros((s, s))
    for u in np.concatenate([np.eye(dim), unit_directions(directions, dim, seed)]):
        _max_sorted_w1(np.ascontiguousarray(np.sort(pts @ u, axis=1)), out)
    return torch.from_numpy(out)
