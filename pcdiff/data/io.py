"""Read and write back scans: the 4D-Spine layout, a simple generic layout, and PCdare.

4D-Spine layout (read recursively; files paired by folder and name prefix)::

    <root>/.../<subject folder>/<name>processed.ply    back surface (mm), ascii or binary,
                                                       optionally with normals and colours
    <root>/.../<subject folder>/<name>processed.json   {"dataset", "id", "specialPts": {C7, DL, DR[, DM]},
                                                        "esl": {pipeline: [[x, y, z], ...]},
                                                        "isl": {pipeline: [[x, y, z], ...]}, ...}

``age``, ``gender``, ``status``, ``pipelineSteps`` and any other keys are optional and kept in
``BackScan.meta`` untouched. ``DM`` is (DL + DR) / 2 when absent. The writer produces
``<root>/<name>/<name>_processed.{ply,json}``, which the reader reads back as subject ``<name>``.

Generic layout: a scan ``<stem>.ply|.pcd|.xyz|.npz`` with its spine beside it in ``<stem>.csv``,
``<stem>.json``, ``<stem>_spine.csv`` or ``<stem>_spine.json``:

* CSV: columns ``x,y,z`` (header optional), plus an optional ``line`` column (``esl``/``isl``,
  default ``esl``) when both lines are in one file.
* JSON: the 4D-Spine keys above, or ``{"esl": [[x, y, z], ...], "isl": [...], "specialPts": {...}}``.
* An ``.npz`` scan holds ``points`` (N, 3) and optionally ``normals``, ``colors``, ``esl``, ``isl``
  (then no spine file is needed).

Every scan is checked on load (:mod:`pcdiff.data.units`): metres are converted to mm and a y-down
camera frame is rotated back, both with a :class:`~pcdiff.data.units.UnitConversionWarning`;
ambiguous cases, unreadable/empty files, NaN/inf, a JSON without a spine, a scan without its JSON
(or the reverse) and too few points raise :class:`InvalidScanError` naming the file.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from pcdiff.data.sample import LANDMARK_NAMES, BackScan
from pcdiff.data.units import UnitsAxesError, check_lines_on_surface, ensure_frame

logger = logging.getLogger(__name__)

#: Fewer scan points than this is refused (a crop gone wrong, or a header-only file).
MIN_POINTS = 100
#: Preferred spinal-line pipelines, in order, when a JSON holds several.
PIPELINE_PREFERENCE = ("pcdicomapp", "formetric")
POINT_CLOUD_SUFFIXES = (".ply", ".pcd", ".xyz", ".npz")
_PROCESSED = re.compile(r"^(?P<name>.*?)[_-]?processed$", re.IGNORECASE)
_RESERVED_JSON_KEYS = ("specialPts", "esl", "isl")


class InvalidScanError(ValueError):
    """A scan or its metadata cannot be used; the message starts with the offending file."""

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")

    def __reduce__(self):  # keep (path, reason) through pickling (DataLoader workers, multiprocessing)
        return (type(self), (self.path, self.reason))


class ScanList(list):
    """A ``list[BackScan]`` that also records what was skipped: ``skipped`` = [(path, reason), ...]."""

    def __init__(self, scans: Iterable[BackScan] = (), skipped: list[tuple[Path, str]] | None = None) -> None:
        super().__init__(scans)
        self.skipped: list[tuple[Path, str]] = list(skipped or [])


# --------------------------------------------------------------------------------------------
# Point clouds
# --------------------------------------------------------------------------------------------


_PLY_TYPE_SIZES = {
    "char": 1, "uchar": 1, "int8": 1, "uint8": 1,
    "short": 2, "ushort": 2, "int16": 2, "uint16": 2,
    "int": 4, "uint": 4, "int32": 4, "uint32": 4, "float": 4, "float32": 4,
    "double": 8, "float64": 8,
}


def _check_ply_size(path: Path) -> None:
    """Refuse a PLY whose data is shorter than its header declares (Open3D reads it anyway).

    Binary: the byte size of every element is computed from the header (lists are walked), ASCII: the
    number of data lines (and the values of the last vertex line) are counted.

    Raises:
        InvalidScanError: no valid header, or ``truncated: header declares N vertices, file holds M``.
    """
    with open(path, "rb") as f:
        data = f.read()
    end = data.find(b"end_header")
    if not data.startswith(b"ply") or end < 0:
        raise InvalidScanError(path, "unreadable or empty point cloud (not a PLY file, or its header is cut short: no 'ply' ... 'end_header')")
    body_start = data.find(b"\n", end)
    if body_start < 0:
        raise InvalidScanError(path, "unreadable or empty point cloud (truncated header: nothing after 'end_header')")
    body_start += 1
    fmt = None
    elements: list[tuple[str, int, list[tuple[str | None, str]]]] = []  # name, count, [(list count type, type)]
    for raw in data[:end].decode("ascii", errors="replace").splitlines():
        words = raw.split()
        if not words:
            continue
        try:
            if words[0] == "format":
                fmt = words[1]
            elif words[0] == "element":
                elements.append((words[1], int(words[2]), []))
            elif words[0] == "property" and elements:
                if words[1] == "list":
                    elements[-1][2].append((words[2], words[3]))
                else:
                    elements[-1][2].append((None, words[1]))
        except (IndexError, ValueError) as exc:
            raise InvalidScanError(path, f"unreadable or empty point cloud (malformed PLY header line {raw!r})") from exc
    vertex = next((i for i, (name, _, _) in enumerate(elements) if name == "vertex"), None)
    if fmt not in ("ascii", "binary_little_endian", "binary_big_endian") or vertex is None:
        raise InvalidScanError(path, f"unreadable or empty point cloud (PLY header without a known format and a vertex element; format {fmt!r})")
    for _, _, props in elements:
        for count_type, value_type in props:
            if value_type not in _PLY_TYPE_SIZES or (count_type is not None and count_type not in _PLY_TYPE_SIZES):
                raise InvalidScanError(path, f"unreadable or empty point cloud (PLY header has an unknown property type in {props})")
    declared = elements[vertex][1]

    def truncated(held: int, what: str = "") -> InvalidScanError:
        return InvalidScanError(path, f"truncated: header declares {declared} vertices, file holds {held}{what}")

    if fmt == "ascii":
        lines = [ln for ln in data[body_start:].split(b"\n") if ln.strip()]
        before = sum(count for _, count, _ in elements[:vertex])
        held = max(0, min(declared, len(lines) - before))
        if held < declared:
            raise truncated(held)
        props = elements[vertex][2]
        if declared and all(c is None for c, _ in props) and len(lines[before + declared - 1].split()) < len(props):
            raise truncated(declared - 1, " (the last vertex line is cut short)")
        needed = sum(count for _, count, _ in elements)
        if len(lines) < needed:
            raise truncated(declared, f" but only {len(lines) - before - declared} of the "
                                      f"{needed - before - declared} lines of the elements after it")
        return
    order = "<" if fmt == "binary_little_endian" else ">"
    size, offset = len(data), body_start
    for index, (name, count, props) in enumerate(elements):
        if all(c is None for c, _ in props):
            row = sum(_PLY_TYPE_SIZES[t] for _, t in props)
            need = offset + count * row
            if need > size:
                if index == vertex:
                    raise truncated((size - offset) // row if row else 0)
                if index < vertex:
                    raise truncated(0, f" (element {name!r} before it is cut short)")
                raise truncated(declared, f" but element {name!r} is cut short")
            offset = need
            continue
        # an element with list properties: walk its rows
        for held in range(count):
            for count_type, value_type in props:
                if count_type is None:
                    offset += _PLY_TYPE_SIZES[value_type]
                    continue
                width = _PLY_TYPE_SIZES[count_type]
                if offset + width > size:
                    offset = size + 1
                    break
                n = int.from_bytes(data[offset:offset + width], "little" if order == "<" else "big")
                offset += width + n * _PLY_TYPE_SIZES[value_type]
            if offset > size:
                if index == vertex:
                    raise truncated(held)
                raise truncated(declared if index > vertex else 0, f" but element {name!r} is cut short")


def read_point_cloud(path: Path) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Read a point cloud with Open3D (``.ply``/``.pcd``/``.xyz``) or numpy (``.npz``).

    Returns:
        points (N, 3) float32, normals (N, 3) float32 or None, colours (N, 3) float32 in [0, 1] or None.
        Units are whatever the file holds (checked later).

    Raises:
        InvalidScanError: missing, unreadable or empty file, or NaN/inf coordinates.
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidScanError(path, "file not found")
    if path.suffix.lower() == ".npz":
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: np.asarray(data[k]) for k in data.files}
        except Exception as exc:  # zip/format errors come in many types
            raise InvalidScanError(path, f"unreadable npz ({exc})") from exc
        if "points" not in arrays:
            raise InvalidScanError(path, f"npz has no 'points' array (keys: {sorted(arrays)})")
        points, normals, colors = arrays["points"], arrays.get("normals"), arrays.get("colors")
    elif path.suffix.lower() in (".ply", ".pcd", ".xyz"):
        import open3d as o3d

        if path.stat().st_size == 0:
            raise InvalidScanError(path, "empty file")
        if path.suffix.lower() == ".ply":
            _check_ply_size(path)
        # Open3D prints a warning and returns an empty cloud on a parse error instead of raising.
        pcd = o3d.io.read_point_cloud(str(path), remove_nan_points=False, remove_infinite_points=False)
        points = np.asarray(pcd.points)
        normals = np.asarray(pcd.normals) if pcd.has_normals() else None
        colors = np.asarray(pcd.colors) if pcd.has_colors() else None
        if len(points) == 0:
            raise InvalidScanError(path, "unreadable or empty point cloud (no points parsed)")
    else:
        raise InvalidScanError(path, f"unsupported scan format {path.suffix!r}; expected one of {POINT_CLOUD_SUFFIXES}")
    points = np.asarray(points, dtype=np.float32)
    if points.ndim != 2 or points.shape[1] != 3 or len(points) == 0:
        raise InvalidScanError(path, f"expected points of shape (N, 3), got {points.shape}")
    bad = ~np.isfinite(points).all(axis=1)
    if bad.any():
        raise InvalidScanError(path, f"{int(bad.sum())} of {len(points)} points have NaN/inf coordinates")
    for label, arr in (("normals", normals), ("colors", colors)):
        if arr is not None and np.shape(arr) != points.shape:
            raise InvalidScanError(path, f"{label} of shape {np.shape(arr)} do not match points {points.shape}")
    normals = None if normals is None else np.asarray(normals, dtype=np.float32)
    colors = None if colors is None else np.asarray(colors, dtype=np.float32)
    return points, normals, colors


def write_point_cloud(
    path: Path,
    points: np.ndarray,
    normals: np.ndarray | None = None,
    colors: np.ndarray | None = None,
    binary: bool = True,
) -> None:
    """Write (N, 3) points (+ optional normals, colours in [0, 1]) with Open3D.

    Open3D stores PLY coordinates as float64, so float32 input round-trips exactly; colours are
    stored as 8-bit, so they round-trip to within 1/255. ASCII PLY is written here rather than by
    Open3D, whose ASCII writer keeps only 6 significant digits (not a float32 round trip).
    """
    if not binary and Path(path).suffix.lower() == ".ply":
        _write_ascii_ply(Path(path), points, normals, colors)
        return
    import open3d as o3d

    pcd = o3d.geometry.PointCloud()
    pcd.points = o3d.utility.Vector3dVector(np.asarray(points, dtype=np.float64))
    if normals is not None:
        pcd.normals = o3d.utility.Vector3dVector(np.asarray(normals, dtype=np.float64))
    if colors is not None:
        pcd.colors = o3d.utility.Vector3dVector(np.clip(np.asarray(colors, dtype=np.float64), 0.0, 1.0))
    if not o3d.io.write_point_cloud(str(path), pcd, write_ascii=not binary):
        raise OSError(f"{path}: Open3D could not write the point cloud")


def _write_ascii_ply(path: Path, points: np.ndarray, normals: np.ndarray | None, colors: np.ndarray | None) -> None:
    """ASCII PLY with float32 coordinates printed to 9 significant digits (exact for float32)."""
    cols = [np.asarray(points, dtype=np.float32)]
    props = ["property float x", "property float y", "property float z"]
    fmt = ["%.9g"] * 3
    if normals is not None:
        cols.append(np.asarray(normals, dtype=np.float32))
        props += ["property float nx", "property float ny", "property float nz"]
        fmt += ["%.9g"] * 3
    if colors is not None:
        cols.append(np.round(np.clip(np.asarray(colors, dtype=np.float64), 0, 1) * 255))
        props += ["property uchar red", "property uchar green", "property uchar blue"]
        fmt += ["%d"] * 3
    header = "\n".join(["ply", "format ascii 1.0", f"element vertex {len(cols[0])}", *props, "end_header"])
    np.savetxt(path, np.concatenate([c.astype(np.float64) for c in cols], axis=1), fmt=fmt, header=header,
               comments="")


# --------------------------------------------------------------------------------------------
# Spine metadata
# --------------------------------------------------------------------------------------------


def _as_line(value: Any, path: Path, key: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidScanError(path, f"'{key}' is not a list of [x, y, z] points") from exc
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise InvalidScanError(path, f"'{key}' must be a list of [x, y, z] points, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise InvalidScanError(path, f"'{key}' has NaN/inf coordinates")
    return arr


def _pick_line(value: Any, path: Path, key: str, pipeline: str | None) -> tuple[np.ndarray | None, str | None]:
    """Return (line, pipeline key) from a ``{pipeline: points}`` dict or a bare list of points."""
    if value is None:
        return None, None
    if isinstance(value, dict):
        if not value:
            return None, None
        if pipeline is not None:
            if pipeline not in value:
                return None, None  # parse_spine_json refuses when no line has it
            chosen = pipeline
        else:
            chosen = next((p for p in PIPELINE_PREFERENCE if p in value), next(iter(value)))
        line = _as_line(value[chosen], path, f"{key}.{chosen}")
        return (line if len(line) else None), chosen
    line = _as_line(value, path, key)
    return (line if len(line) else None), None


def parse_spine_json(data: dict[str, Any], path: Path, pipeline: str | None = None) -> dict[str, Any]:
    """Turn a 4D-Spine JSON dict into BackScan keyword arguments (esl, isl, landmarks, meta, pipeline).

    Raises:
        InvalidScanError: not a JSON object, malformed lines/landmarks, or no spinal line at all.
    """
    if not isinstance(data, dict):
        raise InvalidScanError(path, f"expected a JSON object, got {type(data).__name__}")
    esl, esl_pipe = _pick_line(data.get("esl"), path, "esl", pipeline)
    isl, isl_pipe = _pick_line(data.get("isl"), path, "isl", pipeline)
    if pipeline is not None and esl is None and isl is None:
        have = sorted({k for key in ("esl", "isl") if isinstance(data.get(key), dict) for k in data[key]})
        if have:
            raise InvalidScanError(path, f"no spinal line has pipeline {pipeline!r} (pipelines present: {have})")
    if (esl is None or len(esl) < 2) and (isl is None or len(isl) < 2):
        raise InvalidScanError(path, "no spinal line: expected 'esl' and/or 'isl' with at least 2 points each")
    for key, line in (("esl", esl), ("isl", isl)):
        if line is not None and len(line) < 2:  # beside a valid other line: refused here, not later in the data module
            raise InvalidScanError(path, f"'{key}' has {len(line)} point; a spinal line needs at least 2")
    landmarks = {}
    special = data.get("specialPts") or {}
    if not isinstance(special, dict):
        raise InvalidScanError(path, "'specialPts' must be an object of name -> [x, y, z]")
    for name, value in special.items():
        arr = np.asarray(value, dtype=np.float32).reshape(-1)
        if arr.shape != (3,) or not np.isfinite(arr).all():
            raise InvalidScanError(path, f"specialPts.{name} must be a finite [x, y, z], got {value!r}")
        landmarks[name] = arr
    meta = {k: v for k, v in data.items() if k not in _RESERVED_JSON_KEYS}
    return dict(
        esl=esl,
        isl=isl,
        landmarks=landmarks,
        meta=meta,
        pipeline=esl_pipe or isl_pipe or "pcdicomapp",
    )


def read_json(path: Path) -> Any:
    if not path.is_file():
        raise InvalidScanError(path, "file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidScanError(path, f"invalid JSON ({exc})") from exc


def _read_spine_csv(path: Path) -> dict[str, Any]:
    """CSV with columns x, y, z (header optional) and an optional ``line`` column (esl/isl)."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
    if not rows:
        raise InvalidScanError(path, "empty spine CSV")
    header = [c.strip().lower() for c in rows[0]]
    if {"x", "y", "z"} <= set(header):
        body = rows[1:]
        ix, iy, iz = header.index("x"), header.index("y"), header.index("z")
        il = header.index("line") if "line" in header else None
    else:
        body, (ix, iy, iz), il = rows, (0, 1, 2), None
    lines: dict[str, list[list[float]]] = {"esl": [], "isl": []}
    try:
        for r in body:
            which = r[il].strip().lower() if il is not None else "esl"
            if which not in lines:
                raise InvalidScanError(path, f"'line' column must be 'esl' or 'isl', got {which!r}")
            lines[which].append([float(r[ix]), float(r[iy]), float(r[iz])])
    except (ValueError, IndexError) as exc:
        raise InvalidScanError(path, f"spine CSV rows must hold numeric x, y, z ({exc})") from exc
    return {k: v for k, v in lines.items() if v}


