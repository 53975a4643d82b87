"""The phantom generator: reproducibility, prior ranges, anatomy (ESL on the skin, ISL depth, Cobb
angle measured back, rib hump on the convex side, landmarks) and the scanner model."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.spatial import cKDTree

from pcdiff.data.phantom import (
    CURVE_TYPES,
    VERSIONS,
    BackSurface,
    ScannerParams,
    SPINE_PRIOR,
    SpineParams,
    generate_phantom,
    sample_body_params,
    sample_spine_params,
    spine_geometry,
    spine_lines,
)
from pcdiff.geometry.cobb import cobb_angle, lateral_deviation

QUIET_SCANNER = ScannerParams(noise_mm=0.0, num_holes=0, density_amp=0.0)


def _body(params: SpineParams, seed: int = 0, **changes):
    body = sample_body_params(np.random.default_rng(seed), params)
    return dataclasses.replace(body, **changes)


@pytest.mark.parametrize("version", VERSIONS)
def test_same_seed_same_scan_other_seed_other_scan(version):
    a = generate_phantom(7, 512, version=version)
    b = generate_phantom(7, 512, version=version)
    c = generate_phantom(8, 512, version=version)
    np.testing.assert_array_equal(a.points, b.points)
    np.testing.assert_array_equal(a.isl, b.isl)
    assert a.meta == b.meta
    assert not np.allclose(a.points[:50], c.points[:50])
    assert a.meta["phantom"]["spine"] != c.meta["phantom"]["spine"]


def test_given_spine_keeps_the_seeds_body_and_scanner():
    drawn = generate_phantom(3, 256)
    params = SpineParams(cobb_deg=30.0, curve_type="lumbar", apex="L2", convexity="left")
    fixed = generate_phantom(3, 256, params=params)
    body_fixed, body_drawn = dict(fixed.meta["phantom"]["body"]), dict(drawn.meta["phantom"]["body"])
    # By design the shoulder asymmetry follows the curve and (v2) the widths scale with the spine length.
    body_fixed.pop("shoulder_asym"), body_drawn.pop("shoulder_asym")
    ratio = params.length_mm / drawn.meta["phantom"]["spine"]["length_mm"]
    for key in ("shoulder_hw", "chest_hw", "waist_hw", "hip_hw"):
        assert body_fixed.pop(key) == pytest.approx(ratio * body_drawn.pop(key))
    assert body_fixed == body_drawn
    assert fixed.meta["phantom"]["scanner"] == drawn.meta["phantom"]["scanner"]
    assert fixed.meta["phantom"]["spine"]["cobb_deg"] == 30.0
    assert fixed.meta["cobb"] == 30.0


def test_exact_point_count_normals_and_meta():
    scan = generate_phantom(0, 1000, name="subj")
    assert scan.name == "subj" and scan.points.shape == (1000, 3) and scan.points.dtype == np.float32
    assert scan.normals.shape == (1000, 3)
    np.testing.assert_allclose(np.linalg.norm(scan.normals, axis=1), 1.0, atol=1e-5)
    assert (scan.normals[:, 2] > 0.2).all(), "a single view from behind sees only surfaces facing +z"
    assert np.isfinite(scan.points).all()
    assert set(scan.meta["phantom"]) == {"version", "spine", "body", "scanner"}
    assert scan.esl.shape == scan.isl.shape == (100, 3)
    assert scan.esl[0, 1] > scan.esl[-1, 1], "lines run top (C7) to bottom"


def test_spine_prior_ranges_and_overrides():
    rng = np.random.default_rng(0)
    draws = [sample_spine_params(rng) for _ in range(300)]
    lengths = np.array([p.length_mm for p in draws])
    assert lengths.min() >= 380 and lengths.max() <= 520
    cobbs = np.array([p.cobb_deg for p in draws])
    assert cobbs.min() >= 0 and cobbs.max() <= 80
    assert {p.curve_type for p in draws} == set(CURVE_TYPES)
    assert all(p.cobb_deg < 10 for p in draws if p.curve_type == "none")
    assert all(p.cobb_deg >= 10 for p in draws if p.curve_type != "none")
    prior = SPINE_PRIOR
    assert all(prior["kyphosis_min"] <= p.kyphosis_deg <= prior["kyphosis_max"] for p in draws)
    assert all(prior["lordosis_min"] <= p.lordosis_deg <= prior["lordosis_max"] for p in draws)
    assert 10 <= prior["kyphosis_min"] and prior["kyphosis_max"] <= 70 and 20 <= prior["lordosis_min"]
    assert all(45 <= p.isl_depth_mm <= 80 for p in draws)
    # Rotation grows with the Cobb angle (Stokes 1994): strongly correlated.
    assert np.corrcoef(cobbs, [p.rotation_deg for p in draws])[0, 1] > 0.9
    narrow = [sample_spine_params(rng, cobb_min=20, cobb_max=30, curve_types=("lumbar",)) for _ in range(50)]
    assert all(20 <= p.cobb_deg <= 30 and p.curve_type == "lumbar" for p in narrow)


@pytest.mark.parametrize(
    "kwargs, match",
    [({"cobb_sigma": 3}, "unknown prior keys"), ({"curve_types": ("s-shape",)}, "curve_types"),
     ({"cobb_min": 50, "cobb_max": 40}, "cobb_min"), ({"curve_types": ("none",), "cobb_min": 20}, "no curve type")],
)
def test_bad_prior_overrides_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sample_spine_params(np.random.default_rng(0), **kwargs)


def test_bad_params_are_refused():
    with pytest.raises(ValueError, match="curve_type"):
        SpineParams(curve_type="s")
    with pytest.raises(ValueError, match="apex"):
        SpineParams(apex="T13")
    with pytest.raises(ValueError, match="version"):
        generate_phantom(0, 64, version="v0")


@pytest.mark.parametrize(
    "curve_type, apex, convexity, cobb",
    [("thoracic", "T8", "right", 45.0), ("thoracic", "T6", "left", 20.0), ("lumbar", "L2", "left", 35.0),
     ("thoracolumbar", "T12", "right", 60.0), ("double_major", "T8", "right", 50.0), ("none", "T8", "right", 5.0),
     ("thoracic", "T9", "right", 80.0)],
)
def test_cobb_measured_back_from_the_isl(curve_type, apex, convexity, cobb):
    params = SpineParams(cobb_deg=cobb, curve_type=curve_type, apex=apex, convexity=convexity, coronal_offset_mm=6.0)
    _, isl = spine_lines(params)
    # cobb_angle ignores tangent reversals under 3 deg by default: too coarse for a 5 deg spine.
    min_swing = 1.0 if cobb < 10 else 3.0
    assert cobb_angle(isl, min_swing_deg=min_swing) == pytest.approx(cobb, abs=3.0)


def test_convexity_and_esl_deviates_less_than_isl():
    for convexity, sign in (("right", 1.0), ("left", -1.0)):
        params = SpineParams(cobb_deg=40.0, curve_type="thoracic", apex="T8", convexity=convexity, rotation_deg=14.0)
        esl, isl = spine_lines(params)
        dev_isl, dev_esl = lateral_deviation(isl), lateral_deviation(esl)
        apex = np.argmax(np.abs(dev_isl))
        assert np.sign(dev_isl[apex]) == sign, "the curve bulges to its convex side"
        assert np.abs(dev_esl).max() < 0.8 * np.abs(dev_isl).max(), "ESL deviates less than ISL (rotation)"


def test_spine_length_and_isl_depth():
    for seed in range(10):
        params = sample_spine_params(np.random.default_rng(seed))
        esl, isl = spine_lines(params)
        assert np.linalg.norm(esl[0] - esl[-1]) == pytest.approx(params.length_mm, rel=1e-4)
        np.testing.assert_allclose(esl[-1], 0.0, atol=1e-3)  # DM at the origin
        depth = esl[:, 2] - isl[:, 2]
        # The skin line bows less than the ISL (v2), so the depth dips at the kyphosis apex.
        assert 40.0 <= np.median(depth) <= 90.0 and depth.min() > 20.0


def test_esl_lies_on_the_surface():
    params = SpineParams(cobb_deg=35.0, curve_type="double_major", apex="T8", rotation_deg=12.0)
    geometry = spine_geometry(params)
    surface = BackSurface(geometry, _body(params))
    esl = geometry.esl
    gap = np.abs(surface.height(esl[:, 0], esl[:, 1]) - esl[:, 2])
    assert gap.max() < 1.5, f"ESL off the analytic surface by up to {gap.max():.2f} mm"
    # And on the sampled, posed scan: every ESL point inside the crop has scan points close by.
    scan = generate_phantom(1, 8000, params=params, scanner=QUIET_SCANNER)
    inside = scan.esl[(scan.esl[:, 1] < scan.points[:, 1].max()) & (scan.esl[:, 1] > scan.points[:, 1].min())]
    dist, _ = cKDTree(scan.points).query(inside)
    assert np.median(dist) < 4.0 and dist.max() < 12.0


def test_rib_hump_on_the_convex_side():
    for convexity, sign in (("right", 1.0), ("left", -1.0)):
        curved = SpineParams(cobb_deg=50.0, curve_type="thoracic", apex="T8", convexity=convexity, rotation_deg=18.0)
        straight = dataclasses.replace(curved, cobb_deg=0.0, rotation_deg=0.0)
        diffs = []
        for params in (curved, straight):
            geometry = spine_geometry(params)
            body = _body(params, shoulder_asym=0.0, trunk_shift=0.0, surface_twist_deg=0.0, outline_offset=0.0)
            surface = BackSurface(geometry, body)
            y = np.interp(0.37, geometry.t, geometry.esl[:, 1])  # near T8
            xm, _ = surface.midline(np.array([y]))
            z_conv = surface.height(xm + sign * 70.0, np.array([y]))[0]
            z_conc = surface.height(xm - sign * 70.0, np.array([y]))[0]
            diffs.append(z_conv - z_conc)
        assert diffs[0] > 8.0, f"rib hump only {diffs[0]:.1f} mm on the convex ({convexity}) side"
        assert abs(diffs[1]) < 1.0, "a straight spine has a symmetric back"


def test_landmarks_and_crop():
    scan = generate_phantom(2, 2000, scanner=dataclasses.replace(QUIET_SCANNER, crop_above_c7=15.0, crop_below_dimples=15.0))
    lm = scan.landmarks
    np.testing.assert_allclose(lm["DM"], 0.5 * (lm["DL"] + lm["DR"]), atol=1e-5)
    assert lm["DR"][0] > lm["DM"][0] > lm["DL"][0], "DR on the right (+x), DL on the left"
    np.testing.assert_allclose(lm["C7"], scan.esl[0], atol=1e-4)
    assert scan.points[:, 1].max() <= lm["C7"][1] + 15.0 + 1e-3
    assert scan.points[:, 1].min() >= min(lm["DL"][1], lm["DR"][1]) - 15.0 - 1e-3
    assert scan.points[:, 1].max() > lm["C7"][1] + 10.0, "the crop reaches up to 15 mm above C7"


def test_holes_remove_points():
    params = SpineParams()
    full = generate_phantom(4, 3000, params=params, scanner=QUIET_SCANNER)
    holed = generate_phantom(4, 3000, params=params, scanner=dataclasses.replace(QUIET_SCANNER, num_holes=3, hole_radius=40.0))
    # Largest empty disc (approx.): the distance from grid nodes inside the back to the nearest point.
    def largest_gap(points):
        lo, hi = np.percentile(points[:, :2], [10, 90], axis=0)
        grid = np.stack(np.meshgrid(np.linspace(lo[0], hi[0], 40), np.linspace(lo[1], hi[1], 40)), -1).reshape(-1, 2)
        return cKDTree(points[:, :2]).query(grid)[0].max()
    assert largest_gap(holed.points) > largest_gap(full.points) + 5.0


def test_v2_surface_twist_and_arms():
    params = SpineParams()  # straight spine
    geometry = spine_geometry(params)
    base = _body(params, shoulder_asym=0.0, trunk_shift=0.0, outline_offset=0.0, arm_radius=0.0)
    y = np.array([0.6 * geometry.esl[0, 1]])
    xm, _ = BackSurface(geometry, base).midline(y)

    def side_difference(body):
        surface = BackSurface(geometry, body)
        return surface.height(xm + 70.0, y)[0] - surface.height(xm - 70.0, y)[0]

    assert abs(side_difference(dataclasses.replace(base, surface_twist_deg=0.0))) < 1.0
    assert side_difference(dataclasses.replace(base, surface_twist_deg=8.0)) > 10.0, "+ twist raises the right side"
    # An arm beside the trunk extends the outline beyond the trunk's own half-width.
    with_arm = dataclasses.replace(base, arm_radius=40.0, arm_right=1.0, arm_left=0.0, arm_bottom=0.2)
    surface = BackSurface(geometry, with_arm)
    _, right = surface.half_widths(y)
    x = xm + right + 30.0
    assert surface.inside(x, y)[0] and not BackSurface(geometry, base).inside(x, y)[0]
    assert not surface.inside(xm - right - 30.0, y)[0], "no left arm"


def test_v1_is_kept_for_before_after_comparisons():
    v1, v2 = generate_phantom(5, 256, version="v1"), generate_phantom(5, 256, version="v2")
    assert v1.meta["phantom"]["version"] == "v1" and v2.meta["phantom"]["version"] == "v2"
    assert v1.meta["phantom"]["body"]["arm_radius"] == 0.0 and v1.meta["phantom"]["scanner"]["area_weighting"] == 1.0
    assert v1.meta["phantom"]["spine"]["skin_flattening"] == 0.0
