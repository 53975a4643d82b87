"""Optional numba for the CPU kernels of :mod:`pcdiff.metrics` (grid nearest neighbours, auction EMD).

Guarded import in the manner of :mod:`pcdiff.utils.imports`: without numba the kernels stay plain Python
functions (callable, far too slow for real sizes -- the tests run them on tiny inputs to check that the
compiled and the interpreted code agree) and the metrics use their scipy/NumPy paths instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

try:  # a broken binary install counts as absent
    import numba
except Exception:  # pragma: no cover - depends on the environment
    numba = None

prange: Callable[..., Any] = numba.prange if numba is not None else range


def is_numba_available() -> bool:
    """True when ``numba`` imports."""
    return numba is not None


def njit(**options: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``numba.njit(cache=True, **options)`` when numba is installed, else the function unchanged."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        return numba.njit(cache=True, **options)(fn) if numba is not None else fn

    return wrap
