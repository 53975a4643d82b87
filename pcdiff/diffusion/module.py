"""``PointDiffusion``: the LightningModule that trains a spine-conditioned point-cloud denoiser.

Thin by design: the denoiser comes from :func:`pcdiff.models.build_denoiser`, the noise schedule and
the samplers from Diffusers (:mod:`pcdiff.diffusion.schedulers`), the sampling loop from
:class:`pcdiff.pipelines.SpineToBackPipeline`, data from ``BackScanDataModule``. Devices, DDP,
mixed precision and gradient clipping are Trainer flags (``--trainer.precision bf16-mixed``,
``--trainer.gradient_clip_val 1.0``, ``--trainer.strategy ddp``); nothing here depends on them.

Batches (from ``BackScanDataModule``): ``points`` (B, N, 3) and ``spine`` (B, K, 3) in normalised
coordinates, ``center`` (B, 3) mm and ``scale`` (B,) mm. The model works in model space,
``normalised * data_scale`` (:mod:`pcdiff.geometry.frames`); ``data_scale``, ``line``, ``normalize``,
``fixed_scale`` and ``num_keypoints`` are saved with the weights (``save_hyperparameters``) so that samples
map back to millimetres.
"""

from __future__ import annotations

import json

import logging
import math
from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch
import torch.nn.functional as F
from diffusers.optimization import get_scheduler as get_lr_scheduler
from einops import rearrange

from pcdiff.diffusion.ema import make_ema
from pcdiff.diffusion.schedulers import build_sampler, build_scheduler
from pcdiff.geometry.frames import Normalization, check_normalization, to_mm, to_model
from pcdiff.pipelines.spine_to_back import SpineToBackPipeline

log = logging.getLogger(__name__)

PredictionType = Literal["epsilon", "v_prediction", "sample"]
LossWeighting = Literal["uniform", "min_snr"]
Stage = Literal["train", "val", "test"]


def initial_denoiser_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """Denoiser weights to fine-tune from: a Lightning checkpoint's EMA (else raw) denoiser, or a pipeline folder's.

    Args:
        path: a ``PointDiffusion`` training checkpoint (``.ckpt``) or a folder written by ``pcdiff.export``
            (``denoiser/diffusion_pytorch_model.safetensors``).

    Raises:
        FileNotFoundError: nothing at ``path``, or a folder without denoiser weights.
        ValueError: a file that is not a PointDiffusion checkpoint.
    """
    path = Path(path)
    if path.is_dir():
        weights = path / "denoiser" / "diffusion_pytorch_model.safetensors"
        if not weights.is_file():
            raise FileNotFoundError(f"model.init_from={str(path)!r}: a folder without {weights.relative_to(path)}")
        from safetensors.torch import load_file

        return load_file(str(weights))
    from pcdiff.utils.checkpoints import read_checkpoint

    try:
        state = read_checkpoint(path)["state_dict"]
    except (FileNotFoundError, ValueError) as exc:  # read_checkpoint's one line, with the option it came from
        raise type(exc)(f"model.init_from: {exc}") from exc
    for prefix in ("ema.module.", "denoiser."):
        weights = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if weights:
            return weights
    raise ValueError(f"model.init_from={str(path)!r}: checkpoint holds no denoiser weights")


def initial_frame(path: str | Path) -> dict[str, Any]:
    """The frame the weights at ``path`` were trained in: ``{"straighten": bool, "twist_gain": float}``, from a
    ``PointDiffusion`` checkpoint's hyperparameters or a pipeline folder's ``model_index.json`` (models from before
    the untwisted frame read ``twist_gain`` 0). Fine-tuning in another frame starts from weights that place the back
    elsewhere; :class:`PointDiffusion` warns when it does."""
    path = Path(path)
    if path.is_dir():
        settings = json.loads((path / "model_index.json").read_text())
    else:
        from pcdiff.utils.checkpoints import read_checkpoint

        settings = read_checkpoint(path)["hyper_parameters"]
    return {"straighten": bool(settings.get("straighten", False)), "twist_gain": float(settings.get("twist_gain", 0.0))}


