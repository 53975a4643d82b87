"""Write a phantom dataset in the 4D-Spine layout: ``python -m pcdiff.data.synth --out DIR --n 200 --seed 0``.

Scan ``i`` of a dataset with seed ``s`` is ``generate_phantom([s, i])``: the same seed gives the same
scans whatever ``n`` is, and a larger ``n`` only appends scans.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from pcdiff.data.io import write_subject
from pcdiff.data.phantom import CURVE_TYPES, DEFAULT_VERSION, VERSIONS, generate_phantom


def phantom_name(seed: int, index: int) -> str:
    """Subject key of scan ``index`` of the dataset with ``seed`` (unique across seeds)."""
    return f"phantom_s{seed}_{index:05d}"


def write_phantom_dataset(
    out: Path | str,
    n: int,
    seed: int,
    num_points: int = 4096,
    version: str = DEFAULT_VERSION,
    overwrite: bool = False,
    **dist: Any,
) -> list[Path]:
    """Generate ``n`` phantoms and write each with :func:`pcdiff.data.io.write_subject`.

    Args:
        out: dataset folder (created); subjects go to ``out/<name>/<name>_processed.{ply,json}``.
        n: number of scans.
        seed: dataset seed.
        num_points: points per scan.
        version: phantom model version.
        overwrite: replace existing subjects of the same name (otherwise refuse).
        **dist: overrides of the spine prior (:data:`pcdiff.data.phantom.SPINE_PRIOR` keys, e.g.
            ``cobb_min``, ``cobb_max``, ``curve_types``).

    Returns:
        The subject folders, in order.
    """
    if n < 1:
        raise ValueError(f"write_phantom_dataset: n must be >= 1, got {n}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    folders = []
    for i in range(n):
        scan = generate_phantom([seed, i], num_points, name=phantom_name(seed, i), version=version, spine_prior=dist)
        folders.append(write_subject(scan, out, overwrite=overwrite))
    return folders


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pcdiff.data.synth", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="dataset folder to write")
    parser.add_argument("--n", type=int, default=200, help="number of scans (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    parser.add_argument("--points", type=int, default=4096, help="points per scan (default 4096)")
    parser.add_argument("--cobb-min", type=float, default=None, help="smallest Cobb angle in degrees")
    parser.add_argument("--cobb-max", type=float, default=None, help="largest Cobb angle in degrees")
    parser.add_argument("--curve-types", nargs="+", choices=CURVE_TYPES, default=None, help="allowed curve types")
    parser.add_argument("--p-straight", type=float, default=None, help="fraction of straight spines (type 'none')")
    parser.add_argument("--version", choices=VERSIONS, default=DEFAULT_VERSION, help="phantom model version")
    parser.add_argument("--overwrite", action="store_true", help="replace existing subjects")
    args = parser.parse_args(argv)
    dist = {
        key: value
        for key, value in (
            ("cobb_min", args.cobb_min),
            ("cobb_max", args.cobb_max),
            ("curve_types", tuple(args.curve_types) if args.curve_types else None),
            ("p_straight", args.p_straight),
        )
        if value is not None
    }
    start = time.perf_counter()
    try:
        folders = write_phantom_dataset(
            args.out, args.n, args.seed, num_points=args.points, version=args.version, overwrite=args.overwrite, **dist
        )
    except (ValueError, FileExistsError) as exc:  # bad option values or an existing subject without --overwrite
        parser.error(str(exc))
    elapsed = time.perf_counter() - start
    summary = {"out": str(args.out), "n": len(folders), "seed": args.seed, "points": args.points, "seconds": round(elapsed, 2)}
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
