"""Exponential moving average of the denoiser's weights, on ``torch.optim.swa_utils.AveragedModel``.

``AveragedModel`` is an ``nn.Module``, so the averaged weights and their update count live in the
LightningModule's ``state_dict`` and travel with every checkpoint. The only hand-written part is the
decay warm-up (PyTorch's ``get_ema_multi_avg_fn`` has a fixed decay, which makes the average of a
short run lag far behind the weights): decay_n = min(decay, (1 + n) / (10 + n)) after n updates,
the warm-up of Diffusers' ``EMAModel`` (``use_ema_warmup=False``) and of TensorFlow's EMA.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel


def ema_multi_avg_fn(decay: float) -> Callable[[list[torch.Tensor], list[torch.Tensor], torch.Tensor | int], None]:
    """In-place EMA update of lists of same-dtype tensors (``AveragedModel`` groups them by dtype) with
    the warm-up decay min(decay, (1 + n) / (10 + n))."""
    if not 0.0 < decay < 1.0:
        raise ValueError(f"EMA decay must be in (0, 1), got {decay}")

    @torch.no_grad()
    def update(ema_params: list[torch.Tensor], params: list[torch.Tensor], num_averaged: torch.Tensor | int) -> None:
        if not ema_params[0].is_floating_point():  # integer buffers (e.g. BatchNorm's step count): copy
            torch._foreach_copy_(ema_params, params)
            return
        n = int(num_averaged)
        d = min(decay, (1.0 + n) / (10.0 + n))
        torch._foreach_lerp_(ema_params, params, 1.0 - d)

    return update


def make_ema(module: nn.Module, decay: float) -> AveragedModel:
    """An ``AveragedModel`` copy of ``module`` (parameters and buffers averaged, no gradients)."""
    ema = AveragedModel(module, multi_avg_fn=ema_multi_avg_fn(decay), use_buffers=True)
    ema.requires_grad_(False)  # never trained; also keeps DDP from waiting for its gradients
    return ema
