import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pcdiff.ops import ball_query
from op_testing import CUDA, DEVICES, backend_param, random_clouds


def _naive_ball_query(q: np.ndarray, p: np.ndarray, r: float, k: int) -> np.ndarray:
    out = np.full((len(q), k), -1)
    for i, x in enumerate(q):
        inside = [j for j, y in enumerate(p) if np.sum((x - y) ** 2) < r * r][:k]
        out[i, : len(inside)] = inside
    return out


@settings(max_examples=25, deadline=None)
@given(
    b=st.integers(1, 2),
    n=st.integers(1, 20),
    m=st.integers(1, 30),
    k=st.integers(1, 8),
    r=st.floats(0.2, 2.0),
    seed=st.integers(0, 2**16),
)
def test_ball_query_matches_naive(b, n, m, k, r, seed):
    q, p = random_clouds(seed, b, n, 3, dtype=torch.float64), random_clouds(seed + 1, b, m, 3, dtype=torch.float64)
    got = ball_query(q, p, r, k, pad="none", backend="torch", max_block_elements=b * m * 3)
    ref = np.stack([_naive_ball_query(a, c, r, k) for a, c in zip(q.numpy(), p.numpy())])
    np.testing.assert_array_equal(got.numpy(), ref)


@pytest.mark.parametrize("device", DEVICES)
def test_ball_query_first_padding(device):
    p = torch.tensor([[[0.0, 0, 0], [10, 0, 0], [0.5, 0, 0], [20, 0, 0]]], device=device)
    q = torch.tensor([[[0.1, 0, 0], [19, 0, 0]]], device=device)
    idx = ball_query(q, p, radius=1.0, k=3)
    # query 0: neighbours 0 and 2, padded with the first; query 1: none in the ball -> nearest (3).
    assert idx.tolist() == [[[0, 2, 0], [3, 3, 3]]]
    assert ball_query(q, p, radius=1.0, k=3, pad="none").tolist() == [[[0, 2, -1], [-1, -1, -1]]]


@pytest.mark.parametrize("backend", [backend_param("pytorch3d")])
@pytest.mark.parametrize("device", CUDA)
def test_ball_query_compiled_backend_matches_torch(backend, device):
    q, p = random_clouds(3, 2, 100, 3, device=device), random_clouds(4, 2, 500, 3, device=device)
    for pad in ("none", "first"):
        assert torch.equal(ball_query(q, p, 0.4, 16, pad=pad, backend=backend), ball_query(q, p, 0.4, 16, pad=pad))


def test_ball_query_errors():
    p = torch.zeros(1, 4, 3)
    with pytest.raises(ValueError, match="radius must be > 0"):
        ball_query(p, p, 0.0, 2)
    with pytest.raises(ValueError, match="pad must be"):
        ball_query(p, p, 1.0, 2, pad="zero")
