"""Time and peak memory of the data layer: phantom generation and data-module setup (cold / cached).

    python -m benchmarks.data_speed [--n 200] [--points 4096] [--num-points 2048] [--out benchmarks/results/data_speed.json]

Each phase runs in its own fresh Python process (so "cold" really is cold and peak memory is that
phase's own), after the imports it needs; the import time is reported separately. Peak memory is
given two ways: ``tracemalloc_peak_mib`` (Python and numpy allocations of the phase) and
``maxrss_mib`` (the process's peak resident set, including torch/Open3D libraries).

Phases:
    generate     write_phantom_dataset(n scans of --points points) into a temporary folder
    dm_cold      BackScanDataModule(data_dir=that folder).setup(): read, normalise, resample, cache
    dm_cached    the same again: load the .npz cache
    dm_cold_fps  cold setup with farthest-point sampling instead of uniform random
    pcdare       read_pcdare on ../shared/data/pcdare (20 real scans, 29k-70k points each), if present
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PCDARE = ROOT.parent / "shared" / "data" / "pcdare"


def _phase(name: str, work: Path, n: int, points: int, num_points: int) -> dict:
    t0 = time.perf_counter()
    import open3d  # noqa: F401  (imported lazily by the reader; counted as import time, not work)
    import scipy.spatial  # noqa: F401

    from pcdiff.data.datamodule import BackScanDataModule
    from pcdiff.data.pcdare import read_pcdare
    from pcdiff.data.synth import write_phantom_dataset

    import_s = time.perf_counter() - t0

    def dm(sampling: str, cache: str) -> BackScanDataModule:
        return BackScanDataModule(data_dir=str(work / "phantom"), cache_dir=str(work / cache), num_points=num_points,
                                  sampling=sampling)

    tracemalloc.start()
    t0 = time.perf_counter()
    if name == "generate":
        write_phantom_dataset(work / "phantom", n, seed=0, num_points=points)
        count = n
    elif name in ("dm_cold", "dm_cached"):
        m = dm("random", "cache")
        m.setup("fit")
        count = len(m._names)
    elif name == "dm_cold_fps":
        m = dm("fps", "cache_fps")
        m.setup("fit")
        count = len(m._names)
    elif name == "pcdare":
        count = len(read_pcdare(PCDARE))
    else:
        raise ValueError(name)
    seconds = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "phase": name,
        "scans": count,
        "seconds": round(seconds, 3),
        "seconds_per_scan": round(seconds / max(count, 1), 4),
        "import_seconds": round(import_s, 2),
        "tracemalloc_peak_mib": round(peak / 2**20, 1),
        "maxrss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--points", type=int, default=4096, help="points per generated phantom scan")
    parser.add_argument("--num-points", type=int, default=2048, help="data module num_points")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "data_speed.json")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:  # child process
        print(json.dumps(_phase(args.phase, args.work, args.n, args.points, args.num_points)))
        return

    phases = ["generate", "dm_cold", "dm_cached", "dm_cold_fps"] + (["pcdare"] if (PCDARE / "CobbAngles.csv").is_file() else [])
    results = []
    with tempfile.TemporaryDirectory(prefix="pcdiff-data-speed-") as work:
        for phase in phases:
            cmd = [sys.executable, "-m", "benchmarks.data_speed", "--phase", phase, "--work", work, "--n", str(args.n),
                   "--points", str(args.points), "--num-points", str(args.num_points)]
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
            if proc.returncode != 0:
                raise RuntimeError(f"phase {phase} failed:\n{proc.stderr}")
            results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(json.dumps(results[-1]))
    record = {
        "command": f"python -m benchmarks.data_speed --n {args.n} --points {args.points} --num-points {args.num_points}",
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"), "python": platform.python_version()},
        "note": "each phase in a fresh process; seconds exclude imports (import_seconds); machine shared with "
                "other jobs, so timings are indicative",
        "results": results,
    }
    from benchmarks.reporting import write_results  # not at the top: the phases time their own imports (torch...)

    write_results(args.out.stem, record, None, args.out.parent, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
