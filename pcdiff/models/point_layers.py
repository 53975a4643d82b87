"""PointNet++ layers shared by the PointNet++ and point-transformer denoisers.

* :class:`SetAbstraction`: farthest-point-sampled centres, ball-query (or kNN) grouping, and a
  PointNet layer (torch_geometric's ``PointNetConv``: ``max_j local_nn([x_j, p_j - p_i])``),
  Qi et al., "PointNet++", NeurIPS 2017, Sec. 3.2. The transformer uses it with kNN grouping as its
  patch encoder (Point-BERT / Point-MAE style).
* :class:`FeaturePropagation`: inverse-distance interpolation from the centres back to denser points,
  concatenation with the skip features, a timestep-conditioned MLP (PointNet++ Sec. 3.4).
"""

from __future__ import annotations

import torch
from einops import rearrange, repeat
from torch import nn
from torch_geometric.nn import PointNetConv

from pcdiff.models.blocks import ResMLP
from pcdiff.ops import ball_query, farthest_point_sample, gather_points, knn_points


def inverse_distance_interpolate(
    dst_pos: torch.Tensor, src_pos: torch.Tensor, src_feats: torch.Tensor, k: int = 3, eps: float = 1e-8
) -> torch.Tensor:
    """Interpolate features at ``dst_pos`` from the ``k`` nearest ``src_pos``, weights 1 / squared distance.

    The same weighting as torch_geometric's ``knn_interpolate``, which cannot be used here because its
    ``knn`` needs pyg-lib or torch-cluster; this uses :func:`pcdiff.ops.knn_points` (pure PyTorch,
    or the compiled kernels when installed) on dense (B, N, C) batches instead.

    Args:
        dst_pos: (B, N, 3) where to interpolate.
        src_pos: (B, S, 3) where the features live.
        src_feats: (B, S, C).
        k: neighbours (clipped to S).
        eps: floor on the squared distance (normalised units^2), so a point on a centre takes its value.

    Returns:
        (B, N, C).
    """
    dists_sq, idx = knn_points(dst_pos, src_pos, min(k, src_pos.shape[1]))  # (B, N, k)
    weights = 1.0 / dists_sq.clamp_min(eps)
    weights = weights / weights.sum(dim=-1, keepdim=True)
    return (gather_points(src_feats, idx) * weights[..., None].to(src_feats.dtype)).sum(dim=2)


