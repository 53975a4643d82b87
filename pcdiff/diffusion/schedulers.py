"""Build Diffusers noise schedulers by name, refusing unknown names and unknown settings.

pcdiff writes no scheduler of its own: training uses a discrete-time schedule (``DDPMScheduler``)
and sampling any Diffusers scheduler compatible with it (DDIM, DPM-Solver++, UniPC, Euler, Heun...),
built from the training schedule's config so both agree on the betas and the prediction type.

Names are either a Diffusers class name (``"DPMSolverMultistepScheduler"``, case-insensitive) or a
short alias from :data:`SCHEDULER_ALIASES` (``"ddpm"``, ``"ddim"``, ``"dpm++"``, ``"euler"``...).
"""

from __future__ import annotations

import inspect
from typing import Any

import diffusers
from diffusers import SchedulerMixin

# alias -> (Diffusers class name, defaults the alias implies; explicit kwargs override them).
# Every alias but "heun" lands exactly on the data with an exact denoiser (tests/test_pipeline.py).
# Diffusers' Heun evaluates its last correction at sigma = 0 with the previous timestep, which is off
# by ~10 mm for epsilon/v models (exact for sample prediction). Not aliased, for the same reason:
# DEIS, PNDM and DPM-Solver (non-++) stop at sigma_min, leaving ~2 mm of noise on every point.
SCHEDULER_ALIASES: dict[str, tuple[str, dict[str, Any]]] = {
    "ddpm": ("DDPMScheduler", {}),
    "ddim": ("DDIMScheduler", {}),
    "dpm++": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++"}),
    "dpmsolver++": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++"}),
    "sde-dpm++": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++"}),
    "unipc": ("UniPCMultistepScheduler", {}),
    "euler": ("EulerDiscreteScheduler", {}),
    "euler_a": ("EulerAncestralDiscreteScheduler", {}),
    "heun": ("HeunDiscreteScheduler", {}),
    "lms": ("LMSDiscreteScheduler", {}),
}

# Point coordinates are not images in [-1, 1]: Diffusers' DDPM/DDIM default ``clip_sample=True``
# would clip the predicted clean cloud to that box, so pcdiff turns it off unless asked for.
_POINT_CLOUD_DEFAULTS: dict[str, Any] = {"clip_sample": False}
# Sampling with few steps must start at the last training timestep (pure noise); Diffusers'
# default "leading" spacing starts at e.g. t=900 for 10 steps. "trailing" starts at t=999.
_SAMPLER_DEFAULTS: dict[str, Any] = {"timestep_spacing": "trailing"}


def _all_scheduler_classes() -> dict[str, type[SchedulerMixin]]:
    """Every scheduler class Diffusers exports, keyed by lower-case class name."""
    classes = {}
    for name in dir(diffusers):
        obj = getattr(diffusers, name, None)
        if isinstance(obj, type) and issubclass(obj, SchedulerMixin) and obj is not SchedulerMixin:
            classes[name.lower()] = obj
    return classes


def available_schedulers() -> list[str]:
    """Names accepted by :func:`build_scheduler`: the aliases, then every Diffusers scheduler class."""
    return sorted(SCHEDULER_ALIASES) + sorted(cls.__name__ for cls in _all_scheduler_classes().values())


def resolve_scheduler(name: str) -> tuple[type[SchedulerMixin], dict[str, Any]]:
    """Return the Diffusers class named by ``name`` (alias or class name) and the alias's defaults."""
    key = name.strip().lower()
    if key in SCHEDULER_ALIASES:
        class_name, defaults = SCHEDULER_ALIASES[key]
        key = class_name.lower()
    else:
        defaults = {}
    classes = _all_scheduler_classes()
    if key not in classes:
        raise ValueError(f"unknown scheduler {name!r}; expected one of: {', '.join(available_schedulers())}")
    return classes[key], dict(defaults)


def _check_kwargs(cls: type[SchedulerMixin], kwargs: dict[str, Any]) -> None:
    """Refuse settings the scheduler's ``__init__`` does not take (Diffusers would only warn)."""
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self", "args", "kwargs"}
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise ValueError(
            f"{cls.__name__} does not take {unknown}; accepted settings: {', '.join(sorted(accepted))}"
        )


def _point_cloud_defaults(cls: type[SchedulerMixin]) -> dict[str, Any]:
    accepted = set(inspect.signature(cls.__init__).parameters)
    return {k: v for k, v in _POINT_CLOUD_DEFAULTS.items() if k in accepted}


def build_scheduler(name: str = "ddpm", **kwargs: Any) -> SchedulerMixin:
    """Build a Diffusers scheduler from its name and settings (the training noise schedule).

    Args:
        name: alias (``"ddpm"``, ``"ddim"``, ``"dpm++"``, ...) or Diffusers class name.
        **kwargs: settings of that class's ``__init__`` (``num_train_timesteps``, ``beta_schedule``,
            ``prediction_type``...). Unknown settings raise ``ValueError``.

    ``clip_sample`` defaults to ``False`` (point coordinates are not bounded by 1).
    """
    cls, defaults = resolve_scheduler(name)
    _check_kwargs(cls, kwargs)
    return cls(**{**_point_cloud_defaults(cls), **defaults, **kwargs})


def build_sampler(name: str, train_scheduler: SchedulerMixin | dict[str, Any], **kwargs: Any) -> SchedulerMixin:
    """Build a sampling scheduler that shares the training schedule (betas, prediction type).

    Args:
        name: alias or Diffusers class name of the sampler.
        train_scheduler: the training scheduler or its config dict.
        **kwargs: sampler settings overriding the training config (``solver_order``,
            ``use_karras_sigmas``, ``timestep_spacing``...). Unknown settings raise ``ValueError``.

    ``timestep_spacing`` defaults to ``"trailing"`` so that few-step sampling starts from the last
    training timestep. Samplers whose class is not compatible with the training scheduler
    (e.g. a flow-matching scheduler for a DDPM-trained model) are refused.
    """
    cls, defaults = resolve_scheduler(name)
    _check_kwargs(cls, kwargs)
    config = dict(train_scheduler.config if isinstance(train_scheduler, SchedulerMixin) else train_scheduler)
    train_class = config.get("_class_name")
    if isinstance(train_scheduler, SchedulerMixin):
        train_cls: type[SchedulerMixin] | None = type(train_scheduler)
    else:
        train_cls = _all_scheduler_classes().get(str(train_class).lower()) if train_class else None
    if train_cls is not None and cls is not train_cls:
        compatible = {c.__name__ for c in train_cls().compatibles}
        if cls.__name__ not in compatible:
            raise ValueError(
                f"sampler {name!r} ({cls.__name__}) cannot sample a model trained with {train_cls.__name__}; "
                f"compatible samplers: {', '.join(sorted(compatible))}"
            )
    accepted = set(inspect.signature(cls.__init__).parameters)
    sampler_defaults = {k: v for k, v in _SAMPLER_DEFAULTS.items() if k in accepted}
    # settings the training config already fixes (e.g. clip_sample) are kept as trained
    fill = {k: v for k, v in _point_cloud_defaults(cls).items() if k not in config}
    return cls.from_config(config, **{**fill, **sampler_defaults, **defaults, **kwargs})
