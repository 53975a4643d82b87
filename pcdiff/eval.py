"""Evaluate generated back scans against reference scans: ``python -m pcdiff.eval``.

Examples::

    python -m pcdiff.eval --metric chamfer emd fscore --generated outputs/generated --reference data/test
    python -m pcdiff.eval --metric all --generated gen.npz --reference ref.pt --out results.json
    python -m pcdiff.eval --metric spine --generated outputs/generated   # ESL stored with each scan

``--generated`` / ``--reference`` are folders of scans in any layout :func:`pcdiff.data.io.read_dataset`
reads, or ``.npz`` / ``.pt`` / ``.npy`` files holding an (S, N, 3) array (key ``points``, or the only
array), optionally with an (S, L, 3) ``esl`` array (the requested spinal lines). Every metric but
``spine`` runs on ``--num-points`` points per scan (subsampled with a fixed seed). Paired metrics
(chamfer, emd, fscore) pair scans by name when all generated names occur in the reference set, else by
position (equal counts needed). Set metrics (mmd, cov, 1nna, jsd) compare the two sets as wholes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pcdiff.data.sample import BackScan
from pcdiff.metrics.normalization import normalize_sets
from pcdiff.metrics.registry import BUILTIN_METRICS, METRICS, EvalInputs, EvalOutput, load_plugins
from pcdiff.ops import farthest_point_sample

ARRAY_SUFFIXES = (".npz", ".pt", ".pth", ".npy")


def load_scans(path: str | Path, option: str, layout: str = "auto") -> list[BackScan]:
    """Read a folder of scans or an array file into BackScans (mm); errors name the ``option``."""
    path = Path(path)
    if not path.exists():
        raise SystemExit(f"{option}: {path} does not exist")
    if path.is_dir():
        from pcdiff.data.io import read_dataset

        try:
            return list(read_dataset(path, layout=layout))
        except ValueError as exc:
            raise SystemExit(f"{option}: could not read scans from {path}: {exc}") from exc
    if path.suffix.lower() not in ARRAY_SUFFIXES:
        raise SystemExit(f"{option}: {path} is neither a folder of scans nor one of {', '.join(ARRAY_SUFFIXES)}")
    points, esl = _read_arrays(path, option)
    return [
        BackScan(name=f"{path.stem}_{i:04d}", points=p, esl=None if esl is None else esl[i])
        for i, p in enumerate(points)
    ]


def _read_arrays(path: Path, option: str) -> tuple[np.ndarray, np.ndarray | None]:
    suffix = path.suffix.lower()
    if suffix == ".npz":
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files}
    elif suffix == ".npy":
        arrays = {"points": np.load(path)}
    else:
        obj = torch.load(path, map_location="cpu", weights_only=True)
        arrays = obj if isinstance(obj, dict) else {"points": obj}
        arrays = {k: v.numpy() if isinstance(v, torch.Tensor) else np.asarray(v) for k, v in arrays.items()}
    if "points" in arrays:
        points = arrays["points"]
    elif len(arrays) == 1:
        points = next(iter(arrays.values()))
    else:
        raise SystemExit(f"{option}: {path} holds arrays {sorted(arrays)}; expected one named 'points' (S, N, 3)")
    points = np.asarray(points, dtype=np.float32)
    if points.ndim != 3 or points.shape[-1] != 3 or len(points) == 0:
        raise SystemExit(f"{option}: {path}: expected points of shape (S, N, 3), got {points.shape}")
    esl = arrays.get("esl")
    if esl is not None and (np.ndim(esl) != 3 or np.shape(esl)[0] != len(points) or np.shape(esl)[-1] != 3):
        raise SystemExit(f"{option}: {path}: expected 'esl' of shape (S={len(points)}, L, 3), got {np.shape(esl)}")
    return points, esl


def subsample(scans: list[BackScan], num_points: int, method: str, seed: int, option: str) -> torch.Tensor:
    """(S, num_points, 3) float32: a fixed-seed random subset (or FPS) of each scan's points."""
    out = []
    rng = np.random.default_rng(seed)
    for scan in scans:
        n = len(scan.points)
        if n < num_points:
            raise SystemExit(f"{option}: scan {scan.name!r} has {n} points, fewer than --num-points {num_points}")
        if method == "fps":
            pts = torch.from_numpy(scan.points)[None]
            out.append(pts[0, farthest_point_sample(pts, num_points)[0]])
        else:
            out.append(torch.from_numpy(scan.points[rng.choice(n, num_points, replace=False)]))
    return torch.stack(out)


