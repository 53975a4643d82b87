"""Surface variation and depth extent against clouds whose answer is known."""

import math

import pytest
import torch

from pcdiff.metrics.surface import depth_extent, surface_variation


def test_a_plane_has_zero_and_a_blob_a_third():
    torch.manual_seed(0)
    plane = torch.cat([torch.rand(1, 500, 2), torch.zeros(1, 500, 1)], dim=-1)
    blob = torch.randn(1, 4000, 3)
    assert surface_variation(plane).item() < 1e-9
    assert 0.12 < surface_variation(blob).item() <= 1 / 3 + 1e-6  # 16-point covariances bias lambda_min low


def test_a_thicker_sheet_varies_more():
    torch.manual_seed(1)
    flat = torch.rand(1, 2000, 3) * torch.tensor([100.0, 100.0, 1.0])
    thick = flat * torch.tensor([1.0, 1.0, 10.0])
    assert surface_variation(thick) > 5 * surface_variation(flat)


def test_surface_variation_is_rotation_and_scale_invariant():
    torch.manual_seed(2)
    cloud = torch.randn(2, 300, 3) * torch.tensor([3.0, 2.0, 0.2])
    angle = 0.7
    rot = torch.tensor([[math.cos(angle), -math.sin(angle), 0], [math.sin(angle), math.cos(angle), 0], [0, 0, 1.0]])
    torch.testing.assert_close(surface_variation(cloud @ rot.T * 5), surface_variation(cloud), rtol=1e-4, atol=1e-6)


def test_depth_extent_percentiles():
    z = torch.linspace(0, 100, 101)
    cloud = torch.stack([torch.zeros(101), torch.zeros(101), z], dim=-1)[None]
    torch.testing.assert_close(depth_extent(cloud), torch.tensor([98.0]))
    torch.testing.assert_close(depth_extent(cloud, 0, 100), torch.tensor([100.0]))
    with pytest.raises(ValueError):
        depth_extent(cloud, 50, 10)
    with pytest.raises(ValueError):
        surface_variation(torch.zeros(1, 10, 3), k=16)
