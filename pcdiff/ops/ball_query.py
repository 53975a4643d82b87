"""Ball query (radius grouping): up to k neighbours of each query within a radius."""

from __future__ import annotations

import torch
from pcdiff.utils.imports import is_pytorch3d_available

from ._checks import DEFAULT_MAX_BLOCK_ELEMENTS, check_pair, chunk_rows, cuda_float, select_backend
from .knn import knn_points
from .pairwise import square_distance

_BACKENDS = (("pytorch3d", is_pytorch3d_available, cuda_float),)


def ball_query(
    p1: torch.Tensor,
    p2: torch.Tensor,
    radius: float,
    k: int,
    *,
    pad: str = "first",
    backend: str = "auto",
    max_block_elements: int = DEFAULT_MAX_BLOCK_ELEMENTS,
) -> torch.Tensor:
    """For each query point in ``p1`` return the first ``k`` points of ``p2`` (lowest indices) with
    Euclidean distance ``< radius``, as pytorch3d's ``ball_query`` and PointNet++'s grouping do.

    Args:
        p1: (B, N, D) query points (e.g. FPS centroids).
        p2: (B, M, D) points to group.
        radius: ball radius, in the units of the points (not squared).
        k: maximum neighbours per query.
        pad: how to fill slots when fewer than ``k`` points are in the ball:
            ``"first"`` repeats the first neighbour found (the PointNet++ convention, so the result can
            be gathered directly); a query with *no* point in its ball gets its nearest point of ``p2``.
            ``"none"`` leaves ``-1`` in empty slots (the pytorch3d convention).
        backend: ``"auto"``, ``"torch"`` or ``"pytorch3d"``. torch-cluster's ``radius`` does not
            return the lowest-index neighbours, so it is not used here.

    Returns:
        (B, N, k) int64 indices into M, ascending among the found neighbours.
    """
    check_pair(p1, p2)
    if k < 1:
        raise ValueError(f"ball_query: k must be >= 1, got {k}")
    if not radius > 0:
        raise ValueError(f"ball_query: radius must be > 0, got {radius}")
    if pad not in ("first", "none"):
        raise ValueError(f"ball_query: pad must be 'first' or 'none', got {pad!r}")
    which = select_backend("ball_query", backend, _BACKENDS, p1)
    with torch.no_grad():
        if which == "pytorch3d":
            from pytorch3d.ops import ball_query as p3d_ball_query

            idx = p3d_ball_query(p1, p2, K=k, radius=radius, return_nn=False).idx
            empty = idx[..., 0] < 0
            nearest = knn_points(p1, p2, 1).idx[..., 0] if pad == "first" and bool(empty.any()) else None
        else:
            idx, nearest = _ball_query_torch(p1, p2, radius, k, max_block_elements)
        if pad == "first":
            if nearest is not None:
                idx[..., 0] = torch.where(idx[..., 0] < 0, nearest, idx[..., 0])
            idx = torch.where(idx < 0, idx[..., :1], idx)
    return idx


def _ball_query_torch(
    p1: torch.Tensor, p2: torch.Tensor, radius: float, k: int, max_block_elements: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Chunked brute force. Returns idx (B, N, k) padded with -1 and the nearest index (B, N)."""
    b, n, _ = p1.shape
    m = p2.shape[1]
    step = chunk_rows(b, n, m, max_block_elements)
    arange_m = torch.arange(m, device=p1.device)
    kk = min(k, m)
    idx_chunks, nearest_chunks = [], []
    for s in range(0, n, step):
        d = square_distance(p1[:, s : s + step], p2)  # (B, n, M)
        # Rank points by index, out-of-ball ones after all in-ball ones; the k smallest keys are
        # the first k in-ball indices.
        keys = torch.where(d < radius * radius, arange_m, m)
        first = keys.topk(kk, dim=-1, largest=False, sorted=True).values
        idx_chunks.append(torch.where(first < m, first, -1))
        nearest_chunks.append(d.argmin(-1))
    idx = torch.cat(idx_chunks, dim=1)
    if kk < k:
        idx = torch.cat([idx, idx.new_full((b, n, k - kk), -1)], dim=-1)
    return idx, torch.cat(nearest_chunks, dim=1)

