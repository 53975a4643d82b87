"""The spinal-furrow tracer (pcdiff.estimator.furrow) on synthetic cost images and backs with a known furrow."""

import numpy as np
import pytest
from synthetic_backs import back_with_furrow

from pcdiff.estimator.furrow import (
    FurrowParams,
    depth_bands,
    detrend_lateral,
    furrow_path_x,
    trace_path,
    valley_cost,
)


def test_trace_path_follows_a_drifting_valley_and_ignores_a_single_deep_cell():
    rows, cols = 60, 40
    truth = np.round(10 + 15 * np.sin(np.linspace(0, np.pi, rows))).astype(int)  # moves <= 1 column per row
    cost = np.random.default_rng(0).uniform(0, 0.2, (rows, cols))
    cost[np.arange(rows), truth] = -1.0
    cost[30, 2] = -5.0  # one deep cell far from the valley: reaching it would cost many steps
    path = trace_path(cost, smoothness=0.5)
    assert path.shape == (rows,)
    np.testing.assert_array_equal(path, truth)
    assert np.abs(np.diff(path)).max() <= 1


def test_trace_path_smoothness_trades_cost_for_straightness():
    cost = np.zeros((5, 3))
    cost[2, 0] = -1.0  # a detour of two unit steps to collect -1
    assert trace_path(cost, smoothness=0.1)[2] == 0
    np.testing.assert_array_equal(trace_path(cost, smoothness=1.0), trace_path(np.zeros((5, 3)), 1.0))
    with pytest.raises(ValueError, match="empty"):
        trace_path(np.zeros((0, 3)), 1.0)


def test_detrend_removes_a_linear_profile_and_blanks_the_edges():
    z = np.tile(0.5 * np.arange(50.0), (3, 1))
    z[:, :5] = np.nan
    d = detrend_lateral(z, 3.0, min_coverage=0.95)
    np.testing.assert_allclose(d[:, 20:35], 0.0, atol=1e-6)
    assert np.isnan(d[:, :7]).all()  # empty bins and the bins whose Gaussian reaches into them
    assert np.isfinite(detrend_lateral(z, 3.0)[:, 5:]).all()  # without the coverage rule only empty bins are NaN


def test_valley_cost_is_lowest_at_a_v_groove():
    xs = np.arange(-100.0, 100.0, 2.0)
    z = np.tile(-(xs**2) / 400 - 6 * np.exp(-np.abs(xs - 14) / 6), (4, 1))  # a rounded back with a V at x = 14
    cost = valley_cost(z, 2.0)
    inner = np.abs(xs) < 60
    assert xs[inner][np.argmin(cost[:, inner], axis=1)].tolist() == [14.0] * 4


def test_furrow_path_recovers_a_curved_furrow():
    def truth(y):
        return 25 * np.sin(y / 400 * 2 * np.pi)

    points = back_with_furrow(truth)
    heights = np.linspace(380, 20, 64)
    x = furrow_path_x(points, heights)
    assert x.shape == (64,)
    assert np.sqrt(np.mean((x - truth(heights)) ** 2)) < 3.0


def test_sparse_scan_widens_the_bins_and_still_finds_the_furrow():
    points = back_with_furrow(lambda y: np.full_like(y, -20.0), num_points=4000, seed=1)  # ~5 mm spacing
    xs, z = depth_bands(points, np.linspace(380, 20, 10), -100, 100, 2.0, 4.0)
    assert np.isnan(z).mean() > 0.3  # 2 mm bins of 8 mm bands are mostly empty at this density...
    x = furrow_path_x(points, np.linspace(380, 20, 32), FurrowParams())  # ...so the tracer widens them
    assert np.sqrt(np.mean((x + 20) ** 2)) < 5.0


def test_top_anchor_shift_moves_the_top_to_the_axis_and_keeps_the_bottom():
    from pcdiff.estimator.furrow import top_anchor_shift

    heights = np.linspace(300, 0, 61)  # top -> bottom
    x = np.full(61, 10.0)
    out = top_anchor_shift(x, heights, sym_top=-2.0, weight=1.0, top_frac=0.1)
    assert out[-1] == pytest.approx(10.0)  # bottom untouched
    assert np.median(out[heights >= 270]) == pytest.approx(-2.0, abs=0.7)  # top moved onto the axis
    assert np.all(np.diff(out[heights < 285]) >= 0)  # linear fade towards the bottom
    np.testing.assert_allclose(top_anchor_shift(x[::-1], heights[::-1], -2.0, 1.0, 0.1), out[::-1])  # either order
    capped = top_anchor_shift(x, heights, sym_top=-90.0, weight=1.0, top_frac=0.1, max_shift_mm=15.0)
    assert capped.min() == pytest.approx(-5.0)  # an axis pulled far off moves the top by the cap only
    np.testing.assert_array_equal(top_anchor_shift(x, heights, -2.0, weight=0.0), x)


def test_top_anchor_pulls_a_path_that_drifted_at_the_top_back_to_the_midline():
    """A symmetric back whose furrow (true x = 0) is replaced over the top 20 % by a one-sided groove at x > 30
    (a scapula's edge): the plain path follows the groove, the re-anchored one ends near the axis."""
    rng = np.random.default_rng(3)
    x = rng.uniform(-150, 150, 60000)
    y = rng.uniform(0, 400, 60000)
    upper = y > 320
    z = -(x**2) / 300 + np.where(upper, 0.0, 4 * np.exp(-0.5 * ((np.abs(x) - 35) / 15) ** 2))
    edge = 3 * np.exp(-np.abs(x - 30) / 6) * (x > 30)  # one-sided: the fall off a scapula's edge
    z -= np.where(upper, edge, 5 * np.exp(-np.abs(x) / 8))
    points = np.stack([x, y, z + rng.normal(0, 0.3, 60000)], axis=1)
    heights = np.linspace(390, 10, 64)
    plain = furrow_path_x(points, heights, FurrowParams(smoothness=0.3))
    anchored = furrow_path_x(points, heights, FurrowParams(smoothness=0.3, top_anchor=1.0))
    assert abs(np.median(plain[:4])) > 10  # the plain path's top sits in the side groove
    assert abs(np.median(anchored[:4])) < abs(np.median(plain[:4])) - 8
    np.testing.assert_allclose(anchored[-1], plain[-1], atol=1e-9)  # bottom kept
