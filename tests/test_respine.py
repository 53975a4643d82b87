"""respine_back: a donor back moved onto requested spinal lines (shear onto the ESL, turn by the change in rotation)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.spatial import cKDTree

from pcdiff.data.phantom import SpineParams, phantom_for_lines, spine_geometry
from pcdiff.data.respine import Donor, fit_rotation_gain, rank_donors, respine_back, respine_donor, shear_onto_line
from pcdiff.metrics.spine import asymmetry_agreement

THORACIC = SpineParams(cobb_deg=45.0, curve_type="thoracic", apex="T8", convexity="right", rotation_deg=15.0)
STRAIGHT = SpineParams(length_mm=THORACIC.length_mm)
#: phantoms carry the phantom model's humps: the prior's gain is theirs
PHANTOM_GAIN = 1.0


@pytest.fixture(scope="module")
def donor_and_target():
    """A straight spine's phantom back (the donor) and the lines and phantom of a 45-deg right thoracic curve."""
    straight, curved = spine_geometry(STRAIGHT), spine_geometry(THORACIC)
    donor = phantom_for_lines(straight.esl, straight.isl, seed=3, num_points=4096)
    target = phantom_for_lines(curved.esl, curved.isl, seed=3, num_points=4096)
    return donor, target


def test_onto_its_own_lines_nothing_moves(donor_and_target):
    donor, _ = donor_and_target
    moved = respine_back(donor.points, donor.esl, donor.isl, donor.esl, donor.isl, rotation_gain=PHANTOM_GAIN)
    np.testing.assert_allclose(moved, donor.points, atol=1e-3)


def test_the_moved_back_carries_the_requested_esl(donor_and_target):
    donor, target = donor_and_target
    moved = respine_back(donor.points, donor.esl, donor.isl, target.esl, target.isl, rotation_gain=PHANTOM_GAIN)
    assert moved.shape == donor.points.shape and moved.dtype == np.float32
    after = cKDTree(moved).query(target.esl)[0].mean()
    own = cKDTree(target.points).query(target.esl)[0].mean()
    assert after < 1.5 * own + 0.5  # on the moved surface as closely as on the curved spine's own phantom
    # the donor's furrow (its ESL) goes where the requested ESL is, at every height the two lines share
    carried = shear_onto_line(donor.esl, donor.esl, target.esl)
    inside = (carried[:, 1] <= target.esl[:, 1].max()) & (carried[:, 1] >= target.esl[:, 1].min())
    wanted = np.stack([np.interp(carried[inside, 1], target.esl[::-1, 1], target.esl[::-1, k]) for k in (0, 2)], 1)
    assert np.abs(donor.esl[inside][:, [0, 2]] - wanted).max() > 10.0  # mm: the curve is far from the straight line
    np.testing.assert_allclose(carried[inside][:, [0, 2]], wanted, atol=0.5)


def test_the_shear_keeps_heights_and_moves_each_height_rigidly(donor_and_target):
    donor, target = donor_and_target
    moved = shear_onto_line(donor.points.astype(np.float64), donor.esl, target.esl)
    np.testing.assert_array_equal(moved[:, 1], donor.points[:, 1])
    shift = moved - donor.points
    band = np.abs(donor.points[:, 1] - np.median(donor.points[:, 1])) < 0.5  # one height: one shift
    assert band.sum() > 5 and np.ptp(shift[band, 0]) < 0.5 and np.ptp(shift[band, 2]) < 0.5


def test_the_turn_puts_the_requested_spines_rib_hump_on_the_back(donor_and_target):
    donor, target = donor_and_target
    turned = respine_back(donor.points, donor.esl, donor.isl, target.esl, target.isl, rotation_gain=PHANTOM_GAIN)
    sheared = respine_back(donor.points, donor.esl, donor.isl, target.esl, target.isl, rotation_gain=0.0)
    with_turn = asymmetry_agreement(turned, target.points, target.esl)
    without = asymmetry_agreement(sheared, target.points, target.esl)
    assert with_turn["asym_corr"] > 0.8 and with_turn["asym_corr"] > without["asym_corr"] + 0.3
    assert 0.5 < with_turn["asym_amplitude_ratio"] < 2.0


