"""The ``spine_estimator`` metric: an independent spinal-line estimator judges generated backs.

A trained :class:`pcdiff.estimator.module.SpineEstimator` reads each generated back and predicts its
spinal line; the metric is the error of that prediction against the line the back was *conditioned
on* (mm, degrees; :mod:`pcdiff.estimator.metrics`). Run the same estimator on real held-out scans
against their true lines: that error is the floor a perfect generator would reach.

    python -m pcdiff.eval --metric spine_estimator --generated outputs/generated \
        --estimator-checkpoint outputs/estimator/last.ckpt [--reference data/test]

Each generated scan must carry the line it was conditioned on (``esl``, and ``isl`` for an ISL
estimator). With ``--reference`` the estimator also reads the real scans against their own lines:
that is the floor (the estimator's own error) the generated value should be compared with.
This module registers the metric with :mod:`pcdiff.metrics.registry`, which lists it in its
``PLUGIN_MODULES``.

Frames: the estimator records the frame it was trained in (``input_frame``). Generated backs carry
no landmarks, so only an ``"esl"``-frame estimator (inputs normalised by the ESL's own ends) judging
ESL-conditioned backs, or a ``"none"``-frame one (millimetres), can be applied; anything else raises.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pcdiff.data.sample import BackScan
from pcdiff.estimator.metrics import line_errors, summarize
from pcdiff.estimator.model import SpineEstimatorNet
from pcdiff.estimator.module import SpineEstimator
from pcdiff.geometry.frames import frame_of, to_mm, to_normalised
from pcdiff.geometry.polyline import orient_top_down, resample_polyline
from pcdiff.metrics.registry import EvalInputs, EvalOutput, Option, register_metric

#: Points fed to the estimator when its checkpoint does not record the data module's ``num_points``.
DEFAULT_NUM_POINTS = 2048
#: Old spellings of network settings, in checkpoints written before ``SpineEstimator`` took ``net_kwargs``.
_OLD_NET_NAMES = {"num_centers": "num_centres", "num_neighbors": "num_neighbours"}


def _net_kwargs_of_old_checkpoint(hparams: dict[str, Any]) -> dict[str, Any] | None:
    """``net_kwargs`` for a checkpoint whose network settings are flat hyperparameters (old layout), else None."""
    if "net_kwargs" in hparams:
        return None
    names = set(inspect.signature(SpineEstimatorNet.__init__).parameters) - {"self", "num_keypoints"}
    flat = {_OLD_NET_NAMES.get(k, k): v for k, v in hparams.items()}
    return {k: v for k, v in flat.items() if k in names} or None


def load_estimator(checkpoint: str | Path, map_location: str = "cpu") -> SpineEstimator:
    """Load a ``SpineEstimator`` Lightning checkpoint (eval mode); ``num_points`` from its data settings."""
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"spine_estimator: estimator checkpoint {path} does not exist")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)  # Lightning checkpoints hold plain dicts
    old = _net_kwargs_of_old_checkpoint(ckpt.get("hyper_parameters") or {})
    overrides = {} if old is None else {"net_kwargs": old}
    model = SpineEstimator.load_from_checkpoint(path, map_location=map_location, **overrides).eval()
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
        frames = [frame_of("line", line=orient_top_down(np.asarray(line, dtype=np.float32))) for line in frame_lines]
    else:
        frames = [frame_of("none")] * len(backs)
    n = num_points or getattr(estimator, "num_points", DEFAULT_NUM_POINTS)
    rng = np.random.default_rng(seed)
    preds = []
    for back, (center, scale) in zip(backs, frames):
        if back.ndim != 2 or back.shape[1] != 3:
            raise ValueError(f"spine_estimator: expected backs of shape (N, 3) in mm, got {back.shape}")
        pts = back[rng.choice(len(back), n, replace=False)] if len(back) > n else back
        x = torch.from_numpy(to_normalised(pts, center, scale))[None].to(estimator.device)  # (1, n, 3)
        preds.append(to_mm(estimator(x)[0].cpu(), center, scale).numpy())  # (K, 3) mm
    return np.stack(preds)


def spine_estimator_metric(
    estimator: SpineEstimator,
    backs: np.ndarray | torch.Tensor | list[np.ndarray],
    spines: np.ndarray | torch.Tensor | list[np.ndarray],
    esl: np.ndarray | torch.Tensor | list[np.ndarray] | None = None,
    num_points: int | None = None,
    names: list[str] | None = None,
) -> dict[str, Any]:
    """Error of the estimator's line on each back against the line the back should have.

    Args:
        estimator: a trained ``SpineEstimator`` predicting ``estimator.hparams.line``.
        backs: (B, N, 3) (or a list) generated (or real) backs in mm.
        spines: (B, L, 3) (or a list) the line each back was conditioned on (or its true line), mm,
            the same kind of line (ESL/ISL) the estimator predicts.
        esl: each back's ESL in mm for the input frame; defaults to ``spines`` (ESL conditioning).
        num_points: points given to the estimator.
        names: each back's subject name (default ``"0"``, ``"1"``, ...), for ``per_subject``.

    Returns:
        ``summarize`` of :func:`pcdiff.estimator.metrics.line_errors` (mean/RMS/max mm, lateral RMS mm,
        Cobb MAE and r), plus ``line``, ``n`` and ``per_subject``: one dict per back, ``{"name": ...,
        **line_errors row}``, in the order given.
    """
    spines_list = [np.asarray(s.detach().cpu() if isinstance(s, torch.Tensor) else s, dtype=np.float32) for s in spines]
    pred = estimate_lines(estimator, backs, esl if esl is not None else spines_list, num_points)
    k = pred.shape[1]
    true = np.stack([resample_polyline(orient_top_down(s), k) for s in spines_list])
    rows = line_errors(pred, true)
    out: dict[str, Any] = summarize(rows)
    out["line"] = estimator.hparams.line
    names = [str(i) for i in range(len(rows))] if names is None else list(names)
    if len(names) != len(rows):
        raise ValueError(f"spine_estimator: {len(names)} names for {len(rows)} backs")
    out["per_subject"] = [{"name": name, **row} for name, row in zip(names, rows)]
    return out


_KEYS = (("mean_mm", "mean [mm]"), ("rms_mm", "RMS [mm]"), ("max_max_mm", "max [mm]"),
         ("lateral_rms_mm", "lateral RMS [mm]"), ("cobb_mae_deg", "Cobb MAE [deg]"), ("cobb_r", "Cobb r"))


def _lines(scans: list[BackScan], line: str, option: str) -> tuple[list[Any], list[Any]]:
    """(target lines, ESLs) of ``scans``; raises naming the first scan without them."""
    for scan in scans:
        if getattr(scan, line) is None or scan.esl is None:
            need = "an ESL" if line == "esl" else "an ISL and an ESL"
            raise ValueError(
                f"--metric spine_estimator: {option} scan {scan.name!r} has no {line.upper()}; the estimator predicts "
                f"the {line.upper()} and needs {need} per scan (the requested line of a generated scan)"
            )
    return [getattr(s, line) for s in scans], [s.esl for s in scans]


@register_metric(
    "spine_estimator",
    "error of a trained spinal-line estimator's prediction on each scan against the line it was conditioned on",
    options=(Option("--estimator-checkpoint", str, None, "SpineEstimator checkpoint (.ckpt), e.g. outputs/estimator/last.ckpt"),),
    needs_reference=False,
    uses_points=False,  # reads each full scan (the estimator draws its own subset)
)
def spine_estimator(inputs: EvalInputs, estimator_checkpoint: str | None) -> EvalOutput:
    """``spine_estimator`` on the generated scans, and on the reference scans (the floor) when given.

    ``per_sample`` holds, under ``"generated"`` (and ``"reference"``), one row per scan with its subject
    ``name`` and its errors (mm, degrees; see :func:`pcdiff.estimator.metrics.line_errors`)."""
    if not estimator_checkpoint:
        raise ValueError("--metric spine_estimator needs --estimator-checkpoint (train one: python -m pcdiff.estimator.train configs/estimator.yaml)")
    estimator = load_estimator(estimator_checkpoint, map_location=str(inputs.device))
    line = estimator.hparams.line
    summary: dict[str, float] = {}
    per_sample: dict[str, list[dict[str, Any]]] = {}
    sets = [("generated", inputs.generated)] + ([("reference", inputs.reference)] if inputs.reference else [])
    for label, scans in sets:
        targets, esl = _lines(scans, line, f"--{label}")
        res = spine_estimator_metric(estimator, [s.points for s in scans], targets, esl=esl, names=[s.name for s in scans])
        tag = f"{line.upper()} estimator, {label}" + (" (floor)" if label == "reference" else "")
        summary.update({f"{tag} {name}": float(res[key]) for key, name in _KEYS})
        per_sample[label] = res["per_subject"]
    return EvalOutput(summary, per_sample)