class SetAbstraction(nn.Module):
    """Downsample points to FPS centres and pool their neighbourhoods with a PointNet layer.

    Args:
        in_dim, out_dim: feature widths.
        num_centres: S, centres kept (clipped to the number of input points).
        num_neighbours: k, points grouped per centre.
        radius: ball-query radius in normalised units; None groups the k nearest points instead.
            Relative positions are divided by the radius (PointNet++'s normalisation).
        temb_dim: timestep embedding width.
    """

    def __init__(
        self, in_dim: int, out_dim: int, num_centres: int, num_neighbours: int, radius: float | None, temb_dim: int
    ) -> None:
        super().__init__()
        if num_centres < 1 or num_neighbours < 1:
            raise ValueError(
                f"SetAbstraction: num_centres and num_neighbours must be >= 1, got {num_centres}, {num_neighbours}"
            )
        if radius is not None and not radius > 0:
            raise ValueError(f"SetAbstraction: radius must be > 0 or None, got {radius}")
        self.num_centres, self.num_neighbours, self.radius = num_centres, num_neighbours, radius
        local_nn = nn.Sequential(
            nn.Linear(in_dim + 3, out_dim), nn.LayerNorm(out_dim), nn.SiLU(), nn.Linear(out_dim, out_dim)
        )  # applied to [x_j, (p_j - p_i) / radius]
        self.conv = PointNetConv(local_nn=local_nn, global_nn=None, add_self_loops=False)
        self.mlp = ResMLP(out_dim, out_dim, temb_dim)

    def group(self, pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Args: pos: (B, N, 3). Returns centres (B, S, 3) and neighbour indices (B, S, k) into N."""
        n = pos.shape[1]
        centres = gather_points(pos, farthest_point_sample(pos, min(self.num_centres, n)))  # (B, S, 3)
        if self.radius is None:
            idx = knn_points(centres, pos, min(self.num_neighbours, n)).idx
        else:
            idx = ball_query(centres, pos, self.radius, self.num_neighbours)  # padded with the first hit
        return centres, idx

    def forward(self, pos: torch.Tensor, feats: torch.Tensor, temb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Args:
            pos: (B, N, 3) point positions; feats: (B, N, in_dim); temb: (B, temb_dim).

        Returns:
            centres (B, S, 3) and their features (B, S, out_dim).
        """
        b, n, _ = pos.shape
        centres, idx = self.group(pos)
        s, k = idx.shape[1:]
        # PointNetConv works on a bipartite graph: edges from every grouped point to its centre.
        src = rearrange(idx + torch.arange(b, device=idx.device)[:, None, None] * n, "b s k -> (b s k)")
        dst = repeat(torch.arange(b * s, device=idx.device), "bs -> (bs k)", k=k)
        scale = 1.0 / (self.radius or 1.0)
        out = self.conv(
            (rearrange(feats, "b n c -> (b n) c"), None),
            (rearrange(pos, "b n d -> (b n) d") * scale, rearrange(centres, "b s d -> (b s) d") * scale),
            torch.stack([src, dst]),
        )  # (B*S, out_dim)
        return centres, self.mlp(rearrange(out, "(b s) c -> b s c", b=b), temb)


class FeaturePropagation(nn.Module):
    """Upsample centre features to denser points: interpolate, concatenate skip features, ResMLP.

    Args:
        coarse_dim: width of the centre features; skip_dim: width of the dense points' own features;
        out_dim: output width; temb_dim: timestep embedding width; k: interpolation neighbours.
    """

    def __init__(self, coarse_dim: int, skip_dim: int, out_dim: int, temb_dim: int, k: int = 3) -> None:
        super().__init__()
        self.k = k
        self.mlp = ResMLP(coarse_dim + skip_dim, out_dim, temb_dim)

    def forward(
        self,
        pos: torch.Tensor,
        skip: torch.Tensor,
        coarse_pos: torch.Tensor,
        coarse_feats: torch.Tensor,
        temb: torch.Tensor,
    ) -> torch.Tensor:
        """Args:
            pos: (B, N, 3) dense positions; skip: (B, N, skip_dim);
            coarse_pos: (B, S, 3); coarse_feats: (B, S, coarse_dim); temb: (B, temb_dim).

        Returns:
            (B, N, out_dim).
        """
        up = inverse_distance_interpolate(pos, coarse_pos, coarse_feats, self.k)
        return self.mlp(torch.cat([up, skip], dim=-1), temb)


class LocalSurface(nn.Module):
    """Each point's view of its own neighbourhood: ``x_i + W max_j MLP([(p_j - p_i) / r_i, log r_i, x_i])``.

    A back is a thin sheet. To pull a point onto it, a denoiser must know where the sheet lies *near that
    point*, finer than any voxel grid a CPU can afford. This block gives every point the offsets to its
    ``k`` nearest neighbours (an EdgeConv-style max over a shared MLP, Wang et al. 2019), divided by the
    neighbourhood's mean radius ``r_i`` so that the same sheet looks the same at any point count; the
    radius itself enters as ``log r_i``. Written on :func:`pcdiff.ops.knn_points` rather than
    torch_geometric's ``EdgeConv`` because that needs a compiled kNN (torch-cluster) for its graph.

    Args:
        dim: point feature width (in and out).
        num_neighbors: k.
        temb_dim: timestep embedding width.
    """

    def __init__(self, dim: int, num_neighbors: int, temb_dim: int) -> None:
        super().__init__()
        if num_neighbors < 2:
            raise ValueError(f"LocalSurface: num_neighbors must be >= 2, got {num_neighbors}")
        self.k = num_neighbors
        self.edge = nn.Sequential(nn.Linear(3 + 1 + dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.out = ResMLP(dim, dim, temb_dim)

    def forward(self, x: torch.Tensor, pos: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        """Args: x: (B, N, dim) features; pos: (B, N, 3) positions; temb: (B, temb_dim). Returns (B, N, dim)."""
        k = min(self.k + 1, pos.shape[1])
        idx = knn_points(pos, pos, k).idx[..., 1:]  # (B, N, k - 1), the point itself dropped
        offsets = gather_points(pos, idx) - pos[:, :, None]  # (B, N, k - 1, 3)
        radius = offsets.norm(dim=-1).mean(dim=-1, keepdim=True).clamp_min(1e-6)  # (B, N, 1)
        edges = torch.cat(
            [
                offsets / radius[..., None],
                repeat(radius.log(), "b n 1 -> b n j 1", j=idx.shape[-1]),
                repeat(x, "b n c -> b n j c", j=idx.shape[-1]),
            ],
            dim=-1,
        )
        return self.out(x + self.edge(edges).amax(dim=2), temb)
