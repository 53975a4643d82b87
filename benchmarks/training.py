"""Training for the benchmarks: ``python -m pcdiff.train`` configs read as model settings, and a
``PointDiffusion`` trained on a ``BackScanDataModule`` in a Lightning ``Trainer`` (pcdiff's public API only).
"""

from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path
from typing import Any

import torch

from benchmarks.reporting import ROOT, hardware_info, timer
from pcdiff.diffusion.testing import SMALL_DENOISERS

CONFIGS_DIR = ROOT / "configs"

#: model settings a benchmark sets itself (no validation sampling or image logging inside training)
BENCHMARK_MODEL_OVERRIDES = {"val_num_samples": 0, "log_images": False}


def read_train_config(path: Path) -> dict[str, dict[str, Any]]:
    """The ``model``, ``data`` and ``trainer`` sections of a ``python -m pcdiff.train`` YAML config."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: training config not found (expected configs/<name>.yaml)")
    doc = yaml.safe_load(path.read_text()) or {}
    if not isinstance(doc.get("model"), dict):
        raise ValueError(f"{path}: no 'model:' section")
    return {k: dict(doc.get(k) or {}) for k in ("model", "data", "trainer")}


def model_settings(denoiser: str, source: str) -> tuple[dict[str, Any], float | None, Path]:
    """PointDiffusion keyword arguments and gradient clipping for ``denoiser``.

    Args:
        denoiser: ``"pvcnn"``, ``"pointnet2"`` or ``"transformer"``.
        source: ``"quickstart"``: every denoiser takes configs/quickstart.yaml's model settings (schedule,
            optimiser, EMA, guidance dropout, gradient clipping) with its :data:`pcdiff.diffusion.testing.SMALL_DENOISERS`;
            ``"configs"``: configs/<denoiser>.yaml as it is.

    Returns:
        (model kwargs without the data-linked keys, ``trainer.gradient_clip_val`` or None, the config read).
    """
    if source == "quickstart":
        path = CONFIGS_DIR / "quickstart.yaml"
        cfg = read_train_config(path)
        model = dict(cfg["model"])
        model["denoiser"], model["denoiser_kwargs"] = denoiser, SMALL_DENOISERS[denoiser]
    elif source == "configs":
        path = CONFIGS_DIR / f"{denoiser}.yaml"
        cfg = read_train_config(path)
        model = dict(cfg["model"])
        if model.get("denoiser") != denoiser:
            raise ValueError(f"{path}: model.denoiser is {model.get('denoiser')!r}, expected {denoiser!r}")
    else:
        raise ValueError(f"model settings source must be 'quickstart' or 'configs', got {source!r}")
    model.update(BENCHMARK_MODEL_OVERRIDES)
    for key in ("num_points", "num_keypoints", "line", "normalize", "fixed_scale"):  # linked from the data module
        model.pop(key, None)
    return model, cfg["trainer"].get("gradient_clip_val"), path



def quiet_lightning() -> None:
    """Silence Lightning's per-run banners and the warnings a short CPU benchmark run always triggers."""
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*GPU available but not used.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")


