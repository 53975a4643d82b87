import pytest
import torch

from pcdiff.ops import gather_points
from op_testing import DEVICES, random_clouds


@pytest.mark.parametrize("device", DEVICES)
def test_gather_matches_fancy_indexing(device):
    pts = random_clouds(0, 2, 10, 5, device=device)
    idx = torch.randint(10, (2, 4, 3), device=device)
    out = gather_points(pts, idx)
    assert out.shape == (2, 4, 3, 5)
    for b in range(2):
        torch.testing.assert_close(out[b], pts[b][idx[b]])


def test_gather_gradient_accumulates_repeated_indices():
    pts = torch.zeros(1, 3, 2, requires_grad=True)
    gather_points(pts, torch.tensor([[0, 0, 2]])).sum().backward()
    assert pts.grad.tolist() == [[[2.0, 2.0], [0.0, 0.0], [1.0, 1.0]]]


def test_gather_rejects_padding_and_bad_shapes():
    pts = torch.zeros(1, 3, 2)
    with pytest.raises(IndexError, match=r"\[0, 3\)"):
        gather_points(pts, torch.tensor([[0, -1]]))
    with pytest.raises(ValueError, match="idx of shape"):
        gather_points(pts, torch.tensor([0, 1]))
