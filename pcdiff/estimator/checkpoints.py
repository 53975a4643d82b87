"""Loading and saving a spinal-line estimator: Lightning checkpoints, and small exported folders that reload offline.

An exported folder holds the network as Diffusers saves a ``ModelMixin`` (``config.json`` +
``diffusion_pytorch_model.safetensors``) and ``estimator.json``: the line it predicts, the frame it reads scans in and
the number of points it was trained on (:func:`save_estimator`; command line: ``python -m pcdiff.estimator.export``).
:func:`load_estimator` reads either.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import torch

from pcdiff.estimator.model import SpineEstimatorNet
from pcdiff.estimator.module import SpineEstimator

#: Points fed to the estimator when its checkpoint does not record the data module's ``num_points``.
DEFAULT_NUM_POINTS = 2048
#: Old spellings of network settings, in checkpoints written before ``SpineEstimator`` took ``net_kwargs``.
_OLD_NET_NAMES = {"num_centers": "num_centres", "num_neighbors": "num_neighbours"}

#: The file beside the network's weights that says what the estimator predicts and how it reads a scan.
ESTIMATOR_FILE = "estimator.json"
#: What :func:`save_estimator` writes (and what ``overwrite`` may replace).
EXPORTED_FILES = (ESTIMATOR_FILE, "config.json", "diffusion_pytorch_model.safetensors")


def check_export_folder(out: Path, overwrite: bool) -> None:
    """Raise FileExistsError when ``out`` is a file, or a non-empty folder and ``overwrite`` is False."""
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} is a file; give a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out} exists and is not empty; pass --overwrite (overwrite=True) to replace an export there")


def save_estimator(model: SpineEstimator, out: str | Path, num_points: int, overwrite: bool = False) -> Path:
    """Save ``model``'s network and settings to the folder ``out`` (created); returns ``out``.

    Args:
        model: a (trained) ``SpineEstimator``.
        out: output folder.
        num_points: points per scan the estimator reads (its training data's ``num_points``).
        overwrite: write into an existing non-empty folder, replacing an earlier export's files there.

    Raises:
        FileExistsError: ``out`` is a file, or a non-empty folder and ``overwrite`` is False.
        ValueError: ``num_points`` < 1.
    """
    out = Path(out)
    if num_points < 1:
        raise ValueError(f"save_estimator: num_points must be >= 1, got {num_points}")
    check_export_folder(out, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    model.net.save_pretrained(out, safe_serialization=True)
    settings = {"line": model.hparams.line, "input_frame": model.hparams.input_frame,
                "num_keypoints": model.hparams.num_keypoints, "num_points": int(num_points)}  # fmt: skip
    (out / ESTIMATOR_FILE).write_text(json.dumps(settings, indent=2) + "\n")
    return out


def load_exported_estimator(folder: str | Path) -> SpineEstimator:
    """The ``SpineEstimator`` (eval mode, ``num_points`` set) saved by :func:`save_estimator` in ``folder``.

    Raises:
        FileNotFoundError: ``folder`` holds no ``estimator.json``.
    """
    folder = Path(folder)
    if not (folder / ESTIMATOR_FILE).is_file():
        raise FileNotFoundError(f"{folder} holds no {ESTIMATOR_FILE}: not an exported estimator (python -m pcdiff.estimator.export)")
    settings: dict[str, Any] = json.loads((folder / ESTIMATOR_FILE).read_text())
    net = SpineEstimatorNet.from_pretrained(folder)
    net_kwargs = {k: v for k, v in net.config.items() if not k.startswith("_") and k != "num_keypoints"}
    model = SpineEstimator(num_keypoints=settings["num_keypoints"], net_kwargs=net_kwargs, line=settings["line"],
                           input_frame=settings["input_frame"])  # fmt: skip
    model.net = net
    model.num_points = int(settings["num_points"])
    return model.eval()


def _net_kwargs_of_old_checkpoint(hparams: dict[str, Any]) -> dict[str, Any] | None:
    """``net_kwargs`` for a checkpoint whose network settings are flat hyperparameters (old layout), else None."""
    if "net_kwargs" in hparams:
        return None
    names = set(inspect.signature(SpineEstimatorNet.__init__).parameters) - {"self", "num_keypoints"}
    flat = {_OLD_NET_NAMES.get(k, k): v for k, v in hparams.items()}
    return {k: v for k, v in flat.items() if k in names} or None


def load_estimator(checkpoint: str | Path, map_location: str = "cpu") -> SpineEstimator:
    """Load a ``SpineEstimator`` Lightning checkpoint (eval mode; ``num_points`` from its data settings), or a folder
    exported by :func:`save_estimator` / ``python -m pcdiff.estimator.export`` (e.g. the shipped ``pretrained/phantom-esl-judge``)."""
    path = Path(checkpoint)
    if path.is_dir():
        return load_exported_estimator(path).to(map_location)
    if not path.is_file():
        raise FileNotFoundError(f"spine_estimator: estimator checkpoint {path} does not exist")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)  # Lightning checkpoints hold plain dicts
    old = _net_kwargs_of_old_checkpoint(ckpt.get("hyper_parameters") or {})
    overrides = {} if old is None else {"net_kwargs": old}
    model = SpineEstimator.load_from_checkpoint(path, map_location=map_location, **overrides).eval()
    data_hp = ckpt.get("datamodule_hyper_parameters") or {}
    model.num_points = int(data_hp.get("num_points", DEFAULT_NUM_POINTS))
    return model
