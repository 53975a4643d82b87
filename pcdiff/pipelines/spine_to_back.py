"""``SpineToBackPipeline``: spinal line in millimetres -> generated back-surface point clouds in millimetres.

A Diffusers ``DiffusionPipeline`` holding the denoiser, a sampling scheduler and the normalisation
the model was trained with, so an exported folder (``save_pretrained``) reloads offline with
``SpineToBackPipeline.from_pretrained(folder)`` and maps its samples back to millimetres.

Coordinate spaces (:mod:`pcdiff.geometry.frames`):
    mm          the 4D-Spine frame (x lateral, y up, z towards the scanner).
    normalised  ``(x_mm - center) / scale`` as the data module made it, with the frame
                :func:`~pcdiff.geometry.frames.frame_of` gives from the conditioning line alone
                (``normalize`` one of :data:`~pcdiff.geometry.frames.INVERTIBLE_FROM_LINE`; ``"landmarks"``
                needs the scan's landmarks and cannot be inverted).
    model       ``normalised * data_scale``: what the denoiser sees and the noise is added to; with
                ``straighten``, ``straighten(normalised, keypoints) * data_scale`` (the line's own
                (x, z) at each height taken out; :func:`~pcdiff.geometry.frames.to_model`).
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import DiffusionPipeline, ModelMixin, SchedulerMixin
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor
from einops import rearrange

from pcdiff.geometry.frames import check_normalization, frame_of, from_model, to_mm, to_model, to_normalised
from pcdiff.geometry.polyline import orient_top_down, resample_polyline


@dataclass
class SpineToBackPipelineOutput(BaseOutput):
    """Output of :class:`SpineToBackPipeline`.

    Attributes:
        backs: (B, N, 3) generated back surfaces in mm (numpy float32, or a tensor with ``output_type="pt"``).
        spines: (B, K, 3) the conditioning keypoints in mm (each input line resampled top -> bottom).
    """

    backs: np.ndarray | torch.Tensor
    spines: np.ndarray | torch.Tensor


def guided_prediction(
    denoiser: ModelMixin,
    sample: torch.Tensor,
    timestep: torch.Tensor,
    spine: torch.Tensor,
    guidance_scale: float = 1.0,
) -> torch.Tensor:
    """Denoiser prediction with classifier-free guidance (Ho & Salimans 2022, eq. 6).

    ``uncond + guidance_scale * (cond - uncond)``; with ``guidance_scale == 1`` this is the conditional
    prediction and the unconditional pass is skipped. Both passes run as one doubled batch.

    Args:
        denoiser: maps (sample (B, N, 3), timestep (B,), encoder_hidden_states (B, K, 3),
            condition_mask (B,)) to ``.sample`` (B, N, 3).
        sample: (B, N, 3) noisy points in model space (already ``scale_model_input``-ed).
        timestep: (B,) timesteps.
        spine: (B, K, 3) spine keypoints in model space.
        guidance_scale: w in the formula; 1 = plain conditional, 0 = unconditional.

    Returns:
        (B, N, 3) prediction (epsilon, v or sample, as the model was trained).
    """
    if guidance_scale == 1.0:
        return denoiser(sample, timestep, encoder_hidden_states=spine).sample
    batch = sample.shape[0]
    keep = torch.cat([torch.ones(batch, dtype=torch.bool), torch.zeros(batch, dtype=torch.bool)]).to(sample.device)
    out = denoiser(
        torch.cat([sample, sample]),
        torch.cat([timestep, timestep]),
        encoder_hidden_states=torch.cat([spine, spine]),
        condition_mask=keep,
    ).sample
    cond, uncond = out.chunk(2)
    return uncond + guidance_scale * (cond - uncond)


class SpineToBackPipeline(DiffusionPipeline):
    """Generate back scans (mm) for spinal lines (mm) with a trained point-cloud denoiser.

    Args:
        denoiser: a pcdiff denoiser (``pcdiff.models``), a Diffusers ``ModelMixin``.
        scheduler: any Diffusers scheduler compatible with the training schedule
            (see :func:`pcdiff.diffusion.schedulers.build_sampler`).
        num_keypoints: K, the number of keypoints the line is resampled to (as in training).
        num_points: default number of generated points per back.
        data_scale: model-space coordinates are normalised coordinates times this.
        line: which spinal line conditions the model, ``"esl"`` or ``"isl"`` (recorded for users).
        normalize: the data module's normalisation, one of :data:`pcdiff.geometry.frames.INVERTIBLE_FROM_LINE`.
        fixed_scale: the scale in mm of ``normalize="fixed"``.
        straighten: the model works in the spine-straightened frame; samples are moved back onto the line.
        twist_gain: the model also works in the untwisted frame (:mod:`pcdiff.geometry.frames.twisted`); samples
            get the line's turn back. 0: not untwisted.
        num_inference_steps: default sampler steps of ``__call__`` (the setting the model was trained and
            benchmarked with; an export records it).
        guidance_scale: default classifier-free guidance weight of ``__call__``.
    """

    model_cpu_offload_seq = "denoiser"

    def __init__(
        self,
        denoiser: ModelMixin,
        scheduler: SchedulerMixin,
        num_keypoints: int = 32,
        num_points: int = 2048,
        data_scale: float = 1.0,
        line: str = "esl",
        normalize: str = "line",
        fixed_scale: float | None = None,
        straighten: bool = False,
        twist_gain: float = 0.0,
        num_inference_steps: int = 20,
        guidance_scale: float = 1.0,
    ) -> None:
        super().__init__()
        if int(num_inference_steps) < 1:
            raise ValueError(f"SpineToBackPipeline: num_inference_steps must be >= 1, got {num_inference_steps}")
        check_normalization(normalize, fixed_scale, who="SpineToBackPipeline", from_line_only=True)
        if line not in ("esl", "isl"):
            raise ValueError(f"SpineToBackPipeline: line must be 'esl' or 'isl', got {line!r}")
        self.register_modules(denoiser=denoiser, scheduler=scheduler)
        self.register_to_config(
            num_keypoints=int(num_keypoints),
            num_points=int(num_points),
            data_scale=float(data_scale),
            line=line,
            normalize=normalize,
            fixed_scale=None if fixed_scale is None else float(fixed_scale),
            straighten=bool(straighten),
            twist_gain=float(twist_gain),
            num_inference_steps=int(num_inference_steps),
            guidance_scale=float(guidance_scale),
        )

    @classmethod
    def from_pretrained(
        cls, folder: str | os.PathLike, torch_dtype: torch.dtype | None = None, **overrides: Any
    ) -> SpineToBackPipeline:
        """Reload a ``save_pretrained`` folder, offline (a local folder only, never the Hub).

        Hand-written rather than Diffusers' loader: that one finds a custom component's load method by
        looking up ``ModelMixin`` by name inside the module listed in ``model_index.json`` (e.g.
        ``pcdiff.models.pvcnn``), which pcdiff's denoiser modules do not re-export. Here each component
        is loaded with its own class's ``from_pretrained``.

        Safety: every ``[module, class]`` entry of ``model_index.json`` is checked *before anything is
        imported*: only pcdiff's own modules (``pcdiff.*``) and Diffusers (``diffusers``, ``diffusers.*``) may be named, so
        a folder cannot make this import code that lies beside it (``["x", "X"]`` with an ``x.py``).
        Weights load from safetensors or Diffusers' own ``.bin`` files (the class's ``from_pretrained``).

        Args:
            folder: the exported folder (``model_index.json``, ``denoiser/``, ``scheduler/``).
            torch_dtype: load the denoiser's weights in this dtype.
            **overrides: replace a component (``denoiser=``, ``scheduler=``) or a setting.

        Raises:
            FileNotFoundError: no ``model_index.json``, or a component folder without its config or weights.
            ValueError: another pipeline class, or a component outside the allow-list / not a model or scheduler.

        Warns:
            UserWarning: a setting of ``model_index.json`` (e.g. ``num_keypoints``) differs from the one
            ``pcdiff.export`` recorded the model was trained with (``_pcdiff_trained_with``).
        """
        import warnings

        folder = Path(folder)
        index_path = folder / "model_index.json"
        if not index_path.is_file():
            if folder.is_file():
                raise FileNotFoundError(f"{folder}: is a file; expected an exported SpineToBackPipeline folder")
            raise FileNotFoundError(f"{folder}: not an exported SpineToBackPipeline folder (no model_index.json)")
        try:
            index = json.loads(index_path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{index_path}: not a readable JSON file ({exc})") from exc
        if not isinstance(index, dict) or index.get("_class_name") != cls.__name__:
            found = index.get("_class_name") if isinstance(index, dict) else type(index).__name__
            raise ValueError(f"{index_path}: holds a {found!r}, expected {cls.__name__!r}")
        components: dict[str, tuple[str, str]] = {}
        settings: dict[str, Any] = {}
        for key, value in index.items():
            if key.startswith("_"):
                continue
            if isinstance(value, list) and len(value) == 2:  # a component: [module, class]
                library, class_name = value
                dotted = isinstance(library, str) and all(part.isidentifier() for part in library.split("."))
                if not (
                    dotted
                    and (library == "diffusers" or library.startswith(("pcdiff.", "diffusers.")))
                    and isinstance(class_name, str)
                    and class_name.isidentifier()
                ):
                    raise ValueError(
                        f"{index_path}: component {key} = [{library!r}, {class_name!r}] is not allowed; only pcdiff's "
                        "denoisers ('pcdiff.*') and Diffusers' classes ('diffusers') are loaded (nothing was imported)"
                    )
                components[key] = (library, class_name)
            else:
                settings[key] = value
        kwargs: dict[str, Any] = dict(settings)
        for key, (library, class_name) in components.items():
            if key in overrides:
                continue
            try:
                component_cls = getattr(importlib.import_module(library), class_name, None)
            except ImportError as exc:
                raise ValueError(f"{index_path}: component {key}: cannot import {library} ({exc})") from exc
            if not (isinstance(component_cls, type) and issubclass(component_cls, (ModelMixin, SchedulerMixin))):
                raise ValueError(f"{index_path}: component {key} = {library}.{class_name} is not loadable")
            sub = folder / key
            if issubclass(component_cls, ModelMixin):
                if not (sub / "config.json").is_file():
                    raise FileNotFoundError(f"{sub}: missing config.json of the {key} ({class_name})")
                weights = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
                if not any((sub / w).is_file() for w in weights):
                    raise FileNotFoundError(
                        f"{sub}: missing the {key}'s weights {weights[0]} (as pcdiff.export writes them)"
                    )
                extra = {"torch_dtype": torch_dtype} if torch_dtype is not None else {}
                kwargs[key] = component_cls.from_pretrained(sub, low_cpu_mem_usage=False, **extra)
            else:
                if not (sub / "scheduler_config.json").is_file():
                    raise FileNotFoundError(f"{sub}: missing scheduler_config.json of the {key} ({class_name})")
                kwargs[key] = component_cls.from_pretrained(sub)
        trained = index.get("_pcdiff_trained_with")
        if isinstance(trained, dict):
            changed = {k: (v, settings[k]) for k, v in trained.items() if k in settings and settings[k] != v}
            for k, (was, now) in changed.items():
                warnings.warn(
                    f"{index_path}: {k} = {now!r}, but the model was trained with {k} = {was!r} "
                    "(_pcdiff_trained_with, written by pcdiff.export); samples may be wrong",
                    UserWarning,
                    stacklevel=2,
                )
        kwargs.update(overrides)
        return cls(**kwargs)

    # ----------------------------------------------------------------------------------- conditioning
    def prepare_spines(
        self, spine: np.ndarray | torch.Tensor | Sequence[np.ndarray | torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Resample spinal lines (mm) to keypoints and normalise them.

        Args:
            spine: one line (L, 3), a batch (B, L, 3) or a list of lines of different lengths, in mm,
                in either direction (each is ordered top -> bottom).

        Returns:
            keypoints (B, K, 3) normalised, center (B, 3) mm, scale (B,) mm (all float32, on CPU).
        """
        if isinstance(spine, (np.ndarray, torch.Tensor)):
            arr = spine.detach().cpu().numpy() if isinstance(spine, torch.Tensor) else np.asarray(spine)
            if arr.ndim == 2:
                arr = arr[None]
            if arr.ndim != 3 or arr.shape[-1] != 3:
                raise ValueError(f"spine: expected (L, 3), (B, L, 3) or a list of (L, 3) in mm, got shape {arr.shape}")
            lines = list(arr)
        else:
            lines = [s.detach().cpu().numpy() if isinstance(s, torch.Tensor) else np.asarray(s) for s in spine]
        if not lines:
            raise ValueError("spine: got an empty list of spinal lines")
        keypoints, centers, scales = [], [], []
        for i, line in enumerate(lines):
            if line.ndim != 2 or line.shape[-1] != 3 or len(line) < 2:
                raise ValueError(f"spine[{i}]: expected a line of shape (L >= 2, 3) in mm, got {line.shape}")
            kp = resample_polyline(orient_top_down(line), self.config.num_keypoints)
            # the frame of the line equals that of its keypoints: resampling keeps both ends
            center, scale = frame_of(self.config.normalize, line=kp, fixed_scale=self.config.fixed_scale)
            keypoints.append(to_normalised(kp, center, scale))
            centers.append(center)
            scales.append(scale)
        return (
            torch.as_tensor(np.stack(keypoints), dtype=torch.float32),
            torch.as_tensor(np.stack(centers), dtype=torch.float32),
            torch.as_tensor(np.asarray(scales), dtype=torch.float32),
        )

    # ----------------------------------------------------------------------------------- sampling
    @torch.no_grad()
    def sample_normalized(
        self,
        spine: torch.Tensor,
        num_points: int | None = None,
        num_inference_steps: int = 20,
        guidance_scale: float = 1.0,
        generator: torch.Generator | list[torch.Generator] | None = None,
        callback: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None,
        init: torch.Tensor | None = None,
        strength: float = 1.0,
    ) -> torch.Tensor:
        """Run the reverse diffusion for normalised spine keypoints.

        Args:
            spine: (B, K, 3) keypoints in normalised coordinates.
            num_points: N points per generated back (default: ``config.num_points``).
            num_inference_steps: number of scheduler steps.
            guidance_scale: classifier-free guidance weight (1 = conditional only).
            generator: one generator, or one per batch element (reproducible per element).
            callback: called as ``callback(i, t, x)`` after each step with x (B, N, 3) in model space.
            init: (B, N, 3) clouds in normalised coordinates to start from instead of pure noise (SDEdit,
                Meng et al. 2022): they are noised to the level of the sampler's step at ``strength`` and
                denoised from there, so their coarse shape survives and the model redraws the rest.
            strength: share of the sampler's steps run from ``init``, in (0, 1]: small keeps ``init`` nearly
                as it is, 1 starts at the first (noisiest) step, where ``init`` is all but drowned.

        Returns:
            (B, N, 3) generated points in normalised coordinates (float32).
        """
        if spine.ndim != 3 or spine.shape[-1] != 3:
            raise ValueError(f"spine: expected normalised keypoints of shape (B, K, 3), got {tuple(spine.shape)}")
        if not 0.0 < float(strength) <= 1.0:
            raise ValueError(f"strength must lie in (0, 1], got {strength}")
        if init is not None:
            if init.ndim != 3 or init.shape[-1] != 3 or init.shape[0] != spine.shape[0]:
                raise ValueError(
                    f"init: expected ({spine.shape[0]}, N, 3) normalised clouds, one per spine, got {tuple(init.shape)}"
                )
            if num_points is not None and num_points != init.shape[1]:
                raise ValueError(f"init holds {init.shape[1]} points per back, but num_points = {num_points}")
            num_points = init.shape[1]
        num_points = num_points or self.config.num_points
        device, dtype = self._execution_device, self.denoiser.dtype
        batch = spine.shape[0]
        cond = to_model(spine, self.config.data_scale).to(device=device, dtype=dtype)

        scheduler = self.scheduler
        scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps = scheduler.timesteps
        # Diffusers schedulers treat dim 1 as channels: keep x as (B, 3, N) for them.
        x = randn_tensor((batch, 3, num_points), generator=generator, device=device, dtype=torch.float32)
        if init is None:
            x = x * scheduler.init_noise_sigma
        else:
            # as Diffusers' img2img pipelines do: skip the first steps, noise the start to the first kept one
            start = (num_inference_steps - max(1, round(num_inference_steps * float(strength)))) * scheduler.order
            timesteps = timesteps[start:]
            if hasattr(scheduler, "set_begin_index"):
                scheduler.set_begin_index(start)
            line = spine if self.config.get("straighten", False) else None
            clean = rearrange(to_model(init.to(spine), self.config.data_scale, line=line, twist_gain=self._twist_gain),
                              "b n c -> b c n")  # fmt: skip
            x = scheduler.add_noise(clean.to(device=device, dtype=torch.float32), x, timesteps[:1].repeat(batch))
        step_kwargs = {"generator": generator} if "generator" in inspect.signature(scheduler.step).parameters else {}
        for i, t in enumerate(self.progress_bar(timesteps)):
            model_in = scheduler.scale_model_input(x, t)
            timestep = t.to(device).reshape(1).expand(batch)
            pred = guided_prediction(
                self.denoiser,
                rearrange(model_in, "b c n -> b n c").to(dtype),
                timestep,
                cond,
                guidance_scale,
            )
            x = scheduler.step(rearrange(pred.float(), "b n c -> b c n"), t, x, **step_kwargs).prev_sample
            if callback is not None:
                callback(i, t, rearrange(x, "b c n -> b n c"))
        line = spine if self.config.get("straighten", False) else None
        return from_model(rearrange(x, "b c n -> b n c"), self.config.data_scale, line=line, twist_gain=self._twist_gain)

    @property
    def _twist_gain(self) -> float:
        """The untwisted frame's gain (0 for pipelines saved before it existed, or straightened-only ones)."""
        return float(self.config.get("twist_gain", 0.0))

    @torch.no_grad()
    def __call__(
        self,
        spine: np.ndarray | torch.Tensor | Sequence[np.ndarray | torch.Tensor],
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
        num_points: int | None = None,
        output_type: str = "np",
        return_dict: bool = True,
        callback: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None,
        init_backs: np.ndarray | torch.Tensor | None = None,
        strength: float = 1.0,
    ) -> SpineToBackPipelineOutput | tuple:
        """Generate one back per spinal line.

        Args:
            spine: (L, 3), (B, L, 3) or a list of (L_i, 3) spinal lines in mm (any direction).
            num_inference_steps: scheduler steps (default: ``config.num_inference_steps``).
            guidance_scale: classifier-free guidance weight, 1 = conditional only (default: ``config.guidance_scale``).
            generator: a ``torch.Generator`` or a list of B of them, for reproducible samples.
            num_points: points per back (default: the training ``num_points``).
            output_type: ``"np"`` (float32 arrays) or ``"pt"`` (tensors).
            return_dict: return :class:`SpineToBackPipelineOutput` rather than a tuple.
            callback: see :meth:`sample_normalized`.
            init_backs: (B, N, 3) backs in mm, one per line, to start from instead of pure noise (SDEdit;
                e.g. a phantom of the same spine, :func:`pcdiff.data.phantom.phantom_for_lines`); they set N.
            strength: share of the sampler's steps run from ``init_backs`` (see :meth:`sample_normalized`).

        Returns:
            backs (B, N, 3) in mm and the conditioning keypoints (B, K, 3) in mm.
        """
        if output_type not in ("np", "pt"):
            raise ValueError(f"output_type must be 'np' or 'pt', got {output_type!r}")
        if num_inference_steps is None:
            num_inference_steps = self.config.get("num_inference_steps", 20)
        if guidance_scale is None:
            guidance_scale = self.config.get("guidance_scale", 1.0)
        if int(num_inference_steps) < 1:
            raise ValueError(f"num_inference_steps must be >= 1, got {num_inference_steps}")
        keypoints, center, scale = self.prepare_spines(spine)
        if isinstance(generator, list) and len(generator) != len(keypoints):
            raise ValueError(f"got {len(generator)} generators for {len(keypoints)} spinal lines")
        init = None
        if init_backs is not None:
            init_mm = torch.as_tensor(np.asarray(init_backs) if not isinstance(init_backs, torch.Tensor) else init_backs)
            if init_mm.ndim != 3 or init_mm.shape[-1] != 3 or len(init_mm) != len(keypoints):
                raise ValueError(
                    f"init_backs: expected ({len(keypoints)}, N, 3) backs in mm, one per spinal line, got {tuple(init_mm.shape)}"
                )
            init = to_normalised(init_mm.float(), center, scale)
        points = self.sample_normalized(
            keypoints, num_points, num_inference_steps, guidance_scale, generator, callback, init, strength
        ).cpu()
        backs, spines = to_mm(points, center, scale), to_mm(keypoints, center, scale)
        if output_type == "np":
            backs, spines = backs.numpy(), spines.numpy()
        if not return_dict:
            return backs, spines
        return SpineToBackPipelineOutput(backs=backs, spines=spines)
