"""Farthest-point sampling (iterative furthest point, as in PointNet++)."""

from __future__ import annotations

import torch
from einops import rearrange

from pcdiff.utils.imports import is_pytorch3d_available, is_torch_cluster_available

from ._checks import check_points, cuda_float, select_backend

_BACKENDS = (
    ("pytorch3d", is_pytorch3d_available, cuda_float),
    ("torch_cluster", is_torch_cluster_available, cuda_float),
)


def farthest_point_sample(
    points: torch.Tensor,
    num_samples: int,
    *,
    random_start: bool = False,
    generator: torch.Generator | None = None,
    backend: str = "auto",
) -> torch.Tensor:
    """Greedy farthest-point sampling of ``num_samples`` indices per cloud.

    The first index is 0 (or uniformly random with ``random_start``); each next index is the point
    whose Euclidean distance to the already chosen set is largest, ties going to the lowest index
    (the convention of pytorch3d's ``sample_farthest_points`` and torch-cluster's ``fps``).

    Args:
        points: (B, N, D) coordinates.
        num_samples: S <= N.
        random_start: start from a random point per cloud instead of index 0.
        generator: RNG for ``random_start`` (pure path only).
        backend: ``"auto"``, ``"torch"``, ``"pytorch3d"`` or ``"torch_cluster"``.

    Returns:
        (B, S) int64 indices into N, in selection order. Not differentiable (an index set);
        gather the points with :func:`pcdiff.ops.gather_points`.
    """
    check_points("points", points)
    b, n, _ = points.shape
    if not 1 <= num_samples <= n:
        raise ValueError(f"farthest_point_sample: num_samples must be in [1, N={n}], got {num_samples}")
    which = select_backend("farthest_point_sample", backend, _BACKENDS, points)
    with torch.no_grad():
        if which == "pytorch3d":
            from pytorch3d.ops import sample_farthest_points

            return sample_farthest_points(points, K=num_samples, random_start_point=random_start)[1]
        if which == "torch_cluster":
            return _fps_torch_cluster(points, num_samples, random_start)
        if random_start:
            start = torch.randint(n, (b,), generator=generator, device="cpu").to(points.device)
        else:
            start = torch.zeros(b, dtype=torch.long, device=points.device)
        return _fps_torch(points, num_samples, start)


def _fps_torch(points: torch.Tensor, num_samples: int, start: torch.Tensor) -> torch.Tensor:
    """Pure-PyTorch FPS: S sequential steps, each vectorised over the batch and the N points.

    Hand-written because PyTorch has no FPS op; O(S * N) work, the same as the compiled kernels.
    """
    b, n, _ = points.shape
    batch = torch.arange(b, device=points.device)
    idx = torch.empty(b, num_samples, dtype=torch.long, device=points.device)
    min_dist = torch.full((b, n), float("inf"), dtype=points.dtype, device=points.device)
    current = start
    for i in range(num_samples):
        idx[:, i] = current
        chosen = rearrange(points[batch, current], "b d -> b 1 d")
        min_dist = torch.minimum(min_dist, (points - chosen).square().sum(-1))
        current = min_dist.argmax(dim=-1)  # first maximum on ties
    return idx


def _fps_torch_cluster(points: torch.Tensor, num_samples: int, random_start: bool) -> torch.Tensor:
    import torch_cluster

    b, n, _ = points.shape
    batch = torch.arange(b, device=points.device).repeat_interleave(n)
    # torch-cluster takes a ratio and keeps ceil(ratio * N) points; (S - 0.5) / N rounds up to S exactly.
    ratio = (num_samples - 0.5) / n
    flat = torch_cluster.fps(rearrange(points, "b n d -> (b n) d"), batch, ratio=ratio, random_start=random_start)
    if flat.numel() != b * num_samples:
        raise RuntimeError(f"torch_cluster.fps returned {flat.numel()} indices, expected {b * num_samples}")
    return rearrange(flat % n, "(b s) -> b s", b=b)
