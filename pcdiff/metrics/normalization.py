"""How generated and reference sets are put in a common frame before the set metrics.

* ``"none"`` -- as given (pcdiff scans: millimetres), so MMD-CD is in mm^2 and MMD-EMD in mm. Default
  for back scans, whose absolute size is meaningful.
* ``"joint"`` -- one transform for both sets, from the reference set: subtract the mean of all its
  points and divide by the standard deviation of all its coordinates (a scalar). This is the dataset-level
  normalisation PointFlow and PVD evaluate in (they de-normalise samples and references with the training
  set's global mean/std, so both sets share one frame); the numbers are in units of that std.
* ``"per_shape"`` -- every cloud of both sets separately: centre of its bounding box to the origin and
  its longest bounding-box side to [-1, 1], the per-shape normalisation of ShapeGF and of LION's
  additional tables. It removes size and position differences, so it measures shape only.
"""

from __future__ import annotations

from typing import Literal

import torch

Normalization = Literal["none", "joint", "per_shape"]


def normalize_sets(
    generated: torch.Tensor, reference: torch.Tensor, mode: Normalization = "none"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply the normalisation ``mode`` to ``generated`` (G, N, 3) and ``reference`` (R, M, 3)."""
    if mode == "none":
        return generated, reference
    if mode == "joint":
        flat = reference.reshape(-1, reference.shape[-1])
        mean, std = flat.mean(0), flat.std()
        if not std > 0:
            raise ValueError("normalize_sets('joint'): the reference points have zero spread")
        return (generated - mean) / std, (reference - mean) / std
    if mode == "per_shape":
        return _per_shape(generated), _per_shape(reference)
    raise ValueError(f"normalization must be 'none', 'joint' or 'per_shape', got {mode!r}")


def _per_shape(clouds: torch.Tensor) -> torch.Tensor:
    lo, hi = clouds.amin(1, keepdim=True), clouds.amax(1, keepdim=True)
    half = ((hi - lo).amax(-1, keepdim=True) / 2).clamp_min(1e-12)
    return (clouds - (lo + hi) / 2) / half
