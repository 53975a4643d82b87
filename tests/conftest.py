"""Shared fixtures: a tiny synthetic back scan that does not depend on the phantom generator.

``make_backscan(seed, num_points)`` returns a crude back patch (a half-cylinder bulging towards
+z with a spinal furrow) in pcdiff's frame: mm, y up, z towards the scanner, ESL on the surface,
ISL 60 mm in front of it, landmarks C7 / DL / DR. Anyone's tests may use it through the
``backscan_factory`` fixture.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pcdiff.data.sample import BackScan

PCDARE_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "pcdare"


def _surface_z(x: np.ndarray, y: np.ndarray, shift: np.ndarray | float = 0.0) -> np.ndarray:
    """Back surface height (mm): flanks curve away from the scanner, shallow furrow over the spine."""
    return -(x**2) / 300.0 - 4.0 * np.exp(-(((x - shift) / 15.0) ** 2)) + 0.0 * y


def make_backscan(
    seed: int = 0, num_points: int = 2000, name: str | None = None, lateral_shift: float = 10.0
) -> BackScan:
    """A synthetic back (mm) with ``num_points`` points, an ESL on the surface and an ISL 60 mm deep.

    Args:
        seed: random seed (points, small per-subject size variation).
        num_points: number of surface points.
        name: subject key (default ``subj<seed>``).
        lateral_shift: amplitude (mm) of a gentle S-shaped lateral deviation of the lines.
    """
    rng = np.random.default_rng(seed)
    height = 430.0 + 40.0 * rng.random()  # C7 .. DM, mm
    top, bottom = height / 2, -height / 2
    x = rng.uniform(-160.0, 160.0, num_points)
    y = rng.uniform(bottom - 40.0, top + 30.0, num_points)
    shift_at = lambda yy: lateral_shift * np.sin(np.pi * (yy - bottom) / height)  # noqa: E731
    z = _surface_z(x, y, shift_at(y)) + rng.normal(0.0, 0.3, num_points)
    points = np.stack([x, y, z], axis=1)
    ly = np.linspace(top, bottom, 40)
    lx = shift_at(ly)
    esl = np.stack([lx, ly, _surface_z(lx, ly, lx)], axis=1)
    isl = np.stack([1.5 * lx, ly, esl[:, 2] - 60.0], axis=1)
    landmarks = {
        "C7": esl[0],
        "DL": np.array([-45.0, bottom, _surface_z(-45.0, bottom) - 0.0]),
        "DR": np.array([45.0, bottom, _surface_z(45.0, bottom)]),
    }
    return BackScan(
        name=name or f"subj{seed}",
        points=points,
        esl=esl,
        isl=isl,
        landmarks=landmarks,
        meta={"dataset": "synthetic-test", "age": 14},
    )


@pytest.fixture
def backscan_factory():
    """Return :func:`make_backscan` (call it with a seed / num_points / name)."""
    return make_backscan


@pytest.fixture
def pcdare_dir() -> Path:
    """The shared PCdare folder; skips the test when it is absent."""
    if not (PCDARE_DIR / "CobbAngles.csv").is_file():
        pytest.skip(f"real PCdare data not found at {PCDARE_DIR} (shared data folder absent)")
    return PCDARE_DIR


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory) -> Path:
    """A tiny PVCNN ``PointDiffusion`` trained 2 steps on tiny phantoms, saved as a Lightning checkpoint
    (shared by the export, generate and DDP tests)."""
    import lightning as L

    from pcdiff.diffusion.testing import tiny_datamodule, tiny_module

    tmp = tmp_path_factory.mktemp("ckpt")
    trainer = L.Trainer(max_steps=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0, default_root_dir=tmp)
    trainer.fit(tiny_module("pvcnn"), tiny_datamodule(tmp_path_factory.getbasetemp() / "phantom-cache"))
    trainer.save_checkpoint(tmp / "tiny.ckpt")
    return tmp / "tiny.ckpt"