# --------------------------------------------------------------------------------------------
# Subjects
# --------------------------------------------------------------------------------------------


def _finish(scan: BackScan, path: Path, min_points: int) -> BackScan:
    """Common checks for every reader: point count, units/axes, lines near the surface."""
    if len(scan.points) < min_points:
        raise InvalidScanError(path, f"too few points: {len(scan.points)} < {min_points}")
    try:
        scan = ensure_frame(scan, str(path))
        check_lines_on_surface(scan)
    except UnitsAxesError as exc:
        raise InvalidScanError(path, str(exc)) from exc
    return scan


def _processed_name(path: Path) -> str | None:
    m = _PROCESSED.match(path.stem)
    return None if m is None else m.group("name")


def _subject_files(folder_or_json: Path) -> tuple[Path, Path]:
    """Resolve a subject folder or one of its files to its (ply, json) pair."""
    p = Path(folder_or_json)
    if p.is_dir():
        jsons = sorted(p.glob("*processed.json"))
        plys = sorted(p.glob("*processed.ply"))
        if len(jsons) != 1 or len(plys) != 1:
            raise InvalidScanError(
                p,
                f"expected one '<name>processed.ply' and one '<name>processed.json', found "
                f"{[f.name for f in plys]} and {[f.name for f in jsons]}",
            )
        return plys[0], jsons[0]
    if p.suffix.lower() == ".json":
        ply = p.with_suffix(".ply")
        if not ply.is_file():
            raise InvalidScanError(p, f"no scan pairs with this JSON (expected {ply.name})")
        return ply, p
    if p.suffix.lower() == ".ply":
        js = p.with_suffix(".json")
        if not js.is_file():
            raise InvalidScanError(p, f"no JSON pairs with this scan (expected {js.name})")
        return p, js
    raise InvalidScanError(p, "expected a subject folder, a *processed.json or a *processed.ply")


