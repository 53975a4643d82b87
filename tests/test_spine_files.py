"""One spine-file parser (issue 15.2): a CSV or JSON line file reads the same under ``--data.data_dir`` (the
generic layout's spine file beside a scan) and under ``python -m pcdiff.generate --spine``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import make_backscan

from pcdiff.data.io import InvalidScanError, read_dataset, write_point_cloud
from pcdiff.data.sample import BackScan
from pcdiff.generate import build_parser, read_spine_file, spine_requests
from pcdiff.geometry.polyline import orient_top_down


def _rows(line: np.ndarray, sep: str = ",", label: str | None = None) -> list[str]:
    """One text row per point, exact for float32 (``repr`` of the float64 value)."""
    return [sep.join([*(repr(v) for v in p), *([label] if label else [])]) for p in line.tolist()]


def _csv_both_lines(scan: BackScan) -> str:
    return "\n".join(["x,y,z,line", *_rows(scan.esl, label="esl"), *_rows(scan.isl, label="ISL")])


def _csv_semicolons(scan: BackScan) -> str:
    return "\n".join(["X;Y;Z;line", *_rows(scan.esl, ";", "esl"), *_rows(scan.isl, ";", "isl")])


def _csv_columns_reordered(scan: BackScan) -> str:
    z_x_y = lambda line: line[:, [2, 0, 1]]  # noqa: E731
    return "\n".join(["line,z,x,y", *(f"esl,{r}" for r in _rows(z_x_y(scan.esl))),
                      *(f"isl,{r}" for r in _rows(z_x_y(scan.isl)))])


def _json_4dspine_two_pipelines(scan: BackScan) -> str:
    """The preferred pipeline (formetric) is not the first key: both readers take it, not ``other``."""
    away = (scan.esl + 500.0).tolist()  # off the surface: the data reader would refuse it, were it chosen
    return json.dumps({"esl": {"other": away, "formetric": scan.esl.tolist()},
                       "isl": {"other": away, "formetric": scan.isl.tolist()}})


#: name -> (spine file suffix, its text for a scan, whether it says which line is which). An unlabelled line is
#: the ESL of a data folder and the model's line under generate.
SPINE_FILES: dict[str, tuple[str, Callable[[BackScan], str], bool]] = {
    "csv with a line column": (".csv", _csv_both_lines, True),
    "csv with semicolons": (".csv", _csv_semicolons, True),
    "csv columns in another order": (".csv", _csv_columns_reordered, True),
    "json of a 4D-Spine subject": (".json", _json_4dspine_two_pipelines, True),
    "csv without header": (".csv", lambda s: "\n".join(_rows(s.esl)), False),
    "csv with semicolons, header": (".csv", lambda s: "\n".join(["x;y;z", *_rows(s.esl, ";")]), False),
    "json list": (".json", lambda s: json.dumps(s.esl.tolist()), False),
    "json 'spine'": (".json", lambda s: json.dumps({"spine": s.esl.tolist()}), False),
}


def _data_folder(tmp_path: Path, suffix: str, text: str | Callable[[BackScan], str]) -> tuple[BackScan, Path]:
    """A generic-layout folder: ``g1.ply`` and its spine file ``g1<suffix>`` holding ``text`` (or ``text(scan)``)."""
    scan = make_backscan(7, 400, name="g1")
    write_point_cloud(tmp_path / "g1.ply", scan.points)
    (tmp_path / f"g1{suffix}").write_text(text if isinstance(text, str) else text(scan))
    return scan, tmp_path / f"g1{suffix}"


def _generate_lines(path: Path, which: str | None) -> np.ndarray:
    """The line ``python -m pcdiff.generate --spine path`` conditions on, for a model of line ``which``."""
    args = build_parser().parse_args(["--pipeline", "unused", "--spine", str(path), "--out", "unused"])
    (request,) = spine_requests(args, which)
    return request.line


@pytest.mark.parametrize("case", sorted(SPINE_FILES))
def test_file_reads_the_same_for_data_and_generate(tmp_path, case):
    suffix, text, labelled = SPINE_FILES[case]
    scan, path = _data_folder(tmp_path, suffix, text)
    (read,) = read_dataset(tmp_path)
    np.testing.assert_array_equal(read.esl, scan.esl)
    if labelled:
        np.testing.assert_array_equal(read.isl, scan.isl)
    else:
        assert read.isl is None
    for which in ("esl", "isl", None):  # None: the check before the model (and its line) is loaded
        expected = getattr(read, which) if labelled and which else read.esl
        np.testing.assert_array_equal(read_spine_file(path, which), expected)
        np.testing.assert_array_equal(_generate_lines(path, which), orient_top_down(expected))
    if suffix == ".json" and labelled:
        assert read.pipeline == "formetric"


def test_isl_only_file_passes_the_early_check_and_is_refused_for_an_esl_model(tmp_path):
    scan, path = _data_folder(tmp_path, ".csv", lambda s: "\n".join(["x,y,z,line", *_rows(s.isl, label="isl")]))
    np.testing.assert_array_equal(_generate_lines(path, None), orient_top_down(scan.isl))
    with pytest.raises(InvalidScanError, match="no 'esl' line .the file holds only 'isl'."):
        read_spine_file(path, "esl")


BAD_FILES = {
    "header without x, y, z": ("a,b,c\n1,2,3\n4,5,6\n", "must name the columns x, y, z"),
    "short rows": ("1,2\n3,4\n", "shape"),
    "not a number": ("x,y,z\n1,2,3\n4,five,6\n", "numeric x, y, z"),
    "unknown line label": ("x,y,z,line\n1,2,3,esl\n4,5,6,spine\n", "'line' column must be 'esl' or 'isl'"),
    "one point": ("x,y,z\n1,2,3\n", "no spinal line"),
    "header only": ("x,y,z\n", "no spinal line"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_csv_refused_alike_by_data_and_generate(tmp_path, case):
    text, message = BAD_FILES[case]
    _, path = _data_folder(tmp_path, ".csv", text)
    with pytest.raises(InvalidScanError, match=message) as from_data:
        read_dataset(tmp_path)
    with pytest.raises(InvalidScanError, match=message) as from_generate:
        read_spine_file(path)
    assert str(from_data.value) == str(from_generate.value)
    assert str(from_generate.value).startswith(str(path))
