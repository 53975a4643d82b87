"""F-score of a point cloud against a reference at a distance threshold (Tatarchenko et al., CVPR 2019)."""

from __future__ import annotations

import torch

from .chamfer import nearest_distances


def fscore(x: torch.Tensor, y: torch.Tensor, threshold: float) -> dict[str, torch.Tensor]:
    """Precision, recall and F-score of ``x`` (B, N, D) (e.g. generated) against ``y`` (B, M, D) (reference).

    ``precision`` = fraction of points of ``x`` within ``threshold`` of ``y``; ``recall`` = fraction of
    points of ``y`` within ``threshold`` of ``x``; ``fscore = 2 P R / (P + R)`` (0 when both are 0).
    Distances are Euclidean (not squared), ``threshold`` in the units of the points (e.g. mm).

    Returns:
        ``{"precision", "recall", "fscore"}``, each (B,) in [0, 1].
    """
    if not threshold > 0:
        raise ValueError(f"fscore: threshold must be > 0 (units of the points), got {threshold}")
    with torch.no_grad():
        precision = (nearest_distances(x, y, squared=True) < threshold**2).double().mean(1)
        recall = (nearest_distances(y, x, squared=True) < threshold**2).double().mean(1)
    denom = precision + recall
    f = torch.where(denom > 0, 2 * precision * recall / denom.clamp_min(1e-300), 0.0)
    return {"precision": precision, "recall": recall, "fscore": f}
