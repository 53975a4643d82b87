"""The writer: one :class:`~pcdiff.data.sample.BackScan` as a subject of the 4D-Spine layout
(:mod:`pcdiff.data.readers.fourd_spine` reads it back)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from pcdiff.data.readers.pointcloud import write_point_cloud
from pcdiff.data.readers.spine_files import RESERVED_JSON_KEYS
from pcdiff.data.sample import BackScan

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
    meta = {k: v for k, v in scan.meta.items() if k != "source" and k not in RESERVED_JSON_KEYS}
    doc: dict[str, Any] = {"id": scan.name, **meta}
    doc["specialPts"] = {k: v.tolist() for k, v in scan.landmarks.items()}
    for which in ("esl", "isl"):
        line = getattr(scan, which)
        if line is not None:
            doc[which] = {scan.pipeline: line.tolist()}
    js.write_text(json.dumps(_jsonable(doc), indent=1), encoding="utf-8")
    write_point_cloud(ply, scan.points, scan.normals, scan.colors, binary=binary)
    return folder
