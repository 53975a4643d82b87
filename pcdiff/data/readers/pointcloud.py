"""Point clouds in and out: ``.ply`` (ascii or binary, with a truncation check), ``.pcd``, ``.xyz`` via Open3D and
``.npz`` via numpy. Coordinates are returned as stored (units are checked later, in
:func:`pcdiff.data.readers.base.finish_scan`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pcdiff.data.readers.base import InvalidScanError

POINT_CLOUD_SUFFIXES = (".ply", ".pcd", ".xyz", ".npz")

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

