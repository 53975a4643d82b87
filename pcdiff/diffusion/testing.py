"""Denoiser size presets and tiny models/data, shared by the tests, the notebooks and the benchmarks
(not for training runs proper: those use ``configs/<denoiser>.yaml``).

Presets, smallest first:

* :data:`TINY_DENOISERS`: run in seconds on one CPU core (tests, ``notebooks/tiny_run.py``), with
  :func:`tiny_module` / :func:`tiny_datamodule` (a handful of phantom scans of 128 points, 8 keypoints).
* :data:`SMALL_DENOISERS`: CPU-sized for the benchmarks' quick modes (``benchmarks.training``,
  ``benchmarks.speed --quick``).
* :data:`SMALL_FORWARD_DENOISERS`: the sizes of ``python -m benchmarks.denoisers --size small``
  (``benchmarks/results/denoisers_small.json``).
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
#: CPU-sized denoisers for the benchmarks' quick modes (0.3-1 M parameters, 0.2-0.3 s per training step of
#: 16 x 512 points on one idle core; the quickstart PVCNN takes ~0.85 s, too slow for three models and a
#: sampler grid in ~20 min). Full modes use configs/<denoiser>.yaml.
SMALL_DENOISERS: dict[str, dict[str, Any]] = {
    "pvcnn": dict(width=16, channel_mults=(1, 2), voxel_resolutions=(16, 8), num_heads=4, cond_dim=64,
                  spine_layers=1),
    "pointnet2": dict(width=32, channel_mults=(2, 4, 8), num_centres=(128, 32, 8), radii=(0.1, 0.2, 0.4),
                      num_neighbours=(16, 16, 8), num_heads=4, cond_dim=64, spine_layers=1),
    "transformer": dict(width=128, depth=3, num_heads=4, num_patches=64, patch_size=16, point_width=32,
                        mlp_ratio=2, cond_dim=64, spine_layers=1),
}
#: The denoiser sizes timed by ``benchmarks.denoisers --size small`` (forward / backward time per denoiser);
#: kept as they are so that table stays reproducible.
SMALL_FORWARD_DENOISERS: dict[str, dict[str, Any]] = {
    "pvcnn": dict(width=16, channel_mults=(1, 2), voxel_resolutions=(16, 8), cond_dim=32, num_heads=2),
    "pointnet2": dict(width=16, channel_mults=(2, 4, 8), num_centres=(128, 32, 8), radii=(0.2, 0.4, 0.8),
                      num_neighbours=(16, 16, 16), cond_dim=32, num_heads=2),
    "transformer": dict(width=64, depth=4, num_heads=4, num_patches=64, patch_size=16, point_width=32, cond_dim=32),
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
