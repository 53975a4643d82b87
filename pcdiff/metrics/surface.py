"""How much a generated back is a surface: local surface variation and depth extent.

A back scan is a thin sheet; an undertrained generator scatters points off it. Two direct measures:

* :func:`surface_variation` (Pauly et al. 2002): for each point, the smallest eigenvalue's share of the
  covariance of its k nearest neighbours, ``lambda_0 / (lambda_0 + lambda_1 + lambda_2)``; 0 for a
  sheet, 1/3 for an isotropic blob. The median over points is robust to a few strays. It depends on
  the point density (k neighbours span a smaller patch in a denser cloud), so compare clouds of the
  same N.
* :func:`depth_extent`: the spread of the cloud along the depth axis (z, out of the back), between
  two percentiles, in the cloud's units.
"""

from __future__ import annotations

import torch

from pcdiff.ops.gather import gather_points
from pcdiff.ops.knn import knn_points


def surface_variation(points: torch.Tensor, k: int = 16) -> torch.Tensor:
    """Median surface variation of each cloud.

    Args:
        points: (B, N, 3) clouds, N > k.
        k: neighbours per point (the point itself included).

    Returns:
        (B,) median over points of ``lambda_min / sum(lambda)``, in [0, 1/3].
    """
    if points.ndim != 3 or points.shape[-1] != 3:
        raise ValueError(f"surface_variation: expected (B, N, 3) points, got {tuple(points.shape)}")
    if points.shape[1] <= k:
        raise ValueError(f"surface_variation: need more than k={k} points, got {points.shape[1]}")
    pts = points.double()
    idx = knn_points(pts, pts, k).idx  # (B, N, k)
    neighbours = gather_points(pts, idx)  # (B, N, k, 3)
    centred = neighbours - neighbours.mean(dim=2, keepdim=True)
    cov = centred.transpose(-1, -2) @ centred / k  # (B, N, 3, 3)
    eig = torch.linalg.eigvalsh(cov).clamp_min(0.0)  # (B, N, 3) ascending
    variation = eig[..., 0] / eig.sum(dim=-1).clamp_min(1e-18)
    return variation.median(dim=1).values.to(points.dtype)


def depth_extent(points: torch.Tensor, low: float = 1.0, high: float = 99.0, axis: int = 2) -> torch.Tensor:
    """Percentile spread of each cloud along ``axis`` (z, the depth of a back scan, by default).

    Args:
        points: (B, N, 3) clouds.
        low, high: percentiles (0-100) bounding the spread.
        axis: coordinate axis.

    Returns:
        (B,) ``percentile(high) - percentile(low)`` in the clouds' units.
    """
    if not 0.0 <= low < high <= 100.0:
        raise ValueError(f"depth_extent: need 0 <= low < high <= 100, got {low}, {high}")
    values = points[..., axis].double()
    q = torch.tensor([low / 100.0, high / 100.0], dtype=values.dtype, device=values.device)
    lo, hi = torch.quantile(values, q, dim=1)
    return (hi - lo).to(points.dtype)
