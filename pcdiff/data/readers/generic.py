"""The generic layout: a scan ``<stem>.ply|.pcd|.xyz|.npz`` with its spine beside it in ``<stem>.csv``,
``<stem>.json``, ``<stem>_spine.csv`` or ``<stem>_spine.json`` (read by the one spine-file parser,
:mod:`pcdiff.data.readers.spine_files`: an unlabelled line is the ESL). An ``.npz`` scan holds ``points`` (N, 3)
and optionally ``normals``, ``colors``, ``esl``, ``isl`` and the landmarks ``C7``, ``DL``, ``DR``, ``DM`` (then no
spine file is needed).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pcdiff.data.readers.base import MIN_POINTS, InvalidScanError, finish_scan
from pcdiff.data.readers.pointcloud import POINT_CLOUD_SUFFIXES, read_point_cloud
from pcdiff.data.readers.spine_files import parse_spine_json, read_spine_lines
from pcdiff.data.sample import LANDMARK_NAMES, BackScan

#: Where a scan's spine file is looked for, in order: ``<stem>`` + one of these.
SPINE_FILE_SUFFIXES = (".csv", ".json", "_spine.csv", "_spine.json")


def scan_files(root: Path) -> list[Path]:
    """Every point-cloud file under ``root`` (any depth), sorted."""
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in POINT_CLOUD_SUFFIXES)


def _spine_file(scan_path: Path) -> Path | None:
    for suffix in SPINE_FILE_SUFFIXES:
        candidate = scan_path.with_name(scan_path.stem + suffix)
        if candidate.is_file():
            return candidate
    return None


def read_generic(scan_path: Path, min_points: int = MIN_POINTS, name: str | None = None) -> BackScan:
    """Read one scan of the generic layout (module docstring); its name is the file stem unless given.

    Raises:
        InvalidScanError: see :mod:`pcdiff.data.io`; also a scan with no spine file beside it.
    """
    scan_path = Path(scan_path)
    points, normals, colors = read_point_cloud(scan_path)
    kwargs: dict[str, Any]
    spine_file = _spine_file(scan_path)
    if spine_file is not None:
        kwargs = read_spine_lines(spine_file)
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
    return finish_scan(scan, scan_path, min_points)


def subject_readers(root: Path, min_points: int = MIN_POINTS) -> list[Callable[[], BackScan]]:
    """One reader per point-cloud file under ``root`` (sorted by path)."""
    return [lambda p=p: read_generic(p, min_points) for p in scan_files(root)]
