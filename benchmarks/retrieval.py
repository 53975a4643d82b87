"""The retrieval baseline: copy the training back whose spine is nearest the requested one.

Frames: spines are compared in the data module's normalised spine frame, ``x_norm = (x_mm - center) / scale``
(``center``, ``scale`` of the conditioning line). A retrieved back "in mm" for a requested spine is
``x_norm * scale + center`` with *that spine's* frame (:func:`pcdiff.geometry.frames.to_mm`), so it is placed
where the generator would have put its back.
"""

from __future__ import annotations

import torch


def nearest_spines(query: torch.Tensor, bank: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Index of the bank spine nearest each query spine, both in the normalised spine frame.

    Distance = root-mean-square over the K keypoints of the Euclidean keypoint distance (keypoints are
    equal-arc-length samples top -> bottom, so keypoint k of one line corresponds to keypoint k of another).

    Args:
        query: (Q, K, 3) normalised keypoints.
        bank: (T, K, 3) normalised keypoints.

    Returns:
        idx (Q,) int64 into ``bank`` and the RMS distances (Q,) in normalised units.
    """
    if query.ndim != 3 or bank.ndim != 3 or query.shape[1:] != bank.shape[1:]:
        raise ValueError(f"nearest_spines: expected (Q, K, 3) and (T, K, 3) keypoints, got {tuple(query.shape)} and {tuple(bank.shape)}")
    d = (query[:, None] - bank[None]).square().sum(-1).mean(-1).sqrt()  # (Q, T)
    dist, idx = d.min(1)
    return idx, dist

