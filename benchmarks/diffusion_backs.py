"""Diffusion backs drawn from phantom spines, with the phantoms' ISL, for studies that need (surface, ESL, ISL).

    python -m benchmarks.diffusion_backs --n 96 --n-large 32 --out outputs/diffusion_backs_phantom_spines.npz

A phantom (``pcdiff.data.phantom.generate_phantom``, seeds ``--seed-start`` upwards) gives a spine: its ESL
conditions the pipeline (default: the shipped ``pretrained/phantom-pvcnn``) and its ISL, which a generated back
does not carry, is stored beside it. ``--n`` spines come from consecutive seeds; ``--n-large`` more from the
following seeds whose Cobb angle is at least ``--large-cobb`` degrees (the rare large curves). Writes one ``.npz``:
``points`` (S, N, 3) float32 mm, ``esl`` (S, L, 3), ``isl`` (S, L2, 3) mm, ``cobb`` (S,) deg, ``seed`` (S,),
``large`` (S,) bool, ``phantom_start`` (the SDEdit strength of ``--phantom-start``, 0 = from noise). An existing
file is kept unless ``--overwrite``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from benchmarks.reporting import ROOT
from pcdiff.data.phantom import generate_phantom, phantom_for_lines

PHANTOM_START_STREAM = 3  # the start phantom of seed s is seeded [s, 3]: another body than the spine's own phantom


def phantom_spines(n: int, n_large: int, seed_start: int, large_cobb: float) -> tuple[list[int], list]:
    """Seeds and phantoms: ``n`` of consecutive seeds, then ``n_large`` of the next seeds with Cobb >= ``large_cobb``
    (64 points each: only their lines are used)."""
    seeds = list(range(seed_start, seed_start + n))
    scans, seed = [generate_phantom(s, 64) for s in seeds], seed_start + n
    large: list = []
    while len(large) < n_large:
        scan = generate_phantom(seed, 64)
        if float(scan.meta["cobb"]) >= large_cobb:
            large.append(scan)
            seeds.append(seed)
        seed += 1
        if seed - seed_start > 100 * (n + n_large) + 1000:
            raise RuntimeError(f"found only {len(large)} phantoms with Cobb >= {large_cobb} deg")
    return seeds, scans + large


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", type=Path, default=ROOT / "pretrained" / "phantom-pvcnn")
    parser.add_argument("--n", type=int, default=96)
    parser.add_argument("--n-large", type=int, default=32)
    parser.add_argument("--large-cobb", type=float, default=40.0)
    parser.add_argument("--seed-start", type=int, default=7000, help="first phantom seed (keep clear of other studies)")
    parser.add_argument("--num-points", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--phantom-start", type=float, default=None, metavar="STRENGTH",
                        help="start each back from a phantom of its spine's ESL + ISL (another body; "
                             "pcdiff.data.phantom.phantom_for_lines) at this SDEdit strength in (0, 1]")
    args = parser.parse_args(argv)
    if args.phantom_start is not None and not 0.0 < args.phantom_start <= 1.0:
        parser.error(f"--phantom-start must lie in (0, 1], got {args.phantom_start}")
    if args.out.exists() and not args.overwrite:
        parser.error(f"--out {args.out} exists (use --overwrite to replace it)")
    if args.n < 0 or args.n_large < 0 or args.n + args.n_large == 0:
        parser.error("--n and --n-large must be >= 0, and not both 0")
    from pcdiff.pipelines import SpineToBackPipeline

    pipe = SpineToBackPipeline.from_pretrained(str(args.pipeline))
    seeds, scans = phantom_spines(args.n, args.n_large, args.seed_start, args.large_cobb)
    started, backs = time.perf_counter(), []
    for i in tqdm(range(0, len(scans), args.batch_size), desc="diffusion backs", unit="batch"):
        batch = scans[i : i + args.batch_size]
        gens = [torch.Generator().manual_seed(seed) for seed in seeds[i : i + args.batch_size]]  # the phantom's seed
        if args.phantom_start is None:
            backs.append(pipe([s.esl for s in batch], generator=gens, num_points=args.num_points).backs)
            continue
        starts = np.stack([phantom_for_lines(s.esl, s.isl, [seed, PHANTOM_START_STREAM], args.num_points).points
                           for s, seed in zip(batch, seeds[i : i + args.batch_size])])
        backs.append(pipe([s.esl for s in batch], generator=gens, init_backs=starts, strength=args.phantom_start).backs)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.out, points=np.concatenate(backs).astype(np.float32), esl=np.stack([s.esl for s in scans]),
        isl=np.stack([s.isl for s in scans]), cobb=np.array([float(s.meta["cobb"]) for s in scans]),
        seed=np.array(seeds), large=np.arange(len(scans)) >= args.n,
        phantom_start=np.float32(args.phantom_start or 0.0),  # 0: sampled from noise
    )
    print(f"wrote {len(scans)} backs of {args.num_points} points to {args.out} in {time.perf_counter() - started:.0f} s")
    return args.out


if __name__ == "__main__":
    main()
