import numpy as np
import pytest
import torch
from scipy.spatial.distance import jensenshannon

from pcdiff.metrics import (
    generation_metrics,
    jsd_between_sets,
    mmd_cov,
    normalize_sets,
    one_nn_accuracy,
    pairwise_chamfer,
    pairwise_emd,
)
from pcdiff.metrics._numba import is_numba_available
from pcdiff.metrics.bounded_search import chamfer_search, emd_search
from pcdiff.metrics.generation import DenseDistances, LowerBoundDistances
from pcdiff.metrics.jsd import jensen_shannon_divergence


def _ellipsoids(seed: int, count: int, points: int = 64, offset: float = 0.0) -> torch.Tensor:
    """Random ellipsoid surfaces: one distribution of shapes (axes drawn per shape)."""
    g = torch.Generator().manual_seed(seed)
    d = torch.randn(count, points, 3, generator=g)
    d = d / d.norm(dim=-1, keepdim=True)
    axes = 1.0 + 0.5 * torch.rand(count, 1, 3, generator=g)
    return d * axes + offset


def _union_matrix(d_gr: torch.Tensor, d_gg: torch.Tensor, d_rr: torch.Tensor) -> torch.Tensor:
    return torch.cat([torch.cat([d_gg, d_gr], 1), torch.cat([d_gr.T, d_rr], 1)], 0)


def test_mmd_cov_on_hand_made_matrix():
    # 3 generated x 2 reference; generated 0 and 1 both match reference 0, generated 2 matches reference 1.
    d_gr = torch.tensor([[1.0, 5.0], [2.0, 6.0], [9.0, 3.0]], dtype=torch.float64)
    big = torch.full((3, 3), 100.0, dtype=torch.float64)
    d = _union_matrix(d_gr, big.fill_diagonal_(0), torch.tensor([[0.0, 100], [100, 0]], dtype=torch.float64))
    out = mmd_cov(DenseDistances(d), 3, 2)
    assert out["MMD"] == pytest.approx((1.0 + 3.0) / 2)  # per reference: min over generated
    assert out["COV"] == pytest.approx(100.0)
    d_gr[2] = torch.tensor([7.0, 8.0])  # now every generated cloud's nearest reference is reference 0
    d = _union_matrix(d_gr, big, torch.tensor([[0.0, 100], [100, 0]], dtype=torch.float64))
    out = mmd_cov(DenseDistances(d), 3, 2)
    assert out["COV"] == pytest.approx(50.0) and out["MMD"] == pytest.approx((1.0 + 5.0) / 2)


def test_one_nna_hand_made():
    # Two tight clusters that are exactly the two sets -> every nearest neighbour has the same label.
    d_gg = torch.tensor([[0.0, 1], [1, 0]], dtype=torch.float64)
    d_gr = torch.full((2, 2), 10.0, dtype=torch.float64)
    assert one_nn_accuracy(DenseDistances(_union_matrix(d_gr, d_gg, d_gg.clone())), 2, 2)["1-NNA"] == 100.0
    # Each generated cloud sits right next to one reference cloud -> every neighbour is of the other set.
    d_gr = torch.tensor([[0.1, 10.0], [10.0, 0.1]], dtype=torch.float64)
    assert one_nn_accuracy(DenseDistances(_union_matrix(d_gr, d_gg * 5, d_gg * 5)), 2, 2)["1-NNA"] == 0.0


def test_one_nna_near_50_for_one_distribution_and_100_for_different_ones():
    gen, ref = _ellipsoids(0, 40), _ellipsoids(1, 40)
    same = generation_metrics(gen, ref, distances=("cd",))
    assert 35.0 <= same["1-NNA-CD"] <= 65.0, same
    assert same["COV-CD"] > 40.0
    different = generation_metrics(_ellipsoids(0, 40, offset=3.0), ref, distances=("cd",))
    assert different["1-NNA-CD"] == 100.0
    assert different["MMD-CD"] > 5 * same["MMD-CD"]


@pytest.mark.parametrize("search", ["auto", "lower_bounds"])
def test_pruned_emd_search_equals_full_matrix_with_fewer_pairs(search):
    gen, ref = _ellipsoids(2, 8, points=32), _ellipsoids(3, 8, points=32, offset=0.3)
    full = generation_metrics(gen, ref, distances=("emd",), emd_search="full")
    pruned = generation_metrics(gen, ref, distances=("emd",), emd_search=search)
    assert pruned.pop("EMD-pairs") < full.pop("EMD-pairs") == 16 * 15 / 2
    assert pruned == pytest.approx(full, rel=1e-12)


def test_search_names_are_checked():
    gen = _ellipsoids(0, 3, points=16)
    with pytest.raises(ValueError, match="'pruned' is now 'bounded' or 'lower_bounds'"):
        generation_metrics(gen, gen, distances=("emd",), emd_search="pruned")
    with pytest.raises(ValueError, match="cd_search must be one of"):
        generation_metrics(gen, gen, distances=("cd",), cd_search="lower_bounds")


def test_pruned_search_returns_true_nearest():
    g = torch.Generator().manual_seed(0)
    true = torch.rand(12, 12, generator=g, dtype=torch.float64)
    true = true + true.T
    lower = true * torch.rand(12, 12, generator=g, dtype=torch.float64)
    lower = torch.minimum(lower, lower.T)
    oracle = LowerBoundDistances(lower, lambda a, b: true[a, b])
    for q in range(12):
        cand = torch.tensor([c for c in range(12) if c != q])
        assert oracle.nearest(q, cand) == DenseDistances(true).nearest(q, cand)


