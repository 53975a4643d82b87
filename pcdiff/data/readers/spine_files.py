"""Spinal-line files: a 4D-Spine JSON object and a spine CSV turned into BackScan keyword arguments.

CSV: columns ``x,y,z`` (header optional), plus an optional ``line`` column (``esl``/``isl``, default ``esl``) when
both lines are in one file. JSON: the 4D-Spine keys (``"esl"``/``"isl"``: ``{pipeline: [[x, y, z], ...]}``,
``"specialPts"``) or ``{"esl": [[x, y, z], ...], "isl": [...], "specialPts": {...}}``.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from pcdiff.data.readers.base import InvalidScanError

#: Preferred spinal-line pipelines, in order, when a JSON holds several.
PIPELINE_PREFERENCE = ("pcdicomapp", "formetric")
#: JSON keys that are not metadata (the writer never writes a ``meta`` entry under them).
RESERVED_JSON_KEYS = ("specialPts", "esl", "isl")


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
    meta = {k: v for k, v in data.items() if k not in RESERVED_JSON_KEYS}
    return dict(
        esl=esl,
        isl=isl,
        landmarks=landmarks,
        meta=meta,
        pipeline=esl_pipe or isl_pipe or "pcdicomapp",
    )


def read_spine_csv(path: Path) -> dict[str, Any]:
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
