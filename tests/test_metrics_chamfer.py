import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial import cKDTree

from pcdiff.metrics import chamfer_distance, fscore, pairwise_chamfer
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