def read_subject(
    folder_or_json: Path, pipeline: str | None = None, min_points: int = MIN_POINTS, name: str | None = None
) -> BackScan:
    """Read one subject in the 4D-Spine layout.

    Args:
        folder_or_json: the subject folder (holding one ``<name>processed.ply`` + ``.json``
            pair) or either file of the pair.
        pipeline: spinal-line pipeline key to use (default: ``pcdicomapp``, else ``formetric``,
            else the first one in the file).
        min_points: refuse scans with fewer points.
        name: subject key; default the file prefix before ``processed`` (the folder name when empty).

    Returns:
        a :class:`BackScan` in mm, y up, z towards the scanner.

    Raises:
        InvalidScanError: see the module docstring.
    """
    ply, js = _subject_files(Path(folder_or_json))
    kwargs = parse_spine_json(read_json(js), js, pipeline)
    points, normals, colors = read_point_cloud(ply)
    if name is None:
        name = _processed_name(js) or js.parent.name
    scan = BackScan(name=name, points=points, normals=normals, colors=colors, **kwargs)
    scan.meta.setdefault("source", str(js))
    return _finish(scan, ply, min_points)


def read_generic(scan_path: Path, min_points: int = MIN_POINTS, name: str | None = None) -> BackScan:
    """Read one scan of the generic layout (see the module docstring)."""
    scan_path = Path(scan_path)
    points, normals, colors = read_point_cloud(scan_path)
    kwargs: dict[str, Any] = dict(landmarks={}, meta={})
    sidecar = _generic_sidecar(scan_path)
    if sidecar is not None:
        if sidecar.suffix == ".csv":
            data = _read_spine_csv(sidecar)
        else:
            data = read_json(sidecar)
            if isinstance(data, list):
                data = {"esl": data}
        kwargs = parse_spine_json(data, sidecar)
    elif scan_path.suffix.lower() == ".npz":
        with np.load(scan_path, allow_pickle=False) as d:
            data = {k: d[k].tolist() for k in ("esl", "isl") if k in d.files}
            data["specialPts"] = {k: d[k].tolist() for k in LANDMARK_NAMES if k in d.files}
        kwargs = parse_spine_json(data, scan_path)
    else:
        raise InvalidScanError(
            scan_path, f"no spine file beside it (expected {scan_path.stem}.csv, .json, _spine.csv or _spine.json)"
        )
    scan = BackScan(name=name or scan_path.stem, points=points, normals=normals, colors=colors, **kwargs)
    scan.meta.setdefault("source", str(scan_path))
    return _finish(scan, scan_path, min_points)