def load_widened(denoiser: torch.nn.Module, weights: dict[str, torch.Tensor]) -> list[str]:
    """Load ``weights`` into ``denoiser``, widening input layers that now take more features, function-preserving.

    A denoiser that gains per-point input features (e.g. ``spine_relative``, appended after the coordinates'
    Fourier features) has input layers with more columns than the weights it starts from. Those layers get
    the old weights in their first columns and zeros in the new ones, so the widened network computes exactly
    what the old one did until training moves the new weights (the zero-initialised extra input channels of
    Diffusers' inpainting fine-tunes). Every other tensor must match exactly.

    Args:
        denoiser: the new network. weights: the old network's state dict.

    Returns:
        The names of the widened tensors (empty when every shape matched).

    Raises:
        RuntimeError: a missing or unexpected tensor, or a shape that is not a widening of the input dim
            (dim 1) of a tensor with the same output dim.
    """
    own = denoiser.state_dict()
    widened, merged = [], dict(weights)
    for key, old in weights.items():
        new = own.get(key)
        if new is None or new.shape == old.shape:
            continue
        if new.dim() != old.dim() or new.dim() < 2 or new.shape[0] != old.shape[0] or new.shape[2:] != old.shape[2:] \
                or new.shape[1] < old.shape[1]:
            raise RuntimeError(f"init_from: {key} has shape {tuple(old.shape)} in the weights and {tuple(new.shape)} "
                               "in this denoiser, which is not a widening of its inputs; check the denoiser settings")
        grown = torch.zeros_like(new)
        grown[:, : old.shape[1]] = old
        merged[key] = grown
        widened.append(key)
    denoiser.load_state_dict(merged)
    return widened


