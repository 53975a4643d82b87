"""Generating backs for the benchmarks: a trained ``PointDiffusion``'s pipeline (or an exported pipeline folder's),
one seeded back per spine, timed."""

from __future__ import annotations

import inspect
from typing import Any

import torch
from diffusers import DDPMScheduler

from benchmarks.reporting import timer
from pcdiff.diffusion.schedulers import build_sampler
from pcdiff.pipelines.spine_to_back import SpineToBackPipeline

#: The settings of ``SpineToBackPipeline.__init__`` (everything but its two components).
PIPELINE_SETTINGS = tuple(p for p in inspect.signature(SpineToBackPipeline.__init__).parameters
                          if p not in ("self", "denoiser", "scheduler"))
#: The settings of a training (DDPM) scheduler: the noise schedule a pipeline folder's sampler shares with training.
NOISE_SCHEDULE_SETTINGS = frozenset(inspect.signature(DDPMScheduler.__init__).parameters) - {"self"}


def sampling_pipeline(model: Any, sampler: str, sampler_kwargs: dict[str, Any] | None = None) -> SpineToBackPipeline:
    """A pipeline sampling ``model`` with the named Diffusers sampler.

    Args:
        model: a trained ``PointDiffusion`` (its EMA denoiser) or a loaded ``SpineToBackPipeline`` (an exported
            folder, e.g. the shipped ``pretrained/phantom-pvcnn``: its denoiser and settings, and the sampler built
            on the noise schedule of the folder's scheduler alone, so that the folder's own sampler settings, such
            as Karras sigmas, do not carry over: the same arguments sample a folder as they sample its checkpoint).
        sampler: sampler alias (see ``pcdiff.diffusion.schedulers``). sampler_kwargs: its settings.
    """
    if isinstance(model, SpineToBackPipeline):
        settings = {key: model.config[key] for key in PIPELINE_SETTINGS}
        schedule = {k: v for k, v in model.scheduler.config.items() if k in NOISE_SCHEDULE_SETTINGS}
        scheduler = build_sampler(sampler, {**schedule, "_class_name": DDPMScheduler.__name__}, **(sampler_kwargs or {}))
        return SpineToBackPipeline(denoiser=model.denoiser, scheduler=scheduler, **settings)
    return model.to_pipeline(sampler=sampler, sampler_kwargs=sampler_kwargs or {})


@torch.no_grad()
def sample_backs(
    module: Any,
    spines: torch.Tensor,
    *,
    num_points: int,
    sampler: str,
    num_inference_steps: int,
    sampler_kwargs: dict[str, Any] | None = None,
    guidance_scale: float = 1.0,
    seed: int = 0,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
    init: torch.Tensor | None = None,
    strength: float = 1.0,
) -> tuple[torch.Tensor, float]:
    """Generate one back per spine with the module's (EMA) denoiser and the named Diffusers sampler.

    Args:
        module: a trained ``PointDiffusion`` or a loaded ``SpineToBackPipeline`` (:func:`sampling_pipeline`).
        spines: (Q, K, 3) spine keypoints in the normalised frame.
        num_points: N generated points per back.
        sampler: sampler alias (``"ddpm"``, ``"ddim"``, ``"dpm++"``...; see ``pcdiff.diffusion.schedulers``).
        num_inference_steps: sampler steps.
        sampler_kwargs: the sampler's settings (e.g. ``{"use_karras_sigmas": True}``).
        guidance_scale: classifier-free guidance weight (1 = conditional only, no unconditional pass).
        seed: back ``q`` draws its noise from ``torch.Generator().manual_seed(seed + q)`` (batch-size independent).
        batch_size: backs per denoiser call.
        device: where to sample.
        init: (Q, N, 3) normalised clouds to start from, one per spine (SDEdit; N must equal ``num_points``).
        strength: share of the sampler's steps run from ``init`` (see ``SpineToBackPipeline.sample_normalized``).

    Returns:
        (generated backs (Q, N, 3) normalised, float32 on CPU; wall time in seconds for all Q backs).
    """
    module = module.to(device)
    pipe = sampling_pipeline(module, sampler, sampler_kwargs)
    pipe.set_progress_bar_config(disable=True)
    pipe.sample_normalized(spines[:1].to(device), num_points=num_points, num_inference_steps=2)  # warm-up, untimed
    out = []
    with timer() as t:
        for start in range(0, spines.shape[0], batch_size):
            chunk = spines[start : start + batch_size].to(device)
            gens = [torch.Generator(device).manual_seed(seed + start + i) for i in range(chunk.shape[0])]
            start_clouds = None if init is None else init[start : start + batch_size].to(device)
            out.append(
                pipe.sample_normalized(
                    chunk, num_points=num_points, num_inference_steps=num_inference_steps,
                    guidance_scale=guidance_scale, generator=gens, init=start_clouds, strength=strength,
                ).float().cpu()
            )
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize()
    backs = torch.cat(out)
    if not torch.isfinite(backs).all():
        raise FloatingPointError(f"{sampler} x {num_inference_steps} steps (w={guidance_scale}): generated NaN/inf points")
    return backs, t["s"]

