"""Shared input checks and backend selection for the point-cloud ops.

Every public op accepts ``backend="auto" | "torch" | <library>``. ``"auto"`` picks a compiled
library only when it is installed *and* the call's tensors are float32/float64 on CUDA (checked per call,
as k-diffusion does for its optional kernels); otherwise the pure-PyTorch path runs. Naming a
library explicitly that cannot serve the call is an error, never a silent fallback.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

# Upper bound on the number of float elements of one (B, n, M) distance block. 2**25 float32
# elements are 128 MiB; larger problems are chunked along the query dimension.
DEFAULT_MAX_BLOCK_ELEMENTS = 2**25


def check_points(name: str, points: torch.Tensor, dim: int | None = None) -> None:
    """Raise a ValueError unless ``points`` is a floating (B, N, D) tensor (with D == ``dim`` if given)."""
    if not isinstance(points, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor of shape (B, N, D), got {type(points).__name__}")
    if points.ndim != 3:
        raise ValueError(f"{name}: expected shape (B, N, D), got {tuple(points.shape)}")
    if dim is not None and points.shape[-1] != dim:
        raise ValueError(f"{name}: expected last dimension {dim}, got shape {tuple(points.shape)}")
    if not points.is_floating_point():
        raise ValueError(f"{name}: expected a floating-point tensor, got {points.dtype}")


def check_pair(p1: torch.Tensor, p2: torch.Tensor) -> None:
    """Check two point batches (B, N, D) and (B, M, D) that are compared with each other."""
    check_points("p1", p1)
    check_points("p2", p2)
    if p1.shape[0] != p2.shape[0] or p1.shape[2] != p2.shape[2]:
        raise ValueError(
            f"p1 {tuple(p1.shape)} and p2 {tuple(p2.shape)} must share batch size B and dimension D"
        )
    if p1.device != p2.device or p1.dtype != p2.dtype:
        raise ValueError(f"p1 ({p1.device}, {p1.dtype}) and p2 ({p2.device}, {p2.dtype}) differ in device/dtype")


def chunk_rows(batch: int, rows: int, cols: int, max_elements: int = DEFAULT_MAX_BLOCK_ELEMENTS) -> int:
    """Number of query rows per chunk so that one (batch, rows, cols) block has <= max_elements."""
    return max(1, min(rows, max_elements // max(1, batch * cols)))


def select_backend(
    op: str,
    backend: str,
    candidates: Sequence[tuple[str, Callable[[], bool], Callable[[torch.Tensor], bool]]],
    sample: torch.Tensor,
) -> str:
    """Pick the backend for one call.

    Args:
        op: op name for error messages.
        backend: ``"auto"``, ``"torch"`` or one of the candidate names.
        candidates: ``(name, is_installed, supports(tensor))`` in order of preference.
        sample: a tensor of the call, whose device/dtype decide support.
    """
    names = ["torch"] + [c[0] for c in candidates]
    if backend == "torch":
        return "torch"
    if backend == "auto":
        for name, installed, supports in candidates:
            if installed() and supports(sample):
                return name
        return "torch"
    for name, installed, supports in candidates:
        if name == backend:
            if not installed():
                raise RuntimeError(f"{op}: backend {backend!r} requested but it is not installed")
            if not supports(sample):
                raise RuntimeError(
                    f"{op}: backend {backend!r} does not support device={sample.device} dtype={sample.dtype}"
                )
            return name
    raise ValueError(f"{op}: unknown backend {backend!r}; expected 'auto' or one of {names}")


def cuda_float(t: torch.Tensor) -> bool:
    """True for float32/float64 CUDA tensors: where the compiled kernels beat the PyTorch path (their CPU
    kernels are simple loops, slower than the batched matmul path on CPU)."""
    return t.is_cuda and t.dtype in (torch.float32, torch.float64)
