"""Evaluate generated back scans against reference scans: ``python -m pcdiff.eval``.

Examples::

    python -m pcdiff.eval --metric chamfer emd fscore --generated outputs/generated --reference data/test
    python -m pcdiff.eval --metric all --generated gen.npz --reference ref.pt --out results.json
    python -m pcdiff.eval --metric spine --generated outputs/generated   # ESL stored with each scan

``--generated`` / ``--reference`` are folders of scans in any layout :func:`pcdiff.data.io.read_dataset`
reads, or ``.npz`` / ``.pt`` / ``.npy`` files holding an (S, N, 3) array (key ``points``, or the only
array), optionally with an (S, L, 3) ``esl`` array (the requested spinal lines) and an (S,) ``names``
array (subject names).

Points: the cloud metrics use the clouds as given when every scan of both sets has the same number of
points (e.g. pcdiff's own (S, 1024, 3) output); otherwise, or when ``--num-points`` is given, each
scan is resampled to N points (``--sampling``, fixed seed; N = ``--num-points``, else the smallest
count up to 2048). ``spine`` and ``spine_estimator`` read the full scans. The output says which was done.

Pairing: paired metrics (chamfer, emd, fscore) pair generated and reference scans by subject name. A
name on one side only, or an array file without ``names``, is an error listing the unmatched names;
``--pair-by-position`` pairs scan i with scan i instead (equal counts needed), and the output says so.
Set metrics (mmd, cov, 1nna, jsd) compare the two sets as wholes and need no pairing.
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
#: N of the resampling when point counts differ and --num-points is not given (or the smallest count, if less)
DEFAULT_RESAMPLE_POINTS = 2048


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (a usage error otherwise)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def load_scans(path: str | Path, option: str, layout: str = "auto") -> tuple[list[BackScan], bool]:
    """Read a folder of scans or an array file into BackScans (mm); errors name the ``option``.

    Returns:
        (scans, named): ``named`` is False for an array file without a ``names`` array, whose scans are
        called ``<file stem>_<index>`` (placeholders that cannot pair with subject names).
    """
    path = Path(path)
    if not path.exists():
        raise SystemExit(f"{option}: {path} does not exist")
    if path.is_dir():
        from pcdiff.data.readers.dataset import read_dataset

        try:
            return list(read_dataset(path, layout=layout)), True
        except FileNotFoundError as exc:  # no recognisable scan in the folder
            raise SystemExit(f"{option}: no scans found in {path} ({exc})") from exc
        except ValueError as exc:
            raise SystemExit(f"{option}: could not read scans from {path}: {exc}") from exc
    if path.suffix.lower() not in ARRAY_SUFFIXES:
        raise SystemExit(f"{option}: {path} is neither a folder of scans nor one of {', '.join(ARRAY_SUFFIXES)}")
    points, esl, names = _read_arrays(path, option)
    scans = [
        BackScan(name=names[i] if names else f"{path.stem}_{i:04d}", points=p, esl=None if esl is None else esl[i])
        for i, p in enumerate(points)
    ]
    return scans, names is not None


def _read_arrays(path: Path, option: str) -> tuple[np.ndarray, np.ndarray | None, list[str] | None]:
    """``(points (S, N, 3) float32 mm, esl (S, L, 3) or None, names or None)`` of an array file, without pickle."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        elif suffix == ".npy":
            arrays = {"points": np.load(path, allow_pickle=False)}
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
            arrays = obj if isinstance(obj, dict) else {"points": obj}
            arrays = {k: v.numpy() if isinstance(v, torch.Tensor) else np.asarray(v) for k, v in arrays.items()}
    except Exception as exc:  # noqa: BLE001 (numpy / torch raise many kinds on damaged or foreign bytes)
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]
        raise SystemExit(f"{option}: {path}: unreadable or corrupt {suffix} file ({reason})") from exc
    candidates = [k for k in arrays if k not in ("esl", "names")]
    if "points" in arrays:
        points = arrays["points"]
    elif len(candidates) == 1:
        points = arrays[candidates[0]]
    else:
        raise SystemExit(f"{option}: {path} holds arrays {sorted(arrays)}; expected one named 'points' (S, N, 3)")
    points = np.asarray(points, dtype=np.float32)
    if points.ndim != 3 or points.shape[-1] != 3 or len(points) == 0:
        raise SystemExit(f"{option}: {path}: expected points of shape (S, N, 3), got {points.shape}")
    esl = arrays.get("esl")
    if esl is not None and (np.ndim(esl) != 3 or np.shape(esl)[0] != len(points) or np.shape(esl)[-1] != 3):
        raise SystemExit(f"{option}: {path}: expected 'esl' of shape (S={len(points)}, L, 3), got {np.shape(esl)}")
    names = None
    if "names" in arrays:
        raw = np.asarray(arrays["names"])
        if raw.shape != (len(points),) or raw.dtype.kind not in "US":
            raise SystemExit(f"{option}: {path}: expected 'names' as {len(points)} strings (S,), got {raw.dtype} {raw.shape}")
        names = [str(n) for n in raw.astype(str)]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise SystemExit(f"{option}: {path}: subject names occur more than once: {duplicates}")
    return points, esl, names


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


