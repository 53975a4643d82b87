"""Tiny models and data shared by the diffusion tests and ``benchmarks/speed.py`` (not for training runs).

Everything here is sized to run in seconds on one CPU core: a handful of phantom scans of 128 points,
8 spine keypoints, small denoisers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pcdiff.diffusion.module import PointDiffusion

#: Smallest sensible settings of each denoiser (a few hundred thousand parameters).
TINY_DENOISERS: dict[str, dict[str, Any]] = {
    "pvcnn": dict(width=16, channel_mults=(1, 2), voxel_resolutions=(8, 4), cond_dim=32, spine_layers=1, num_heads=2),
    "pointnet2": dict(width=16, channel_mults=(1, 2), num_centres=(32, 8), radii=(0.3, 0.6), num_neighbours=(8, 8),
                      cond_dim=32, spine_layers=1, num_heads=2),
    "transformer": dict(width=32, depth=2, num_heads=2, num_patches=16, patch_size=8, point_width=16, cond_dim=32,
                        spine_layers=1),
}
TINY_POINTS = 128
TINY_KEYPOINTS = 8


def tiny_module(denoiser: str = "pvcnn", **overrides: Any) -> PointDiffusion:
    """A ``PointDiffusion`` with a tiny denoiser, 128 points, 8 keypoints and few sampling steps."""
    settings: dict[str, Any] = dict(
        denoiser=denoiser,
        denoiser_kwargs=TINY_DENOISERS[denoiser],
        num_points=TINY_POINTS,
        num_keypoints=TINY_KEYPOINTS,
        num_inference_steps=4,
        val_num_samples=2,
        lr=2e-3,
        warmup_steps=2,
        log_images=False,
    )
    settings.update(overrides)
    return PointDiffusion(**settings)


def tiny_datamodule(cache_dir: str | Path, **overrides: Any):  # noqa: ANN201 (BackScanDataModule)
    """A ``BackScanDataModule`` on 12 phantom scans (10 train, 2 val), 128 points, 8 keypoints, batch 4."""
    from pcdiff.data.datamodule import BackScanDataModule

    settings: dict[str, Any] = dict(
        num_points=TINY_POINTS,
        num_keypoints=TINY_KEYPOINTS,
        batch_size=4,
        phantom_num_scans=12,
        val_fraction=0.2,
        test_fraction=0.0,
        augment=False,
        cache_dir=str(cache_dir),
    )
    settings.update(overrides)
    return BackScanDataModule(**settings)
