"""A PLY cut short anywhere after its header is refused, never read with invented points (issue 14.1)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_backscan
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pcdiff.data.io import InvalidScanError, read_point_cloud, write_subject


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """(binary PLY bytes, ascii PLY bytes, header lengths) of one 300-point subject."""
    out = {}
    for binary in (True, False):
        scan = make_backscan(3, 300, name=f"s{int(binary)}")
        folder = write_subject(scan, tmp_path_factory.mktemp(f"b{int(binary)}"), binary=binary)
        data = (folder / f"{scan.name}_processed.ply").read_bytes()
        out[binary] = (data, data.index(b"end_header") + len(b"end_header\n"))
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.floats(0.0, 0.9999), binary=st.booleans())
def test_truncated_ply_is_refused_at_any_cut(written, tmp_path, cut, binary):
    data, header = written[binary]
    keep = header + int(cut * (len(data) - header))
    if not binary:  # a cut inside the last line's last number leaves a shorter number: undetectable in ASCII
        keep = min(keep, data.rstrip().rindex(b"\n") + 1)
    path = tmp_path / "cut.ply"
    path.write_bytes(data[:keep])
    with pytest.raises(InvalidScanError, match="truncated: header declares 300 vertices, file holds"):
        read_point_cloud(path)


def test_last_eight_bytes_missing_is_refused(written, tmp_path):
    data, _ = written[True]
    path = tmp_path / "cut.ply"
    path.write_bytes(data[:-8])
    with pytest.raises(InvalidScanError, match="truncated: header declares 300 vertices, file holds 299"):
        read_point_cloud(path)


def test_whole_file_still_reads(written, tmp_path):
    for binary in (True, False):
        path = tmp_path / f"whole{int(binary)}.ply"
        path.write_bytes(written[binary][0])
        points = read_point_cloud(path)[0]
        assert points.shape == (300, 3) and np.isfinite(points).all()
