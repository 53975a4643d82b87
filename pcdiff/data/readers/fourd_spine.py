"""The 4D-Spine layout (read recursively; files paired by folder and name prefix)::

    <root>/.../<subject folder>/<name>processed.ply    back surface (mm), ascii or binary,
                                                       optionally with normals and colours
    <root>/.../<subject folder>/<name>processed.json   {"dataset", "id", "specialPts": {C7, DL, DR[, DM]},
                                                        "esl": {pipeline: [[x, y, z], ...]},
                                                        "isl": {pipeline: [[x, y, z], ...]}, ...}

``age``, ``gender``, ``status``, ``pipelineSteps`` and any other keys are optional and kept in
``BackScan.meta`` untouched. ``DM`` is (DL + DR) / 2 when absent. The JSON is read by the one spine-file parser
(:mod:`pcdiff.data.readers.spine_files`). :func:`pcdiff.data.readers.writer.write_subject` produces
``<root>/<name>/<name>_processed.{ply,json}``, which is read back as subject ``<name>``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from pcdiff.data.readers.base import MIN_POINTS, InvalidScanError, failing_reader, finish_scan
from pcdiff.data.readers.pointcloud import read_point_cloud
from pcdiff.data.readers.spine_files import read_spine_lines
from pcdiff.data.sample import BackScan

_PROCESSED = re.compile(r"^(?P<name>.*?)[_-]?processed$", re.IGNORECASE)


def is_4dspine(root: Path) -> bool:
    """Whether ``root`` holds any ``*processed.json`` or ``*processed.ply`` (at any depth)."""
    return next(root.rglob("*processed.json"), None) is not None or next(root.rglob("*processed.ply"), None) is not None


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
        InvalidScanError: see :mod:`pcdiff.data.io`.
    """
    ply, js = _subject_files(Path(folder_or_json))
    kwargs = read_spine_lines(js, pipeline)
    points, normals, colors = read_point_cloud(ply)
    if name is None:
        name = _processed_name(js) or js.parent.name
    scan = BackScan(name=name, points=points, normals=normals, colors=colors, **kwargs)
    scan.meta.setdefault("source", str(js))
    return finish_scan(scan, ply, min_points)


def subject_readers(
    root: Path, pipeline: str | None = None, min_points: int = MIN_POINTS
) -> list[Callable[[], BackScan]]:
    """One reader per subject under ``root`` (sorted by folder, then name); a scan without its JSON, or the
    reverse, becomes a reader that raises :class:`InvalidScanError` ("do not pair")."""
    readers: list[Callable[[], BackScan]] = []
    by_folder: dict[Path, dict[str, dict[str, Path]]] = {}
    for f in sorted(root.rglob("*processed.*")):
        if f.suffix.lower() in (".ply", ".json") and f.is_file():
            by_folder.setdefault(f.parent, {}).setdefault(f.stem, {})[f.suffix.lower()] = f
    for folder, stems in sorted(by_folder.items()):
        for stem, files in sorted(stems.items()):
            if ".ply" in files and ".json" in files:
                readers.append(lambda js=files[".json"]: read_subject(js, pipeline, min_points))
            else:
                present = next(iter(files.values()))
                missing = ".json" if ".json" not in files else ".ply"
                error = InvalidScanError(present, f"scan and JSON do not pair: no {stem}{missing}")
                readers.append(failing_reader(error))
    return readers
