import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment

from pcdiff.metrics import earth_movers_distance, emd_auction, emd_exact, pairwise_emd
from pcdiff.metrics._auction import auction, pair_cost, resume_auction
from pcdiff.metrics._numba import is_numba_available
from op_testing import DEVICES, random_clouds


def _brute_force_emd(a: np.ndarray, b: np.ndarray) -> float:
    cost = np.linalg.norm(a[:, None] - b[None], axis=-1)
    return min(cost[np.arange(len(a)), list(p)].mean() for p in itertools.permutations(range(len(b))))


@pytest.mark.parametrize("solver", ["scipy", "pot"])
def test_exact_emd_matches_all_permutations(solver):
    x, y = random_clouds(0, 3, 6, 3, dtype=torch.float64), random_clouds(1, 3, 6, 3, dtype=torch.float64)
    got = emd_exact(x, y, solver=solver)
    np.testing.assert_allclose(got.numpy(), [_brute_force_emd(a, b) for a, b in zip(x.numpy(), y.numpy())], rtol=1e-12)


def test_exact_solvers_agree_on_larger_clouds():
    x, y = random_clouds(2, 2, 200, 3), random_clouds(3, 2, 200, 3) + 0.5
    torch.testing.assert_close(emd_exact(x, y, solver="pot"), emd_exact(x, y, solver="scipy"))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("bidding", ["auto", "jacobi"])
@pytest.mark.parametrize("shift", [0.0, 1.0])
def test_auction_error_against_linear_sum_assignment(device, bidding, shift):
    x = random_clouds(4, 3, 256, 3, device=device)
    y = random_clouds(5, 3, 256, 3, device=device) + shift
    res = emd_auction(x, y, rel_tol=1e-2, bidding=bidding)
    exact = []
    for a, b in zip(x.cpu().double().numpy(), y.cpu().double().numpy()):
        cost = np.linalg.norm(a[:, None] - b[None], axis=-1)
        r, c = linear_sum_assignment(cost)
        exact.append(cost[r, c].mean())
    exact = np.array(exact)
    got, lower = res.emd.double().cpu().numpy(), res.lower_bound.double().cpu().numpy()
    assert np.all(lower <= exact * (1 + 1e-5)) and np.all(got >= exact * (1 - 1e-5))  # bounds bracket it
    assert np.all((got - exact) / exact < 1e-2)  # the certified tolerance
    assert sorted(res.assignment[0].tolist()) == list(range(256))  # a permutation


def test_auction_gradient_is_that_of_the_matched_distances():
    x = random_clouds(6, 1, 20, 3, dtype=torch.float64).requires_grad_()
    y = random_clouds(7, 1, 20, 3, dtype=torch.float64)
    res = emd_auction(x, y, rel_tol=1e-6)
    res.emd.sum().backward()
    diff = x.detach()[0] - y[0, res.assignment[0]]
    expected = diff / diff.norm(dim=1, keepdim=True) / 20
    torch.testing.assert_close(x.grad[0], expected)


def test_pairwise_emd_is_symmetric_and_matches_pairs():
    xs = random_clouds(8, 4, 30, 3, dtype=torch.float64)
    full = pairwise_emd(xs, method="exact")
    assert torch.equal(full, full.T) and torch.all(full.diagonal() == 0)
    assert full[1, 3].item() == pytest.approx(emd_exact(xs[1:2], xs[3:4]).item())


def test_emd_errors():
    with pytest.raises(ValueError, match="equal size"):
        emd_exact(torch.zeros(1, 4, 3), torch.zeros(1, 5, 3))
    with pytest.raises(ValueError, match="method must be"):
        earth_movers_distance(torch.zeros(1, 4, 3), torch.zeros(1, 4, 3), method="sinkhorn")


NEEDS_NUMBA = pytest.mark.skipif(not is_numba_available(), reason="numba is not installed: the NumPy auction is used")


