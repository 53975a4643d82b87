"""The ``spine_estimator`` metric: an independent spinal-line estimator judges generated backs.

A trained :class:`pcdiff.estimator.module.SpineEstimator` reads each generated back and predicts its
spinal line; the metric is the error of that prediction against the line the back was *conditioned
on* (mm, degrees; :mod:`pcdiff.estimator.metrics`). Run the same estimator on real held-out scans
against their true lines: that error is the floor a perfect generator would reach.

    python -m pcdiff.eval --metric spine_estimator --estimator-checkpoint CKPT ...

Frames: the estimator records the frame it was trained in (``input_frame``). Generated backs carry
no landmarks, so only an ``"esl"``-frame estimator (inputs normalised by the ESL's own ends) judging
ESL-conditioned backs, or a ``"none"``-frame one (millimetres), can be applied; anything else raises.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from pcdiff.data.transforms import spine_frame
from pcdiff.estimator.metrics import line_errors, summarize
from pcdiff.estimator.module import SpineEstimator, to_mm
from pcdiff.geometry.polyline import orient_top_down, resample_polyline

#: Points fed to the estimator when its checkpoint does not record the data module's ``num_points``.
DEFAULT_NUM_POINTS = 2048


def load_estimator(checkpoint: str | Path, map_location: str = "cpu") -> SpineEstimator:
    """Load a ``SpineEstimator`` Lightning checkpoint (eval mode); ``num_points`` from its data settings."""
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"spine_estimator: estimator checkpoint {path} does not exist")
    model = SpineEstimator.load_from_checkpoint(path, map_location=map_location).eval()
    ckpt = torch.load(path, map_location="cpu", weights_only=False)  # Lightning checkpoints hold plain dicts
    data_hp = ckpt.get("datamodule_hyper_parameters") or {}
    model.num_points = int(data_hp.get("num_points", DEFAULT_NUM_POINTS))
    return model


@torch.no_grad()
def estimate_lines(
    estimator: SpineEstimator,
    backs: np.ndarray | torch.Tensor | list[np.ndarray],
    frame_lines: np.ndarray | torch.Tensor | list[np.ndarray] | None,
    num_points: int | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Predict spinal lines (mm) for backs (mm).

    Args:
        estimator: a trained ``SpineEstimator``.
        backs: (B, N, 3) or a list of (N_i, 3) back surfaces in mm.
        frame_lines: the ESL of each back, (B, L, 3) or a list, mm: defines the input frame of an
            ``"esl"``-frame estimator (its two ends); ignored (may be None) for ``"none"``.
        num_points: points given to the estimator (random subset; all when a back has fewer).
        seed: seed of the subset.

    Returns:
        (B, K, 3) predicted keypoints in mm, top -> bottom.
    """
    frame = estimator.hparams.input_frame
    if frame not in ("esl", "none"):
        raise ValueError(
            f"spine_estimator: the estimator reads scans in the {frame!r} frame, which generated backs cannot "
            "provide (no landmarks); train it with data.normalize=line and data.line=esl (configs/estimator.yaml)"
        )
    backs = [np.asarray(b.detach().cpu() if isinstance(b, torch.Tensor) else b, dtype=np.float32) for b in backs]
    if frame == "esl":
        if frame_lines is None or len(frame_lines) != len(backs):
            raise ValueError("spine_estimator: an 'esl'-frame estimator needs the ESL of every back (frame_lines)")
        frames = [spine_frame(orient_top_down(np.asarray(line, dtype=np.float32))) for line in frame_lines]
    else:
        frames = [(np.zeros(3, np.float32), 1.0)] * len(backs)
    n = num_points or getattr(estimator, "num_points", DEFAULT_NUM_POINTS)
    rng = np.random.default_rng(seed)
    preds = []
    for back, (center, scale) in zip(backs, frames):
        if back.ndim != 2 or back.shape[1] != 3:
            raise ValueError(f"spine_estimator: expected backs of shape (N, 3) in mm, got {back.shape}")
        pts = back[rng.choice(len(back), n, replace=False)] if len(back) > n else back
        x = torch.from_numpy((pts - center) / np.float32(scale))[None].to(estimator.device)
        pred = to_mm(estimator(x).cpu(), torch.as_tensor(center)[None], torch.tensor([float(scale)]))
        preds.append(pred[0].numpy())
    return np.stack(preds)


def spine_estimator_metric(
    estimator: SpineEstimator,
    backs: np.ndarray | torch.Tensor | list[np.ndarray],
    spines: np.ndarray | torch.Tensor | list[np.ndarray],
    esl: np.ndarray | torch.Tensor | list[np.ndarray] | None = None,
    num_points: int | None = None,
) -> dict[str, Any]:
    """Error of the estimator's line on each back against the line the back should have.

    Args:
        estimator: a trained ``SpineEstimator`` predicting ``estimator.hparams.line``.
        backs: (B, N, 3) (or a list) generated (or real) backs in mm.
        spines: (B, L, 3) (or a list) the line each back was conditioned on (or its true line), mm,
            the same kind of line (ESL/ISL) the estimator predicts.
        esl: each back's ESL in mm for the input frame; defaults to ``spines`` (ESL conditioning).
        num_points: points given to the estimator.

    Returns:
        ``summarize`` of :func:`pcdiff.estimator.metrics.line_errors` (mean/RMS/max mm, lateral RMS mm,
        Cobb MAE and r), plus ``line`` and ``n``.
    """
    spines_list = [np.asarray(s.detach().cpu() if isinstance(s, torch.Tensor) else s, dtype=np.float32) for s in spines]
    pred = estimate_lines(estimator, backs, esl if esl is not None else spines_list, num_points)
    k = pred.shape[1]
    true = np.stack([resample_polyline(orient_top_down(s), k) for s in spines_list])
    out = summarize(line_errors(pred, true))
    out["line"] = estimator.hparams.line
    return out
