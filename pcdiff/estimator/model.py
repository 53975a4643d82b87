"""A PointNet++ network that reads a back scan and regresses its spinal line as K keypoints.

Encoder: Fourier features of the points, then ``len(num_centres)`` set-abstraction levels (the
shared :class:`pcdiff.models.point_layers.SetAbstraction`: FPS centres, ball-query groups, a PointNet
layer; Qi et al. 2017, single-scale grouping), then a global max-pooled feature of [centre xyz,
features]. The layers are the denoisers' and take a timestep embedding; the estimator has no
timestep, so it passes a constant zero embedding of width 1 (its projection reduces to a bias).
Head: an MLP to K x 3 offsets added to a learnable
template line (initialised as a straight vertical line from y = +0.5 to y = -0.5, the spine frame's
C7 -> DM), so an untrained net already predicts a plausible line and training only learns deviations.

All coordinates are in the normalised spine frame of :mod:`pcdiff.data.transforms`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput
from einops import rearrange
from torch import nn

from pcdiff.models.blocks import fourier_dim, fourier_features
from pcdiff.models.point_layers import SetAbstraction


@dataclass
class SpineEstimatorOutput(BaseOutput):
    """``keypoints``: (B, K, 3) predicted spinal-line keypoints, normalised, top -> bottom."""

    keypoints: torch.Tensor


class _BatchNorm(nn.BatchNorm1d):
    """BatchNorm over the channels of (..., C) features, statistics pooled over every point of the batch.

    Used in the estimator's own layers (as in PointNet++): it keeps the differences *between* scans
    that the regression needs, where a per-point LayerNorm let the global feature collapse to a
    constant on small training sets (checked on the toy in tests/test_estimator.py).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.reshape(-1, x.shape[-1])).reshape(x.shape)


def _mlp(channels: list[int]) -> nn.Sequential:
    """Per-point Linear -> BatchNorm -> GELU layers."""
    layers: list[nn.Module] = []
    for c_in, c_out in zip(channels[:-1], channels[1:]):
        layers += [nn.Linear(c_in, c_out), _BatchNorm(c_out), nn.GELU()]
    return nn.Sequential(*layers)


class SpineEstimatorNet(ModelMixin, ConfigMixin):
    """Back scan (B, N, 3) -> spinal-line keypoints (B, K, 3), both in the normalised spine frame.

    Args:
        num_keypoints: K, keypoints along the line, top -> bottom at equal arc length.
        width: channels of the per-point input features (from Fourier features of xyz).
        num_centres: centres per set-abstraction level.
        radii: ball-query radius per level, normalised units (the spine is ~1 long).
        num_neighbours: group size per level.
        widths: output channels per level.
        num_frequencies: Fourier frequencies of the input coordinates.
        global_dim: width of the global feature.
        head_dim: hidden width of the regression head.
        dropout: dropout in the head (regularises the tiny training sets of the augmentation study).
    """

    @register_to_config
    def __init__(
        self,
        num_keypoints: int = 32,
        width: int = 32,
        num_centres: tuple[int, ...] = (256, 64),
        radii: tuple[float, ...] = (0.08, 0.2),
        num_neighbours: tuple[int, ...] = (32, 32),
        widths: tuple[int, ...] = (128, 256),
        num_frequencies: int = 4,
        global_dim: int = 512,
        head_dim: int = 256,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if len({len(num_centres), len(radii), len(num_neighbours), len(widths)}) != 1 or not num_centres:
            raise ValueError(
                "SpineEstimatorNet: num_centres, radii, num_neighbours and widths need one entry per level, got "
                f"{tuple(num_centres)}, {tuple(radii)}, {tuple(num_neighbours)} and {tuple(widths)}"
            )
        self.input = _mlp([fourier_dim(3, num_frequencies), width])
        dims = [width, *widths]
        self.levels = nn.ModuleList(
            SetAbstraction(dims[i], dims[i + 1], num_centres[i], num_neighbours[i], radii[i], temb_dim=1)
            for i in range(len(widths))
        )
        self.global_mlp = _mlp([dims[-1] + 3, global_dim, global_dim])
        self.head = nn.Sequential(
            _mlp([global_dim, head_dim]), nn.Dropout(dropout), nn.Linear(head_dim, num_keypoints * 3)
        )
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)
        template = torch.zeros(num_keypoints, 3)
        template[:, 1] = torch.linspace(0.5, -0.5, num_keypoints)
        self.template = nn.Parameter(template)  # (K, 3)

    def forward(self, points: torch.Tensor, return_dict: bool = True) -> SpineEstimatorOutput | tuple[torch.Tensor]:
        """Args: points (B, N, 3) normalised back surface. Returns keypoints (B, K, 3) normalised."""
        if points.ndim != 3 or points.shape[-1] != 3:
            raise ValueError(f"SpineEstimatorNet: expected points of shape (B, N, 3), got {tuple(points.shape)}")
        xyz, feats = points, self.input(fourier_features(points, self.config.num_frequencies))
        temb = points.new_zeros(points.shape[0], 1)  # no timestep: a constant embedding
        for level in self.levels:
            xyz, feats = level(xyz, feats, temb)
        g = self.global_mlp(torch.cat([xyz, feats], dim=-1)).amax(dim=1)  # (B, global_dim)
        offsets = rearrange(self.head(g), "b (k d) -> b k d", d=3)
        keypoints = self.template + offsets  # (B, K, 3)
        return SpineEstimatorOutput(keypoints=keypoints) if return_dict else (keypoints,)
