"""Distributed training and generation on CPU (issue #14, "Distributed training, exercised").

The README promises multi-GPU / multi-node training through Lightning's DDP. These tests run it for real with two
CPU processes over gloo: ``python -m pcdiff.train configs/quickstart.yaml --trainer.strategy ddp --trainer.devices 2
--trainer.accelerator cpu`` trains a few steps and resumes from its ``last.ckpt``; ``python -m pcdiff.generate
--devices 2`` writes the same scans as ``--devices 1``.

Lightning's DDP launcher re-executes the command line once per extra rank, so each run is a subprocess (never
pytest's own process), with a timeout, one thread per rank, in a temporary working directory (the config's relative
``outputs/quickstart`` lands there), on 8 phantoms of 64 points and a tiny denoiser.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pcdiff.data.io import read_point_cloud
from pcdiff.diffusion.testing import TINY_DENOISERS
from pcdiff.generate import main as generate_main

QUICKSTART = Path(__file__).resolve().parents[1] / "configs" / "quickstart.yaml"
TIMEOUT_S = 300  # per command; one launch of 2 ranks takes ~10-15 s on a busy 2-core CPU

pytestmark = pytest.mark.filterwarnings("ignore:LightningCLI's args parameter")


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``python <args>`` in ``cwd``, one thread per process; fails the test with the output's tail on error."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("LOCAL_RANK", None)  # a fresh launch, whatever the calling environment holds
    done = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=TIMEOUT_S)  # fmt: skip
    if done.returncode != 0:
        pytest.fail(f"exit {done.returncode}: {' '.join(args)}\n{(done.stdout + done.stderr)[-4000:]}")
    return done


# ------------------------------------------------------------------------------------------------ training
def _train(cwd: Path, cache: Path, *extra: str) -> subprocess.CompletedProcess:
    return _run(["-m", "pcdiff.train", str(QUICKSTART),
                 "--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.accelerator", "cpu",
                 "--trainer.default_root_dir", str(cwd / "outputs" / "quickstart"),
                 "--trainer.logger", json.dumps({"class_path": "lightning.pytorch.loggers.CSVLogger",
                                                 "init_args": {"save_dir": str(cwd / "csv"), "name": "ddp"}}),
                 "--trainer.log_every_n_steps", "1",
                 "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
                 "--trainer.limit_val_batches", "0", "--trainer.num_sanity_val_steps", "0",
                 "--model.denoiser_kwargs", json.dumps(TINY_DENOISERS["pvcnn"]),
                 "--model.val_num_samples", "0", "--model.num_inference_steps", "2",
                 "--data.phantom_num_scans", "8", "--data.num_points", "64", "--data.num_keypoints", "8",
                 "--data.batch_size", "2", "--data.cache_dir", str(cache), *extra], cwd)  # fmt: skip


def _checkpoint(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def _logged_steps(csv_path: Path) -> list[int]:
    """The steps at which a CSVLogger run logged ``train/loss_step`` (0-based: step k is the (k+1)-th optimiser
    step)."""
    with csv_path.open() as f:
        return sorted(int(row["step"]) for row in csv.DictReader(f) if row.get("train/loss_step"))


@pytest.mark.slow  # ~30 s: two launches of two ranks each
def test_ddp_on_cpu_trains_and_resumes_from_its_last_checkpoint(tmp_path):
    cache = tmp_path / "phantom-cache"
    last = tmp_path / "outputs" / "quickstart" / "last.ckpt"

    first = _train(tmp_path, cache, "--trainer.max_steps", "2")
    assert "distributed_backend=gloo" in first.stdout + first.stderr  # really two processes over gloo
    assert "All distributed processes registered. Starting with 2 processes" in first.stdout + first.stderr
    ckpt = _checkpoint(last)
    assert ckpt["global_step"] == 2
    assert ckpt["hyper_parameters"]["denoiser_kwargs"]["width"] == TINY_DENOISERS["pvcnn"]["width"]
    weights_at_2 = {k: v.clone() for k, v in ckpt["state_dict"].items()}
    assert _logged_steps(tmp_path / "csv" / "ddp" / "version_0" / "metrics.csv") == [0, 1]

    second = _train(tmp_path, cache, "--trainer.max_steps", "4", "--ckpt_path", str(last))
    assert "Restored all states from the checkpoint" in second.stdout + second.stderr
    ckpt = _checkpoint(last)
    assert ckpt["global_step"] == 4  # continued 2 -> 4
    # only steps 3 and 4 ran (a restart from scratch would log steps 0..3), and they changed the weights
    assert _logged_steps(tmp_path / "csv" / "ddp" / "version_1" / "metrics.csv") == [2, 3]
    assert any(not torch.equal(v, weights_at_2[k]) for k, v in ckpt["state_dict"].items())
    # no rank failed: the config's save_on_exception would have left an interrupted-step<N>.ckpt beside last.ckpt
    assert sorted(p.name for p in last.parent.glob("*.ckpt")) == ["last.ckpt"]


# ---------------------------------------------------------------------------------------------- generation
def _points(out: Path) -> dict[str, np.ndarray]:
    return {d.name: read_point_cloud(d / f"{d.name}_processed.ply")[0] for d in sorted(out.iterdir()) if d.is_dir()}


def test_generate_on_two_devices_writes_the_same_scans_as_on_one(checkpoint, tmp_path):
    args = ["--checkpoint", str(checkpoint), "--n", "5", "--seed", "7", "--steps", "2", "--batch-size", "2",
            "--accelerator", "cpu"]  # fmt: skip
    generate_main([*args, "--devices", "1", "--out", str(tmp_path / "one")])
    two = _run(["-m", "pcdiff.generate", *args, "--devices", "2", "--out", str(tmp_path / "two")], tmp_path)
    assert "(this rank)" in two.stdout  # rank 0 reports its share: two processes ran

    one, both = _points(tmp_path / "one"), _points(tmp_path / "two")
    assert sorted(both) == sorted(one) == [f"prior{i:04d}" for i in range(5)]  # each scan once, none lost (5 is odd)
    for name, points in one.items():
        # per-scan seeds: the same backs whatever rank and batch a scan lands in (up to float32 round-off of
        # differently composed batches, relative to the cloud's extent, as in tests/test_generate.py)
        np.testing.assert_allclose(both[name], points, atol=1e-5 * np.abs(points).max(), err_msg=name)