class PointDiffusion(L.LightningModule):
    """Denoising diffusion on back-surface point clouds, conditioned on spinal-line keypoints.

    Args:
        denoiser: denoiser name for :func:`pcdiff.models.build_denoiser` (``"pvcnn"``, ``"pointnet2"``,
            ``"transformer"``).
        denoiser_kwargs: that denoiser's settings.
        scheduler: training noise scheduler (alias or Diffusers class name, normally ``"ddpm"``).
        scheduler_kwargs: its settings (``num_train_timesteps``, ``beta_schedule``...), without
            ``prediction_type`` (set below).
        prediction_type: what the denoiser predicts: the noise, v or the clean sample.
        loss_weighting: ``"uniform"`` (plain MSE on the prediction) or ``"min_snr"`` (Min-SNR-gamma, Hang et
            al. 2023: each timestep's loss weighted so that its clean-sample error counts as
            ``min(SNR, gamma)``, which stops the easy low-noise steps from dominating training).
        snr_gamma: gamma of ``"min_snr"``.
        sampler: scheduler used for validation samples and exported pipelines (``"dpm++"``, ``"ddim"``...).
        sampler_kwargs: its settings (``solver_order``, ``use_karras_sigmas``...).
        num_inference_steps: sampler steps.
        guidance_scale: classifier-free guidance weight at sampling (1 = conditional only).
        p_uncond: probability of dropping a training sample's condition (``condition_mask`` False);
            0 disables classifier-free guidance training.
        data_scale: model space = normalised coordinates times this (brings the backs to about unit spread).
        num_points: default number of generated points (as in the data module).
        num_keypoints: K spine keypoints (must match the data module's ``num_keypoints``).
        line: ``"esl"`` or ``"isl"``, the conditioning line (must match the data module).
        normalize: the data module's normalisation, one of :data:`pcdiff.geometry.frames.NORMALIZATIONS`
            (all but ``"landmarks"`` can be exported to a pipeline).
        fixed_scale: the data module's scale in mm for ``normalize="fixed"`` (linked like ``normalize``).
        straighten: diffuse in the spine-straightened frame (:func:`pcdiff.geometry.frames.straighten`):
            every point is moved by minus the conditioning line's (x, z) at its height before noise is
            added, and sampled backs are moved back onto the requested line. The model then learns
            nearly one shape instead of one per curve, and follows the line by construction.
        twist_gain: with ``straighten``, also take out the trunk's turn beside the curve
            (:mod:`pcdiff.geometry.frames.twisted`): a depth slope of ``twist_gain`` times the line's deviation from
            its chord, put back on sampled backs; 0 (default) keeps the straightened frame. Fit it on the training
            backs with :func:`pcdiff.geometry.frames.fit_twist_gain`.
        lr: AdamW peak learning rate.
        weight_decay: AdamW weight decay.
        betas: AdamW betas.
        lr_schedule: Diffusers LR schedule name (linear warm-up then ``"cosine"`` decay to 0, ``"linear"``,
            ``"constant_with_warmup"``, ``"constant"``).
        warmup_steps: linear warm-up steps.
        ema_decay: EMA decay of the weights used for validation and sampling; ``None`` disables EMA.
        val_num_samples: scans sampled from the first validation batch for the Chamfer figure (0 disables).
        log_images: log a picture of the sampled scans (needs a TensorBoard logger).
        init_from: fine-tune: start the denoiser (and its EMA) from these weights, a training checkpoint
            (``.ckpt``, its EMA weights when it has them) or an exported pipeline folder. Unlike
            ``--ckpt_path``, the optimiser, LR schedule and step count start afresh. The denoiser settings
            must match the weights', except that new per-point input features (``spine_relative``) may be
            switched on: their input weights start at zero (:func:`load_widened`).
    """

    def __init__(
        self,
        denoiser: str = "pvcnn",
        denoiser_kwargs: dict[str, Any] | None = None,
        scheduler: str = "ddpm",
        scheduler_kwargs: dict[str, Any] | None = None,
        prediction_type: PredictionType = "epsilon",
        loss_weighting: LossWeighting = "uniform",
        snr_gamma: float = 5.0,
        sampler: str = "dpm++",
        sampler_kwargs: dict[str, Any] | None = None,
        num_inference_steps: int = 20,
        guidance_scale: float = 1.0,
        p_uncond: float = 0.1,
        data_scale: float = 2.0,
        num_points: int = 2048,
        num_keypoints: int = 32,
        line: Literal["esl", "isl"] = "esl",
        normalize: Normalization = "line",
        fixed_scale: float | None = None,
        straighten: bool = False,
        twist_gain: float = 0.0,
        lr: float = 2e-4,
        weight_decay: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.999),
        lr_schedule: Literal["cosine", "linear", "constant_with_warmup", "constant"] = "cosine",
        warmup_steps: int = 200,
        ema_decay: float | None = 0.999,
        val_num_samples: int = 4,
        log_images: bool = True,
        init_from: str | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        from pcdiff.models import build_denoiser  # models import heavy optional kernels lazily

        if not 0.0 <= p_uncond < 1.0:
            raise ValueError(f"model.p_uncond must be in [0, 1), got {p_uncond}")
        if data_scale <= 0:
            raise ValueError(f"model.data_scale must be > 0, got {data_scale}")
        check_normalization(normalize, fixed_scale, who="model")
        if twist_gain != 0.0 and not straighten:
            raise ValueError(f"model.twist_gain={twist_gain} needs model.straighten=true (the untwisted frame is built on it)")
        if loss_weighting not in ("uniform", "min_snr"):
            raise ValueError(f"model.loss_weighting must be 'uniform' or 'min_snr', got {loss_weighting!r}")
        if snr_gamma <= 0:
            raise ValueError(f"model.snr_gamma must be > 0, got {snr_gamma}")
        scheduler_kwargs = dict(scheduler_kwargs or {})
        if scheduler_kwargs.get("prediction_type", prediction_type) != prediction_type:
            raise ValueError(
                f"model.scheduler_kwargs.prediction_type={scheduler_kwargs['prediction_type']!r} contradicts "
                f"model.prediction_type={prediction_type!r}; set only model.prediction_type"
            )
        scheduler_kwargs["prediction_type"] = prediction_type
        self.noise_scheduler = build_scheduler(scheduler, **scheduler_kwargs)
        if not hasattr(self.noise_scheduler, "add_noise") or not hasattr(self.noise_scheduler, "alphas_cumprod"):
            raise ValueError(f"model.scheduler={scheduler!r}: training needs a discrete-time (DDPM-like) scheduler")
        # fail now, not at the first validation, on a bad sampler name or setting
        build_sampler(sampler, self.noise_scheduler, **(sampler_kwargs or {}))

        self.denoiser = build_denoiser(denoiser, **(denoiser_kwargs or {}))
        if init_from is not None:
            widened = load_widened(self.denoiser, initial_denoiser_weights(init_from))
            frame = initial_frame(init_from)
            if frame != {"straighten": bool(straighten), "twist_gain": float(twist_gain)}:
                log.warning("init_from %s was trained with %s; this model uses straighten=%s, twist_gain=%s: the start "
                            "weights place the back in another frame (set them to fine-tune in the same one)",
                            init_from, frame, straighten, twist_gain)  # fmt: skip
            if widened:
                log.info("init_from: new input features start at zero weight in %s", ", ".join(widened))
        self.ema = make_ema(self.denoiser, ema_decay) if ema_decay else None
        self._ema_step = -1

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path: Any, *args: Any, **kwargs: Any) -> PointDiffusion:  # type: ignore[override]
        """Lightning's ``load_from_checkpoint``, without reading ``init_from`` again: the checkpoint's own weights
        replace the start weights anyway, and a fine-tuned checkpoint must load where its start weights are not
        (another machine, a deleted folder). Pass ``init_from=...`` to read them regardless."""
        kwargs.setdefault("init_from", None)
        return super().load_from_checkpoint(checkpoint_path, *args, **kwargs)

    # ------------------------------------------------------------------------------------ helpers
    @property
    def sampling_denoiser(self) -> torch.nn.Module:
        """The EMA denoiser when EMA is on, else the trained one (used for validation and sampling)."""
        return self.ema.module if self.ema is not None else self.denoiser

    def to_pipeline(
        self,
        sampler: str | None = None,
        sampler_kwargs: dict[str, Any] | None = None,
        use_ema: bool = True,
    ) -> SpineToBackPipeline:
        """A :class:`SpineToBackPipeline` sharing this module's (EMA) denoiser, with a sampling scheduler.

        Args:
            sampler: sampler name (default: ``hparams.sampler``).
            sampler_kwargs: its settings (default: ``hparams.sampler_kwargs`` when ``sampler`` is not given).
            use_ema: use the EMA weights (when EMA is on).
        """
        hp = self.hparams
        if sampler is None:  # the configured sampler, with its configured settings unless others are given
            sampler = hp.sampler
            sampler_kwargs = hp.sampler_kwargs if sampler_kwargs is None else sampler_kwargs
        denoiser = self.sampling_denoiser if use_ema else self.denoiser
        return SpineToBackPipeline(
            denoiser=denoiser,
            scheduler=build_sampler(sampler, self.noise_scheduler, **(sampler_kwargs or {})),
            num_keypoints=hp.num_keypoints,
            num_points=hp.num_points,
            data_scale=hp.data_scale,
            line=hp.line,
            normalize=hp.normalize,
            fixed_scale=hp.get("fixed_scale"),
            straighten=hp.get("straighten", False),
            twist_gain=hp.get("twist_gain", 0.0),
            num_inference_steps=hp.num_inference_steps,
            guidance_scale=hp.guidance_scale,
        )

    def setup(self, stage: str) -> None:
        """Check that the data module produces what this model was built for."""
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        dm_hparams = getattr(datamodule, "hparams", {}) or {}
        for key in ("num_keypoints", "line", "normalize", "fixed_scale"):
            if key in dm_hparams and dm_hparams[key] != self.hparams.get(key):
                raise ValueError(
                    f"data.{key}={dm_hparams[key]!r} but model.{key}={self.hparams.get(key)!r}: the model must be "
                    f"trained and sampled with the data module's setting (LightningCLI links them)"
                )

    # ------------------------------------------------------------------------------------ training
    def _target(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Regression target (B, 3, N) for the prediction type."""
        kind = self.hparams.prediction_type
        if kind == "epsilon":
            return noise
        if kind == "v_prediction":
            return self.noise_scheduler.get_velocity(x0, noise, t)
        return x0

    def _loss_weights(self, t: torch.Tensor) -> torch.Tensor:
        """(B,) weight of each sample's prediction MSE (all ones for ``"uniform"``).

        Min-SNR-gamma weights the clean-sample error by ``min(SNR, gamma)``; expressed on the predicted
        quantity that is ``min(SNR, gamma) / SNR`` for epsilon, ``min(SNR, gamma) / (SNR + 1)`` for v and
        ``min(SNR, gamma)`` for the sample itself.
        """
        if self.hparams.loss_weighting == "uniform":
            return torch.ones(t.shape, device=t.device)
        alpha_bar = self.noise_scheduler.alphas_cumprod.to(t.device)[t].double()
        snr = alpha_bar / (1.0 - alpha_bar)
        clipped = snr.clamp(max=self.hparams.snr_gamma)
        divisor = {"epsilon": snr, "v_prediction": snr + 1.0, "sample": torch.ones_like(snr)}
        return (clipped / divisor[self.hparams.prediction_type]).float()

    def _shared_step(self, batch: dict[str, Any], batch_idx: int, stage: Stage) -> torch.Tensor:
        """Diffusion loss (MSE in model space) of one batch, logged as ``{stage}/loss``.

        Training draws timesteps and noise freely; validation and test draw them from a generator
        seeded by the batch index, so their loss compares across epochs.
        """
        line = batch["spine"] if self.hparams.get("straighten", False) else None  # (B, K, 3) normalised
        x0 = rearrange(to_model(batch["points"], self.hparams.data_scale, line, self.hparams.get("twist_gain", 0.0)),
                       "b n c -> b c n")  # (B, 3, N)
        spine = to_model(batch["spine"], self.hparams.data_scale)  # (B, K, 3)
        batch_size = x0.shape[0]
        num_t = self.noise_scheduler.config.num_train_timesteps
        gen = None if stage == "train" else torch.Generator().manual_seed(batch_idx)
        t = torch.randint(0, num_t, (batch_size,), generator=gen).to(self.device)
        noise = torch.randn(x0.shape, generator=gen).to(x0)
        x_t = self.noise_scheduler.add_noise(x0, noise, t)

        keep = None
        if stage == "train" and self.hparams.p_uncond > 0:
            keep = torch.rand(batch_size, device=self.device) >= self.hparams.p_uncond
        denoiser = self.denoiser if stage == "train" else self.sampling_denoiser
        pred = denoiser(
            rearrange(x_t, "b c n -> b n c"), t, encoder_hidden_states=spine, condition_mask=keep
        ).sample
        error = F.mse_loss(rearrange(pred, "b n c -> b c n").float(), self._target(x0, noise, t).float(), reduction="none")
        loss = (error.mean(dim=(1, 2)) * self._loss_weights(t)).mean()
        self.log(
            f"{stage}/loss", loss, prog_bar=True, on_step=stage == "train", on_epoch=True,
            sync_dist=stage != "train", batch_size=batch_size,
        )
        return loss

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, batch_idx, "train")

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        # one EMA update per optimiser step (global_step counts those, also under gradient accumulation)
        if self.ema is not None and self.global_step != self._ema_step:
            self._ema_step = self.global_step
            self.ema.update_parameters(self.denoiser)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss = self._shared_step(batch, batch_idx, "val")
        if batch_idx == 0 and self.hparams.val_num_samples > 0:
            self._sample_and_score(batch, "val")
        return loss

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss = self._shared_step(batch, batch_idx, "test")
        if batch_idx == 0 and self.hparams.val_num_samples > 0:
            self._sample_and_score(batch, "test")
        return loss

    # ------------------------------------------------------------------------------------ fidelity
    def _sample_and_score(self, batch: dict[str, Any], stage: Stage) -> None:
        """Sample scans for the batch's first spines; log their Chamfer distance (mm) to the true scans.

        ``{stage}/chamfer_mm``: symmetric Chamfer distance between each generated scan and the true
        scan of the same spine, in mm, not squared: the average of the two directions' mean
        nearest-neighbour distances (``chamfer_distance(..., squared=False, reduction="mean")``).
        """
        from pcdiff.metrics.chamfer import chamfer_distance

        n = min(self.hparams.val_num_samples, batch["points"].shape[0])
        pipe = self.to_pipeline()
        pipe.set_progress_bar_config(disable=True)
        gen = torch.Generator(self.device).manual_seed(0)
        sampled = pipe.sample_normalized(
            batch["spine"][:n].float(),
            num_points=batch["points"].shape[1],
            num_inference_steps=self.hparams.num_inference_steps,
            guidance_scale=self.hparams.guidance_scale,
            generator=gen,
        )
        scale, center = batch["scale"][:n].float(), batch["center"][:n].float()  # (n,), (n, 3) mm
        fake_mm = to_mm(sampled, center, scale)  # (n, N, 3)
        real_mm = to_mm(batch["points"][:n].float(), center, scale)
        if not torch.isfinite(fake_mm).all():
            raise FloatingPointError(f"{stage}: sampled scans contain NaN/inf (step {self.global_step})")
        cd = chamfer_distance(fake_mm, real_mm, squared=False, reduction="mean")  # (n,) mm
        self.log(f"{stage}/chamfer_mm", cd.mean(), sync_dist=True, batch_size=n)
        if self.hparams.log_images:
            self._log_images(fake_mm, real_mm, to_mm(batch["spine"][:n].float(), center, scale), stage)

    def _log_images(self, fake: torch.Tensor, real: torch.Tensor, spine: torch.Tensor, stage: Stage) -> None:
        """Log generated (top) and true (bottom) scans, in mm, to TensorBoard."""
        if not self.trainer.is_global_zero or self.logger is None:
            return
        experiment = getattr(self.logger, "experiment", None)
        if not hasattr(experiment, "add_image"):
            if not getattr(self, "_warned_images", False):
                log.warning("logger %s cannot take images; sampled point clouds are not logged",
                            type(self.logger).__name__)
                self._warned_images = True
            return
        from pcdiff.viz import render_point_clouds

        n = fake.shape[0]
        clouds = [c.cpu().numpy() for c in fake] + [c.cpu().numpy() for c in real]
        spines = [s.cpu().numpy() for s in spine] * 2
        titles = [f"generated {i}" for i in range(n)] + [f"true {i}" for i in range(n)]
        image = render_point_clouds(clouds, spines, titles, views=("back", "side"), clouds_per_row=n, dpi=60)
        experiment.add_image(f"{stage}/samples", image, self.global_step, dataformats="HWC")

    # ------------------------------------------------------------------------------------ optimiser
    def configure_optimizers(self) -> dict[str, Any]:
        """AdamW on the denoiser, LR warm-up then the chosen decay, stepped every optimiser step."""
        hp = self.hparams
        optimizer = torch.optim.AdamW(
            self.denoiser.parameters(), lr=hp.lr, weight_decay=hp.weight_decay, betas=tuple(hp.betas)
        )
        total = self.trainer.estimated_stepping_batches
        if hp.lr_schedule in ("cosine", "linear") and not math.isfinite(total):
            raise ValueError(
                f"model.lr_schedule={hp.lr_schedule!r} needs a finite run: set trainer.max_steps or trainer.max_epochs"
            )
        schedule = get_lr_scheduler(
            hp.lr_schedule, optimizer, num_warmup_steps=hp.warmup_steps,
            num_training_steps=int(total) if math.isfinite(total) else None,
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