def start_run() -> tuple[float, dict[str, Any]]:
    """Set up a training benchmark's process: timestamped INFO logging, Lightning quiet (:func:`quiet_lightning`).

    Returns:
        (``time.perf_counter()`` at the start, :func:`benchmarks.reporting.hardware_info` read before
        Lightning touches the thread count).
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    quiet_lightning()
    return time.perf_counter(), hardware_info()


def train_point_diffusion(
    datamodule: Any,
    *,
    max_steps: int,
    seed: int = 0,
    init_checkpoint: Path | None = None,
    save_checkpoint: Path | None = None,
    accelerator: str = "auto",
    precision: str = "32-true",
    gradient_clip_val: float | None = None,
    **model_kwargs: Any,
) -> tuple[Any, float]:
    """Train (or fine-tune) a ``PointDiffusion`` on ``datamodule`` for ``max_steps`` optimiser steps.

    The model's ``num_points``, ``num_keypoints``, ``line`` and ``normalize`` are taken from the data
    module (as ``pcdiff.train`` links them). With ``init_checkpoint`` the weights (and EMA) come from that
    Lightning checkpoint, its saved settings overridden by ``model_kwargs`` and the data module's.
    ``save_checkpoint``: write the trained model's Lightning checkpoint there (for ``--init`` elsewhere).
    Validation is off: the benchmark evaluates on its own held-out subjects afterwards.

    Returns:
        (the trained module in eval mode, on CPU; training wall time in seconds).
    """
    import lightning as L

    from pcdiff.diffusion.module import PointDiffusion

    hp = datamodule.hparams
    linked = {k: hp[k] for k in ("num_points", "num_keypoints", "line", "normalize", "fixed_scale")}
    L.seed_everything(seed, workers=True, verbose=False)
    if init_checkpoint is not None:
        module = PointDiffusion.load_from_checkpoint(str(init_checkpoint), map_location="cpu", **linked, **model_kwargs)
    else:
        module = PointDiffusion(**linked, **model_kwargs)
    trainer = L.Trainer(
        max_steps=max_steps,
        accelerator=accelerator,
        devices=1,
        precision=precision,
        gradient_clip_val=gradient_clip_val,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        deterministic=False,
    )
    threads = torch.get_num_threads()
    with timer() as t:
        trainer.fit(module, datamodule=datamodule)
    torch.set_num_threads(threads)  # Lightning's CPU setup may change it; keep the caller's (e.g. OMP_NUM_THREADS=1)
    if trainer.global_step < max_steps:
        raise RuntimeError(f"training stopped after {trainer.global_step} of {max_steps} steps")
    if save_checkpoint is not None:
        Path(save_checkpoint).parent.mkdir(parents=True, exist_ok=True)
        trainer.save_checkpoint(save_checkpoint)
    return module.cpu().eval(), t["s"]



def train_with_cli(configs: list[Path], settings: dict[str, Any], run_dir: Path) -> tuple[Path, float]:
    """Train through the user's own command, ``python -m pcdiff.train CONFIG [--config MORE ...]``, in a subprocess.

    The benchmark's own settings (``settings``: ``{"model": {...}, "data": {...}, "trainer": {...}}``, dotted
    keys as in a YAML config) are written to ``run_dir/run.yaml`` and layered last; the run writes no logger
    files, no progress bar and only ``run_dir/last.ckpt`` (it replaces the configs' checkpoint callbacks, so
    a user's ``outputs/`` are never touched). Fine-tuning is ``settings["model"]["init_from"]``, exactly as a
    user's ``--model.init_from``.

    Args:
        configs: training YAML configs, first = the base (e.g. configs/phantom_pretrain.yaml, configs/finetune.yaml).
        settings: sections to override (and top-level keys such as ``seed_everything``).
        run_dir: a new or empty folder for the run (raises if it already holds a ``last.ckpt``).

    Returns:
        (path of the final checkpoint, wall seconds of the whole command, start-up included).

    Raises:
        RuntimeError: with the tail of the run's log when the command fails.
    """
    import subprocess
    import sys

    import yaml

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    last = run_dir / "last.ckpt"
    if last.exists():
        raise FileExistsError(f"{last}: a previous run's checkpoint; give train_with_cli a new folder")
    own = {k: dict(v) if isinstance(v, dict) else v for k, v in settings.items()}  # top-level keys: seed_everything
    max_steps = own.get("trainer", {}).get("max_steps")
    if not isinstance(max_steps, int) or max_steps < 1:
        raise ValueError(f"train_with_cli: settings['trainer']['max_steps'] must be a positive int, got {max_steps!r}")
    own["trainer"].update(
        default_root_dir=str(run_dir), logger=False, enable_progress_bar=False, enable_model_summary=False,
        callbacks=[{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                    "init_args": {"dirpath": str(run_dir), "save_top_k": 0, "save_last": True, "filename": "step{step}",
                                  "every_n_train_steps": max_steps}}],
    )
    run_config = run_dir / "run.yaml"
    run_config.write_text(yaml.safe_dump(own, sort_keys=False))
    command = [sys.executable, "-m", "pcdiff.train", str(configs[0])]
    for extra in [*configs[1:], run_config]:
        command += ["--config", str(extra)]
    log_path = run_dir / "train.log"
    started = time.perf_counter()
    with open(log_path, "w") as log_file:
        done = subprocess.run(command, stdout=log_file, stderr=subprocess.STDOUT, cwd=ROOT)
    elapsed = time.perf_counter() - started
    if done.returncode != 0 or not last.is_file():
        tail = "\n".join(log_path.read_text().splitlines()[-20:])
        raise RuntimeError(f"{' '.join(command)} failed (exit {done.returncode}; log {log_path}):\n{tail}")
    return last, elapsed
