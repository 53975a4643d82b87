"""Diffusion training and sampling: the Lightning module and the Diffusers scheduler factory."""

from pcdiff.diffusion.schedulers import available_schedulers, build_sampler, build_scheduler

__all__ = ["available_schedulers", "build_sampler", "build_scheduler"]
