"""What every reader shares: the error type, the result list, JSON reading, the per-scan checks and the
skip-and-report loop over subjects."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from pcdiff.data.sample import BackScan
from pcdiff.data.units import UnitsAxesError, check_lines_on_surface, ensure_frame

logger = logging.getLogger(__name__)

#: Fewer scan points than this is refused (a crop gone wrong, or a header-only file).
MIN_POINTS = 100


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


def read_json(path: Path) -> Any:
    """Parse a UTF-8 JSON file (a byte-order mark is allowed).

    Raises:
        InvalidScanError: the file is missing or is not valid JSON.
    """
    if not path.is_file():
        raise InvalidScanError(path, "file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidScanError(path, f"invalid JSON ({exc})") from exc


def finish_scan(scan: BackScan, path: Path, min_points: int) -> BackScan:
    """The checks every layout's reader ends with: point count, units/axes (metres -> mm, y-down camera frame
    rotated back, see :mod:`pcdiff.data.units`), lines near the surface.

    Raises:
        InvalidScanError: naming ``path``, when a check fails.
    """
    if len(scan.points) < min_points:
        raise InvalidScanError(path, f"too few points: {len(scan.points)} < {min_points}")
    try:
        scan = ensure_frame(scan, str(path))
        check_lines_on_surface(scan)
    except UnitsAxesError as exc:
        raise InvalidScanError(path, str(exc)) from exc
    return scan


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


def failing_reader(exc: InvalidScanError) -> Callable[[], BackScan]:
    """A reader that raises ``exc``: a subject known to be bad (e.g. a scan without its JSON) counted like the rest."""

    def read() -> BackScan:
        raise exc

    return read
