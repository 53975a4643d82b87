"""Shared helpers for the ops/metrics tests: devices, compiled backends, and skip reasons.

Imported by tests/test_ops_*.py and tests/test_metrics_*.py (and by benchmarks/metrics_speed.py).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pcdiff.utils.imports import is_pytorch3d_available, is_torch_cluster_available

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
# The compiled backends are dispatched to on CUDA tensors only (pcdiff.ops._checks.cuda_float).
CUDA = [pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here"))]

_INSTALLED = {"pytorch3d": is_pytorch3d_available, "torch_cluster": is_torch_cluster_available}


def backend_param(name: str):
    """A pytest param for a compiled backend, skipped with a reason when it is not installed."""
    return pytest.param(
        name,
        marks=pytest.mark.skipif(
            not _INSTALLED[name](),
            reason=f"{name} is not installed (CPU-only machine); the comparison runs where it is",
        ),
        id=name,
    )


def random_clouds(seed: int, *shape: int, dtype=torch.float32, device: str = "cpu") -> torch.Tensor:
    """Reproducible standard-normal points of the given shape."""
    g = np.random.default_rng(seed)
    return torch.from_numpy(g.standard_normal(shape)).to(dtype=dtype, device=device)
