"""Readers of back scans and their spinal lines, one job a module, layered so that nothing imports upwards.

* :mod:`~pcdiff.data.readers.base`: :class:`InvalidScanError`, :class:`ScanList`, JSON reading, the checks every
  scan passes (point count, units/axes, lines on the surface) and the skip-and-report loop over subjects.
* :mod:`~pcdiff.data.readers.pointcloud`: point clouds (``.ply``/``.pcd``/``.xyz``/``.npz``) in and out.
* :mod:`~pcdiff.data.readers.spine_files`: the one parser of spinal-line files (CSV, JSON), used by every layout
  and by ``python -m pcdiff.generate --spine``.
* layouts, one subject folder or file at a time: :mod:`~pcdiff.data.readers.fourd_spine`,
  :mod:`~pcdiff.data.readers.generic`, :mod:`~pcdiff.data.readers.pcdare`.
* :mod:`~pcdiff.data.readers.writer`: :func:`write_subject` (the 4D-Spine layout).
* :mod:`~pcdiff.data.readers.dataset`: :func:`read_dataset` / :func:`detect_layout`, the dispatch above the layouts.

:mod:`pcdiff.data.io` re-exports the public names of all of them (the import path the README and notebooks use).
This ``__init__`` imports nothing, so importing one reader does not load the others.
"""
