"""Read and write back scans: the public names of :mod:`pcdiff.data.readers`, in one place.

Layouts a data folder may be in (:func:`read_dataset` detects which):

* 4D-Spine (:mod:`~pcdiff.data.readers.fourd_spine`): ``<name>processed.ply`` + ``<name>processed.json``
  (``specialPts``, ``esl``/``isl`` keyed by pipeline, optional keys kept in ``BackScan.meta``); the writer
  (:func:`write_subject`) produces ``<root>/<name>/<name>_processed.{ply,json}``.
* generic (:mod:`~pcdiff.data.readers.generic`): a scan ``<stem>.ply|.pcd|.xyz|.npz`` with its spine in
  ``<stem>.csv``, ``<stem>.json``, ``<stem>_spine.csv`` or ``<stem>_spine.json``.
* PCdare (:mod:`~pcdiff.data.readers.pcdare`): ``CobbAngles.csv`` + ``Upright/<id>/``, converted to pcdiff's frame.

Spine files (CSV and JSON, also under ``python -m pcdiff.generate --spine``) follow one set of rules, written out in
:mod:`pcdiff.data.readers.spine_files`.

Every scan is checked on load (:mod:`pcdiff.data.units`): metres are converted to mm and a y-down
camera frame is rotated back, both with a :class:`~pcdiff.data.units.UnitConversionWarning`;
ambiguous cases, unreadable/empty files, NaN/inf, a JSON without a spine, a scan without its JSON
(or the reverse) and too few points raise :class:`InvalidScanError` naming the file.
"""

from __future__ import annotations

from pcdiff.data.readers.base import MIN_POINTS, InvalidScanError, ScanList, read_all, read_json, report_skipped
from pcdiff.data.readers.dataset import detect_layout, read_dataset
from pcdiff.data.readers.fourd_spine import read_subject
from pcdiff.data.readers.generic import read_generic
from pcdiff.data.readers.pointcloud import POINT_CLOUD_SUFFIXES, read_point_cloud, write_point_cloud
from pcdiff.data.readers.spine_files import (
    PIPELINE_PREFERENCE,
    parse_spine_json,
    read_spine_csv,
    read_spine_line,
    read_spine_lines,
)
from pcdiff.data.readers.writer import write_subject

__all__ = [
    "MIN_POINTS",
    "PIPELINE_PREFERENCE",
    "POINT_CLOUD_SUFFIXES",
    "InvalidScanError",
    "ScanList",
    "detect_layout",
    "parse_spine_json",
    "read_all",
    "read_dataset",
    "read_generic",
    "read_json",
    "read_point_cloud",
    "read_spine_csv",
    "read_spine_line",
    "read_spine_lines",
    "read_subject",
    "report_skipped",
    "write_point_cloud",
    "write_subject",
]
