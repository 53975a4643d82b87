import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pcdiff.ops.voxelize import avg_voxelize, normalize_voxel_coords, trilinear_devoxelize


def naive_avg_voxelize(features: torch.Tensor, coords: torch.Tensor, r: int) -> torch.Tensor:
    """Loop over points: sum into a dict per voxel, then divide."""
    b, n, c = features.shape
    grid = torch.zeros(b, c, r, r, r, dtype=features.dtype)
    for bi in range(b):
        sums: dict[tuple[int, int, int], torch.Tensor] = {}
        counts: dict[tuple[int, int, int], int] = {}
        for ni in range(n):
            key = tuple(int(torch.round(v)) for v in coords[bi, ni])
            sums[key] = sums.get(key, torch.zeros(c, dtype=features.dtype)) + features[bi, ni]
            counts[key] = counts.get(key, 0) + 1
        for (x, y, z), s in sums.items():
            grid[bi, :, x, y, z] = s / counts[(x, y, z)]
    return grid


def naive_trilinear(grid: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Loop over points and the 8 cell corners with explicit trilinear weights."""
    b, c, r = grid.shape[:3]
    n = coords.shape[1]
    out = torch.zeros(b, n, c, dtype=grid.dtype)
    for bi in range(b):
        for ni in range(n):
            p = coords[bi, ni].clamp(0, r - 1)
            lo = [min(int(math.floor(v)), r - 1) for v in p]
            frac = [float(p[d]) - lo[d] for d in range(3)]
            for corner in itertools.product((0, 1), repeat=3):
                idx = [min(lo[d] + corner[d], r - 1) for d in range(3)]
                w = 1.0
                for d in range(3):
                    w *= frac[d] if corner[d] else 1.0 - frac[d]
                out[bi, ni] += w * grid[bi, :, idx[0], idx[1], idx[2]]
    return out


@settings(max_examples=25, deadline=None)
@given(
    st.integers(1, 3),
    st.integers(1, 40),
    st.integers(1, 5),
    st.integers(1, 6),
    st.booleans(),
    st.integers(0, 2**16),
)
def test_avg_voxelize_matches_naive(b, n, c, r, normalize, seed):
    g = torch.Generator().manual_seed(seed)
    points = torch.randn(b, n, 3, generator=g, dtype=torch.float64)
    feats = torch.randn(b, n, c, generator=g, dtype=torch.float64)
    coords = normalize_voxel_coords(points, r, normalize=normalize)
    assert coords.min() >= 0 and coords.max() <= r - 1
    grid = avg_voxelize(feats, coords, r)
    assert grid.shape == (b, c, r, r, r)
    torch.testing.assert_close(grid, naive_avg_voxelize(feats, coords, r))


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 3), st.integers(1, 30), st.integers(1, 4), st.integers(1, 6), st.integers(0, 2**16))
def test_trilinear_devoxelize_matches_naive(b, n, c, r, seed):
    g = torch.Generator().manual_seed(seed)
    grid = torch.randn(b, c, r, r, r, generator=g, dtype=torch.float64)
    coords = torch.rand(b, n, 3, generator=g, dtype=torch.float64) * (r - 1)
    out = trilinear_devoxelize(grid, coords)
    assert out.shape == (b, n, c)
    torch.testing.assert_close(out, naive_trilinear(grid, coords))


def test_devoxelize_at_voxel_centres_reads_the_voxel():
    r = 4
    grid = torch.randn(2, 3, r, r, r)
    ijk = torch.tensor([[0, 0, 0], [3, 1, 2], [1, 3, 0]])
    coords = ijk.float().expand(2, -1, -1)
    out = trilinear_devoxelize(grid, coords)
    for p, (i, j, k) in enumerate(ijk.tolist()):
        torch.testing.assert_close(out[:, p], grid[:, :, i, j, k])


def test_normalize_is_translation_and_scale_invariant():
    points = torch.randn(2, 50, 3)
    a = normalize_voxel_coords(points, 8)
    b = normalize_voxel_coords(points * 3.0 + torch.tensor([5.0, -2.0, 1.0]), 8)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    # the farthest point lies on the sphere of radius (R - 1) / 2 around the grid centre
    radius = (a - a.mean(dim=1, keepdim=True)).norm(dim=-1).amax(dim=1)
    torch.testing.assert_close(radius, torch.full((2,), 3.5))


def test_fixed_box_maps_corners_and_clamps():
    points = torch.tensor([[[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [5.0, -5.0, 0.0]]])
    coords = normalize_voxel_coords(points, 5, normalize=False)
    expected = torch.tensor([[[0.0, 0, 0], [4, 4, 4], [2, 2, 2], [4, 0, 2]]])
    torch.testing.assert_close(coords, expected)


def test_voxelize_then_devoxelize_roundtrip_on_single_point_voxels():
    # points exactly at distinct voxel centres come back unchanged
    r = 3
    ijk = torch.tensor(list(itertools.product(range(r), repeat=3)), dtype=torch.float64)[None]  # (1, 27, 3)
    feats = torch.randn(1, ijk.shape[1], 4, dtype=torch.float64)
    back = trilinear_devoxelize(avg_voxelize(feats, ijk, r), ijk)
    torch.testing.assert_close(back, feats)


def test_gradcheck_float64():
    g = torch.Generator().manual_seed(0)
    r = 3
    feats = torch.randn(2, 7, 2, generator=g, dtype=torch.float64, requires_grad=True)
    coords = torch.rand(2, 7, 3, generator=g, dtype=torch.float64) * (r - 1)
    assert torch.autograd.gradcheck(lambda f: avg_voxelize(f, coords, r), (feats,))
    grid = torch.randn(2, 2, r, r, r, generator=g, dtype=torch.float64, requires_grad=True)
    # keep away from integer coordinates, where trilinear interpolation has kinks
    cell = torch.randint(0, r - 1, (2, 5, 3), generator=g)
    query = torch.rand(2, 5, 3, generator=g, dtype=torch.float64) * 0.8 + 0.1 + cell
    query.requires_grad_(True)
    assert torch.autograd.gradcheck(trilinear_devoxelize, (grid, query))


def test_empty_voxels_are_zero_and_bad_input_is_loud():
    feats = torch.ones(1, 2, 1)
    coords = torch.tensor([[[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]])
    grid = avg_voxelize(feats, coords, 2)
    assert grid[0, 0, 0, 0, 0] == 1 and grid.sum() == 1
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        avg_voxelize(feats, coords + 1.6, 2)
    with pytest.raises(ValueError, match="voxel_coords of shape"):
        avg_voxelize(feats, coords[:, :1], 2)
    with pytest.raises(ValueError, match=r"\(B, C, R, R, R\)"):
        trilinear_devoxelize(torch.zeros(1, 1, 2, 2, 3), coords)
    with pytest.raises(ValueError, match=r"\(B, N, 3\)"):
        normalize_voxel_coords(torch.zeros(2, 3), 4)


def test_half_precision_features_average_exactly():
    # 3000 points in one voxel: float16 cannot count past 2048, the float32 accumulator can
    feats = torch.full((1, 3000, 1), 0.5, dtype=torch.bfloat16)
    grid = avg_voxelize(feats, torch.zeros(1, 3000, 3), 1)
    assert grid.dtype == torch.bfloat16 and grid.item() == 0.5