def _lsa_sum(cost: np.ndarray) -> float:
    r, c = linear_sum_assignment(cost)
    return float(cost[r, c].sum())


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 40), seed=st.integers(0, 2**16), shift=st.sampled_from([0.0, 0.3, 3.0]), squared=st.booleans())
def test_compiled_auction_certified_against_linear_sum_assignment(n, seed, shift, squared):
    x, y = random_clouds(seed, n, 3).double().numpy(), random_clouds(seed + 1, n, 3).double().numpy() + shift
    cost = pair_cost(x, y, squared)
    person, primal, dual, _ = auction(cost, 1e-2, 4.0, -1)
    exact = _lsa_sum(cost)
    assert sorted(person.tolist()) == list(range(n))  # a permutation
    assert primal == pytest.approx(cost[np.arange(n), person].sum())
    assert dual <= exact * (1 + 1e-9) + 1e-9 and exact <= primal * (1 + 1e-9) + 1e-9  # the bounds bracket it
    assert primal - exact <= 1e-2 * exact + 1e-9  # the certified tolerance, relative to the optimum


@NEEDS_NUMBA
def test_compiled_and_interpreted_auction_agree():
    x, y = random_clouds(11, 12, 3).double().numpy(), random_clouds(12, 12, 3).double().numpy()
    cost = pair_cost(x, y, False)
    compiled = auction(cost, 1e-3, 4.0, -1)
    interpreted = resume_auction.py_func(pair_cost.py_func(x, y, False), 1e-3, 4.0, -1, np.zeros(12), np.full(12, -1), -1.0)
    np.testing.assert_array_equal(compiled[0], interpreted[0])
    assert compiled[1:] == pytest.approx(interpreted[1:4], rel=1e-12)


@pytest.mark.parametrize("dim", [2, 3, 4])
def test_pair_cost_matches_torch_cdist(dim):
    x, y = random_clouds(3, 30, dim).double(), random_clouds(4, 25, dim).double()
    for squared in (False, True):
        expected = torch.cdist(x, y) ** (2 if squared else 1)
        np.testing.assert_allclose(pair_cost(x.numpy(), y.numpy(), squared), expected.numpy(), rtol=1e-9, atol=1e-12)


@NEEDS_NUMBA
@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16), n=st.integers(2, 40), coarse=st.sampled_from([0.5, 0.3, 0.1]))
def test_resumed_auction_is_certified_like_a_fresh_one(seed, n, coarse):
    """Stopping at a coarse gap and resuming from the saved prices and matching ends within the tight gap."""
    x, y = random_clouds(seed, n, 3).double().numpy(), random_clouds(seed + 1, n, 3).double().numpy() + 0.2
    cost = pair_cost(x, y, False)
    exact = _lsa_sum(cost)
    price, person = np.zeros(n), np.full(n, -1)
    *_, eps = resume_auction(cost, coarse, 4.0, -1, price, person, -1.0)
    best, primal, dual, _, _ = resume_auction(cost, 1e-3, 4.0, -1, price, person, eps / 4.0)
    assert sorted(best.tolist()) == list(range(n))
    assert primal == pytest.approx(cost[np.arange(n), best].sum())
    assert dual <= exact * (1 + 1e-9) + 1e-9 and exact <= primal * (1 + 1e-9) + 1e-9
    assert primal - exact <= 1e-3 * exact + 1e-9


def test_compiled_auction_on_identical_clouds_stops_at_zero():
    x = random_clouds(13, 50, 3).double().numpy()
    person, primal, dual, _ = auction(pair_cost(x, x, False), 1e-2, 4.0, -1)
    assert primal == 0.0 and person.tolist() == list(range(50))


@NEEDS_NUMBA
def test_numba_and_numpy_bidding_agree_within_the_certificate():
    x, y = random_clouds(14, 2, 300, 3), random_clouds(15, 2, 300, 3) + 0.5
    exact = emd_exact(x, y).numpy()
    for bidding in ("numba", "gauss_seidel"):
        res = emd_auction(x, y, rel_tol=1e-2, bidding=bidding)
        got = res.emd.double().numpy()
        assert np.all(got >= exact * (1 - 1e-6)) and np.all(got <= exact * 1.0101), bidding
        assert np.all(res.lower_bound.numpy() <= exact * (1 + 1e-6)), bidding
