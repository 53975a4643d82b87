import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pcdiff.ops import farthest_point_sample
from op_testing import CUDA, DEVICES, backend_param, random_clouds


def _naive_fps(points: np.ndarray, s: int) -> list[int]:
    """Textbook loop: pick the point farthest from everything picked so far, starting at 0."""
    chosen = [0]
    for _ in range(s - 1):
        dist = [min(np.sum((p - points[c]) ** 2) for c in chosen) for p in points]
        chosen.append(int(np.argmax(dist)))
    return chosen


@settings(max_examples=20, deadline=None)
@given(b=st.integers(1, 3), n=st.integers(1, 30), s=st.integers(1, 30), seed=st.integers(0, 2**16))
def test_fps_matches_naive_loop(b, n, s, seed):
    s = min(s, n)
    pts = random_clouds(seed, b, n, 3, dtype=torch.float64)
    idx = farthest_point_sample(pts, s, backend="torch")
    assert idx.shape == (b, s) and idx.dtype == torch.int64
    for cloud, got in zip(pts.numpy(), idx.tolist()):
        assert got == _naive_fps(cloud, s)


@pytest.mark.parametrize("device", DEVICES)
def test_fps_covering_radius_shrinks_and_indices_unique(device):
    pts = random_clouds(0, 2, 500, 3, device=device)
    idx = farthest_point_sample(pts, 64)
    for cloud, sel in zip(pts, idx):
        assert len(set(sel.tolist())) == 64
        # The distance at which each new point is picked never increases (greedy covering).
        picked = cloud[sel]
        radii = [torch.cdist(picked[i : i + 1], picked[:i]).min().item() for i in range(1, 64)]
        assert all(a >= b - 1e-5 for a, b in zip(radii, radii[1:]))


def test_fps_random_start_uses_generator():
    pts = random_clouds(1, 2, 100, 3)
    a = farthest_point_sample(pts, 5, random_start=True, generator=torch.Generator().manual_seed(3))
    b = farthest_point_sample(pts, 5, random_start=True, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


@pytest.mark.parametrize("backend", [backend_param("pytorch3d"), backend_param("torch_cluster")])
@pytest.mark.parametrize("device", CUDA)
def test_fps_compiled_backend_matches_torch(backend, device):
    pts = random_clouds(2, 3, 1000, 3, device=device)
    assert torch.equal(farthest_point_sample(pts, 100, backend=backend), farthest_point_sample(pts, 100, backend="torch"))


def test_fps_rejects_too_many_samples():
    with pytest.raises(ValueError, match=r"num_samples must be in \[1, N=4\]"):
        farthest_point_sample(torch.zeros(1, 4, 3), 5)
