"""phantom_for_lines: a phantom back built around given spinal lines, in their frame, with the spine's rib hump."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree

from pcdiff.data.phantom import SpineParams, generate_phantom, spine_geometry
from pcdiff.data.phantom.from_lines import geometry_from_lines, phantom_for_lines, summary_params
from pcdiff.metrics.spine import asymmetry_agreement

THORACIC = SpineParams(cobb_deg=45.0, curve_type="thoracic", apex="T8", convexity="right", rotation_deg=15.0)


def test_geometry_of_a_phantoms_lines_gives_back_its_rotation_profile_and_summary():
    true = spine_geometry(THORACIC)
    got = geometry_from_lines(true.esl, true.isl, rotation_per_cobb=15.0 / 45.0)
    rotation_at = np.interp(got.esl[:, 1], true.esl[::-1, 1], true.rotation_deg[::-1])
    assert np.corrcoef(got.rotation_deg, rotation_at)[0, 1] > 0.95
    assert got.rotation_deg[np.argmax(np.abs(got.rotation_deg))] > 0  # turned towards the right convexity
    np.testing.assert_allclose(got.esl[-1], true.esl[-1], atol=1e-6)  # DM stays where it was
    params = summary_params(got)
    assert params.convexity == "right" and params.curve_type == "thoracic"
    assert abs(params.cobb_deg - 45.0) < 6.0


def test_the_back_lies_on_the_given_line_in_its_frame_and_carries_its_spines_asymmetry():
    scan = generate_phantom(3, 4096, params=THORACIC)
    shift = np.array([40.0, 900.0, -25.0])  # a scanner frame far from the phantom's origin
    built = phantom_for_lines(scan.esl + shift, scan.isl + shift, seed=7, num_points=4096)
    assert built.points.shape == (4096, 3) and built.meta["from_lines"]
    on_line = cKDTree(built.points).query(scan.esl + shift)[0].mean()
    assert on_line < 6.0  # mm; the true scan's own ESL lies about 3 mm from its points
    agreement = asymmetry_agreement(built.points - shift, scan.points, scan.esl)
    assert agreement["asym_corr"] > 0.8
    straight = generate_phantom(4, 4096, params=SpineParams(length_mm=THORACIC.length_mm))
    flat = asymmetry_agreement(straight.points, scan.points, scan.esl)
    assert flat["asym_corr"] < agreement["asym_corr"] - 0.3  # a straight spine's back does not score


def test_reproducible_from_the_seed_and_different_across_seeds():
    scan = generate_phantom(5, 1024, params=THORACIC)
    a, b = (phantom_for_lines(scan.esl, scan.isl, seed=1, num_points=1024) for _ in range(2))
    np.testing.assert_array_equal(a.points, b.points)
    assert not np.allclose(a.points, phantom_for_lines(scan.esl, scan.isl, seed=2, num_points=1024).points)


@pytest.mark.parametrize(
    "esl, message",
    [(np.zeros((3, 3)), "L >= 4"), (np.full((20, 3), np.nan), "finite"), (np.zeros((20, 3)), "spans")],
)
def test_bad_lines_are_refused(esl, message):
    isl = spine_geometry(THORACIC).isl
    with pytest.raises(ValueError, match=message):
        phantom_for_lines(esl, isl, seed=0)
