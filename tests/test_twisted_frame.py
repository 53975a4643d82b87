"""pcdiff.geometry.frames.twisted: the turn beside the curve taken out of straightened backs, and put back."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pcdiff.geometry.frames import fit_twist_gain, from_model, retwist, to_model, unstraighten, untwist
from pcdiff.geometry.frames.twisted import DEFAULT_TWIST_WIDTH, deviation_at_height


def _curved_line(amplitude: float, k: int = 17) -> torch.Tensor:
    """(1, k, 3) a line from y = 0.5 (top) to -0.5 bound by x = amplitude * cos(pi y), ends at x = 0."""
    y = torch.linspace(0.5, -0.5, k, dtype=torch.float64)
    return torch.stack([amplitude * torch.cos(torch.pi * y), y, 0.1 * y], dim=-1)[None]


def test_deviation_is_zero_at_the_ends_and_beyond_and_the_bulge_in_between():
    line = _curved_line(0.1)
    d = deviation_at_height(line, torch.tensor([[0.5, 0.0, -0.5, 0.9, -0.9]], dtype=torch.float64))
    torch.testing.assert_close(d, torch.tensor([[0.0, 0.1, 0.0, 0.0, 0.0]], dtype=torch.float64), atol=1e-9, rtol=0)
    tilted = line.clone()
    tilted[..., 0] += 0.3 * tilted[..., 1]  # a lean is part of the chord, not a deviation
    torch.testing.assert_close(deviation_at_height(tilted, line[..., 1]), deviation_at_height(line, line[..., 1]))


@settings(max_examples=30, deadline=None)
@given(gain=st.floats(-20, 20), amplitude=st.floats(-0.15, 0.15), seed=st.integers(0, 2**16))
def test_retwist_undoes_untwist_and_moves_depth_only(gain, amplitude, seed):
    points = torch.rand(2, 300, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) - 0.5
    line = _curved_line(amplitude).expand(2, -1, -1)
    flat = untwist(points, line, gain)
    torch.testing.assert_close(flat[..., :2], points[..., :2])
    torch.testing.assert_close(retwist(flat, line, gain), points)
    # through the model-space maps too: straightened, untwisted and scaled, then back
    torch.testing.assert_close(from_model(to_model(points, 2.0, line, gain), 2.0, line, gain), points)


def test_untwist_removes_a_turn_made_by_the_model():
    """A flat back turned by gain g about the line: untwisting by g flattens it; the turn lies on the convex side."""
    line = _curved_line(0.1)
    x, y = torch.meshgrid(torch.linspace(-0.4, 0.4, 41, dtype=torch.float64), torch.linspace(0.45, -0.45, 37, dtype=torch.float64), indexing="ij")
    flat = torch.stack([x.ravel(), y.ravel(), torch.zeros(x.numel(), dtype=torch.float64)], dim=-1)[None]
    turned = retwist(flat, line, 5.0)
    mid = (flat[0, :, 1].abs() < 0.02) & (flat[0, :, 0].abs() - 0.1).abs().lt(0.01)  # mid-height, 0.1 either side
    right, left = turned[0, mid & (flat[0, :, 0] > 0), 2], turned[0, mid & (flat[0, :, 0] < 0), 2]
    assert (right > 0).all() and (left < 0).all()  # deviation +x: the right side stands out towards the scanner
    assert right.mean() == pytest.approx(5.0 * 0.1 * 0.1 * np.exp(-((0.1 / DEFAULT_TWIST_WIDTH) ** 4)), rel=0.05)
    torch.testing.assert_close(untwist(turned, line, 5.0), flat)


@pytest.mark.parametrize("gain", [0.0, 3.0, -6.0])
def test_fit_recovers_the_gain_of_turned_backs(gain):
    """Backs straightened by their lines and turned by ``gain`` (plus a bumpy symmetric skin): the fit returns ``gain``."""
    backs, lines = [], []
    rng = np.random.default_rng(0)
    for amplitude in (0.05, -0.1, 0.12):
        line = _curved_line(amplitude)
        xy = rng.uniform([-0.4, -0.5], [0.4, 0.5], size=(20000, 2))
        z = -0.3 * xy[:, 0] ** 2 + 0.01 * np.cos(8 * xy[:, 1])  # symmetric about x = 0
        flat = torch.from_numpy(np.column_stack([xy, z]))[None]
        back = unstraighten(retwist(flat, line, gain), line)  # the turned back put onto its line
        backs.append(back[0].numpy())
        lines.append(line[0].numpy())
    assert fit_twist_gain(backs, lines) == pytest.approx(gain, abs=0.3)


def test_fit_and_maps_refuse_bad_input():
    with pytest.raises(ValueError, match="as many"):
        fit_twist_gain([np.zeros((10, 3))], [])
    straight = torch.stack([torch.zeros(16), torch.linspace(0.5, -0.5, 16), torch.zeros(16)], dim=-1).numpy()
    with pytest.raises(ValueError, match="no lateral deviation"):
        fit_twist_gain([np.random.default_rng(0).normal(size=(500, 3))], [straight])
    with pytest.raises(ValueError, match="needs the line"):
        to_model(torch.zeros(1, 4, 3), 2.0, None, twist_gain=1.0)
    with pytest.raises(ValueError, match="needs the line"):
        from_model(torch.zeros(1, 4, 3), 2.0, None, twist_gain=1.0)
