"""Point-patch transformer denoiser.

Points are grouped into patches (farthest-point-sampled centres with their k nearest points,
encoded by a mini-PointNet: the :class:`~pcdiff.models.point_layers.SetAbstraction` layer with kNN
grouping, as in Point-BERT / Point-MAE). The patch tokens, with a Fourier embedding of their centre,
go through transformer blocks of self-attention, cross-attention to the spine tokens and an MLP;
the result is interpolated back to every point, joined with the point's own features, cross-attends
to the spine once more and is projected to the (B, N, 3) prediction.
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
    FeedForward,
    PointInput,
    ResMLP,
    SpineConditioning,
    SurfaceSkip,
    fourier_dim,
    fourier_features,
)
from pcdiff.models.point_layers import FeaturePropagation, SetAbstraction


class TransformerBlock(nn.Module):
    """Timestep shift, self-attention, cross-attention to the condition tokens, MLP (all pre-norm residual)."""

    def __init__(self, dim: int, num_heads: int, cond_dim: int, temb_dim: int, mlp_ratio: int = 4) -> None:
        super().__init__()
        self.temb_proj = nn.Linear(temb_dim, dim)
        self.self_attn = AttentionBlock(dim, num_heads)
        self.cross_attn = AttentionBlock(dim, num_heads, cond_dim)
        self.ff = FeedForward(dim, mlp_ratio)

    def forward(self, x: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        """Args: x: (B, S, dim) patch tokens. Returns (B, S, dim)."""
        x = x + self.temb_proj(F.silu(cond.temb))[:, None]
        x = self.self_attn(x)
        x = self.cross_attn(x, cond.tokens, cond.token_mask)
        return self.ff(x)


class PointTransformerDenoiser(SpineDenoiser):
    """Transformer over point patches, conditioned on spine keypoints by cross-attention.

    Args:
        width: patch-token width.
        depth: transformer blocks.
        num_heads: attention heads (``width`` and ``point_width`` must be divisible by it).
        num_patches: FPS patch centres (clipped to the number of points).
        patch_size: nearest points per patch (clipped to the number of points).
        point_width: width of the per-point features before patching and after upsampling.
        mlp_ratio: hidden width of the transformer MLPs, as a multiple of ``width``.
        cond_dim, spine_layers, num_null_tokens, num_frequencies, spine_relative, surface_neighbors, surface_reference_points: the
            conditioning settings every denoiser shares (:class:`~pcdiff.models.base.SpineDenoiser`).
    """

    @register_to_config
    def __init__(
        self,
        width: int = 256,
        depth: int = 8,
        num_heads: int = 8,
        num_patches: int = 256,
        patch_size: int = 32,
        point_width: int = 64,
        mlp_ratio: int = 4,
        cond_dim: int = 128,
        spine_layers: int = 2,
        num_null_tokens: int = 4,
        num_frequencies: int = 6,
        spine_relative: bool = False,
        surface_neighbors: int = 0,
        surface_reference_points: int | None = None,
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"PointTransformerDenoiser: depth must be >= 1, got {depth}")
        time_dim = 4 * point_width
        self.conditioning = SpineConditioning(
            time_dim, cond_dim, spine_layers, num_heads, num_frequencies, num_null_tokens
        )
        self.point_input = PointInput(num_frequencies, spine_relative)
        self.point_embed = ResMLP(self.point_input.dim, point_width, time_dim)
        self.patch_embed = SetAbstraction(point_width, width, num_patches, patch_size, None, time_dim)
        self.centre_embed = nn.Linear(fourier_dim(3, num_frequencies), width)
        self.blocks = nn.ModuleList(
            TransformerBlock(width, num_heads, cond_dim, time_dim, mlp_ratio) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(width)
        self.upsample = FeaturePropagation(width, point_width, point_width, time_dim)
        self.point_cross = AttentionBlock(point_width, num_heads, cond_dim)
        self.surface_skip = SurfaceSkip(time_dim, surface_neighbors, surface_reference_points) if surface_neighbors else None
        self.output = nn.Sequential(nn.LayerNorm(point_width), nn.SiLU(), nn.Linear(point_width, 3))

    def denoise(self, sample: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        freqs = self.config.num_frequencies
        points = self.point_embed(self.point_input(sample, cond), cond.temb)  # (B, N, point_width)
        centres, tokens = self.patch_embed(sample, points, cond.temb)  # (B, S, 3), (B, S, width)
        tokens = tokens + self.centre_embed(fourier_features(centres, freqs))
        for block in self.blocks:
            tokens = block(tokens, cond)
        x = self.upsample(sample, points, centres, self.norm(tokens), cond.temb)  # (B, N, point_width)
        x = self.point_cross(x, cond.tokens, cond.token_mask)
        return self.output(x)  # (B, N, 3)
