"""Train, validate or test a ``PointDiffusion`` model with ``LightningCLI``.

    python -m pcdiff.train configs/quickstart.yaml                      # fit (the default subcommand)
    python -m pcdiff.train configs/pvcnn.yaml --data.batch_size 32      # dotted overrides
    python -m pcdiff.train fit --config configs/pvcnn.yaml --ckpt_path outputs/pvcnn/last.ckpt   # resume
    python -m pcdiff.train validate configs/pvcnn.yaml --ckpt_path outputs/pvcnn/last.ckpt
    python -m pcdiff.train --help

Without ``--data.data_dir`` the data module trains on the embedded phantom (generated into a cache on
first use). The data module's ``num_keypoints``, ``num_points``, ``line`` and ``normalize`` are linked
to the model's (set them under ``data:``), so the checkpoint records the normalisation it was trained with.
Devices, DDP, precision and gradient clipping are ``--trainer.*`` flags, e.g. ``--trainer.strategy ddp
--trainer.devices 2`` (``--trainer.accelerator cpu`` runs DDP over gloo).

Checkpoints: the shipped configs' ``ModelCheckpoint`` writes ``last.ckpt`` every ``every_n_train_steps``, at the
end of training and on an interrupt (``save_on_exception``: Ctrl-C, SIGTERM, a crash), so a stopped run resumes with
``--ckpt_path <dirpath>/last.ckpt`` at the step where it stopped. ``--trainer.fast_dev_run`` writes no checkpoint
(its checkpoint callbacks are dropped, so a smoke test never replaces a real run's ``last.ckpt``).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import Checkpoint
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.utilities.rank_zero import rank_zero_info

from pcdiff.data.datamodule import BackScanDataModule
from pcdiff.diffusion.module import PointDiffusion

SUBCOMMANDS = ("fit", "validate", "test", "predict")
#: data-module settings that the model must share (linked: set them under ``data:`` only)
LINKED = ("num_points", "num_keypoints", "line", "normalize", "fixed_scale")


class PcdiffCLI(LightningCLI):
    """``LightningCLI`` with the data module's normalisation settings linked into the model's."""

    def add_arguments_to_parser(self, parser) -> None:  # noqa: ANN001 (jsonargparse parser)
        for key in LINKED:
            parser.link_arguments(f"data.{key}", f"model.{key}")

    def instantiate_classes(self) -> None:
        """Build model, data module and trainer; a constructor's ``ValueError`` (an unknown ``--model.denoiser``,
        ``--data.num_keypoints 0``) becomes a one-line usage error (exit 2) instead of a traceback."""
        from pcdiff.models import DENOISERS

        config = self.config.get(self.subcommand) if self.subcommand else self.config
        denoiser = config.get("model", {}).get("denoiser") if config is not None else None
        if denoiser is not None and denoiser not in DENOISERS:
            self.parser.error(f"--model.denoiser: unknown {denoiser!r}; choose from {sorted(DENOISERS)}")
        try:
            super().instantiate_classes()
        except ValueError as exc:
            self.parser.error(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)

    def instantiate_trainer(self, **kwargs) -> Trainer:  # noqa: ANN003 (LightningCLI's trainer kwargs)
        """The trainer, without checkpoint callbacks under ``fast_dev_run``.

        Lightning's ``fast_dev_run`` says "checkpointing is suppressed", yet ``ModelCheckpoint(save_last=True)``
        still writes a 1-step ``last.ckpt`` at train end, into the configured (the real run's) ``dirpath``.
        """
        trainer = super().instantiate_trainer(**kwargs)
        if trainer.fast_dev_run:
            dropped = [c for c in trainer.callbacks if isinstance(c, Checkpoint)]
            if dropped:
                trainer.callbacks = [c for c in trainer.callbacks if not isinstance(c, Checkpoint)]
                rank_zero_info(f"fast_dev_run: writing no checkpoints (dropped {', '.join(type(c).__name__ for c in dropped)})")
        return trainer


def normalize_argv(argv: Sequence[str]) -> list[str]:
    """Accept ``[subcommand] [config.yaml] [overrides...]``: default to ``fit``, positional config -> ``--config``.

    ``python -m pcdiff.train a.yaml --x 1`` becomes ``fit --config a.yaml --x 1``; a leading ``--config``
    without a subcommand becomes ``fit --config ...`` (the configs hold subcommand-level keys).
    ``--help`` alone is left to LightningCLI.
    """
    argv = list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        return argv
    command, rest = (argv[0], argv[1:]) if argv[0] in SUBCOMMANDS else ("fit", argv)
    if rest and not rest[0].startswith("-") and rest[0].endswith((".yaml", ".yml", ".json")):
        rest = ["--config", rest[0], *rest[1:]]
    return [command, *rest]


def main(args: Sequence[str] | None = None) -> PcdiffCLI:
    """Run the CLI on ``args`` (default ``sys.argv[1:]``); returns the CLI (its ``trainer``, ``model``...)."""
    if args is None:  # rewrite the command line itself (LightningCLI warns when given both)
        sys.argv = [sys.argv[0], *normalize_argv(sys.argv[1:])]
    return PcdiffCLI(
        PointDiffusion,
        BackScanDataModule,
        args=None if args is None else normalize_argv(args),
        seed_everything_default=0,
        save_config_kwargs={"overwrite": True},
        auto_configure_optimizers=False,  # the module defines AdamW + warm-up/decay with typed arguments
    )


if __name__ == "__main__":
    main()
