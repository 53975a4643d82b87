"""A tiny training run for the notebooks when no trained model or run logs are at hand.

It trains a deliberately small PVCNN denoiser for a few dozen steps on a few dozen phantoms with
pcdiff's own API (``BackScanDataModule`` + ``PointDiffusion`` + a Lightning ``Trainer``), so that the
notebooks can show how checkpoints and logs are used. The resulting model is essentially untrained:
its samples and curves demonstrate the API only, not what pcdiff can generate.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import lightning as L
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from pcdiff.data.datamodule import BackScanDataModule
from pcdiff.diffusion.module import PointDiffusion
from pcdiff.diffusion.testing import TINY_DENOISERS


@dataclass
class TinyRun:
    """Where a tiny run left its outputs."""

    checkpoint: Path  # the last Lightning checkpoint
    log_dir: Path  # the run folder: tensorboard/version_0 (events, logged images), csv/version_0/metrics.csv
    steps: int
    num_scans: int


def train_tiny_model(
    out_dir: str | Path,
    steps: int = 40,
    num_scans: int = 40,
    num_points: int = 512,
    val_every: int = 10,
    seed: int = 0,
) -> TinyRun:
    """Train the tiny model for ``steps`` optimiser steps on ``num_scans`` phantoms of ``num_points`` points.

    Validation (diffusion loss and the Chamfer distance in mm of 2 sampled scans, 5 sampler steps) runs
    every ``val_every`` steps; metrics go to a CSV and a TensorBoard log (with the sampled-scan images)
    under ``out_dir``. Takes ~20-40 s on one CPU core with the defaults.
    """
    out_dir = Path(out_dir)
    L.seed_everything(seed, verbose=False)
    data = BackScanDataModule(
        num_points=num_points, batch_size=8, phantom_num_scans=num_scans, phantom_seed=seed,
        cache_dir=str(out_dir / "cache"), augment=False, val_fraction=0.2, test_fraction=0.0, seed=seed,
    )
    model = PointDiffusion(
        denoiser="pvcnn", denoiser_kwargs=TINY_DENOISERS["pvcnn"], num_points=num_points, num_inference_steps=5,
        val_num_samples=2, warmup_steps=5, lr=1e-3, ema_decay=None,
    )
    # TensorBoard first: the module logs its sample images to the first logger.
    loggers = [TensorBoardLogger(out_dir, name="tensorboard"), CSVLogger(out_dir, name="csv")]
    trainer = L.Trainer(
        max_steps=steps, val_check_interval=val_every, check_val_every_n_epoch=None, limit_val_batches=1,
        log_every_n_steps=2, logger=loggers, default_root_dir=out_dir, accelerator="cpu", devices=1,
        enable_progress_bar=False, enable_model_summary=False,
    )
    trainer.fit(model, data)
    return TinyRun(Path(trainer.checkpoint_callback.last_model_path or trainer.checkpoint_callback.best_model_path),
                   out_dir, steps, num_scans)
