"""Gather per-point features by index: the indexing step of FPS, kNN and ball-query grouping."""

from __future__ import annotations

import torch
from einops import rearrange, repeat


def gather_points(points: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Select rows of ``points`` per batch element.

    Args:
        points: (B, N, C) features (coordinates or any per-point channels).
        idx: (B, ...) integer indices into N, any trailing shape (e.g. (B, S) from FPS or (B, S, K)
            from kNN / ball query). Every index must be in [0, N); pad values such as -1 are rejected.

    Returns:
        (B, ..., C) with ``out[b, ...] = points[b, idx[b, ...]]``. Differentiable w.r.t. ``points``.
    """
    if points.ndim != 3:
        raise ValueError(f"gather_points: expected points of shape (B, N, C), got {tuple(points.shape)}")
    if idx.ndim < 2 or idx.shape[0] != points.shape[0]:
        raise ValueError(
            f"gather_points: expected idx of shape (B, ...) with B={points.shape[0]}, got {tuple(idx.shape)}"
        )
    if idx.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise ValueError(f"gather_points: idx must be an integer tensor, got {idx.dtype}")
    n = points.shape[1]
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= n):
        raise IndexError(
            f"gather_points: indices must lie in [0, {n}), got range [{int(idx.min())}, {int(idx.max())}]"
        )
    flat = rearrange(idx.long(), "b ... -> b (...)")
    out = torch.gather(points, 1, repeat(flat, "b s -> b s c", c=points.shape[2]))
    return out.reshape(*idx.shape, points.shape[2])
