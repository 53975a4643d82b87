"""Point-voxel CNN denoiser (the default): a U-Net of point-voxel convolutions over all points.

Each :class:`PVConvBlock` (Liu et al. 2019; used as the denoiser of Point-Voxel Diffusion, Zhou et
al. 2021) sums a voxel branch (average-voxelise the point features, two 3D convolutions,
trilinear devoxelise) and a point branch (a shared per-point MLP). Instead of PVD's set-abstraction
levels with farthest-point sampling, the U-Net keeps all N points at every level and coarsens the
*voxel grid* (e.g. 32 -> 16 -> 8) while widening the channels, then mirrors back with skip
connections; this keeps the receptive-field growth of PVD without any point sampling. After every
block the points cross-attend to the spine tokens.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import register_to_config
from torch import nn

from pcdiff.models.base import SpineDenoiser
from pcdiff.models.blocks import (
    AttentionBlock,
    Conditioning,
    PointInput,
    ResMLP,
    SpineConditioning,
    SurfaceSkip,
    num_groups,
)
from pcdiff.models.point_layers import LocalSurface
from pcdiff.ops.voxelize import avg_voxelize, normalize_voxel_coords, trilinear_devoxelize


class PVConvBlock(nn.Module):
    """Point-voxel convolution: ``ResMLP(x) + devoxelise(conv3d(conv3d(voxelise(x)) + temb))``.

    Args:
        in_dim, out_dim: point feature widths.
        resolution: voxel grid resolution R of the voxel branch.
        temb_dim: timestep embedding width.
    """

    def __init__(self, in_dim: int, out_dim: int, resolution: int, temb_dim: int) -> None:
        super().__init__()
        self.resolution = resolution
        self.point = ResMLP(in_dim, out_dim, temb_dim)
        self.conv1 = nn.Conv3d(in_dim, out_dim, kernel_size=3, padding=1)
        self.norm1 = nn.GroupNorm(num_groups(out_dim), out_dim)
        self.temb_proj = nn.Linear(temb_dim, out_dim)
        self.conv2 = nn.Conv3d(out_dim, out_dim, kernel_size=3, padding=1)
        self.norm2 = nn.GroupNorm(num_groups(out_dim), out_dim)

    def forward(self, x: torch.Tensor, voxel_coords: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        """Args:
            x: (B, N, in_dim) point features.
            voxel_coords: (B, N, 3) continuous coordinates in [0, R - 1] of the points in this grid.
            temb: (B, temb_dim).

        Returns:
            (B, N, out_dim).
        """
        grid = avg_voxelize(x, voxel_coords, self.resolution)  # (B, in_dim, R, R, R)
        grid = F.silu(self.norm1(self.conv1(grid)) + self.temb_proj(F.silu(temb))[:, :, None, None, None])
        grid = F.silu(self.norm2(self.conv2(grid)))  # (B, out_dim, R, R, R)
        return self.point(x, temb) + trilinear_devoxelize(grid, voxel_coords)


class PVCNNDenoiser(SpineDenoiser):
    """PVConv U-Net denoiser conditioned on spine keypoints by cross-attention.

    Args:
        width: channels of the first level; level ``i`` has ``width * channel_mults[i]``.
        channel_mults: channel multiplier per level (one level per entry).
        voxel_resolutions: voxel grid resolution per level (same length as ``channel_mults``).
        blocks_per_level: PVConv blocks per level on the way down (the way up has as many).
        num_heads: attention heads (every level's width must be divisible by it).
        cond_dim, spine_layers, num_null_tokens, num_frequencies, spine_relative, surface_neighbors, surface_reference_points: the
            conditioning settings every denoiser shares (:class:`~pcdiff.models.base.SpineDenoiser`).
        voxel_normalize: voxelise each cloud in its own bounding sphere (True, PVCNN) or in the
            fixed box ``[-voxel_extent, voxel_extent]^3`` of model space (False). The sphere follows the
            cloud's farthest point, so it changes with the point count and with every stray point.
        voxel_extent: half-width of that fixed box (model space: normalised frame times the training
            module's ``data_scale``).
        local_neighbors: k of a :class:`~pcdiff.models.point_layers.LocalSurface` block after the input
            projection and before the output (each point sees its k nearest neighbours); 0 disables it.
    """

    @register_to_config
    def __init__(
        self,
        width: int = 64,
        channel_mults: tuple[int, ...] = (1, 2, 4),
        voxel_resolutions: tuple[int, ...] = (32, 16, 8),
        blocks_per_level: int = 1,
        num_heads: int = 4,
        cond_dim: int = 128,
        spine_layers: int = 2,
        num_null_tokens: int = 4,
        num_frequencies: int = 6,
        voxel_normalize: bool = True,
        voxel_extent: float = 1.0,
        spine_relative: bool = False,
        local_neighbors: int = 0,
        surface_neighbors: int = 0,
        surface_reference_points: int | None = None,
    ) -> None:
        super().__init__()
        if len(channel_mults) != len(voxel_resolutions) or not channel_mults:
            raise ValueError(
                f"PVCNNDenoiser: channel_mults {tuple(channel_mults)} and voxel_resolutions "
                f"{tuple(voxel_resolutions)} must be non-empty and of equal length (one entry per level)"
            )
        if blocks_per_level < 1:
            raise ValueError(f"PVCNNDenoiser: blocks_per_level must be >= 1, got {blocks_per_level}")
        time_dim = 4 * width
        self.conditioning = SpineConditioning(
            time_dim, cond_dim, spine_layers, num_heads, num_frequencies, num_null_tokens
        )
        self.point_input = PointInput(num_frequencies, spine_relative)
        self.input_proj = nn.Linear(self.point_input.dim, width)
        widths = [width * m for m in channel_mults]

        def stage(in_dim: int, out_dim: int, resolution: int) -> nn.ModuleList:
            return nn.ModuleList(
                [PVConvBlock(in_dim, out_dim, resolution, time_dim), AttentionBlock(out_dim, num_heads, cond_dim)]
            )

        # way down: one (PVConv, cross-attention) stage per block, its level recorded; skip widths kept for the way up
        self.down = nn.ModuleList()
        self.down_levels: list[int] = []
        skip_dims: list[int] = []
        current = width
        for level, (dim, res) in enumerate(zip(widths, voxel_resolutions)):
            for _ in range(blocks_per_level):
                self.down.append(stage(current, dim, res))
                self.down_levels.append(level)
                current = dim
                skip_dims.append(dim)
        self.middle = stage(current, current, voxel_resolutions[-1])
        self.up = nn.ModuleList()
        self.up_levels: list[int] = []
        for level in reversed(range(len(widths))):
            for _ in range(blocks_per_level):
                self.up.append(stage(current + skip_dims.pop(), widths[level], voxel_resolutions[level]))
                self.up_levels.append(level)
                current = widths[level]
        self.local_in = LocalSurface(width, local_neighbors, time_dim) if local_neighbors else None
        self.local_out = LocalSurface(width, local_neighbors, time_dim) if local_neighbors else None
        self.surface_skip = SurfaceSkip(time_dim, surface_neighbors, surface_reference_points) if surface_neighbors else None
        self.output = nn.Sequential(nn.LayerNorm(width), nn.SiLU(), nn.Linear(width, 3))

    def denoise(self, sample: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        coords = {
            res: normalize_voxel_coords(
                sample, res, normalize=self.config.voxel_normalize, extent=self.config.voxel_extent
            )
            for res in set(self.config.voxel_resolutions)
        }  # resolution -> (B, N, 3)
        resolutions = self.config.voxel_resolutions

        def run(stage: nn.ModuleList, x: torch.Tensor, level: int) -> torch.Tensor:
            pvconv, cross = stage
            x = pvconv(x, coords[resolutions[level]], cond.temb)
            return cross(x, cond.tokens, cond.token_mask)

        x = self.input_proj(self.point_input(sample, cond))  # (B, N, width)
        if self.local_in is not None:
            x = self.local_in(x, sample, cond.temb)
        skips = []
        for stage, level in zip(self.down, self.down_levels):
            x = run(stage, x, level)
            skips.append(x)
        x = run(self.middle, x, len(resolutions) - 1)
        for stage, level in zip(self.up, self.up_levels):
            x = run(stage, torch.cat([x, skips.pop()], dim=-1), level)
        if self.local_out is not None:
            x = self.local_out(x, sample, cond.temb)
        return self.output(x)  # (B, N, 3)
