"""``SpineEstimator``: the thin LightningModule that trains :class:`SpineEstimatorNet` on back scans.

Batches come from :class:`pcdiff.data.datamodule.BackScanDataModule`: ``points`` (B, N, 3) and
``spine`` (B, K, 3) normalised, ``center`` (B, 3) mm and ``scale`` (B,) mm. The loss is on keypoints
in normalised units; validation and test log the millimetre errors of :mod:`pcdiff.estimator.metrics`.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F

from pcdiff.estimator.metrics import line_errors
from pcdiff.estimator.model import SpineEstimatorNet
from pcdiff.geometry.frames import to_mm  # also imported from here: pcdiff.estimator.module.to_mm

#: The input frames an estimator accepts, named as :func:`pcdiff.geometry.frames.frame_name` names the data
#: module's frame: "esl" = the ESL's own frame (``normalize="line"`` with ``line="esl"``; generated backs
#: come in it), "landmarks" = C7..DM (needs landmarks, so it cannot judge generated backs), "none" = mm.
#: The ISL's frame is refused: it is not visible on a scan and would hand the target's ends to the net.
FRAMES = ("esl", "landmarks", "none")
_LOSSES = {"l1": F.l1_loss, "l2": F.mse_loss, "smooth_l1": F.smooth_l1_loss}


class SpineEstimator(L.LightningModule):
    """Regress the spinal line (ESL or ISL) of a back scan.

    Args:
        num_keypoints: K; must equal the data module's ``num_keypoints`` (linked by the CLI).
        net_kwargs: the network's other settings (``width``, ``num_centres``, ``radii``, ``num_neighbours``,
            ``widths``, ``num_frequencies``, ``global_dim``, ``head_dim``, ``dropout``), see
            :class:`SpineEstimatorNet`; those left out take its defaults.
        loss: ``"l1"``, ``"l2"`` (mean squared) or ``"smooth_l1"`` on normalised keypoints.
        lr: AdamW learning rate; decayed to zero by cosine annealing over the trainer's whole run.
        weight_decay: AdamW weight decay.
        line: which line the targets are (``"esl"``/``"isl"``); stored with the weights, so users of a
            checkpoint (``pcdiff.eval --metric spine_estimator``) know what it predicts.
        input_frame: the frame the data was normalised in, one of :data:`FRAMES` (stored likewise).
    """

    def __init__(
        self,
        num_keypoints: int = 32,
        net_kwargs: dict[str, Any] | None = None,
        loss: str = "l1",
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        line: str = "esl",
        input_frame: str = "esl",
    ) -> None:
        super().__init__()
        if loss not in _LOSSES:
            raise ValueError(f"SpineEstimator: loss must be one of {sorted(_LOSSES)}, got {loss!r}")
        if line not in ("esl", "isl"):
            raise ValueError(f"SpineEstimator: line must be 'esl' or 'isl', got {line!r}")
        if input_frame not in FRAMES:
            raise ValueError(
                f"SpineEstimator: input_frame must be one of {FRAMES}, got {input_frame!r} (to predict the ISL normalise by "
                "landmarks, data.normalize=landmarks, or by the ESL; the ISL's own frame is the answer's ends)"
            )
        if net_kwargs and "num_keypoints" in net_kwargs:
            raise ValueError("SpineEstimator: set num_keypoints, not net_kwargs.num_keypoints (it is linked to the data)")
        self.save_hyperparameters()
        self.net = SpineEstimatorNet(num_keypoints=num_keypoints, **(net_kwargs or {}))

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        """(B, N, 3) normalised back scan -> (B, K, 3) normalised keypoints."""
        return self.net(points).keypoints

    def _step(self, batch: dict[str, Any], stage: str) -> torch.Tensor:
        target = batch["spine"]
        if target.shape[1] != self.hparams.num_keypoints:
            raise ValueError(
                f"SpineEstimator: the batch has {target.shape[1]} keypoints but the model predicts "
                f"{self.hparams.num_keypoints}; set data num_keypoints = model num_keypoints"
            )
        pred = self(batch["points"])
        loss = _LOSSES[self.hparams.loss](pred, target)
        b = len(target)
        self.log(f"{stage}/loss", loss, prog_bar=stage != "test", batch_size=b)
        if stage != "train":
            rows = line_errors(to_mm(pred, batch["center"], batch["scale"]), to_mm(target, batch["center"], batch["scale"]))
            for key in ("mean_mm", "rms_mm", "max_mm", "lateral_rms_mm", "cobb_abs_err_deg"):
                self.log(f"{stage}/{key}", float(np.mean([r[key] for r in rows])), batch_size=b)
        return loss

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "test")

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        """Predicted keypoints (B, K, 3) in **mm** (using the batch's ``center`` and ``scale``)."""
        return to_mm(self(batch["points"]), batch["center"], batch["scale"])

    def configure_optimizers(self) -> dict[str, Any]:
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        # Cosine decay to zero over the whole run, stepped per optimiser step (valid for max_steps or max_epochs).
        total = int(self.trainer.estimated_stepping_batches)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(total, 1))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
