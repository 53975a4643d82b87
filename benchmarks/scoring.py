"""Scores of generated backs: paired Chamfer / EMD against the true back (mm), spine-conditioning metrics,
and a summary of per-back values (through :mod:`pcdiff.metrics`)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch


def paired_distances(
    gen: torch.Tensor, ref: torch.Tensor, scale: torch.Tensor, *, emd: bool = True, emd_method: str = "exact"
) -> dict[str, np.ndarray]:
    """Per-pair distances between each generated back and the true back of the same spine.

    Args:
        gen, ref: (B, N, 3) clouds in the normalised frame (same N when ``emd``).
        scale: (B,) mm per normalised unit of each pair's requested spine.
        emd: also compute the EMD.
        emd_method: ``"exact"`` (scipy assignment) or ``"auction"`` (certified within 1%), see :mod:`pcdiff.metrics.emd`.

    Returns:
        ``chamfer_mm`` (B,): (mean nearest distance gen->ref + ref->gen) / 2, in mm, not squared;
        ``chamfer_sq`` (B,): the squared, summed convention of the set metrics, normalised units^2;
        ``emd_mm`` (B,): mean matched distance of the optimal bijection, mm.
    """
    from pcdiff.metrics.chamfer import chamfer_distance
    from pcdiff.metrics.emd import earth_movers_distance

    s = scale.double().cpu().numpy()
    out = {
        "chamfer_mm": chamfer_distance(gen, ref, squared=False, reduction="mean").double().cpu().numpy() * s,
        "chamfer_sq": chamfer_distance(gen, ref).double().cpu().numpy(),
    }
    if emd:
        out["emd_mm"] = earth_movers_distance(gen, ref, method=emd_method).detach().double().cpu().numpy() * s
    return out


def spine_scores(backs_mm: torch.Tensor, lines_mm: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
    """Spine-conditioning metrics of each back against its requested ESL (:mod:`pcdiff.metrics.spine`).

    The surface midline is the symmetry axis of horizontal slices (``symmetry_midline``), with slices
    thick enough to hold ~50 points: half-thickness ``6 mm * 2048 / N`` (6 mm at 2048 points, 24 mm at 512),
    at most 24 mm (thicker slabs would blur the midline; sparser backs then come out unmeasurable).

    Args:
        backs_mm: (B, N, 3) backs in mm.
        lines_mm: B requested ESLs, each (L, 3) mm, in the same frame as its back.

    Returns:
        ``lateral_mm`` (B,): mean lateral deviation between the ESL and the back's own midline (mm);
        ``esl_to_surface_mm`` (B,): mean distance from the ESL to the nearest back point (mm).
        ``esl_to_plane_mm`` (B,): mean distance from the ESL to the back's local plane (mm; no point-spacing floor,
        :func:`pcdiff.metrics.spine.esl_surface_distance`).
        A back on which the metric cannot be measured (no slice with enough points, no overlap in
        height with its line: a failed sample) gets NaN; callers count those and say so.
    """
    from functools import partial

    from pcdiff.metrics.spine import spine_conditioning_metrics, symmetry_midline

    if len(lines_mm) != backs_mm.shape[0]:
        raise ValueError(f"spine_scores: {backs_mm.shape[0]} backs but {len(lines_mm)} lines")
    half = min(24.0, 6.0 * max(1.0, 2048 / backs_mm.shape[1]))
    estimator = partial(symmetry_midline, half_thickness=half)
    lateral, surface, plane = (np.full(len(lines_mm), np.nan) for _ in range(3))
    for i, (back, line) in enumerate(zip(backs_mm.double().numpy(), lines_mm)):
        try:
            m = spine_conditioning_metrics(back, line, estimator=estimator)
        except ValueError as exc:  # a degenerate sample; counted by the caller, never averaged in as a number
            logging.getLogger(__name__).warning("spine metrics failed on back %d: %s", i, exc)
            continue
        lateral[i], surface[i], plane[i] = m["lateral_dev_mean"], m["esl_surface_mean"], m["esl_plane_mean"]
    return {"lateral_mm": lateral, "esl_to_surface_mm": surface, "esl_to_plane_mm": plane}


def asymmetry_scores(
    backs_mm: torch.Tensor, references_mm: torch.Tensor, lines_mm: Sequence[np.ndarray]
) -> dict[str, np.ndarray]:
    """Does each back carry its spine's rotation? Per back, :func:`pcdiff.metrics.spine.asymmetry_agreement`
    against the reference back of the same spine (the true scan).

    Args:
        backs_mm: (B, N, 3) backs in mm; references_mm: (B, M, 3) the true backs of the same spines, mm.
        lines_mm: B ESLs, each (L, 3) mm.

    Returns:
        ``asym_corr`` (B,) and ``asym_amplitude_ratio`` (B,) (NaN where a profile is flat).
    """
    from pcdiff.metrics.spine import asymmetry_agreement

    if not backs_mm.shape[0] == references_mm.shape[0] == len(lines_mm):
        raise ValueError(f"asymmetry_scores: {backs_mm.shape[0]} backs, {references_mm.shape[0]} references, {len(lines_mm)} lines")
    scores = [
        asymmetry_agreement(back, ref, line)
        for back, ref, line in zip(backs_mm.double().numpy(), references_mm.double().numpy(), lines_mm)
    ]
    return {key: np.array([s[key] for s in scores]) for key in ("asym_corr", "asym_amplitude_ratio")}


def summarize(values: np.ndarray) -> dict[str, float]:
    """Mean, standard deviation and median of a 1-D array (NaN-free; raises otherwise)."""
    values = np.asarray(values, dtype=float)
    if values.size == 0 or not np.isfinite(values).all():
        raise ValueError(f"summarize: expected a non-empty finite array, got {values!r}")
    return {"mean": float(values.mean()), "std": float(values.std()), "median": float(np.median(values))}
