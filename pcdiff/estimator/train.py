"""Train, validate or test the spinal-line estimator with ``LightningCLI``.

    python -m pcdiff.estimator.train configs/estimator.yaml                     # fit (default subcommand)
    python -m pcdiff.estimator.train configs/estimator.yaml --data.line isl --data.normalize landmarks
    python -m pcdiff.estimator.train test configs/estimator.yaml --ckpt_path outputs/estimator/last.ckpt

A separate entry point from ``pcdiff.train`` (whose CLI is bound to ``PointDiffusion``), sharing its
argument convention (:func:`pcdiff.train.normalize_argv`). ``data.num_keypoints`` and ``data.line``
are linked into the model, and the model's ``input_frame`` is derived from ``data.normalize`` and
``data.line``, so the checkpoint records what it predicts and in which frame it reads scans.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from lightning.pytorch.cli import LightningCLI

from pcdiff.data.datamodule import BackScanDataModule
from pcdiff.estimator.module import SpineEstimator
from pcdiff.geometry.frames import frame_name
from pcdiff.train import normalize_argv


def input_frame(normalize: str, line: str) -> str:
    """The estimator's ``input_frame`` for the data module's ``normalize`` and ``line`` ("line" -> that line's
    name): :func:`pcdiff.geometry.frames.frame_name`."""
    return frame_name(normalize, line)


class EstimatorCLI(LightningCLI):
    """``LightningCLI`` with the data module's keypoints, line and frame linked into the estimator."""

    def add_arguments_to_parser(self, parser) -> None:  # noqa: ANN001 (jsonargparse parser)
        parser.link_arguments("data.num_keypoints", "model.num_keypoints")
        parser.link_arguments("data.line", "model.line")
        parser.link_arguments(("data.normalize", "data.line"), "model.input_frame", compute_fn=input_frame)


def main(args: Sequence[str] | None = None) -> EstimatorCLI:
    """Run the CLI on ``args`` (default ``sys.argv[1:]``); returns the CLI (its ``trainer``, ``model``...)."""
    return EstimatorCLI(
        SpineEstimator,
        BackScanDataModule,
        args=normalize_argv(sys.argv[1:] if args is None else args),
        seed_everything_default=0,
        save_config_kwargs={"overwrite": True},
    )


if __name__ == "__main__":
    main()
