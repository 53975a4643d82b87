"""The learned furrow (:mod:`pcdiff.estimator.learned_furrow`) on PCdare's subject-wise folds, every choice in-fold.

Three fits of the furrow cost, read on each fold's held-out subjects:

- **phantoms**: the cost fitted on phantoms alone (their ESL is exact; none is a PCdare subject), the same for every
  fold; the tracer setting (smoothness x top re-anchoring, :data:`TRACERS`) is the one with the lowest ESL lateral
  RMS on the fold's training subjects.
- **real**: the cost fitted on the fold's training subjects alone; the tracer setting is chosen by an inner 4-fold
  split of the training subjects (fit on 12, read the other 4, every setting), then the cost is refitted on all 16.
- **phantoms + real**: the cost fitted on the phantoms and the fold's training subjects together (the real backs
  weighted so that the two sources count equally, band for band); the tracer setting chosen by the same inner split
  (fit on 12 + phantoms). No held-out subject is looked at before it is read.

Used by ``benchmarks/spine_baselines.py`` (its rows "learned furrow ESL ...").
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from benchmarks.folds import fold_split, lateral_errors, select_setting
from pcdiff.data.sample import BackScan
from pcdiff.estimator.fit_furrow import PreparedBack, fit_model, prepare
from pcdiff.estimator.geometric import line_on_surface
from pcdiff.estimator.learned_furrow import LearnedFurrow

#: (smoothness, top re-anchoring weight) settings of the tracer the folds choose from.
TRACERS: tuple[tuple[float, float], ...] = tuple((s, a) for s in (2.0, 4.0, 8.0) for a in (0.0, 0.5, 1.0))
#: Inner folds of the training subjects for the "phantoms + real" tracer choice, and their permutation seed.
INNER_FOLDS, INNER_SEED = 4, 1


def read_line(model: LearnedFurrow, back: PreparedBack, tracer: tuple[float, float]) -> tuple[np.ndarray, float]:
    """The ESL (K, 3) mm of ``back`` under one ``tracer`` setting of :data:`TRACERS` (smoothness, top re-anchoring),
    with the seconds it took (features included)."""
    points = np.asarray(back.scan.points, dtype=np.float64)
    start = time.perf_counter()
    x = model.with_tracer(*tracer).trace(back.grid, back.features, points, back.heights)
    return line_on_surface(points, x, back.heights), back.seconds + time.perf_counter() - start


def read_lines(model: LearnedFurrow, back: PreparedBack) -> list[tuple[np.ndarray, float]]:
    """:func:`read_line` under every setting of :data:`TRACERS`, in order."""
    return [read_line(model, back, tracer) for tracer in TRACERS]


def inner_choice(phantoms: list[PreparedBack], train: list[PreparedBack]) -> int:
    """Index into :data:`TRACERS` with the lowest mean ESL lateral RMS over an inner split of ``train``: each inner
    fold read by the cost fitted on ``phantoms`` and the other inner folds."""
    inner = fold_split(len(train), INNER_FOLDS, INNER_SEED)
    errors = np.zeros((len(train), len(TRACERS)))
    for h in range(INNER_FOLDS):
        model = fit_model(phantoms, [b for b, g in zip(train, inner) if g != h])
        for i in np.flatnonzero(inner == h):
            errors[i] = lateral_errors(read_lines(model, train[i]), train[i].scan.esl)
    return select_setting(errors, np.ones(len(train), dtype=bool))


@dataclass(frozen=True)
class LearnedFurrowResult:
    """Held-out ESLs of every fit of :data:`FITS`: ``lines[fit][name]`` = (ESL (64, 3) mm, seconds), and per fold the chosen
    tracer setting ``chosen[fit][fold]`` = (smoothness, top re-anchoring)."""

    lines: dict[str, dict[str, tuple[np.ndarray, float]]]
    chosen: dict[str, list[tuple[float, float]]]


#: The fits, in the order of the benchmark's rows.
FITS = ("phantoms", "real", "phantoms + real")


def learned_furrow_folds(scans: list[BackScan], fold_of: np.ndarray, phantoms: list[PreparedBack]) -> LearnedFurrowResult:
    """Every fit of :data:`FITS` read on every subject while it is held out (``fold_of`` (S,))."""
    backs = [prepare(scan) for scan in scans]
    on_phantoms = fit_model(phantoms, [])
    phantom_lines = [read_lines(on_phantoms, b) for b in backs]
    phantom_errors = np.stack([lateral_errors(lines, b.scan.esl) for lines, b in zip(phantom_lines, backs)])
    lines: dict[str, dict[str, tuple[np.ndarray, float]]] = {fit: {} for fit in FITS}
    chosen: dict[str, list[tuple[float, float]]] = {fit: [] for fit in FITS}
    for f in tqdm(range(int(fold_of.max()) + 1), desc="learned furrow folds", unit="fold"):
        train = [b for b, g in zip(backs, fold_of) if g != f]
        choice = select_setting(phantom_errors, fold_of != f)
        chosen["phantoms"].append(TRACERS[choice])
        for i in np.flatnonzero(fold_of == f):
            lines["phantoms"][backs[i].scan.name] = phantom_lines[i][choice]
        for fit, with_phantoms in (("real", []), ("phantoms + real", phantoms)):
            fit_choice = inner_choice(with_phantoms, train)
            model = fit_model(with_phantoms, train)
            chosen[fit].append(TRACERS[fit_choice])
            for i in np.flatnonzero(fold_of == f):
                lines[fit][backs[i].scan.name] = read_line(model, backs[i], TRACERS[fit_choice])
    return LearnedFurrowResult(lines=lines, chosen=chosen)
