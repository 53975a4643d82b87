import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial import cKDTree

from pcdiff.metrics import chamfer_distance, fscore, pairwise_chamfer, pairwise_nearest_means
from pcdiff.metrics._grid_nn import build_grids, directed_sums
from pcdiff.metrics._numba import is_numba_available
from op_testing import DEVICES, random_clouds


def _kdtree_chamfer(a: np.ndarray, b: np.ndarray, squared: bool) -> float:
    d1, d2 = cKDTree(b).query(a)[0], cKDTree(a).query(b)[0]
    return (d1**2).mean() + (d2**2).mean() if squared else (d1.mean() + d2.mean()) / 2


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 60), m=st.integers(1, 60), seed=st.integers(0, 2**16), squared=st.booleans())
def test_chamfer_matches_kdtree_with_unequal_counts(n, m, seed, squared):
    x, y = random_clouds(seed, 2, n, 3, dtype=torch.float64), random_clouds(seed + 7, 2, m, 3, dtype=torch.float64)
    reduction = "sum" if squared else "mean"
    ref = [_kdtree_chamfer(a, b, squared) for a, b in zip(x.numpy(), y.numpy())]
    for backend in ("torch", "kdtree"):
        got = chamfer_distance(x, y, squared=squared, reduction=reduction, backend=backend)
        np.testing.assert_allclose(got.numpy(), ref, rtol=1e-9)


def test_chamfer_conventions_differ_as_documented():
    x = torch.tensor([[[0.0, 0, 0]]])
    y = torch.tensor([[[2.0, 0, 0]]])
    assert chamfer_distance(x, y).item() == pytest.approx(8.0)  # 4 + 4, squared, summed
    assert chamfer_distance(x, y, squared=False, reduction="mean").item() == pytest.approx(2.0)
    assert chamfer_distance(x, y, squared=False, reduction="sum").item() == pytest.approx(4.0)
    with pytest.raises(ValueError, match="reduction"):
        chamfer_distance(x, y, reduction="max")


def test_chamfer_is_differentiable_and_zero_at_identity():
    x = random_clouds(1, 2, 30, 3, dtype=torch.float64).requires_grad_()
    assert torch.allclose(chamfer_distance(x, x.detach()), torch.zeros(2, dtype=torch.float64))
    y = random_clouds(2, 2, 20, 3, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: chamfer_distance(a, b, squared=False), (x, y))


@pytest.mark.parametrize("device", DEVICES)
def test_pairwise_chamfer_backends_agree_with_pairs(device):
    xs, ys = random_clouds(3, 4, 50, 3, device=device), random_clouds(4, 3, 40, 3, device=device)
    ref = torch.stack([chamfer_distance(xs[a : a + 1], ys[b : b + 1])[0] for a in range(4) for b in range(3)])
    for backend in ("kdtree", "torch"):
        got = pairwise_chamfer(xs, ys, backend=backend)
        torch.testing.assert_close(got, ref.view(4, 3).double().cpu(), rtol=1e-5, atol=1e-6)
    same = pairwise_chamfer(xs)
    torch.testing.assert_close(same, same.T)
    assert torch.all(same.diagonal() == 0)


def test_fscore_on_hand_made_case():
    x = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [10, 0, 0], [20, 0, 0]]])
    y = torch.tensor([[[0.5, 0, 0], [1.2, 0, 0]]])
    out = fscore(x, y, threshold=1.0)
    # precision: x0 (0.5 away) and x1 (0.2) are within 1 of y -> 2/4; recall: both y points -> 1.
    assert out["precision"].item() == pytest.approx(0.5)
    assert out["recall"].item() == pytest.approx(1.0)
    assert out["fscore"].item() == pytest.approx(2 * 0.5 / 1.5)
    assert fscore(x, y + 100, threshold=1.0)["fscore"].item() == 0.0
    with pytest.raises(ValueError, match="threshold must be > 0"):
        fscore(x, y, threshold=0)


NEEDS_NUMBA = pytest.mark.skipif(not is_numba_available(), reason="numba is not installed: the KD-tree path is used")


def _grid_nearest(points: np.ndarray, queries: np.ndarray, kernel=directed_sums) -> float:
    grids = build_grids(points, np.array([0, len(points)]))
    flat = np.ascontiguousarray(queries)
    one = np.zeros(1, dtype=np.int64)
    return kernel(flat, np.array([0, len(flat)]), grids, one, one, one, np.array([len(flat)]))


@settings(max_examples=40, deadline=None)
@given(
    m=st.integers(1, 80),
    seed=st.integers(0, 2**16),
    flat_axis=st.sampled_from([None, 0, 1, 2]),
    spread=st.sampled_from([1e-3, 1.0, 50.0]),
    far=st.sampled_from([0.0, 10.0]),
)
def test_grid_nearest_neighbours_match_kdtree(m, seed, flat_axis, spread, far):
    rng = np.random.default_rng(seed)
    points = rng.normal(size=(m, 3)) * rng.uniform(0.01, 1.0, size=3) * spread
    if flat_axis is not None:  # a planar cloud: one degenerate grid axis
        points[:, flat_axis] = 0.0
    points[: m // 3] = points[0]  # duplicates
    queries = rng.normal(size=(64, 3)) * spread + far * spread  # some far outside the grid
    d = cKDTree(points).query(queries)[0]
    sq, plain = _grid_nearest(points, queries)
    assert sq[0] == pytest.approx((d**2).sum(), rel=1e-10, abs=1e-12)
    assert plain[0] == pytest.approx(d.sum(), rel=1e-10, abs=1e-12)


@NEEDS_NUMBA
def test_grid_kernel_compiled_and_interpreted_agree():
    rng = np.random.default_rng(0)
    points, queries = rng.normal(size=(30, 3)), rng.normal(size=(10, 3))
    np.testing.assert_allclose(_grid_nearest(points, queries), _grid_nearest(points, queries, directed_sums.py_func))


@NEEDS_NUMBA
def test_grid_backend_matches_kdtree_backend():
    xs, ys = random_clouds(5, 4, 70, 3, dtype=torch.float64), random_clouds(6, 3, 50, 3, dtype=torch.float64) * 3
    for got, ref in zip(pairwise_nearest_means(xs, ys, backend="grid"), pairwise_nearest_means(xs, ys, backend="kdtree")):
        torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="3-D points"):
        pairwise_nearest_means(random_clouds(0, 2, 5, 2), backend="grid")