def test_jsd_matches_scipy_and_extremes():
    rng = np.random.default_rng(0)
    p, q = rng.random(50), rng.random(50)
    assert jensen_shannon_divergence(p, q) == pytest.approx(jensenshannon(p, q, base=2) ** 2, rel=1e-9)
    a = _ellipsoids(4, 5, points=200)
    assert jsd_between_sets(a, a) == pytest.approx(0.0, abs=1e-12)
    # Far apart in one joint frame: no shared cell, so the maximal divergence, 1 bit.
    assert jsd_between_sets(a, a + 100.0) == pytest.approx(1.0)
    # Same distribution of shapes: small once the histograms are well filled (10^4 points in 8^3 cells;
    # with 10^3 points it is ~0.1 of pure sampling noise), large for a shifted distribution.
    b, c = _ellipsoids(8, 20, points=500), _ellipsoids(9, 20, points=500)
    same = jsd_between_sets(b, c, resolution=8)
    shifted = jsd_between_sets(b, c + 0.5, resolution=8)
    assert 0.0 < same < 0.03 and shifted > 0.3


def test_normalizations():
    gen, ref = _ellipsoids(6, 3) * 50 + 7, _ellipsoids(7, 4) * 50 - 3
    g, r = normalize_sets(gen, ref, "joint")
    # PointFlow's dataset statistics: per-axis mean, one std over all coordinates.
    mean, std = ref.reshape(-1, 3).mean(0), ref.reshape(-1).std()
    torch.testing.assert_close(r * std + mean, ref)
    torch.testing.assert_close(g * std + mean, gen)
    g, r = normalize_sets(gen, ref, "per_shape")
    span = r.amax(1) - r.amin(1)
    torch.testing.assert_close(span.amax(-1), torch.full((4,), 2.0))
    with pytest.raises(ValueError, match="normalization must be"):
        normalize_sets(gen, ref, "unit")


def test_cd_set_metrics_with_different_point_counts_match_pairwise_chamfer():
    from pcdiff.metrics import pairwise_chamfer

    gen, ref = _ellipsoids(10, 5, points=40), _ellipsoids(11, 6, points=70)
    got = generation_metrics(gen, ref, distances=("cd",))
    d = _union_matrix(pairwise_chamfer(gen, ref), pairwise_chamfer(gen), pairwise_chamfer(ref))
    expected = mmd_cov(DenseDistances(d), 5, 6)
    assert got["MMD-CD"] == pytest.approx(expected["MMD"]) and got["COV-CD"] == pytest.approx(expected["COV"])
    with pytest.raises(ValueError, match="EMD needs equal point counts"):
        generation_metrics(gen, ref, distances=("emd",))


NEEDS_NUMBA = pytest.mark.skipif(not is_numba_available(), reason="numba is not installed: the full searches run")


@NEEDS_NUMBA
@pytest.mark.parametrize("metrics", [("mmd", "cov", "1nna"), ("mmd",), ("cov",), ("1nna",)])
def test_chamfer_search_gives_the_full_matrix_results(metrics):
    # shapes spread through space (distances differ a lot between pairs), so the bounds can prune
    gen = _ellipsoids(12, 10, points=48) + 2 * torch.randn(10, 1, 3, generator=torch.Generator().manual_seed(0))
    ref = _ellipsoids(13, 9, points=40) + 2 * torch.randn(9, 1, 3, generator=torch.Generator().manual_seed(1))
    full = generation_metrics(gen, ref, distances=("cd",), metrics=metrics, cd_search="full")
    pruned = generation_metrics(gen, ref, distances=("cd",), metrics=metrics, cd_search="bounded")
    assert pruned == pytest.approx(full, rel=1e-12)
    found = chamfer_search([*gen, *ref], 10, metrics)
    assert 0 < found.work < 1  # fewer nearest-neighbour queries than the full matrix
    kept = torch.isfinite(found.matrix)
    torch.testing.assert_close(found.matrix[kept], _union_matrix(
        pairwise_chamfer(gen, ref), pairwise_chamfer(gen), pairwise_chamfer(ref))[kept])  # fmt: skip


@NEEDS_NUMBA
def test_bounded_emd_search_exact_and_certified_modes():
    gen = _ellipsoids(14, 7, points=40) + torch.randn(7, 1, 3, generator=torch.Generator().manual_seed(2))
    ref = _ellipsoids(15, 7, points=40) + torch.randn(7, 1, 3, generator=torch.Generator().manual_seed(3))
    union = torch.cat([gen, ref])
    exact = pairwise_emd(union, method="exact")
    expected = {**mmd_cov(DenseDistances(exact), 7, 7), **one_nn_accuracy(DenseDistances(exact), 7, 7)}
    for mode in (True, False):
        found = emd_search(union, 7, ("mmd", "cov", "1nna"), exact=mode, rel_tol=1e-2)
        got = {**mmd_cov(DenseDistances(found.matrix), 7, 7), **one_nn_accuracy(DenseDistances(found.matrix), 7, 7)}
        kept = torch.isfinite(found.matrix) & (exact > 0)
        rel = (found.matrix[kept] - exact[kept]) / exact[kept]
        assert bool((rel >= -1e-9).all() and (rel <= 1e-2).all())  # every reported value certified
        assert got.pop("MMD") == pytest.approx(expected["MMD"], rel=1e-12 if mode else 1e-2)
        assert got == pytest.approx({k: v for k, v in expected.items() if k != "MMD"})  # exact winners
        assert found.work < 14 * 13 / 2 and found.pairs["exact"] < (14 * 13 / 2 if mode else 14)
