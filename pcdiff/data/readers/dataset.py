"""A data folder as a list of scans: which layout it is in (:func:`detect_layout`) and reading every subject in it
(:func:`read_dataset`), dispatched to the layout readers below this module."""

from __future__ import annotations

import logging
from pathlib import Path

from pcdiff.data.readers import fourd_spine, generic
from pcdiff.data.readers.base import MIN_POINTS, ScanList, read_all
from pcdiff.data.readers.pcdare import read_pcdare
from pcdiff.data.readers.pointcloud import POINT_CLOUD_SUFFIXES
from pcdiff.data.sample import BackScan

logger = logging.getLogger(__name__)


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
    if fourd_spine.is_4dspine(root):
        return "4dspine"
    if generic.scan_files(root):
        return "generic"
    raise FileNotFoundError(
        f"{root}: no back scans found (expected the 4D-Spine layout '*processed.ply' + '*processed.json', "
        f"a generic layout {POINT_CLOUD_SUFFIXES} + spine .csv/.json, or a PCdare folder with CobbAngles.csv)"
    )


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
        skip_invalid: skip subjects that raise :class:`~pcdiff.data.io.InvalidScanError` (each logged as a warning,
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
        return read_pcdare(root, skip_invalid=skip_invalid)
    if layout == "4dspine":
        readers = fourd_spine.subject_readers(root, pipeline, min_points)
    elif layout == "generic":
        readers = generic.subject_readers(root, min_points)
    else:
        raise ValueError(f"unknown layout {layout!r}; expected 'auto', '4dspine', 'generic' or 'pcdare'")
    if not readers:
        raise ValueError(f"{root}: no subjects found for layout {layout!r}")
    result = read_all(readers, root, skip_invalid)
    _unique_names(result, root)
    result.sort(key=lambda s: s.name)
    return result


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
