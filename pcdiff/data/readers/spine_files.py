"""Spinal-line files: the one parser behind every place a line (mm) is read from a file.

Used for the spine file beside a scan of the generic layout (``--data.data_dir``), the 4D-Spine subject JSON, the
``esl``/``isl`` arrays of an ``.npz`` scan, and ``python -m pcdiff.generate --spine``. The rules are the same for all:

CSV (``.csv``; ``generate --spine`` also takes ``.txt``), UTF-8 with or without a byte-order mark, blank rows
skipped:

* delimiter ``;`` when the first non-blank row holds a ``;``, else ``,`` (the decimal mark is always ``.``);
* an optional header: a first row with a non-empty cell that is not a number. It must name the columns ``x``,
  ``y``, ``z`` (any case, any order; other columns are ignored) and may name a ``line`` column;
* without a header the first three columns are x, y, z (further columns are ignored);
* the ``line`` column says per row which line the point belongs to, ``esl`` or ``isl`` (any case), so one file
  holds both lines; without it the file holds one unlabelled line.

JSON:

* a list of [x, y, z]: one unlabelled line;
* an object with ``esl`` and/or ``isl``, each a list of [x, y, z] or, as in the 4D-Spine layout, an object
  ``{pipeline: [[x, y, z], ...]}``. Without either key, ``spine`` (else ``points``) holds one unlabelled line.
  ``specialPts`` ({name: [x, y, z]}) are the landmarks; every other key is kept as metadata.

Pipeline key, for lines stored per pipeline: the one asked for (``pipeline=``; refused when no line has it), else
the first of :data:`PIPELINE_PREFERENCE` present (``pcdicomapp``, then ``formetric``), else the first key in the
file; chosen for each line. The scan's ``pipeline`` is the ESL's key, else the ISL's, else ``pcdicomapp``.

An unlabelled line is the ``unlabelled`` argument: the ESL when a data folder is read, the line the model is
conditioned on under ``generate --spine``.

Checks: every line has shape (L, 3) and finite coordinates; there is at least one line of two or more points, and
no line of exactly one (an empty line counts as absent). Lines are returned as float32, in the file's order and
units (a scan's reader checks units and axes afterwards, :mod:`pcdiff.data.units`).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from pcdiff.data.readers.base import InvalidScanError, read_json

#: Preferred spinal-line pipelines, in order, when a line is stored under several.
PIPELINE_PREFERENCE = ("pcdicomapp", "formetric")
#: The labelled lines.
LINE_KEYS = ("esl", "isl")
#: JSON keys of one unlabelled line, in order, read only when the object has no ``esl`` or ``isl``.
UNLABELLED_KEYS = ("spine", "points")
#: JSON keys that are not metadata (the writer never writes a ``meta`` entry under them).
RESERVED_JSON_KEYS = ("specialPts", *LINE_KEYS)


def as_line(value: Any, path: Path, key: str, min_points: int = 0) -> np.ndarray:
    """Check one spinal line and return it as (L, 3) float32 (units as given).

    Args:
        value: a list of [x, y, z] (or an array).
        path: the file it came from, for the error message.
        key: its name in the file (``"esl"``, ``"esl.pcdicomapp"``, ``"pcLinePts"``...), for the error message.
        min_points: refuse fewer points than this.

    Raises:
        InvalidScanError: missing (``None``), not a list of [x, y, z], NaN/inf, or fewer than ``min_points``.
    """
    if value is None:
        raise InvalidScanError(path, f"no '{key}'")
    try:
        arr = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidScanError(path, f"'{key}' is not a list of [x, y, z] points") from exc
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise InvalidScanError(path, f"'{key}' must be a list of [x, y, z] points, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise InvalidScanError(path, f"'{key}' has NaN/inf coordinates")
    if len(arr) < min_points:
        points = f"{len(arr)} point{'' if len(arr) == 1 else 's'}"
        raise InvalidScanError(path, f"'{key}' has {points}; a spinal line needs at least {min_points}")
    return arr


def _pick_line(value: Any, path: Path, key: str, pipeline: str | None) -> tuple[np.ndarray | None, str | None]:
    """(line or None when absent/empty, its pipeline key or None) from a ``{pipeline: points}`` object or a list."""
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
        line = as_line(value[chosen], path, f"{key}.{chosen}")
        return (line if len(line) else None), chosen
    line = as_line(value, path, key)
    return (line if len(line) else None), None


def parse_spine_json(data: Any, path: Path, pipeline: str | None = None, unlabelled: str = "esl") -> dict[str, Any]:
    """Turn parsed spine-file content into :class:`~pcdiff.data.sample.BackScan` keyword arguments.

    Args:
        data: a JSON document (object or list), or what :func:`read_spine_csv` returns (rules: module docstring).
        path: the file, for error messages.
        pipeline: pipeline key to use (default: :data:`PIPELINE_PREFERENCE`, else the first).
        unlabelled: ``"esl"`` or ``"isl"``: which line an unlabelled one is.

    Returns:
        ``esl`` (L, 3) float32 or None, ``isl`` (M, 3) float32 or None, ``landmarks`` {name: (3,) float32},
        ``meta`` (the other keys), ``pipeline``.

    Raises:
        InvalidScanError: malformed lines or landmarks, no spinal line at all, a one-point line, or a ``pipeline``
            that no line has.
    """
    if unlabelled not in LINE_KEYS:
        raise ValueError(f"unlabelled must be one of {LINE_KEYS}, got {unlabelled!r}")
    if isinstance(data, list):
        data = {unlabelled: data}
    if not isinstance(data, dict):
        raise InvalidScanError(path, f"expected a JSON object or a list of [x, y, z], got {type(data).__name__}")
    if not any(k in data for k in LINE_KEYS):
        alias = next((k for k in UNLABELLED_KEYS if k in data), None)
        if alias is not None:
            data = {**{k: v for k, v in data.items() if k != alias}, unlabelled: data[alias]}
    esl, esl_pipe = _pick_line(data.get("esl"), path, "esl", pipeline)
    isl, isl_pipe = _pick_line(data.get("isl"), path, "isl", pipeline)
    if pipeline is not None and esl is None and isl is None:
        have = sorted({k for key in LINE_KEYS if isinstance(data.get(key), dict) for k in data[key]})
        if have:
            raise InvalidScanError(path, f"no spinal line has pipeline {pipeline!r} (pipelines present: {have})")
    if (esl is None or len(esl) < 2) and (isl is None or len(isl) < 2):
        raise InvalidScanError(
            path,
            "no spinal line: expected 'esl' and/or 'isl' (or one unlabelled line: a list, 'spine' or 'points') "
            "with at least 2 points each",
        )
    for key, line in (("esl", esl), ("isl", isl)):
        if line is not None:  # beside a valid other line: refused here, not later in the data module
            as_line(line, path, key, min_points=2)
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
    return dict(esl=esl, isl=isl, landmarks=landmarks, meta=meta, pipeline=esl_pipe or isl_pipe or "pcdicomapp")


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def read_spine_csv(path: Path) -> list[list[float]] | dict[str, list[list[float]]]:
    """Read a spine CSV (rules: module docstring) into what :func:`parse_spine_json` takes.

    Returns:
        the rows [[x, y, z], ...] of one unlabelled line, or ``{"esl": rows, "isl": rows}`` (a line without rows
        left out) when the file has a ``line`` column. Values as in the file (mm).

    Raises:
        InvalidScanError: an empty file, a header without x, y, z, short or non-numeric rows, or a ``line`` value
            other than esl/isl.
    """
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidScanError(path, f"spine CSV is not UTF-8 text ({exc})") from exc
    first = next((ln for ln in text.splitlines() if ln.strip(" \t,;")), "")
    delimiter = ";" if ";" in first else ","
    rows = [r for r in csv.reader(text.splitlines(), delimiter=delimiter) if any(c.strip() for c in r)]
    if not rows:
        raise InvalidScanError(path, "empty spine CSV")
    header = [c.strip().lower() for c in rows[0]]
    if any(c and not _is_number(c) for c in header):
        if not {"x", "y", "z"} <= set(header):
            raise InvalidScanError(path, f"the header row {rows[0]} must name the columns x, y, z (or leave the header "
                                         "out and give x, y, z as the first three columns)")
        body, columns = rows[1:], [header.index(k) for k in ("x", "y", "z")]
        label = header.index("line") if "line" in header else None
    else:
        body, columns, label = rows, [0, 1, 2], None
    lines: dict[str, list[list[float]]] = {key: [] for key in LINE_KEYS}
    for row in body:
        if len(row) <= max(columns + [label or 0]):
            raise InvalidScanError(path, f"spine CSV rows must hold x, y, z (a line of shape (L, 3)), got {row}")
        try:
            point = [float(row[i]) for i in columns]
        except ValueError as exc:
            raise InvalidScanError(path, f"spine CSV rows must hold numeric x, y, z ({exc})") from exc
        which = "esl" if label is None else row[label].strip().lower()
        if which not in lines:
            raise InvalidScanError(path, f"'line' column must be 'esl' or 'isl', got {which!r}")
        lines[which].append(point)
    if label is None and lines["esl"]:
        return lines["esl"]
    return {k: v for k, v in lines.items() if v}  # {} when only a header: "no spinal line"


def read_spine_lines(path: Path, pipeline: str | None = None, unlabelled: str = "esl") -> dict[str, Any]:
    """Read a spine file: ``.json`` as JSON, anything else as CSV (rules: module docstring).

    Returns:
        :class:`~pcdiff.data.sample.BackScan` keyword arguments, see :func:`parse_spine_json`.

    Raises:
        InvalidScanError: naming ``path``, for anything the rules refuse (a missing JSON file included).
    """
    path = Path(path)
    data = read_json(path) if path.suffix.lower() == ".json" else read_spine_csv(path)
    return parse_spine_json(data, path, pipeline, unlabelled)


def read_spine_line(path: Path, which: str | None = "esl", pipeline: str | None = None) -> np.ndarray:
    """One spinal line (L >= 2, 3) float32 in mm from a spine file; an unlabelled line is taken as ``which``.

    Args:
        path: CSV or JSON spine file.
        which: ``"esl"`` or ``"isl"``; ``None``: whichever the file holds (the ESL when it holds both).
        pipeline: pipeline key (default: :data:`PIPELINE_PREFERENCE`, else the first).

    Raises:
        InvalidScanError: the file breaks the rules, or holds only the other line.
    """
    lines = read_spine_lines(path, pipeline, unlabelled=which or "esl")
    wanted = which or ("esl" if lines["esl"] is not None else "isl")
    if lines[wanted] is None:
        other = "isl" if wanted == "esl" else "esl"
        raise InvalidScanError(path, f"no '{wanted}' line (the file holds only '{other}')")
    return lines[wanted]
