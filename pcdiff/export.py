"""Export a training checkpoint to a Diffusers pipeline folder that reloads offline.

    python -m pcdiff.export outputs/quickstart/last.ckpt exported/quickstart [--sampler dpm++] [--no-ema] [--overwrite]

The folder holds ``model_index.json`` (with the normalisation: ``data_scale``, ``num_keypoints``, ``line``,
``normalize``, and a copy of them under ``_pcdiff_trained_with``, so that reloading warns when one was edited),
``denoiser/`` (config.json + safetensors) and ``scheduler/``; reload it with
``SpineToBackPipeline.from_pretrained(folder)`` and call ``pipe(spine_mm, num_inference_steps=20, generator=...)``.
An existing non-empty folder is refused unless ``--overwrite`` is given; then an earlier export there is replaced.
"""

from __future__ import annotations

import argparse
import json
import shutil
from collections.abc import Sequence
from pathlib import Path

from pcdiff.pipelines import SpineToBackPipeline


def _remove_earlier_export(out: Path) -> None:
    """Delete the pipeline in ``out`` (``model_index.json`` and the component folders it names); nothing else."""
    index = out / "model_index.json"
    if not index.is_file():
        return
    try:
        components = [k for k, v in json.loads(index.read_text()).items() if not k.startswith("_") and isinstance(v, list)]
    except (OSError, ValueError):
        components = []
    for name in components:
        if (out / name).is_dir():
            shutil.rmtree(out / name)
    index.unlink()


def export_pipeline(
    checkpoint: str | Path, out: str | Path, sampler: str | None = None, use_ema: bool = True, overwrite: bool = False
) -> SpineToBackPipeline:
    """Load ``checkpoint`` (a ``PointDiffusion`` .ckpt), save its pipeline to ``out`` and return it.

    Args:
        checkpoint: Lightning checkpoint written by ``python -m pcdiff.train``.
        out: output folder (created).
        sampler: sampling scheduler name (default: the model's ``sampler``).
        use_ema: export the EMA weights (default) rather than the raw trained ones.
        overwrite: write into an existing non-empty ``out``, replacing an earlier export there.

    Raises:
        FileExistsError: ``out`` exists, is not empty and ``overwrite`` is False (checked before loading).
        FileNotFoundError, ValueError: ``checkpoint`` is missing, damaged or not a ``PointDiffusion`` checkpoint.
    """
    from pcdiff.diffusion.module import PointDiffusion
    from pcdiff.utils.checkpoints import read_checkpoint

    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise FileExistsError(f"{out} exists and is not empty; pass --overwrite (overwrite=True) to replace it")
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} is a file, not a folder")
    read_checkpoint(checkpoint)  # one clear line for a file that is not a pcdiff checkpoint, or is damaged
    module = PointDiffusion.load_from_checkpoint(str(checkpoint), map_location="cpu")
    pipe = module.to_pipeline(sampler=sampler, use_ema=use_ema)
    pipe.denoiser.eval()
    if out.is_dir():
        _remove_earlier_export(out)
    pipe.save_pretrained(str(out), safe_serialization=True)
    record_trained_settings(out, pipe)
    return pipe


def record_trained_settings(out: Path, pipe: SpineToBackPipeline) -> None:
    """Add ``_pcdiff_trained_with`` (the pipeline settings but ``num_points``) to ``out/model_index.json``, so that
    ``SpineToBackPipeline.from_pretrained`` warns when one of them (e.g. ``num_keypoints``) was edited later."""
    index_path = Path(out) / "model_index.json"
    index = json.loads(index_path.read_text())
    settings = {k: v for k, v in index.items() if not k.startswith("_") and not isinstance(v, list)}
    index["_pcdiff_trained_with"] = {k: v for k, v in settings.items() if k != "num_points"}
    index_path.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")


def main(argv: Sequence[str] | None = None) -> Path:
    p = argparse.ArgumentParser(prog="python -m pcdiff.export", description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", help="training checkpoint (.ckpt)")
    p.add_argument("out", help="output pipeline folder")
    p.add_argument("--sampler", help="sampling scheduler (default: the model's), e.g. dpm++, ddim, euler")
    p.add_argument("--no-ema", action="store_true", help="export the raw weights instead of the EMA weights")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier export in OUT (else a non-empty OUT is refused)")
    args = p.parse_args(argv)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        p.error(f"out: {out} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not args.overwrite:
        p.error(f"out: {out} exists and is not empty; pass --overwrite to replace the export there")
    try:
        export_pipeline(args.checkpoint, out, args.sampler, use_ema=not args.no_ema, overwrite=args.overwrite)
    except (FileNotFoundError, ValueError) as exc:
        p.error(f"checkpoint: {exc}")
    print(f"exported {args.checkpoint} -> {args.out}")
    return Path(args.out)


if __name__ == "__main__":
    main()
