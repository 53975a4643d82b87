"""Pairwise squared Euclidean distances between two batches of points."""

from __future__ import annotations

import torch
from einops import rearrange

from ._checks import check_pair


def square_distance(p1: torch.Tensor, p2: torch.Tensor) -> torch.Tensor:
    """All squared Euclidean distances between ``p1`` (B, N, D) and ``p2`` (B, M, D).

    Uses ``|a|^2 + |b|^2 - 2 a.b`` (one batched matmul) and clamps the rounding negatives to 0.
    The expansion loses relative precision for nearly coincident points far from the origin, so
    callers that need exact distances of *selected* pairs (knn, chamfer) recompute them from the
    coordinates after the selection; this function is for choosing pairs and for bulk work.

    Returns:
        (B, N, M) squared distances in the squared units of the input (e.g. mm^2).
    """
    check_pair(p1, p2)
    sq1 = rearrange(p1.square().sum(-1), "b n -> b n 1")
    sq2 = rearrange(p2.square().sum(-1), "b m -> b 1 m")
    d = torch.baddbmm(sq1 + sq2, p1, rearrange(p2, "b m d -> b d m"), alpha=-2.0)
    return d.clamp_min_(0.0) if not d.requires_grad else d.clamp_min(0.0)