def pair_scans(generated: list[BackScan], reference: list[BackScan]) -> list[tuple[int, int]] | None:
    """Pairs by name when every generated name is a reference name, else by position when counts match."""
    ref_index = {s.name: i for i, s in enumerate(reference)}
    if all(s.name in ref_index for s in generated):
        return [(i, ref_index[s.name]) for i, s in enumerate(generated)]
    if len(generated) == len(reference):
        return list(enumerate(range(len(reference))))
    return None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pcdiff.eval", description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    names = sorted(METRICS)
    parser.add_argument("--metric", nargs="+", required=True,
                        help=f"one or several of {names}, or 'all' for {list(BUILTIN_METRICS)} (commas allowed)")  # fmt: skip
    parser.add_argument("--generated", required=True, help="folder of scans or .npz/.pt/.npy array (S, N, 3)")
    parser.add_argument("--reference", help="folder of scans or .npz/.pt/.npy array (S, N, 3)")
    parser.add_argument("--layout", default="auto", help="folder layout for read_dataset (auto, 4dspine, generic, pcdare)")
    parser.add_argument("--num-points", type=int, default=2048, help="points per scan for all metrics but spine")
    parser.add_argument("--sampling", choices=("random", "fps"), default="random", help="how --num-points are drawn")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random subsampling")
    parser.add_argument("--normalize", choices=("none", "joint", "per_shape"), default="none",
                        help="frame for the cloud metrics (see pcdiff.metrics.normalization); spine always uses mm")  # fmt: skip
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    parser.add_argument("--out", help="write the results as JSON here")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.add_argument("--plugin", action="append", default=[], help="extra module registering metrics (repeatable)")
    seen: set[str] = set()
    for spec in METRICS.values():
        for option in spec.options:
            if option.flag not in seen:
                seen.add(option.flag)
                parser.add_argument(
                    option.flag, type=option.type, default=option.default, choices=option.choices,
                    help=f"[{spec.name}] {option.help}",
                )  # fmt: skip
    return parser


def _selected(requested: list[str]) -> list[str]:
    names = [n.strip() for item in requested for n in item.split(",") if n.strip()]
    if "all" in names:
        names = [*BUILTIN_METRICS, *(n for n in names if n != "all")]
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise SystemExit(f"--metric: unknown {unknown}; choose from {sorted(METRICS)} or 'all'")
    return list(dict.fromkeys(names))


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Load, evaluate the selected metrics and return ``{"metrics", "per_sample", "config", "seconds"}``."""
    selected = _selected(args.metric)
    if args.reference is None:
        needing = [n for n in selected if METRICS[n].needs_reference]
        if needing:
            raise SystemExit(f"--reference is required for metrics {needing}")
    if args.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            device = torch.device(args.device)
        except RuntimeError as exc:
            raise SystemExit(f"--device: expected auto, cpu or cuda[:N], got {args.device!r}") from exc
        if device.type == "cuda" and not torch.cuda.is_available():
            raise SystemExit("--device cuda: no CUDA device is available here (use --device auto or cpu)")
    generated = load_scans(args.generated, "--generated", args.layout)
    reference = load_scans(args.reference, "--reference", args.layout) if args.reference else None
    gen_pts = subsample(generated, args.num_points, args.sampling, args.seed, "--generated")
    ref_pts = subsample(reference, args.num_points, args.sampling, args.seed + 1, "--reference") if reference else None
    if ref_pts is not None:
        gen_pts, ref_pts = normalize_sets(gen_pts, ref_pts, args.normalize)
    elif args.normalize != "none":
        raise SystemExit("--normalize needs --reference (the frame comes from the reference set)")
    inputs = EvalInputs(
        generated=generated,
        reference=reference,
        generated_points=gen_pts.to(device),
        reference_points=None if ref_pts is None else ref_pts.to(device),
        pairs=pair_scans(generated, reference) if reference else None,
        unit="mm" if args.normalize == "none" else "normalised",
        device=device,
        progress=not args.no_progress,
    )
    summary: dict[str, float] = {}
    per_sample: dict[str, Any] = {}
    timings: dict[str, float] = {}
    for name in selected:
        spec = METRICS[name]
        start = time.perf_counter()
        try:
            out: EvalOutput = spec.fn(inputs, **{o.dest: getattr(args, o.dest) for o in spec.options})
        except ValueError as exc:
            raise SystemExit(f"--metric {name}: {exc}") from exc
        timings[name] = time.perf_counter() - start
        summary.update({k: v for k, v in out.summary.items() if k not in summary})
        if out.per_sample:
            per_sample[name] = out.per_sample
    config = {k: v for k, v in vars(args).items()}
    config.update(metric=selected, device=str(device), num_generated=len(generated), num_reference=len(reference or []))
    return {"metrics": summary, "per_sample": per_sample, "config": config, "seconds": timings}


def format_table(metrics: dict[str, float]) -> str:
    """Two aligned columns: metric name (with unit) and value."""
    width = max(len(k) for k in metrics) if metrics else 10
    lines = [f"{'metric':<{width}}  value", f"{'-' * width}  {'-' * 12}"]
    lines += [f"{k:<{width}}  {v:.6g}" for k, v in metrics.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    argv = sys.argv[1:] if argv is None else argv
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--plugin", action="append", default=[])
    pre.add_argument("--metric", nargs="+", default=[])
    pre.add_argument("-h", "--help", action="store_true")
    known = pre.parse_known_args(argv)[0]
    requested = {n.strip() for item in known.metric for n in item.split(",")} - {"all", ""}
    # Plugin modules can be slow to import (a Lightning checkpoint loader); load them only when asked for.
    load_plugins(known.plugin, builtin_plugins=known.help or not requested <= set(BUILTIN_METRICS))
    args = build_parser().parse_args(argv)
    result = run(args)
    print(format_table(result["metrics"]))
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))
        print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
