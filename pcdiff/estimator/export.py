"""Export a trained spinal-line estimator to a small folder that reloads offline (safetensors, no optimiser state).

    python -m pcdiff.estimator.export outputs/estimator_phantom_judge/last.ckpt pretrained/phantom-esl-judge [--overwrite]

The folder holds the network as Diffusers saves a ``ModelMixin`` (``config.json`` +
``diffusion_pytorch_model.safetensors``) and ``estimator.json``: the line it predicts, the frame it reads scans in and
the number of points it was trained on. :func:`pcdiff.estimator.eval_metric.load_estimator` (and so
``python -m pcdiff.eval --metric spine_estimator --estimator-checkpoint FOLDER``) reads it like a checkpoint.
An existing non-empty folder is refused unless ``--overwrite`` is given; then only an earlier export's three files
there are replaced.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pcdiff.estimator.module import SpineEstimator

#: The file beside the network's weights that says what the estimator predicts and how it reads a scan.
ESTIMATOR_FILE = "estimator.json"
#: What :func:`save_estimator` writes (and what ``overwrite`` may replace).
EXPORTED_FILES = (ESTIMATOR_FILE, "config.json", "diffusion_pytorch_model.safetensors")


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
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} is a file; give a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out} exists and is not empty; pass --overwrite (overwrite=True) to replace an export there")
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
    from pcdiff.estimator.model import SpineEstimatorNet

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


def export_estimator(checkpoint: str | Path, out: str | Path, overwrite: bool = False) -> Path:
    """Load a ``SpineEstimator`` Lightning checkpoint and :func:`save_estimator` it to ``out``."""
    from pcdiff.estimator.eval_metric import load_estimator

    out = Path(out)
    if out.is_dir() and any(out.iterdir()) and not overwrite:  # refuse before the (slow) load
        raise FileExistsError(f"{out} exists and is not empty; pass --overwrite (overwrite=True) to replace an export there")
    model = load_estimator(checkpoint)
    return save_estimator(model, out, model.num_points, overwrite=overwrite)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path, help="SpineEstimator Lightning checkpoint (python -m pcdiff.estimator.train)")
    parser.add_argument("out", type=Path, help="output folder")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier export in a non-empty folder")
    args = parser.parse_args(argv)
    try:
        out = export_estimator(args.checkpoint, args.out, overwrite=args.overwrite)
    except (FileExistsError, FileNotFoundError, ValueError) as exc:
        parser.error(str(exc))
    print(f"exported {args.checkpoint} to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
