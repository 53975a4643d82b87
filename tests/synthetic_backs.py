"""Synthetic backs with a known spinal furrow, shared by the furrow tracers' tests."""

import numpy as np


def back_with_furrow(furrow_x, num_points: int = 40000, seed: int = 0) -> np.ndarray:
    """(num_points, 3) mm: a rounded back 300 mm wide and 400 mm tall with a V-shaped furrow (5 mm deep) along
    ``furrow_x(y)`` (mm -> mm) between two paraspinal ridges, plus 0.3 mm of depth noise."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-150, 150, num_points)
    y = rng.uniform(0, 400, num_points)
    dx = x - furrow_x(y)
    z = -(x**2) / 300 - 5 * np.exp(-np.abs(dx) / 8) + 4 * np.exp(-0.5 * ((np.abs(dx) - 35) / 15) ** 2)
    return np.stack([x, y, z + rng.normal(0, 0.3, num_points)], axis=1)
