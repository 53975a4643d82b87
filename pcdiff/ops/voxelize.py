"""Average voxelisation of point features and trilinear devoxelisation (PVCNN's voxel branch).

Three pure-PyTorch functions, differentiable where the maths allows:

* :func:`normalize_voxel_coords` maps points to continuous voxel coordinates in ``[0, R - 1]``.
* :func:`avg_voxelize` averages point features into the voxel each point rounds to
  (Liu et al., "Point-Voxel CNN for Efficient 3D Deep Learning", NeurIPS 2019, Sec. 3.2).
  Differentiable w.r.t. the features; the rounding makes it piecewise constant in the coordinates.
* :func:`trilinear_devoxelize` reads a grid back at the points with trilinear interpolation.
  Differentiable w.r.t. the grid and the coordinates.

PVCNN ships these as CUDA kernels; here ``index_add`` and ``torch.nn.functional.grid_sample``
do the same job on any device, so no compiled extension is needed.

Conventions: point features are ``(B, N, C)`` like every point tensor in pcdiff; grids are
``(B, C, R, R, R)`` with grid axis 2 indexed by x, axis 3 by y and axis 4 by z.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange


def _check_coords(voxel_coords: torch.Tensor, batch_size: int, num_points: int, where: str) -> None:
    if voxel_coords.shape != (batch_size, num_points, 3):
        raise ValueError(
            f"pcdiff.ops.voxelize.{where}: expected voxel_coords of shape (B, N, 3) = "
            f"({batch_size}, {num_points}, 3), got {tuple(voxel_coords.shape)}"
        )


def normalize_voxel_coords(
    points: torch.Tensor, resolution: int, normalize: bool = True, eps: float = 1e-8, extent: float = 1.0
) -> torch.Tensor:
    """Continuous voxel coordinates of points, as PVCNN's ``Voxelization`` computes them.

    Args:
        points: (B, N, 3) point coordinates (any unit; pcdiff passes the normalised frame).
        resolution: R, the number of voxels along each axis (>= 1).
        normalize: if True, each cloud is centred on its mean and scaled so that its farthest
            point lies on the sphere of radius 0.5 around the grid centre (scale-invariant, as in
            PVCNN/PVD). If False, the fixed box ``[-extent, extent]^3`` maps onto the grid and points
            outside it are clamped onto its faces. The per-cloud sphere depends on the cloud's farthest
            point, so on its point count and on any stray point; the fixed box does not.
        eps: floor on the cloud radius when ``normalize`` is True (a cloud of identical points).
        extent: half-width of the fixed box when ``normalize`` is False (same units as ``points``).

    Returns:
        (B, N, 3) float coordinates in ``[0, R - 1]``: coordinate ``i`` is the centre of voxel ``i``.
    """
    if points.ndim != 3 or points.shape[-1] != 3:
        raise ValueError(f"normalize_voxel_coords: expected points of shape (B, N, 3), got {tuple(points.shape)}")
    if resolution < 1:
        raise ValueError(f"normalize_voxel_coords: resolution must be >= 1, got {resolution}")
    if normalize:
        centred = points - points.mean(dim=1, keepdim=True)
        radius = centred.norm(dim=-1).amax(dim=1).clamp_min(eps)  # (B,)
        unit = centred / (2.0 * radius[:, None, None]) + 0.5  # in [0, 1]
    else:
        if not extent > 0:
            raise ValueError(f"normalize_voxel_coords: extent must be > 0, got {extent}")
        unit = (points / extent + 1.0) / 2.0
    return (unit * (resolution - 1)).clamp(0.0, resolution - 1)


def avg_voxelize(features: torch.Tensor, voxel_coords: torch.Tensor, resolution: int) -> torch.Tensor:
    """Average the features of the points that fall in each voxel.

    Each point goes to the voxel ``torch.round(voxel_coords)`` (round half to even). Empty voxels
    are zero.

    Args:
        features: (B, N, C) point features.
        voxel_coords: (B, N, 3) continuous voxel coordinates in ``[0, R - 1]``
            (see :func:`normalize_voxel_coords`).
        resolution: R.

    Returns:
        (B, C, R, R, R) grid of mean features.

    Raises:
        ValueError: on bad shapes, or on coordinates that round outside ``[0, R - 1]``.
    """
    if features.ndim != 3:
        raise ValueError(f"avg_voxelize: expected features of shape (B, N, C), got {tuple(features.shape)}")
    batch_size, num_points, channels = features.shape
    _check_coords(voxel_coords, batch_size, num_points, "avg_voxelize")
    voxel = torch.round(voxel_coords).long()  # (B, N, 3)
    if num_points > 0 and (voxel.min() < 0 or voxel.max() > resolution - 1):
        raise ValueError(
            f"avg_voxelize: voxel_coords must lie in [0, {resolution - 1}] for resolution {resolution}, "
            f"got range [{voxel_coords.min().item():.3f}, {voxel_coords.max().item():.3f}]"
        )
    cells = resolution**3
    flat = (voxel[..., 0] * resolution + voxel[..., 1]) * resolution + voxel[..., 2]  # (B, N)
    flat = (flat + torch.arange(batch_size, device=flat.device)[:, None] * cells).reshape(-1)  # (B*N,)
    # accumulate in at least float32: half precision holds integer counts exactly only up to 2048 (bf16: 256)
    acc = torch.promote_types(features.dtype, torch.float32)
    sums = torch.zeros(batch_size * cells, channels, dtype=acc, device=features.device)
    sums = sums.index_add(0, flat, features.reshape(-1, channels).to(acc))
    counts = torch.bincount(flat, minlength=batch_size * cells).clamp_min(1).to(acc)
    grid = (sums / counts[:, None]).to(features.dtype)  # (B*R^3, C)
    return rearrange(grid, "(b x y z) c -> b c x y z", b=batch_size, x=resolution, y=resolution, z=resolution)


def trilinear_devoxelize(grid: torch.Tensor, voxel_coords: torch.Tensor) -> torch.Tensor:
    """Trilinearly interpolate a voxel grid at continuous voxel coordinates.

    Args:
        grid: (B, C, R, R, R) voxel features (axes x, y, z).
        voxel_coords: (B, N, 3) continuous voxel coordinates in ``[0, R - 1]``; values outside are
            clamped to the border voxels.

    Returns:
        (B, N, C) interpolated features.
    """
    if grid.ndim != 5 or not (grid.shape[2] == grid.shape[3] == grid.shape[4]):
        raise ValueError(f"trilinear_devoxelize: expected grid of shape (B, C, R, R, R), got {tuple(grid.shape)}")
    batch_size, _, resolution = grid.shape[:3]
    _check_coords(voxel_coords, batch_size, voxel_coords.shape[1], "trilinear_devoxelize")
    # grid_sample wants coordinates in [-1, 1] ordered (W, H, D) = (z, y, x) for a (B, C, D, H, W) input.
    scale = 2.0 / (resolution - 1) if resolution > 1 else 0.0
    sample_at = voxel_coords.flip(-1) * scale - (1.0 if resolution > 1 else 0.0)
    sample_at = rearrange(sample_at.to(grid.dtype), "b n d -> b 1 1 n d")
    out = F.grid_sample(grid, sample_at, mode="bilinear", padding_mode="border", align_corners=True)  # (B,C,1,1,N)
    return rearrange(out, "b c 1 1 n -> b n c")
