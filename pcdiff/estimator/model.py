"""A PointNet++-style network that reads a back scan and regresses its spinal line as K keypoints.

Encoder: ``len(num_centers)`` set-abstraction levels (farthest-point sampled centres, kNN groups,
a shared MLP on [relative xyz, features], max-pool), then a global max-pooled feature (Qi et al.
2017, "PointNet++", single-scale grouping). Head: an MLP to K x 3 offsets added to a learnable
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

from pcdiff.ops import farthest_point_sample, gather_points, knn_points


@dataclass
class SpineEstimatorOutput(BaseOutput):
    """``keypoints``: (B, K, 3) predicted spinal-line keypoints, normalised, top -> bottom."""

    keypoints: torch.Tensor


class _PointBatchNorm(nn.BatchNorm1d):
    """BatchNorm over the channels of (..., C) features, statistics pooled over every point of the batch.

    PointNet++ normalises this way; a per-point LayerNorm would divide away the magnitude of the tiny
    relative coordinates (~0.05 in the spine frame), and no normalisation lets the features vanish.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.reshape(-1, x.shape[-1])).reshape(x.shape)


def _mlp(channels: list[int], last_act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (c_in, c_out) in enumerate(zip(channels[:-1], channels[1:])):
        layers.append(nn.Linear(c_in, c_out))
        if last_act or i < len(channels) - 2:
            layers += [_PointBatchNorm(c_out), nn.GELU()]
    return nn.Sequential(*layers)


class _SetAbstraction(nn.Module):
    """One PointNet++ level: (B, N, 3) xyz + (B, N, C) features -> (B, S, 3) centres + (B, S, C') features."""

    def __init__(self, num_centers: int, k: int, in_channels: int, widths: list[int]) -> None:
        super().__init__()
        self.num_centers, self.k = num_centers, k
        self.mlp = _mlp([in_channels + 3, *widths])

    def forward(self, xyz: torch.Tensor, feats: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        s = min(self.num_centers, xyz.shape[1])
        centres = gather_points(xyz, farthest_point_sample(xyz, s))  # (B, S, 3)
        idx = knn_points(centres, xyz, min(self.k, xyz.shape[1])).idx  # (B, S, k)
        rel = gather_points(xyz, idx) - rearrange(centres, "b s d -> b s 1 d")  # (B, S, k, 3)
        grouped = rel if feats is None else torch.cat([rel, gather_points(feats, idx)], dim=-1)
        return centres, self.mlp(grouped).amax(dim=2)  # (B, S, 3), (B, S, C')


class SpineEstimatorNet(ModelMixin, ConfigMixin):
    """Back scan (B, N, 3) -> spinal-line keypoints (B, K, 3), both in the normalised spine frame.

    Args:
        num_keypoints: K, keypoints along the line, top -> bottom at equal arc length.
        num_centers: centres per set-abstraction level.
        num_neighbors: kNN group size per level.
        widths: MLP widths per level (the last is the level's output channels).
        global_dim: width of the global feature.
        head_dim: hidden width of the regression head.
        dropout: dropout in the head (regularises the tiny training sets of the augmentation study).
    """

    @register_to_config
    def __init__(
        self,
        num_keypoints: int = 32,
        num_centers: tuple[int, ...] = (256, 64),
        num_neighbors: tuple[int, ...] = (32, 32),
        widths: tuple[tuple[int, ...], ...] = ((64, 64, 128), (128, 128, 256)),
        global_dim: int = 512,
        head_dim: int = 256,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if not (len(num_centers) == len(num_neighbors) == len(widths)) or not num_centers:
            raise ValueError(
                "SpineEstimatorNet: num_centers, num_neighbors and widths need one entry per level, got "
                f"{len(num_centers)}, {len(num_neighbors)} and {len(widths)}"
            )
        levels, c_in = [], 0
        for s, k, w in zip(num_centers, num_neighbors, widths):
            levels.append(_SetAbstraction(s, k, c_in, list(w)))
            c_in = w[-1]
        self.levels = nn.ModuleList(levels)
        self.global_mlp = _mlp([c_in + 3, global_dim, global_dim])
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
        xyz, feats = points, None
        for level in self.levels:
            xyz, feats = level(xyz, feats)
        g = self.global_mlp(torch.cat([xyz, feats], dim=-1)).amax(dim=1)  # (B, global_dim)
        offsets = rearrange(self.head(g), "b (k d) -> b k d", d=3)
        keypoints = self.template + offsets  # (B, K, 3)
        return SpineEstimatorOutput(keypoints=keypoints) if return_dict else (keypoints,)
