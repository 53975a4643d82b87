"""Guards for optional compiled libraries (pytorch3d, torch-cluster).

Neither installs from PyPI on a CPU-only machine; both are conda/CUDA extras. Each
op checks availability per call and falls back to its pure-PyTorch path.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache


@lru_cache(maxsize=None)
def _has(module: str) -> bool:
    if importlib.util.find_spec(module) is None:
        return False
    try:
        importlib.import_module(module)
    except Exception:  # a broken binary install counts as absent
        return False
    return True


def is_pytorch3d_available() -> bool:
    """True when ``pytorch3d`` (with its compiled ``_C``) imports."""
    return _has("pytorch3d") and _has("pytorch3d._C")


def is_torch_cluster_available() -> bool:
    """True when ``torch_cluster`` imports."""
    return _has("torch_cluster")
