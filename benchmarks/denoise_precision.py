"""Diagnosis: how precisely does a trained denoiser put points back on the surface, per noise level?

    python -m benchmarks.denoise_precision --checkpoint straight_box=outputs/ablation/straight_box.ckpt \
        --checkpoint straight_box_surface=outputs/ablation/straight_box_surface.ckpt

Takes true held-out phantom backs, adds the training noise of timestep t, asks each model for its one-step
clean estimate ``x0_hat`` (from its v / epsilon / sample prediction) and measures, in mm, the estimate's
median surface variation and its median distance to the true back (nearest true point). A sampler's last
steps can make a back no thinner than this one-step precision at the small t where it stops. The noisy
input's own figures are the "no denoising" row. Writes ``benchmarks/results/<stem>.{json,md}``.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import torch

from benchmarks.fidelity import MODES, collect, make_datamodule
from benchmarks.reporting import command_line, hardware_info, markdown_table, write_results
from pcdiff.geometry.frames import to_mm

TIMESTEPS = (1, 3, 6, 10, 15, 20, 32, 50, 100)


def clean_estimate(module: Any, x_t: torch.Tensor, t: torch.Tensor, spine: torch.Tensor) -> torch.Tensor:
    """One-step clean estimate (B, N, 3) in model space from a noisy (B, N, 3) at timesteps t (B,)."""
    denoiser = module.sampling_denoiser
    pred = denoiser(x_t, t, encoder_hidden_states=spine).sample
    alpha_bar = module.noise_scheduler.alphas_cumprod[t].to(x_t)[:, None, None]
    a, s = alpha_bar.sqrt(), (1 - alpha_bar).sqrt()
    kind = module.hparams.prediction_type
    if kind == "v_prediction":
        return a * x_t - s * pred
    if kind == "epsilon":
        return (x_t - s * pred) / a
    return pred


def precision(points_mm: torch.Tensor, true_mm: torch.Tensor) -> dict[str, float]:
    """Median surface variation and median distance (mm) from each point to the nearest true point."""
    from pcdiff.metrics.surface import surface_variation
    from pcdiff.ops import knn_points

    dist = knn_points(points_mm, true_mm, 1).dists_sq[..., 0].clamp_min(0).sqrt()  # (B, N) mm
    return {"surface_variation": float(surface_variation(points_mm).median()),
            "distance_mm": float(dist.median())}


@torch.no_grad()
def main(argv: list[str] | None = None) -> dict[str, Any]:
    import dataclasses

    from pcdiff.diffusion.module import PointDiffusion
    from pcdiff.geometry.frames import from_model, to_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", action="append", required=True, metavar="NAME=PATH")
    parser.add_argument("--points", type=int, default=2048)
    parser.add_argument("--test-scans", type=int, default=16)
    parser.add_argument("--phantom-seed", type=int, default=0)
    parser.add_argument("--stem", default="denoise_precision")
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]
    settings = dataclasses.replace(MODES["quick"], num_points=args.points, test_scans=args.test_scans,
                                   num_keypoints=16, seed=args.phantom_seed)
    dm = make_datamodule(settings, None, augment=False)
    dm.setup("fit")
    test = collect(dm.dataset("test"))
    true_mm = to_mm(test.points, test.center, test.scale)
    models = {name: PointDiffusion.load_from_checkpoint(path, map_location="cpu").eval()
              for name, path in (spec.split("=", 1) for spec in args.checkpoint)}
    rows = []
    for step in TIMESTEPS:
        gen = torch.Generator().manual_seed(step)
        noise = torch.randn(test.points.shape, generator=gen)
        t = torch.full((len(test.points),), step, dtype=torch.long)
        for name, module in models.items():
            scale = module.hparams.data_scale
            line = test.spine if module.hparams.get("straighten", False) else None
            twist = module.hparams.get("twist_gain", 0.0)
            x0 = to_model(test.points, scale, line, twist)
            alpha_bar = module.noise_scheduler.alphas_cumprod[step]
            x_t = alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * noise
            if not rows or rows[-1]["t"] != step:  # the noisy input itself, once per t
                noisy = to_mm(from_model(x_t, scale, line, twist), test.center, test.scale)
                sigma_mm = float((1 - alpha_bar).sqrt() / alpha_bar.sqrt() / scale * test.scale.mean())
                rows.append({"t": step, "model": "noisy input (no denoising)", "sigma_mm": sigma_mm,
                             **precision(noisy, true_mm)})
            estimate = from_model(clean_estimate(module, x_t, t, to_model(test.spine, scale)), scale, line, twist)
            rows.append({"t": step, "model": name, "sigma_mm": rows[-1]["sigma_mm"],
                         **precision(to_mm(estimate, test.center, test.scale), true_mm)})
    columns = [("t", "t", "d"), ("sigma_mm", "noise (mm)", ".1f"), ("model", "model", ""),
               ("surface_variation", "surface var. of x0_hat", ".4f"), ("distance_mm", "median distance to true back (mm)", ".2f")]
    true = precision(true_mm, true_mm)
    markdown = "\n".join([
        f"# One-step denoising precision on {len(test.points)} held-out phantoms at {args.points} points", "",
        "```bash", command_line(), "```", "",
        f"True backs: surface variation {true['surface_variation']:.4f}. Load at start {load:.1f}. "
        "`noise (mm)` is the noise of x_t mapped back to the clean scale (sigma / sqrt(alpha_bar)).", "",
        markdown_table(rows, columns), "",
    ])
    payload = {"settings": vars(args), "hardware": hardware_info(), "true": true, "rows": rows}
    write_results(args.stem, payload, markdown)
    print(markdown)
    return payload


if __name__ == "__main__":
    main()