def test_bad_points_are_refused(donor_and_target):
    donor, _ = donor_and_target
    with pytest.raises(ValueError, match="finite"):
        respine_back(np.full((10, 3), np.nan), donor.esl, donor.isl, donor.esl, donor.isl, rotation_gain=1.0)
    with pytest.raises(ValueError, match="finite"):
        respine_back(donor.points[:, :2], donor.esl, donor.isl, donor.esl, donor.isl, rotation_gain=1.0)


def test_donors_are_ranked_by_esl_shape_whatever_their_place_and_size(donor_and_target):
    donor, target = donor_and_target
    elsewhere = lambda line: 1.3 * line + np.array([200.0, 900.0, -50.0])  # noqa: E731
    order = rank_donors(target.esl, [donor.esl, elsewhere(target.esl), elsewhere(donor.esl)])
    assert order[0] == 1 and sorted(order.tolist()) == [0, 1, 2]
    with pytest.raises(ValueError, match="no donors"):
        rank_donors(target.esl, [])


def test_a_donor_in_its_own_frame_is_placed_on_the_requested_line_first(donor_and_target):
    donor, target = donor_and_target
    shift, scale = np.array([200.0, 900.0, -50.0]), 1.3
    moved = respine_donor(Donor(scale * donor.points + shift, scale * donor.esl + shift, scale * donor.isl + shift),
                          target.esl, target.isl, rotation_gain=PHANTOM_GAIN)
    direct = respine_back(donor.points, donor.esl, donor.isl, target.esl, target.isl, rotation_gain=PHANTOM_GAIN)
    np.testing.assert_allclose(moved, direct, atol=0.05)  # mm


CURVES = [SpineParams(cobb_deg=c, curve_type=t, convexity=v) for c, t, v in
          ((40.0, "thoracic", "right"), (35.0, "lumbar", "left"), (30.0, "thoracolumbar", "right"), (45.0, "thoracic", "left"),
           (25.0, "lumbar", "right"), (10.0, "thoracic", "right"))]


@pytest.fixture(scope="module")
def curved_phantoms():
    """Phantom backs of six curves, their rib humps from the phantom's own rotation model (drawn gains)."""
    return [phantom_for_lines(g.esl, g.isl, seed=i, num_points=4096) for i, g in enumerate(map(spine_geometry, CURVES))]


def test_the_turn_gain_fitted_on_phantoms_is_the_models_and_on_flat_backs_zero(curved_phantoms, donor_and_target):
    donors = [Donor(p.points, p.esl, p.isl, f"p{i}") for i, p in enumerate(curved_phantoms)]
    assert 0.6 < fit_rotation_gain(donors) < 1.6  # phantoms carry the model's humps (gains drawn around 1)
    straight, _ = donor_and_target
    flat = [dataclasses.replace(d, points=respine_back(straight.points, straight.esl, straight.isl, d.esl, d.isl,
                                                       rotation_gain=0.0)) for d in donors]
    assert fit_rotation_gain(flat) < 0.3  # the same lines on backs without a hump
    with pytest.raises(ValueError, match="at least 2"):
        fit_rotation_gain(donors[:1])
    with pytest.raises(ValueError, match="too alike"):  # the same spine twice: no move turns anything
        fit_rotation_gain([donors[0], dataclasses.replace(donors[0], name="twin")])


def test_the_single_donor_gain_is_the_one_fitted_on_the_public_pcdare_backs(pcdare_dir):
    from pcdiff.data.pcdare import read_pcdare
    from pcdiff.data.respine import PCDARE_ROTATION_GAIN

    rng = np.random.default_rng(0)
    donors = [Donor(s.points[rng.choice(len(s.points), 2048, replace=False)], s.esl, s.isl, s.name)
              for s in read_pcdare(pcdare_dir, skip_invalid=True)]
    assert fit_rotation_gain(donors) == pytest.approx(PCDARE_ROTATION_GAIN, abs=0.02)
