"""The max-sliced W1 lower bound of the bounded EMD search: below the exact EMD, exact in 1-D cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pcdiff.metrics import emd_exact
from pcdiff.metrics._numba import is_numba_available
from pcdiff.metrics._sliced import sliced_w1_bound, unit_directions

pytestmark = pytest.mark.skipif(not is_numba_available(), reason="numba is not installed")


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**16), n=st.integers(1, 30), spread=st.sampled_from([0.1, 1.0, 5.0]))
def test_sliced_bound_never_exceeds_the_exact_emd(seed, n, spread):
    gen = torch.Generator().manual_seed(seed)
    clouds = torch.randn(5, n, 3, generator=gen, dtype=torch.float64) + spread * torch.randn(5, 1, 3, generator=gen, dtype=torch.float64)
    bound = sliced_w1_bound(clouds, directions=16, seed=seed)
    a, b = torch.triu_indices(5, 5, 1)
    exact = emd_exact(clouds[a], clouds[b])
    assert bool((bound[a, b] <= exact * (1 + 1e-12) + 1e-12).all())
    torch.testing.assert_close(bound, bound.T)
    assert bool((bound.diagonal() == 0).all())


def test_sliced_bound_is_exact_for_translated_clouds():
    """A pure translation t: every matching costs at least |t| and the identity costs |t|; the axis along t
    is among the directions, so the bound reaches the EMD."""
    x = torch.randn(40, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    clouds = torch.stack([x, x + torch.tensor([0.0, 2.5, 0.0], dtype=torch.float64)])
    assert sliced_w1_bound(clouds, directions=4)[0, 1].item() == pytest.approx(2.5, rel=1e-12)


def test_unit_directions_are_unit_and_reproducible():
    d = unit_directions(10, 3, seed=4)
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), 1.0)
    np.testing.assert_array_equal(d, unit_directions(10, 3, seed=4))
