"""Parameter counts and CPU forward time of each denoiser at its default (GPU-sized) configuration.

    OMP_NUM_THREADS=2 python benchmarks/denoisers.py --batch 4 --points 2048 --repeats 3

Writes benchmarks/results/denoisers.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from pcdiff.models import DENOISERS, build_denoiser


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--points", type=int, default=2048)
    parser.add_argument("--keypoints", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "denoisers.json")
    args = parser.parse_args()

    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, args.points, 3, generator=g) * 0.3
    spine = torch.cumsum(torch.full((args.batch, args.keypoints, 3), 0.03), dim=1)
    t = torch.randint(0, 1000, (args.batch,), generator=g)
    results = {}
    for name in DENOISERS:
        torch.manual_seed(0)
        model = build_denoiser(name).eval()
        with torch.no_grad():
            model(x, t, spine)  # warm-up
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                model(x, t, spine)
                times.append(time.perf_counter() - start)
        start = time.perf_counter()
        model.train()
        model(x, t, spine, condition_mask=torch.arange(args.batch) % 2 == 0).sample.square().mean().backward()
        train_step = time.perf_counter() - start
        results[name] = {
            "parameters": sum(p.numel() for p in model.parameters()),
            "forward_s_median": sorted(times)[len(times) // 2],
            "forward_backward_s": train_step,
        }
        print(f"{name:12s} {results[name]['parameters'] / 1e6:6.2f} M params  forward {results[name]['forward_s_median']:.2f} s"
              f"  forward+backward {train_step:.2f} s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "batch": args.batch, "points": args.points, "keypoints": args.keypoints,
        "threads": torch.get_num_threads(), "torch": torch.__version__, "cpu": platform.processor() or platform.machine(),
        "denoisers": results,
    }, indent=2))


if __name__ == "__main__":
    main()
