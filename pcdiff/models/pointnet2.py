"""PointNet++ denoiser: set-abstraction levels down, feature-propagation levels up (Qi et al. 2017).

The layout of PVD's and LION's point networks without the voxel branch: each set-abstraction level
keeps fewer farthest-point-sampled centres and pools their ball neighbourhoods with a PointNet layer;
the feature-propagation levels interpolate back to the input points with skip connections. Every
level cross-attends to the spine tokens (on its centres going down, on its points going up).
"""

from __future__ import annotations

import torch
from diffusers.configuration_utils import register_to_config
from torch import nn

from pcdiff.models.base import SpineDenoiser
from pcdiff.models.blocks import AttentionBlock, Conditioning, PointInput, ResMLP, SpineConditioning, SurfaceSkip
from pcdiff.models.point_layers import FeaturePropagation, SetAbstraction


class PointNet2Denoiser(SpineDenoiser):
    """PointNet++ U-Net denoiser conditioned on spine keypoints by cross-attention.

    Args:
        width: channels of the per-point input features; set-abstraction level ``i`` has
            ``width * channel_mults[i]``.
        channel_mults: channel multiplier per level (one level per entry).
        num_centres: FPS centres per level (clipped to the points available).
        radii: ball-query radius per level, in the units the denoiser sees (PVD's defaults for clouds of
            about unit spread; pcdiff's training module feeds normalised coordinates times ``data_scale``
            = 2, where the spine is ~2 long and 2048 points put ~18 points in the first ball).
        num_neighbours: points grouped per centre, per level.
        num_heads: attention heads (every width must be divisible by it).
        cond_dim, spine_layers, num_null_tokens, num_frequencies, spine_relative, surface_neighbors, surface_reference_points: the
            conditioning settings every denoiser shares (:class:`~pcdiff.models.base.SpineDenoiser`).
    """

    @register_to_config
    def __init__(
        self,
        width: int = 64,
        channel_mults: tuple[int, ...] = (2, 4, 8, 8),
        num_centres: tuple[int, ...] = (1024, 256, 64, 16),
        radii: tuple[float, ...] = (0.1, 0.2, 0.4, 0.8),
        num_neighbours: tuple[int, ...] = (32, 32, 32, 32),
        num_heads: int = 4,
        cond_dim: int = 128,
        spine_layers: int = 2,
        num_null_tokens: int = 4,
        num_frequencies: int = 6,
        spine_relative: bool = False,
        surface_neighbors: int = 0,
        surface_reference_points: int | None = None,
    ) -> None:
        super().__init__()
        lengths = {len(channel_mults), len(num_centres), len(radii), len(num_neighbours)}
        if len(lengths) != 1 or not channel_mults:
            raise ValueError(
                "PointNet2Denoiser: channel_mults, num_centres, radii and num_neighbours must be non-empty and "
                f"of equal length (one entry per level), got {tuple(channel_mults)}, {tuple(num_centres)}, "
                f"{tuple(radii)}, {tuple(num_neighbours)}"
            )
        time_dim = 4 * width
        self.conditioning = SpineConditioning(
            time_dim, cond_dim, spine_layers, num_heads, num_frequencies, num_null_tokens
        )
        self.point_input = PointInput(num_frequencies, spine_relative)
        self.input = ResMLP(self.point_input.dim, width, time_dim)
        self.input_cross = AttentionBlock(width, num_heads, cond_dim)
        dims = [width] + [width * m for m in channel_mults]
        self.down = nn.ModuleList(
            SetAbstraction(dims[i], dims[i + 1], num_centres[i], num_neighbours[i], radii[i], time_dim)
            for i in range(len(channel_mults))
        )
        self.down_cross = nn.ModuleList(AttentionBlock(d, num_heads, cond_dim) for d in dims[1:])
        # up level i goes from level i+1's points (width dims[i+1]) to level i's (width dims[i])
        self.up = nn.ModuleList(
            FeaturePropagation(dims[i + 1], dims[i], dims[i], time_dim) for i in range(len(channel_mults))
        )
        self.up_cross = nn.ModuleList(AttentionBlock(d, num_heads, cond_dim) for d in dims[:-1])
        self.surface_skip = SurfaceSkip(time_dim, surface_neighbors, surface_reference_points) if surface_neighbors else None
        self.output = nn.Sequential(nn.LayerNorm(width), nn.SiLU(), nn.Linear(width, 3))

    def denoise(self, sample: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        def attend(block: AttentionBlock, x: torch.Tensor) -> torch.Tensor:
            return block(x, cond.tokens, cond.token_mask)

        feats = attend(self.input_cross, self.input(self.point_input(sample, cond), cond.temb))
        levels = [(sample, feats)]  # (positions (B, N_l, 3), features (B, N_l, C_l)), level 0 = input points
        for sa, cross in zip(self.down, self.down_cross):
            pos, feats = sa(*levels[-1], cond.temb)
            levels.append((pos, attend(cross, feats)))
        pos, feats = levels.pop()
        for i in reversed(range(len(self.up))):
            dense_pos, skip = levels.pop()
            feats = attend(self.up_cross[i], self.up[i](dense_pos, skip, pos, feats, cond.temb))
            pos = dense_pos
        return self.output(feats)  # (B, N, 3)