def _generic_sidecar(scan_path: Path) -> Path | None:
    for suffix in (".csv", ".json", "_spine.csv", "_spine.json"):
        candidate = scan_path.with_name(scan_path.stem + suffix)
        if candidate.is_file():
            return candidate
    return None


# --------------------------------------------------------------------------------------------
# Datasets
# --------------------------------------------------------------------------------------------


def detect_layout(root: Path) -> str:
    """Return ``"pcdare"``, ``"4dspine"`` or ``"generic"`` for a data folder.

    Raises:
        FileNotFoundError: ``root`` is not a folder, or holds no recognisable scan.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data folder {root} " + ("is a file, not a folder" if root.exists() else "does not exist"))
    if (root / "CobbAngles.csv").is_file() and (root / "Upright").is_dir():
        return "pcdare"
    if next(root.rglob("*processed.json"), None) is not None or next(root.rglob("*processed.ply"), None):
        return "4dspine"
    if any(p.suffix.lower() in POINT_CLOUD_SUFFIXES for p in root.rglob("*") if p.is_file()):
        return "generic"
    raise FileNotFoundError(
        f"{root}: no back scans found (expected the 4D-Spine layout '*processed.ply' + '*processed.json', "
        f"a generic layout {POINT_CLOUD_SUFFIXES} + spine .csv/.json, or a PCdare folder with CobbAngles.csv)"
    )


def _4dspine_items(root: Path) -> list[tuple[Path, Any]]:
    """(path to report, callable reading it) per subject; unpaired files become failing items."""
    items: list[tuple[Path, Any]] = []
    by_folder: dict[Path, dict[str, dict[str, Path]]] = {}
    for f in sorted(root.rglob("*processed.*")):
        if f.suffix.lower() in (".ply", ".json") and f.is_file():
            by_folder.setdefault(f.parent, {}).setdefault(f.stem, {})[f.suffix.lower()] = f
    for folder, stems in sorted(by_folder.items()):
        for stem, files in sorted(stems.items()):
            if ".ply" in files and ".json" in files:
                items.append((files[".json"], files[".json"]))
            else:
                present = next(iter(files.values()))
                missing = ".json" if ".json" not in files else ".ply"
                items.append((present, InvalidScanError(present, f"scan and JSON do not pair: no {stem}{missing}")))
    return items


def read_dataset(
    root: Path,
    layout: str = "auto",
    skip_invalid: bool = False,
    min_points: int = MIN_POINTS,
    pipeline: str | None = None,
) -> ScanList:
    """Read every subject under ``root``.

    Args:
        root: data folder.
        layout: ``"auto"`` (detect), ``"4dspine"``, ``"generic"`` or ``"pcdare"``.
        skip_invalid: skip subjects that raise :class:`InvalidScanError` (each logged as a warning,
            with a summary at the end and the list in ``result.skipped``) instead of raising.
        min_points: refuse scans with fewer points.
        pipeline: 4D-Spine spinal-line pipeline key (default: preferred one present).

    Returns:
        a :class:`ScanList` (a list of :class:`BackScan`, sorted by name) with ``skipped``.

    Raises:
        InvalidScanError: the first bad subject, unless ``skip_invalid``.
        ValueError: unknown layout, or nothing readable at all.

    Subject names that collide (the same id in two datasets) are replaced by their folder path
    under ``root`` with ``/`` -> ``__`` (a warning says so).
    """
    root = Path(root)
    if layout == "auto":
        layout = detect_layout(root)
    if layout == "pcdare":
        from pcdiff.data.pcdare import read_pcdare  # lazy: pcdare imports this module

        return read_pcdare(root, skip_invalid=skip_invalid)
    if layout == "4dspine":
        items = [
            (p, job if isinstance(job, Exception) else (lambda j=job: read_subject(j, pipeline, min_points)))
            for p, job in _4dspine_items(root)
        ]
    elif layout == "generic":
        scans = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in POINT_CLOUD_SUFFIXES)
        items = [(p, lambda p=p: read_generic(p, min_points)) for p in scans]
    else:
        raise ValueError(f"unknown layout {layout!r}; expected 'auto', '4dspine', 'generic' or 'pcdare'")
    if not items:
        raise ValueError(f"{root}: no subjects found for layout {layout!r}")

    readers = [job if callable(job) else (lambda e=job: _raise(e)) for _, job in items]
    result = read_all(readers, root, skip_invalid)
    _unique_names(result, root)
    result.sort(key=lambda s: s.name)
    return result


def _raise(exc: Exception) -> BackScan:
    raise exc


def read_all(readers: Iterable[Callable[[], BackScan]], root: Path, skip_invalid: bool) -> ScanList:
    """Call each reader; with ``skip_invalid`` an :class:`InvalidScanError` is logged and recorded in
    ``skipped`` instead of raised. Ends with :func:`report_skipped` (summary; error when nothing was read)."""
    result = ScanList()
    for read in readers:
        try:
            result.append(read())
        except InvalidScanError as exc:
            if not skip_invalid:
                raise
            logger.warning("skipping invalid subject: %s", exc)
            result.skipped.append((exc.path, exc.reason))
    report_skipped(result, root)
    return result


def report_skipped(result: ScanList, root: Path) -> None:
    """Log the end-of-read summary; raise ValueError when nothing at all could be read."""
    total = len(result) + len(result.skipped)
    if result.skipped:
        lines = "\n".join(f"  {p}: {r}" for p, r in result.skipped)
        logger.warning("%s: skipped %d of %d subjects as invalid:\n%s", root, len(result.skipped), total, lines)
    if not result:
        raise ValueError(f"{root}: none of the {total} subjects could be read")


def _unique_names(scans: list[BackScan], root: Path) -> None:
    """Rename scans whose names collide (e.g. the same id in two datasets) to their folder path under
    ``root`` (``balgrist/0042`` -> ``balgrist__0042``), with a warning; refuse if that is still ambiguous."""
    groups: dict[str, list[BackScan]] = {}
    for s in scans:
        groups.setdefault(s.name, []).append(s)
    for name, group in groups.items():
        if len(group) < 2:
            continue
        for s in group:
            folder = Path(s.meta.get("source", "")).parent
            try:
                rel = folder.resolve().relative_to(root.resolve()).as_posix()
            except ValueError:
                rel = ""
            s.name = (rel.replace("/", "__") if rel and rel != "." else name)
            if not s.name.endswith(name):
                s.name = f"{s.name}__{name}"
        logger.warning("subject name %r appears %d times under %s; renamed to %s", name, len(group), root,
                       [s.name for s in group])
    seen: dict[str, str] = {}
    for s in scans:
        src = str(s.meta.get("source", "?"))
        if s.name in seen:
            raise ValueError(
                f"duplicate subject name {s.name!r} ({seen[s.name]} and {src}): subject-wise splits need unique names"
            )
        seen[s.name] = src


# --------------------------------------------------------------------------------------------
# Writer
# --------------------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    """numpy arrays/scalars, dataclasses, paths and tuples -> plain JSON types (floats kept exact)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _jsonable(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value


def write_subject(scan: BackScan, root: Path, binary: bool = True, overwrite: bool = False) -> Path:
    """Write ``scan`` as ``root/<name>/<name>_processed.ply`` + ``_processed.json`` (4D-Spine format).

    Coordinates are written in mm as stored (float32 values round-trip exactly). The spinal lines go
    under ``scan.pipeline``; every ``scan.meta`` key (dataset, id, phantom parameters, cobb, ...) is
    written at the top level of the JSON, except ``source`` (where a read scan came from).

    Args:
        scan: the scan to write.
        root: dataset folder (created if needed).
        binary: binary (default) or ascii PLY.
        overwrite: replace existing files of the same subject; otherwise refuse.

    Returns:
        the subject folder ``root/<name>``.

    Raises:
        FileExistsError: the subject's files exist and ``overwrite`` is False.
    """
    if not scan.name or "/" in scan.name or "\\" in scan.name:
        raise ValueError(f"subject name {scan.name!r} cannot be used as a folder name")
    folder = Path(root) / scan.name
    ply, js = folder / f"{scan.name}_processed.ply", folder / f"{scan.name}_processed.json"
    if not overwrite and (ply.exists() or js.exists()):
        raise FileExistsError(f"{folder}: subject files exist; pass --overwrite (overwrite=True in Python) to replace them")
    folder.mkdir(parents=True, exist_ok=True)
    meta = {k: v for k, v in scan.meta.items() if k != "source" and k not in _RESERVED_JSON_KEYS}
    doc: dict[str, Any] = {"id": scan.name, **meta}
    doc["specialPts"] = {k: v.tolist() for k, v in scan.landmarks.items()}
    for which in ("esl", "isl"):
        line = getattr(scan, which)
        if line is not None:
            doc[which] = {scan.pipeline: line.tolist()}
    js.write_text(json.dumps(_jsonable(doc), indent=1), encoding="utf-8")
    write_point_cloud(ply, scan.points, scan.normals, scan.colors, binary=binary)
    return folder
