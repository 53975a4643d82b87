"""Import the public PCdare back scans (Kaiser et al.) into pcdiff's frame and the 4D-Spine layout.

The reader, with the source layout and the frame conversion, is :mod:`pcdiff.data.readers.pcdare`
(data: CC BY-NC-SA 4.0, credit Kaiser et al., doi 10.1371/journal.pone.0321429 and 10.1038/s41598-025-95902-1);
its public names are re-exported here.

CLI::

    python -m pcdiff.data.pcdare SRC OUT [--ascii] [--overwrite]

writes ``OUT/pcdare_<id>/pcdare_<id>_processed.{ply,json}`` and prints a per-subject summary.
The source is only read.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from pcdiff.data.readers.pcdare import (
    CAMERA_TO_PCDIFF,
    ESL_MAX_P90_MM,
    ISL_DEPTH_RANGE_MM,
    MIN_POINTS,
    isl_depth,
    radiograph_shift_mm,
    read_cobb_angles,
    read_pcdare,
    read_pcdare_subject,
)
from pcdiff.data.readers.writer import write_subject
from pcdiff.data.sample import BackScan
from pcdiff.geometry.polyline import arc_length

__all__ = [
    "CAMERA_TO_PCDIFF",
    "ESL_MAX_P90_MM",
    "ISL_DEPTH_RANGE_MM",
    "MIN_POINTS",
    "isl_depth",
    "main",
    "radiograph_shift_mm",
    "read_cobb_angles",
    "read_pcdare",
    "read_pcdare_subject",
    "summary_line",
]


def summary_line(scan: BackScan) -> str:
    """One line: name, points, ESL length (mm), ISL depth behind the surface (mm), Cobb."""
    cobb = scan.meta.get("cobb")
    return (
        f"{scan.name:<14} points {len(scan.points):>6}  ESL length {arc_length(scan.esl)[-1]:6.1f} mm  "
        f"ISL depth {isl_depth(scan.esl, scan.isl):5.1f} mm  Cobb {'?' if cobb is None else f'{cobb:.0f}'} deg"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pcdiff.data.pcdare",
        description="Convert PCdare back scans (CobbAngles.csv + Upright/<id>/) to the 4D-Spine layout in mm, "
        "y up, z towards the scanner. Data: CC BY-NC-SA 4.0, Kaiser et al.",
    )
    parser.add_argument("src", type=Path, help="PCdare data folder (read only)")
    parser.add_argument("out", type=Path, help="output folder; one pcdare_<id>/ subfolder per subject")
    parser.add_argument("--ascii", action="store_true", help="write ASCII PLY (default binary)")
    parser.add_argument("--overwrite", action="store_true", help="replace subjects already in OUT")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")

    src, out = args.src.resolve(), args.out.resolve()
    if out == src or src in out.parents:
        parser.error(f"OUT ({out}) must not be inside SRC ({src}): the source is never modified")
    try:
        scans = read_pcdare(src, skip_invalid=True)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    failed = list(scans.skipped)
    written = 0
    for scan in scans:
        try:
            write_subject(scan, out, binary=not args.ascii, overwrite=args.overwrite)
        except FileExistsError as exc:
            failed.append((out / scan.name, str(exc)))
            continue
        written += 1
        print(summary_line(scan))
    total = len(scans) + len(scans.skipped)
    print(f"imported {written} of {total} subjects into {out}")
    for path, reason in failed:
        print(f"  not imported: {path}: {reason}")
    return 0 if written else 1


if __name__ == "__main__":
    sys.exit(main())
