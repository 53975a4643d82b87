"""Registers ``--metric spine_estimator`` for ``python -m pcdiff.eval`` (listed in the registry's plugins).

    python -m pcdiff.eval --metric spine_estimator --generated outputs/generated \
        --estimator-checkpoint outputs/estimator/last.ckpt [--reference data/test]

Each generated scan must carry the line it was conditioned on (``esl``, and ``isl`` for an ISL
estimator). With ``--reference`` the estimator also reads the real scans against their own lines:
that is the floor (the estimator's own error) the generated value should be compared with.
"""

from __future__ import annotations

from typing import Any

from pcdiff.data.sample import BackScan
from pcdiff.metrics.registry import EvalInputs, EvalOutput, Option, register_metric
from pcdiff.metrics.spine_estimator import load_estimator, spine_estimator_metric

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
)
def spine_estimator(inputs: EvalInputs, estimator_checkpoint: str | None) -> EvalOutput:
    """``spine_estimator`` on the generated scans, and on the reference scans (the floor) when given."""
    if not estimator_checkpoint:
        raise ValueError("--metric spine_estimator needs --estimator-checkpoint (train one: python -m pcdiff.estimator.train configs/estimator.yaml)")
    estimator = load_estimator(estimator_checkpoint, map_location=str(inputs.device))
    line = estimator.hparams.line
    summary: dict[str, float] = {}
    sets = [("generated", inputs.generated)] + ([("reference", inputs.reference)] if inputs.reference else [])
    for label, scans in sets:
        targets, esl = _lines(scans, line, f"--{label}")
        res = spine_estimator_metric(estimator, [s.points for s in scans], targets, esl=esl)
        tag = f"{line.upper()} estimator, {label}" + (" (floor)" if label == "reference" else "")
        summary.update({f"{tag} {name}": float(res[key]) for key, name in _KEYS})
    return EvalOutput(summary)
