"""Jensen-Shannon divergence between the occupancy histograms of two sets of point clouds.

The convention of Achlioptas et al. 2018, kept by PointFlow/PVD/LION (``jsd_between_point_cloud_sets``):
a 28^3 grid of cell centres spanning the cube [-0.5, 0.5]^3, restricted to the centres inside the
sphere of radius 0.5; every point of every cloud of a set adds one count to its nearest centre; the
JSD (base 2, in [0, 1]) is taken between the two normalised count histograms. Lower is better.

Those papers' clouds already lie in the unit sphere. Back scans are in mm, so ``fit="joint"`` maps both
sets by one shared similarity transform (centre of the union's bounding box, scale so the farthest
point of the union is at radius 0.5); ``fit="none"`` uses the coordinates as given (points outside the
sphere then go to their nearest boundary cell, as in the original code).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from scipy.spatial import cKDTree

from pcdiff.ops._checks import check_points


def occupancy_grid(resolution: int = 28, in_sphere: bool = True) -> np.ndarray:
    """Cell centres (C, 3) of a ``resolution``^3 grid on [-0.5, 0.5]^3, optionally only those with norm <= 0.5."""
    axis = np.linspace(-0.5, 0.5, resolution)
    grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    return grid[np.linalg.norm(grid, axis=1) <= 0.5] if in_sphere else grid


def occupancy_histogram(clouds: torch.Tensor, grid: np.ndarray) -> np.ndarray:
    """Point counts per grid cell (C,) over all clouds (S, N, 3) of a set (nearest cell centre)."""
    idx = cKDTree(grid).query(clouds.detach().cpu().double().reshape(-1, 3).numpy(), k=1)[1]
    return np.bincount(idx, minlength=len(grid)).astype(np.float64)


def jensen_shannon_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """JSD (base 2) between two non-negative histograms, normalised here: ``H(M) - (H(P) + H(Q)) / 2``."""
    if np.any(p < 0) or np.any(q < 0) or p.shape != q.shape or p.sum() <= 0 or q.sum() <= 0:
        raise ValueError("jensen_shannon_divergence: expected two non-negative, non-empty histograms of equal size")
    p, q = p / p.sum(), q / q.sum()

    def entropy(v: np.ndarray) -> float:
        v = v[v > 0]
        return float(-(v * np.log2(v)).sum())

    return entropy((p + q) / 2) - (entropy(p) + entropy(q)) / 2


def jsd_between_sets(
    generated: torch.Tensor,
    reference: torch.Tensor,
    *,
    resolution: int = 28,
    in_sphere: bool = True,
    fit: Literal["joint", "none"] = "joint",
) -> float:
    """JSD of the occupancy histograms of ``generated`` (G, N, 3) and ``reference`` (R, M, 3); see the module docstring."""
    check_points("generated", generated, dim=3)
    check_points("reference", reference, dim=3)
    if fit == "joint":
        union = torch.cat([generated.reshape(-1, 3), reference.reshape(-1, 3)]).double()
        center = (union.amin(0) + union.amax(0)) / 2
        radius = float((union - center).norm(dim=1).max())
        if radius <= 0:
            raise ValueError("jsd_between_sets: all points coincide; nothing to compare")
        generated, reference = [(c.double() - center) * (0.5 / radius) for c in (generated, reference)]
    elif fit != "none":
        raise ValueError(f"jsd_between_sets: fit must be 'joint' or 'none', got {fit!r}")
    grid = occupancy_grid(resolution, in_sphere)
    return jensen_shannon_divergence(occupancy_histogram(generated, grid), occupancy_histogram(reference, grid))
