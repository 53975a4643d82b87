"""Fit the learned furrow's cost (:mod:`pcdiff.estimator.learned_furrow`) on phantoms, and optionally on real backs
with an ESL, and save it: ``python -m pcdiff.estimator.fit_furrow --out DIR``.

The cost shipped in ``pretrained/learned-furrow-phantoms`` was fitted by the defaults below (150 phantoms of seed 7 at
48000 points, ~2.5 min on a 2-core CPU) and is traced with smoothness 8 and full top re-anchoring, the setting every
PCdare fold chose for the phantom-fitted cost (``python -m benchmarks.spine_baselines``, where it reads the 20 real
backs at an ESL lateral RMS of 4.4 mm, held out). Read a back's ESL with it::

    from pcdiff.estimator.geometric import geometric_esl
    from pcdiff.estimator.learned_furrow import LearnedFurrow
    esl = geometric_esl(scan, method="path", furrow=LearnedFurrow.load("pretrained/learned-furrow-phantoms"))
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from pcdiff.data.phantom import generate_phantom
from pcdiff.data.sample import BackScan
from pcdiff.estimator.furrow import SearchGrid
from pcdiff.estimator.geometric import DEFAULT_NUM_HEIGHTS, landmark_heights
from pcdiff.estimator.learned_furrow import (FILE_NAME, LEARNED_PARAMS, FurrowExample, LearnedFurrow, band_features,
                                             example_from, fit_furrow_cost)


@dataclass(frozen=True)
class PreparedBack:
    """A back read once: its scan, search heights (H',) mm, search grid and features, training example, and the
    seconds the features took."""

    scan: BackScan
    heights: np.ndarray
    grid: SearchGrid
    features: np.ndarray
    example: FurrowExample
    seconds: float


def prepare(scan: BackScan) -> PreparedBack:
    """Features of ``scan`` between its landmarks' heights (those :func:`~pcdiff.estimator.geometric.geometric_esl`
    reads), timed, and its training example (its true ESL's bins). Raises ValueError when it has no ESL."""
    if scan.esl is None:
        raise ValueError(f"{scan.name}: the learned furrow is fitted on backs with an ESL")
    start = time.perf_counter()
    heights = np.linspace(*landmark_heights(scan), DEFAULT_NUM_HEIGHTS)
    grid, features = band_features(np.asarray(scan.points, dtype=np.float64), heights, LEARNED_PARAMS)
    seconds = time.perf_counter() - start
    return PreparedBack(scan=scan, heights=heights, grid=grid, features=features,
                        example=example_from(grid, features, scan.esl), seconds=seconds)


def phantom_backs(n: int, seed: int, num_points: int) -> list[PreparedBack]:
    """``n`` phantoms ``generate_phantom([seed, i], num_points)``, prepared (a progress bar; ~0.7 s each on this CPU)."""
    return [prepare(generate_phantom([seed, i], num_points, name=f"phantom_s{seed}_{i:05d}"))
            for i in tqdm(range(n), desc="phantoms for the learned furrow", unit="back")]


def fit_model(phantoms: list[PreparedBack], real: list[PreparedBack]) -> LearnedFurrow:
    """The cost fitted on ``phantoms`` and ``real`` backs (either may be empty), the real backs weighted so that the
    two sources count equally band for band when both are given."""
    examples = [b.example for b in phantoms + real]
    weights = np.ones(len(examples))
    if phantoms and real:
        bands = [int(b.example.inside.sum()) for b in phantoms], [int(b.example.inside.sum()) for b in real]
        weights[len(phantoms):] = sum(bands[0]) / max(sum(bands[1]), 1)
    return LearnedFurrow(fit_furrow_cost(examples, weights), LEARNED_PARAMS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pcdiff.estimator.fit_furrow", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder to write learned_furrow.json to")
    parser.add_argument("--phantoms", type=int, default=150, help="phantoms to fit on (0: real backs only)")
    parser.add_argument("--seed", type=int, default=7, help="their dataset seed")
    parser.add_argument("--points", type=int, default=48000, help="their points (the density of the backs to read)")
    parser.add_argument("--real", type=Path, default=None,
                        help="also fit on this folder's backs with an ESL (PCdare layout or a pcdiff dataset folder)")
    parser.add_argument("--smoothness", type=float, default=8.0, help="tracer smoothness saved with the cost")
    parser.add_argument("--top-anchor", type=float, default=1.0, help="top re-anchoring weight saved with the cost")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing learned_furrow.json")
    args = parser.parse_args(argv)
    if args.phantoms < 0 or (args.phantoms == 0 and args.real is None):
        parser.error("--phantoms must be >= 0, and > 0 unless --real is given")
    if (args.out / FILE_NAME).exists() and not args.overwrite:
        parser.error(f"{args.out / FILE_NAME} exists; pass --overwrite to replace it")
    start = time.perf_counter()
    phantoms = phantom_backs(args.phantoms, args.seed, args.points) if args.phantoms else []
    real: list[PreparedBack] = []
    if args.real is not None:
        from pcdiff.eval import load_scans  # the eval CLI's reader: PCdare or a dataset folder

        real = [prepare(scan) for scan in tqdm(load_scans(args.real, "--real")[0], desc="real backs", unit="back")]
    model = fit_model(phantoms, real).with_tracer(args.smoothness, args.top_anchor)
    fitted_on = (f"{args.phantoms} phantoms (seed {args.seed}, {args.points} points)"
                 + (f" + {len(real)} backs of {args.real}" if real else ""))
    path = model.save(args.out, fitted_on=fitted_on, overwrite=args.overwrite)
    print(f"wrote {path} ({fitted_on}; {time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
