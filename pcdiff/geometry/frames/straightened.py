"""The spine-straightened frame: each point's offset from the spinal line at its own height.

A back follows its spine: the spinal furrow runs along the ESL, and the trunk bends and shifts with the
curve. :func:`straighten` moves every point by minus the line's lateral and depth position (x, z) at
that point's height y, so the line itself becomes the vertical axis ``x = z = 0`` and backs of very
different curves become nearly the same shape. Heights stay unchanged, so :func:`unstraighten` undoes
it exactly, given the same line. A generator that works in this frame follows the requested line by
construction: the line is put back when the sample is mapped out of the frame.

All functions take the line as keypoints ``(B, K, 3)`` ordered top to bottom, in the same units and
frame as the points (pcdiff passes normalised or model-space coordinates); heights outside the line's
span use its end points.
"""

from __future__ import annotations

import torch


def line_at_height(line: torch.Tensor, height: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The point of a spinal line at each query height, and the query's height fraction along the line.

    The line is interpolated linearly in y (the vertical axis, pelvis -> neck); heights outside its
    span are clamped to its end points. Lines are ordered top to bottom, so y falls along K; a line
    that is not monotone in y (noise) is made monotone by a running maximum from the bottom.

    Args:
        line: (B, K, 3) keypoints, K >= 2, top to bottom.
        height: (B, N) query heights (y), same units as ``line``.

    Returns:
        ``(points (B, N, 3), fraction (B, N))``: the line point at each height (its y clamped to the
        line's span) and ``(y_top - y) / (y_top - y_bottom)``, unclamped (0 at the top, 1 at the bottom).
    """
    if line.shape[1] < 2:
        raise ValueError(f"line_at_height: need at least 2 keypoints, got {line.shape[1]}")
    ascending = line.flip(1)  # bottom -> top
    ys = torch.cummax(ascending[..., 1], dim=1).values.contiguous()  # (B, K) non-decreasing
    upper = torch.searchsorted(ys, height.contiguous()).clamp(1, ys.shape[1] - 1)  # (B, N)
    lower = upper - 1
    y_lo, y_hi = ys.gather(1, lower), ys.gather(1, upper)
    w = ((height - y_lo) / (y_hi - y_lo).clamp_min(1e-6)).clamp(0.0, 1.0)[..., None]  # (B, N, 1)

    def take(idx: torch.Tensor) -> torch.Tensor:
        return ascending.gather(1, idx[..., None].expand(-1, -1, 3))

    points = take(lower) * (1 - w) + take(upper) * w
    top, bottom = ys[:, -1:], ys[:, :1]
    fraction = (top - height) / (top - bottom).clamp_min(1e-6)
    return points, fraction


def _line_offsets(points: torch.Tensor, line: torch.Tensor) -> torch.Tensor:
    """(B, N, 3) the line's (x, 0, z) at each point's height: what :func:`straighten` subtracts."""
    on_line, _ = line_at_height(line.to(points.dtype), points[..., 1])
    return on_line * on_line.new_tensor([1.0, 0.0, 1.0])


def straighten(points: torch.Tensor, line: torch.Tensor) -> torch.Tensor:
    """Points in the line's straightened frame: ``(x - x_line(y), y, z - z_line(y))``.

    Args:
        points: (B, N, 3) points.
        line: (B, K, 3) keypoints of the spinal line, top to bottom, K >= 2, same frame as ``points``.

    Returns:
        (B, N, 3) straightened points (the line maps to ``x = z = 0``).
    """
    return points - _line_offsets(points, line)


def unstraighten(points: torch.Tensor, line: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`straighten` for the same line: ``(x + x_line(y), y, z + z_line(y))``.

    Args:
        points: (B, N, 3) straightened points.
        line: (B, K, 3) the keypoints they were straightened by.

    Returns:
        (B, N, 3) points in the line's original frame.
    """
    return points + _line_offsets(points, line)
