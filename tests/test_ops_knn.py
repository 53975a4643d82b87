import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial import cKDTree

from pcdiff.ops import knn_points, square_distance
from op_testing import CUDA, DEVICES, backend_param, random_clouds


def _reference(p1: np.ndarray, p2: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    d, i = zip(*(cKDTree(b).query(a, k=k) for a, b in zip(p1, p2)))
    d, i = np.stack(d), np.stack(i)
    return (d**2).reshape(*p1.shape[:2], k), i.reshape(*p1.shape[:2], k)


@settings(max_examples=25, deadline=None)
@given(
    b=st.integers(1, 3),
    n=st.integers(1, 40),
    m=st.integers(1, 40),
    d=st.integers(1, 4),
    k=st.integers(1, 6),
    seed=st.integers(0, 2**16),
)
def test_knn_matches_kdtree(b, n, m, d, k, seed):
    k = min(k, m)
    p1, p2 = random_clouds(seed, b, n, d, dtype=torch.float64), random_clouds(seed + 1, b, m, d, dtype=torch.float64)
    dists, idx = knn_points(p1, p2, k, backend="torch")
    ref_d, ref_i = _reference(p1.numpy(), p2.numpy(), k)
    np.testing.assert_allclose(dists.numpy(), ref_d, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(idx.numpy(), ref_i)  # continuous random points: no ties


@pytest.mark.parametrize("device", DEVICES)
def test_knn_chunked_equals_unchunked(device):
    p1, p2 = random_clouds(0, 2, 300, 3, device=device), random_clouds(1, 2, 257, 3, device=device)
    full = knn_points(p1, p2, 5, backend="torch")
    chunked = knn_points(p1, p2, 5, backend="torch", max_block_elements=2 * 257 * 7)  # 7 rows a block
    torch.testing.assert_close(chunked.dists_sq, full.dists_sq)
    assert torch.equal(chunked.idx, full.idx)


def test_knn_gradients_match_finite_differences():
    p1 = random_clouds(2, 2, 6, 3, dtype=torch.float64).requires_grad_()
    p2 = random_clouds(3, 2, 7, 3, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: knn_points(a, b, 3).dists_sq, (p1, p2))


def test_square_distance_matches_direct_difference():
    p1, p2 = random_clouds(4, 2, 9, 3, dtype=torch.float64), random_clouds(5, 2, 11, 3, dtype=torch.float64)
    direct = (p1[:, :, None] - p2[:, None]).square().sum(-1)
    torch.testing.assert_close(square_distance(p1, p2), direct)


@pytest.mark.parametrize("backend", [backend_param("pytorch3d"), backend_param("torch_cluster")])
@pytest.mark.parametrize("device", CUDA)
def test_knn_compiled_backend_matches_torch(backend, device):
    p1, p2 = random_clouds(6, 3, 500, 3, device=device), random_clouds(7, 3, 400, 3, device=device)
    fast, slow = knn_points(p1, p2, 8, backend=backend), knn_points(p1, p2, 8, backend="torch")
    torch.testing.assert_close(fast.dists_sq, slow.dists_sq)
    assert (fast.idx == slow.idx).float().mean() > 0.999  # float32 near-ties may swap order


def test_knn_errors_are_loud():
    p = torch.zeros(1, 4, 3)
    with pytest.raises(ValueError, match=r"k must be in \[1, M=4\]"):
        knn_points(p, p, 5)
    with pytest.raises(ValueError, match="expected shape"):
        knn_points(torch.zeros(4, 3), p, 1)
    with pytest.raises(ValueError, match="share batch size"):
        knn_points(torch.zeros(2, 4, 3), p, 1)
    with pytest.raises(ValueError, match="unknown backend"):
        knn_points(p, p, 1, backend="faiss")
