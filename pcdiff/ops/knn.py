"""k-nearest neighbours between two batches of point clouds."""

from __future__ import annotations

from typing import NamedTuple

import torch
from einops import rearrange

from pcdiff.utils.imports import is_pytorch3d_available, is_torch_cluster_available

from ._checks import DEFAULT_MAX_BLOCK_ELEMENTS, check_pair, chunk_rows, cuda_float, select_backend
from .gather import gather_points
from .pairwise import square_distance


class KNN(NamedTuple):
    """Result of :func:`knn_points`; unpacks as ``dists_sq, idx``."""

    dists_sq: torch.Tensor  # (B, N, k) squared distances, ascending along k
    idx: torch.Tensor  # (B, N, k) int64 indices into p2


_BACKENDS = (
    ("pytorch3d", is_pytorch3d_available, cuda_float),
    ("torch_cluster", is_torch_cluster_available, cuda_float),
)


def knn_points(
    p1: torch.Tensor,
    p2: torch.Tensor,
    k: int,
    *,
    backend: str = "auto",
    max_block_elements: int = DEFAULT_MAX_BLOCK_ELEMENTS,
) -> KNN:
    """For each point of ``p1`` find its ``k`` nearest points in ``p2`` (Euclidean).

    Args:
        p1: (B, N, D) query points.
        p2: (B, M, D) reference points, M >= k.
        k: number of neighbours.
        backend: ``"auto"`` (for float32/64 CUDA tensors pytorch3d, then torch-cluster, when installed;
            else PyTorch), ``"torch"``, ``"pytorch3d"`` or ``"torch_cluster"``.
        max_block_elements: the pure path computes distances in (B, n, M) blocks of at most this
            many elements, so memory stays bounded for large clouds.

    Returns:
        ``KNN(dists_sq, idx)``: ``dists_sq`` (B, N, k) **squared** distances sorted ascending, in the
        squared units of the input, differentiable w.r.t. ``p1`` and ``p2`` (recomputed from the
        coordinates of the selected pairs, whichever backend selected them); ``idx`` (B, N, k) int64.
    """
    check_pair(p1, p2)
    if not 1 <= k <= p2.shape[1]:
        raise ValueError(f"knn_points: k must be in [1, M={p2.shape[1]}], got {k}")
    which = select_backend("knn_points", backend, _BACKENDS, p1)
    with torch.no_grad():
        if which == "pytorch3d":
            from pytorch3d.ops import knn_points as p3d_knn

            idx = p3d_knn(p1, p2, K=k, return_sorted=True).idx
        elif which == "torch_cluster":
            idx = _knn_torch_cluster(p1, p2, k)
        else:
            idx = _knn_torch(p1, p2, k, max_block_elements)
    dists_sq = (rearrange(p1, "b n d -> b n 1 d") - gather_points(p2, idx)).square().sum(-1)
    if which == "torch_cluster":  # torch-cluster does not order neighbours by distance
        dists_sq, order = dists_sq.sort(dim=-1)
        idx = idx.gather(-1, order)
    return KNN(dists_sq, idx)


def _knn_torch(p1: torch.Tensor, p2: torch.Tensor, k: int, max_block_elements: int) -> torch.Tensor:
    """Brute force: top-k smallest of each chunked (B, n, M) distance block. Returns (B, N, k)."""
    b, n, _ = p1.shape
    step = chunk_rows(b, n, p2.shape[1], max_block_elements)
    out = [
        square_distance(p1[:, s : s + step], p2).topk(k, dim=-1, largest=False, sorted=True).indices
        for s in range(0, n, step)
    ]
    return torch.cat(out, dim=1)


def _knn_torch_cluster(p1: torch.Tensor, p2: torch.Tensor, k: int) -> torch.Tensor:
    import torch_cluster

    b, n, d = p1.shape
    m = p2.shape[1]
    batch_x = torch.arange(b, device=p1.device).repeat_interleave(m)
    batch_y = torch.arange(b, device=p1.device).repeat_interleave(n)
    row, col = torch_cluster.knn(
        rearrange(p2, "b m d -> (b m) d"), rearrange(p1, "b n d -> (b n) d"), k, batch_x, batch_y
    )
    if row.numel() != b * n * k:
        raise RuntimeError(f"torch_cluster.knn returned {row.numel()} pairs, expected {b * n * k}")
    col = col[torch.argsort(row, stable=True)] % m  # group by query; global -> per-cloud index
    return rearrange(col, "(b n k) -> b n k", b=b, n=n, k=k)
