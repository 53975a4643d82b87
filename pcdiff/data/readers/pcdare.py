"""The PCdare layout (Kaiser et al.): its back scans read into pcdiff's frame.

Source layout (``mkaisereth/PCdareSoftware``, folder ``Asymmetry/Data``; CC BY-NC-SA 4.0, credit
Kaiser et al., doi 10.1371/journal.pone.0321429 and 10.1038/s41598-025-95902-1)::

    SRC/CobbAngles.csv                                   record_id,primary_cobbangle (UTF-8 with BOM)
    SRC/Upright/<id>/<...>.ply                           back surface, metres, camera frame
    SRC/Upright/<id>/Output/<id>_Markers2_<stamp>.json   lines and markers, mm, camera frame

The camera frame has y down and z away from the scanner; pcdiff's is mm, y up, z towards the
scanner. The mapping is ``(x, y, z) -> (x, -y, -z)`` (x 1000 for the PLY), a 180 degree rotation about
x that keeps handedness and +x = the subject's right. Taken from the JSON: ``pcLinePts`` (the line
drawn on the scan, within ~1 mm of it) as the ESL; ``islLinePts`` (vertebral bodies from the
registered radiograph) as the ISL; ``pcMarkers`` 1 = C7, 3 = right PSIS dimple (DR, +x side),
4 = left (DL); marker 2 (a lower lumbar landmark) is kept in ``meta["pcdare_marker2"]``.
``eslLinePts`` is not used as a line: it is a radiograph-derived skin line off the scan (90th percentile of its
distance to the surface 5-26 mm, median 1.6-21 mm over the 20 shared subjects). It is kept, converted, in
``meta["pcdare_radiograph_skin_line"]`` for one diagnostic: its constant offset from the scan's line
(:func:`radiograph_shift_mm`) measures how far the radiograph, and so the ISL, sits off the scan. Each line is
checked by :func:`pcdiff.data.readers.spine_files.as_line`, the check every spine file passes.

The importer to the 4D-Spine layout is :mod:`pcdiff.data.pcdare` (``python -m pcdiff.data.pcdare SRC OUT``).
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np

from pcdiff.data.readers.base import InvalidScanError, ScanList, read_all, read_json
from pcdiff.data.readers.pointcloud import read_point_cloud
from pcdiff.data.readers.spine_files import as_line
from pcdiff.data.sample import BackScan
from pcdiff.data.units import UnitsAxesError, check_frame, check_lines_on_surface

logger = logging.getLogger(__name__)

#: Camera frame -> pcdiff frame (rotation by 180 degrees about x).
CAMERA_TO_PCDIFF = np.array([1.0, -1.0, -1.0], dtype=np.float64)
#: 90th percentile of the on-scan line's distance to the surface: 1.0-1.4 mm over the 20 shared subjects;
#: the radiograph-derived ``eslLinePts`` has 5-26 mm (its median is as low as 1.6 mm on some subjects,
#: so the median alone would not tell the two lines apart).
ESL_MAX_P90_MM = 3.0
#: The radiographic ISL: deeper than the surface line, but not absurdly.
ISL_DEPTH_RANGE_MM = (10.0, 150.0)
MIN_POINTS = 1000


def read_cobb_angles(src: Path) -> dict[str, float]:
    """``CobbAngles.csv`` -> {record id: primary Cobb angle in degrees}."""
    path = Path(src) / "CobbAngles.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: SRC must be a PCdare data folder (CobbAngles.csv + Upright/)")
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or not {"record_id", "primary_cobbangle"} <= set(reader.fieldnames):
            raise ValueError(f"{path}: expected columns record_id, primary_cobbangle, got {reader.fieldnames}")
        out = {}
        for row in reader:
            try:
                out[row["record_id"].strip()] = float(row["primary_cobbangle"])
            except ValueError as exc:
                raise ValueError(f"{path}: bad Cobb angle in row {row}") from exc
    return out


def isl_depth(esl: np.ndarray, isl: np.ndarray) -> float:
    """Median depth (mm) of the ISL behind the ESL: ESL z interpolated at each ISL vertex's height
    minus the ISL's z (positive = behind the surface, in pcdiff's frame). Lines (L, 3) in mm."""
    order = np.argsort(esl[:, 1])
    esl_z = np.interp(isl[:, 1], esl[order, 1], esl[order, 2])
    inside = (isl[:, 1] >= esl[order[0], 1]) & (isl[:, 1] <= esl[order[-1], 1])
    if not inside.any():
        raise ValueError("ISL and ESL do not overlap in height")
    return float(np.median(esl_z[inside] - isl[inside, 2]))


def _one(folder: Path, pattern: str) -> Path:
    found = sorted(folder.glob(pattern))
    if len(found) != 1:
        raise InvalidScanError(folder, f"expected exactly one {pattern}, found {[p.name for p in found]}")
    return found[0]


def read_pcdare_subject(folder: Path, cobb: float | None = None) -> BackScan:
    """Read one ``Upright/<id>`` folder as a :class:`BackScan` in mm, y up, z towards the scanner.

    Raises:
        InvalidScanError: missing/empty/corrupt PLY or JSON, missing lines or markers, a marker
            order other than the publisher's, or lines away from the surface after conversion.
    """
    folder = Path(folder)
    sid = folder.name
    ply = _one(folder, "*.ply")
    js = _one(folder / "Output", "*Markers*.json") if (folder / "Output").is_dir() else None
    if js is None:
        raise InvalidScanError(folder, "no Output/<id>_Markers2_*.json")
    doc = read_json(js)
    if not isinstance(doc, dict):
        raise InvalidScanError(js, "expected a JSON object")
    esl = as_line(doc.get("pcLinePts"), js, "pcLinePts", min_points=2) * CAMERA_TO_PCDIFF
    isl = as_line(doc.get("islLinePts"), js, "islLinePts", min_points=2) * CAMERA_TO_PCDIFF
    markers = doc.get("pcMarkers")
    try:
        world = np.array([m["World"] for m in markers], dtype=np.float64) * CAMERA_TO_PCDIFF
    except (TypeError, KeyError, ValueError) as exc:
        raise InvalidScanError(js, "'pcMarkers' must be a list of {'World': [x, y, z]}") from exc
    if world.shape != (4, 3) or not np.isfinite(world).all():
        raise InvalidScanError(js, f"expected 4 finite pcMarkers, got shape {world.shape}")
    points, _, _ = read_point_cloud(ply)
    if len(points) < MIN_POINTS:
        raise InvalidScanError(ply, f"too few points: {len(points)} < {MIN_POINTS}")
    points = (points.astype(np.float64) * 1000.0 * CAMERA_TO_PCDIFF).astype(np.float32)
    skin = doc.get("eslLinePts")
    radiograph_skin = as_line(skin, js, "eslLinePts", min_points=2) * CAMERA_TO_PCDIFF if skin is not None else None
    c7, m2, dr, dl = world
    if not dr[0] > dl[0]:
        raise InvalidScanError(js, f"marker 3 (right dimple) at x={dr[0]:.1f} is not right of marker 4 at x={dl[0]:.1f}")
    scan = BackScan(
        name=f"pcdare_{sid}",
        points=points,
        esl=esl,
        isl=isl,
        landmarks={"C7": c7, "DL": dl, "DR": dr},
        meta={
            "dataset": "pcdare",
            "id": sid,
            "cobb": cobb,
            "pcdare_marker2": m2.tolist(),
            **({"pcdare_radiograph_skin_line": radiograph_skin.tolist()} if radiograph_skin is not None else {}),
            "source": str(js),
            "source_ply": str(ply),
            "license": "CC BY-NC-SA 4.0, Kaiser et al. (PCdare)",
        },
    )
    try:
        check = check_frame(scan)
        if check.changed:
            raise UnitsAxesError(
                f"after the PCdare conversion the data still look off (points x{check.points_scale:g}, "
                f"lines x{check.lines_scale:g}, flipped={check.flipped}): not the published layout's units/frame"
            )
        check_lines_on_surface(scan, esl_max_mm=ESL_MAX_P90_MM, quantile=0.9)
        depth = isl_depth(scan.esl, scan.isl)
    except (UnitsAxesError, ValueError) as exc:
        raise InvalidScanError(js, str(exc)) from exc
    if not ISL_DEPTH_RANGE_MM[0] <= depth <= ISL_DEPTH_RANGE_MM[1]:
        raise InvalidScanError(js, f"ISL {depth:.1f} mm behind the ESL, expected {ISL_DEPTH_RANGE_MM} mm")
    if cobb is None:
        logger.warning("%s: no Cobb angle in CobbAngles.csv", scan.name)
    return scan


def radiograph_shift_mm(scan: BackScan, num_heights: int = 64) -> np.ndarray:
    """The constant offset (3,) mm of the radiograph's skin line from the scan's ESL: mean x and z differences at
    ``num_heights`` shared heights (y component 0).

    PCdare's ISL comes from a radiograph registered to the scan; the radiograph's own skin line
    (``meta["pcdare_radiograph_skin_line"]``) should lie on the scan's ESL if the registration and the posture
    matched. Its mean offset is therefore the registration / posture shift that every radiograph line, the ISL
    included, carries against the scan: no estimator reading the scan can know it. A diagnostic only.

    Raises:
        KeyError: the scan has no radiograph skin line (not a PCdare scan, or its JSON had no ``eslLinePts``).
        ValueError: the two lines share no heights.
    """
    skin = np.asarray(scan.meta["pcdare_radiograph_skin_line"], dtype=np.float64)
    esl = np.asarray(scan.esl, dtype=np.float64)
    lo, hi = max(skin[:, 1].min(), esl[:, 1].min()), min(skin[:, 1].max(), esl[:, 1].max())
    if hi <= lo:
        raise ValueError(f"{scan.name}: the radiograph skin line and the ESL share no heights")
    heights = np.linspace(lo, hi, num_heights)
    shift = np.zeros(3)
    ys, yk = np.argsort(skin[:, 1]), np.argsort(esl[:, 1])  # lines are monotone in y: x(y), z(y) over sorted points
    for axis in (0, 2):
        shift[axis] = np.mean(np.interp(heights, skin[ys, 1], skin[ys, axis]) - np.interp(heights, esl[yk, 1], esl[yk, axis]))
    return shift


def read_pcdare(src: Path, skip_invalid: bool = True, ids: list[str] | None = None) -> ScanList:
    """Read a PCdare data folder (``CobbAngles.csv`` + ``Upright/<id>/``).

    Args:
        src: the folder (e.g. ``../shared/data/pcdare`` or ``Asymmetry/Data`` of the public repo).
        skip_invalid: skip bad subjects (logged, counted in ``result.skipped``) instead of raising.
        ids: read only these record ids.

    Returns:
        :class:`ScanList` of scans named ``pcdare_<id>`` (sorted), in mm / y up / z towards the
        scanner, with ``meta["cobb"]`` the clinical primary Cobb angle (degrees).
    """
    src = Path(src)
    cobbs = read_cobb_angles(src)
    upright = src / "Upright"
    if not upright.is_dir():
        raise FileNotFoundError(f"{upright} not found: SRC must be a PCdare data folder")
    folders = sorted((p for p in upright.iterdir() if p.is_dir()), key=lambda p: (len(p.name), p.name))
    if ids is not None:
        wanted = {str(i) for i in ids}
        missing = wanted - {p.name for p in folders}
        if missing:
            raise FileNotFoundError(f"{upright}: no subject folders {sorted(missing)}")
        folders = [p for p in folders if p.name in wanted]
    readers = [lambda f=folder: read_pcdare_subject(f, cobbs.get(f.name)) for folder in folders]
    result = read_all(readers, src, skip_invalid)
    result.sort(key=lambda s: s.name)
    return result