def as_given(scans: list[BackScan]) -> torch.Tensor:
    """(S, N, 3) float32: the scans' own points, unchanged (all scans must hold N points)."""
    return torch.from_numpy(np.stack([np.asarray(s.points, dtype=np.float32) for s in scans]))


def _listed(names: list[str], limit: int = 20) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return f"[{shown}{f', ... ({len(names) - limit} more)' if len(names) > limit else ''}]"


def pair_scans(
    generated: list[BackScan], reference: list[BackScan], by_position: bool = False
) -> list[tuple[int, int]]:
    """(generated index, reference index) pairs: by subject name, or scan i with scan i (``by_position``).

    Raises:
        ValueError: by name: a name occurs on one side only (all such names are listed) or twice on one
            side; by position: the two sets differ in size.
    """
    if by_position:
        if len(generated) != len(reference):
            raise ValueError(
                f"--pair-by-position: {len(generated)} generated vs {len(reference)} reference scans; the counts must match"
            )
        return [(i, i) for i in range(len(generated))]
    for label, scans in (("generated", generated), ("reference", reference)):
        seen: set[str] = set()
        duplicates = sorted({s.name for s in scans if s.name in seen or seen.add(s.name)})
        if duplicates:
            raise ValueError(f"{label} subject names occur more than once: {_listed(duplicates)}")
    ref_index = {s.name: i for i, s in enumerate(reference)}
    gen_names = {s.name for s in generated}
    only_generated = [s.name for s in generated if s.name not in ref_index]
    only_reference = [s.name for s in reference if s.name not in gen_names]
    if only_generated or only_reference:
        raise ValueError(
            "paired metrics pair scans by subject name, and some have no partner: "
            f"{len(only_generated)} generated only {_listed(only_generated)}, "
            f"{len(only_reference)} reference only {_listed(only_reference)}; "
            "pass --pair-by-position to pair scan i with scan i instead"
        )
    return [(i, ref_index[s.name]) for i, s in enumerate(generated)]


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
    parser.add_argument("--num-points", type=positive_int, default=None,
                        help="resample every scan to this many points for the cloud metrics (default: the clouds "
                             f"as given when all hold the same count, else the smallest count up to {DEFAULT_RESAMPLE_POINTS})")  # fmt: skip
    parser.add_argument("--sampling", choices=("random", "fps"), default="random", help="how resampled points are drawn")
    parser.add_argument("--pair-by-position", action="store_true",
                        help="paired metrics: pair generated scan i with reference scan i, ignoring names (default: by name)")  # fmt: skip
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
    if args.reference is None and args.normalize != "none":
        raise SystemExit("--normalize needs --reference (the frame comes from the reference set)")
    generated, gen_named = load_scans(args.generated, "--generated", args.layout)
    reference, ref_named = load_scans(args.reference, "--reference", args.layout) if args.reference else (None, True)
    notes: list[str] = []
    pairs, pairing_error = None, None
    if reference is not None:
        pairs, pairing_error, note = _pairing(generated, reference, gen_named, ref_named, args)
        paired = [n for n in selected if METRICS[n].paired]
        if pairing_error and paired:
            raise SystemExit(f"--metric {' '.join(paired)}: {pairing_error}")
        notes += [note] if note else []
    gen_pts, ref_pts, note = _points(generated, reference, [n for n in selected if METRICS[n].uses_points], args)
    notes.append(note)
    if ref_pts is not None and ref_pts.shape[1]:
        gen_pts, ref_pts = normalize_sets(gen_pts, ref_pts, args.normalize)
    inputs = EvalInputs(
        generated=generated,
        reference=reference,
        generated_points=gen_pts.to(device),
        reference_points=None if ref_pts is None else ref_pts.to(device),
        pairs=pairs,
        unit="mm" if args.normalize == "none" else "normalised",
        device=device,
        progress=not args.no_progress,
        pairing_error=pairing_error,
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
        notes += [f"{name}: {note}" for note in out.notes]
    config = {k: v for k, v in vars(args).items()}
    config.update(metric=selected, device=str(device), num_generated=len(generated), num_reference=len(reference or []),
                  points_per_scan=int(gen_pts.shape[1]) or None,
                  pairing=None if pairs is None else ("position" if args.pair_by_position else "name"))  # fmt: skip
    return {"metrics": summary, "per_sample": per_sample, "config": config, "seconds": timings, "notes": notes}


def _pairing(
    generated: list[BackScan], reference: list[BackScan], gen_named: bool, ref_named: bool, args: argparse.Namespace
) -> tuple[list[tuple[int, int]] | None, str | None, str | None]:
    """(pairs, why there are none, a note for the output) of the two sets under ``--pair-by-position``."""
    if args.pair_by_position:
        try:
            pairs = pair_scans(generated, reference, by_position=True)
        except ValueError as exc:
            return None, str(exc), None
        note = f"pairs: BY POSITION (--pair-by-position): generated scan i with reference scan i, names not checked ({len(pairs)} pairs)"
        return pairs, None, note
    unnamed = [f"{opt} {path}" for opt, path, named in
               (("--generated", args.generated, gen_named), ("--reference", args.reference, ref_named)) if not named]  # fmt: skip
    if unnamed:
        return None, (
            f"{' and '.join(unnamed)} {'stores' if len(unnamed) == 1 else 'store'} no subject names "
            "(add a 'names' array of shape (S,)), so scans cannot "
            "pair by name; pass --pair-by-position to pair scan i with scan i"
        ), None
    try:
        pairs = pair_scans(generated, reference)
    except ValueError as exc:
        return None, str(exc), None
    return pairs, None, f"pairs: by subject name ({len(pairs)} pairs)"


def _points(
    generated: list[BackScan], reference: list[BackScan] | None, users: list[str], args: argparse.Namespace
) -> tuple[torch.Tensor, torch.Tensor | None, str]:
    """(generated (G, N, 3), reference (R, N, 3) or None, a note): the clouds the ``users`` metrics read,
    as given or resampled (see the module docstring); (G, 0, 3) when no metric reads them."""
    if not users:
        empty = lambda scans: torch.zeros(len(scans), 0, 3)  # noqa: E731
        return empty(generated), None if reference is None else empty(reference), "points: full scans (no selected metric resamples)"
    counts = sorted({len(s.points) for s in [*generated, *(reference or [])]})
    if len(counts) == 1 and args.num_points in (None, counts[0]):
        return as_given(generated), None if reference is None else as_given(reference), f"points: as given ({counts[0]} per scan)"
    if args.num_points is not None:
        n, why = args.num_points, "--num-points"
    else:
        n = min(counts[0], DEFAULT_RESAMPLE_POINTS)
        why = f"point counts differ ({counts[0]}-{counts[-1]}); --num-points sets N"
    gen = subsample(generated, n, args.sampling, args.seed, "--generated")
    ref = None if reference is None else subsample(reference, n, args.sampling, args.seed + 1, "--reference")
    return gen, ref, f"points: resampled to {n} per scan ({args.sampling}, seed {args.seed}) for {' '.join(users)}: {why}"


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
    for note in result["notes"]:
        print(note)
    print(format_table(result["metrics"]))
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))
        print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
