"""Parameter counts and CPU time of each denoiser, at its default (GPU-sized) configuration or a small
CPU-sized one (a starting point for a quickstart config).

    OMP_NUM_THREADS=2 python -m benchmarks.denoisers --batch 4 --points 2048 --repeats 3
    OMP_NUM_THREADS=2 python -m benchmarks.denoisers --size small --batch 8 --points 512

Writes benchmarks/results/denoisers_<size>.json.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import torch

from benchmarks.reporting import RESULTS_DIR, write_results
from pcdiff.diffusion.testing import SMALL_FORWARD_DENOISERS
from pcdiff.models import DENOISERS, build_denoiser


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=("default", "small"), default="default")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--points", type=int, default=2048)
    parser.add_argument("--keypoints", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or RESULTS_DIR / f"denoisers_{args.size}.json"

    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, args.points, 3, generator=g) * 0.6
    spine = torch.cumsum(torch.full((args.batch, args.keypoints, 3), 0.06), dim=1)
    t = torch.randint(0, 1000, (args.batch,), generator=g)
    keep = torch.arange(args.batch) % 2 == 0
    results = {}
    for name in DENOISERS:
        torch.manual_seed(0)
        config = SMALL_FORWARD_DENOISERS[name] if args.size == "small" else {}
        model = build_denoiser(name, **config).eval()
        with torch.no_grad():
            model(x, t, spine)  # warm-up
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                model(x, t, spine)
                times.append(time.perf_counter() - start)
        model.train()
        steps = []
        for _ in range(max(1, args.repeats - 1)):
            start = time.perf_counter()
            model(x, t, spine, condition_mask=keep).sample.square().mean().backward()
            steps.append(time.perf_counter() - start)
        results[name] = {
            "config": config,
            "parameters": sum(p.numel() for p in model.parameters()),
            "forward_s_median": sorted(times)[len(times) // 2],
            "forward_backward_s_median": sorted(steps)[len(steps) // 2],
        }
        r = results[name]
        print(f"{name:12s} {r['parameters'] / 1e6:6.2f} M params  forward {r['forward_s_median']:.2f} s  "
              f"forward+backward {r['forward_backward_s_median']:.2f} s", flush=True)
    write_results(out.stem, {
        "size": args.size, "batch": args.batch, "points": args.points, "keypoints": args.keypoints,
        "threads": torch.get_num_threads(), "load_average_1min": os.getloadavg()[0],
        "torch": torch.__version__, "cpu": platform.processor() or platform.machine(),
        "denoisers": results,
    }, None, out.parent)


if __name__ == "__main__":
    main()
