"""Export a training checkpoint to a Diffusers pipeline folder that reloads offline.

    python -m pcdiff.export outputs/quickstart/last.ckpt exported/quickstart [--sampler dpm++] [--no-ema]

The folder holds ``model_index.json`` (with the normalisation: ``data_scale``, ``num_keypoints``, ``line``,
``normalize``), ``denoiser/`` (config.json + safetensors) and ``scheduler/``; reload it with
``SpineToBackPipeline.from_pretrained(folder)`` and call ``pipe(spine_mm, num_inference_steps=20, generator=...)``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from pcdiff.pipelines import SpineToBackPipeline


def export_pipeline(checkpoint: str | Path, out: str | Path, sampler: str | None = None, use_ema: bool = True) -> SpineToBackPipeline:
    """Load ``checkpoint`` (a ``PointDiffusion`` .ckpt), save its pipeline to ``out`` and return it.

    Args:
        checkpoint: Lightning checkpoint written by ``python -m pcdiff.train``.
        out: output folder (created).
        sampler: sampling scheduler name (default: the model's ``sampler``).
        use_ema: export the EMA weights (default) rather than the raw trained ones.
    """
    from pcdiff.diffusion.module import PointDiffusion

    module = PointDiffusion.load_from_checkpoint(str(checkpoint), map_location="cpu")
    pipe = module.to_pipeline(sampler=sampler, use_ema=use_ema)
    pipe.denoiser.eval()
    pipe.save_pretrained(str(out), safe_serialization=True)
    return pipe


def main(argv: Sequence[str] | None = None) -> Path:
    p = argparse.ArgumentParser(prog="python -m pcdiff.export", description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", help="training checkpoint (.ckpt)")
    p.add_argument("out", help="output pipeline folder")
    p.add_argument("--sampler", help="sampling scheduler (default: the model's), e.g. dpm++, ddim, euler")
    p.add_argument("--no-ema", action="store_true", help="export the raw weights instead of the EMA weights")
    args = p.parse_args(argv)
    export_pipeline(args.checkpoint, args.out, args.sampler, use_ema=not args.no_ema)
    print(f"exported {args.checkpoint} -> {args.out}")
    return Path(args.out)


if __name__ == "__main__":
    main()
