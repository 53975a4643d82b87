"""Export a trained spinal-line estimator to a small folder that reloads offline (safetensors, no optimiser state).

    python -m pcdiff.estimator.export outputs/estimator_phantom_judge/last.ckpt pretrained/phantom-esl-judge [--overwrite]

The folder (:func:`pcdiff.estimator.checkpoints.save_estimator`) holds the network's ``config.json`` and
``diffusion_pytorch_model.safetensors`` and ``estimator.json`` (line, input frame, points per scan);
:func:`pcdiff.estimator.checkpoints.load_estimator` (and so ``python -m pcdiff.eval --metric spine_estimator
--estimator-checkpoint FOLDER``) reads it like a checkpoint. An existing non-empty folder is refused unless
``--overwrite`` is given; then only an earlier export's three files there are replaced.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from pcdiff.estimator.checkpoints import check_export_folder, load_estimator, save_estimator


def export_estimator(checkpoint: str | Path, out: str | Path, overwrite: bool = False) -> Path:
    """Load a ``SpineEstimator`` Lightning checkpoint and :func:`save_estimator` it to ``out``."""
    out = Path(out)
    check_export_folder(out, overwrite)  # refuse before the (slow) load
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
