"""Spine-relative point input (PointInput, line_at_height) and Min-SNR loss weights."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pcdiff.diffusion.module import PointDiffusion
from pcdiff.diffusion.testing import TINY_DENOISERS
from pcdiff.models import build_denoiser
from pcdiff.geometry.frames import line_at_height
from pcdiff.models.blocks import Conditioning, PointInput

TINY_PVCNN = TINY_DENOISERS["pvcnn"]


def naive_line_at_height(line: np.ndarray, y: float) -> np.ndarray:
    """np.interp per coordinate over a line given top to bottom (y decreasing)."""
    ys = line[::-1, 1]
    return np.array([np.interp(y, ys, line[::-1, c]) for c in range(3)])


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(2, 12))
def test_line_at_height_matches_numpy_interp(seed, k):
    rng = np.random.default_rng(seed)
    ys = np.sort(rng.uniform(-1, 1, k))[::-1] + np.linspace(0, 1e-3, k)[::-1]  # strictly decreasing
    line = np.stack([rng.normal(size=k), ys, rng.normal(size=k)], axis=1)
    heights = rng.uniform(-1.5, 1.5, 20)
    points, fraction = line_at_height(torch.tensor(line)[None], torch.tensor(heights)[None])
    expected = np.stack([naive_line_at_height(line, h) for h in heights])
    np.testing.assert_allclose(points[0].numpy(), expected, atol=1e-6)
    np.testing.assert_allclose(fraction[0].numpy(), (ys[0] - heights) / (ys[0] - ys[-1]), atol=1e-6)


def test_point_input_offsets_are_zero_on_the_line_and_dropped_without_condition():
    line = torch.tensor([[[0.1, 1.0, 0.3], [0.2, 0.0, 0.1], [0.0, -1.0, 0.2]]])  # (1, 3, 3) top to bottom
    on_line = torch.tensor([[[0.15, 0.5, 0.2], [0.0, -1.0, 0.2]]])  # points on the line
    module = PointInput(num_frequencies=0, spine_relative=True)
    cond = Conditioning(torch.zeros(1, 4), torch.zeros(1, 1, 4), None, line, None)
    feats = module(on_line, cond)  # (1, 2, 3 + 4)
    assert feats.shape == (1, 2, module.dim) and module.dim == 7
    torch.testing.assert_close(feats[0, :, 3:6], torch.zeros(2, 3))
    torch.testing.assert_close(feats[0, :, 6], torch.tensor([0.25, 1.0]))
    dropped = module(on_line, Conditioning(cond.temb, cond.tokens, None, line, torch.tensor([False])))
    torch.testing.assert_close(dropped[..., 3:], torch.zeros(1, 2, 4))
    torch.testing.assert_close(dropped[..., :3], on_line)


@pytest.mark.parametrize("name,kwargs", sorted(TINY_DENOISERS.items()))
def test_every_denoiser_reads_the_line_through_its_points(name, kwargs):
    """With spine_relative, moving the line changes the prediction even with cross-attention closed
    (zero-initialised), so the condition reaches the points from the first step."""
    torch.manual_seed(0)
    model = build_denoiser(name, spine_relative=True, **kwargs).eval()
    x = torch.randn(1, 32, 3)
    line = torch.stack([torch.zeros(6), torch.linspace(1, -1, 6), torch.zeros(6)], dim=1)[None]
    shifted = line + torch.tensor([0.3, 0.0, 0.0])
    with torch.no_grad():
        a = model(x, 10, line).sample
        b = model(x, 10, shifted).sample
        plain = build_denoiser(name, spine_relative=False, **kwargs).eval()
        c, d = plain(x, 10, line).sample, plain(x, 10, shifted).sample
    assert not torch.allclose(a, b)
    torch.testing.assert_close(c, d)  # without it, a fresh network ignores the line (closed cross-attention)


@pytest.mark.parametrize("prediction_type,divisor", [
    ("epsilon", lambda snr: snr), ("v_prediction", lambda snr: snr + 1), ("sample", lambda snr: 1.0),
])
def test_min_snr_weights(prediction_type, divisor):
    module = PointDiffusion(denoiser="pvcnn", denoiser_kwargs=TINY_PVCNN, prediction_type=prediction_type,
                            loss_weighting="min_snr", snr_gamma=5.0, ema_decay=None, num_keypoints=4)
    t = torch.tensor([0, 100, 500, 999])
    ab = module.noise_scheduler.alphas_cumprod[t].double()
    snr = ab / (1 - ab)
    expected = torch.minimum(snr, torch.tensor(5.0, dtype=torch.float64)) / divisor(snr)
    torch.testing.assert_close(module._loss_weights(t), expected.float())
    uniform = PointDiffusion(denoiser="pvcnn", denoiser_kwargs=TINY_PVCNN, ema_decay=None, num_keypoints=4)
    torch.testing.assert_close(uniform._loss_weights(t), torch.ones(4))
    with pytest.raises(ValueError, match="loss_weighting"):
        PointDiffusion(denoiser="pvcnn", denoiser_kwargs=TINY_PVCNN, loss_weighting="snr", num_keypoints=4)


def test_plane_offsets_recover_the_offset_from_a_noisy_plane():
    """Points on z = 0 with small z noise: each offset is (nearly) the point's own z, along z."""
    from pcdiff.models.blocks import plane_offsets

    gen = torch.Generator().manual_seed(0)
    points = torch.rand(2, 1024, 3, generator=gen)
    noise = 0.005 * torch.randn(2, 1024, generator=gen)
    points[..., 2] = noise
    offsets = plane_offsets(points, 16)
    assert offsets.shape == points.shape
    torch.testing.assert_close(offsets[..., :2], torch.zeros(2, 1024, 2), atol=2e-3, rtol=0)
    # the neighbours' own noise averages down by sqrt(16): the residual is well below the noise
    assert (offsets[..., 2] - noise).std() < 0.4 * noise.std()
    assert plane_offsets(points[:, :3], 16).abs().max() == 0  # too few neighbours for a plane: no move


@pytest.mark.parametrize("name,kwargs", sorted(TINY_DENOISERS.items()))
def test_surface_skip_starts_closed_and_learns_a_gain(name, kwargs):
    """Every denoiser takes surface_neighbors; the skip's gain starts at zero (same output as without it)
    and gets a gradient, so training can open it."""
    plain = build_denoiser(name, **kwargs)
    skipped = build_denoiser(name, **kwargs, surface_neighbors=8)
    missing, unexpected = skipped.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all(key.startswith("surface_skip.") for key in missing)
    x, t, spine = torch.randn(2, 64, 3), torch.tensor([3, 700]), torch.randn(2, 6, 3)
    torch.testing.assert_close(skipped(x, t, spine).sample, plain(x, t, spine).sample)
    skipped(x, t, spine).sample.square().sum().backward()
    assert skipped.surface_skip.gate[-1].weight.grad.abs().sum() > 0


def test_surface_skip_scales_k_with_the_point_count_when_given_a_reference():
    """reference_points: k grows with N (the same patch of back at any density); without it k stays fixed."""
    from pcdiff.models.blocks import SurfaceSkip, plane_offsets

    fixed, scaled = SurfaceSkip(8, 16), SurfaceSkip(8, 16, reference_points=1024)
    assert [fixed.neighbors_at(n) for n in (512, 1024, 4096)] == [16, 16, 16]
    assert [scaled.neighbors_at(n) for n in (64, 512, 1024, 4096)] == [3, 8, 16, 64]
    with torch.no_grad():  # open the gate to 1 so the output is the plane offset itself
        scaled.gate[-1].bias.fill_(1.0)
    points, temb = torch.randn(1, 2048, 3), torch.randn(1, 8)
    torch.testing.assert_close(scaled(points, temb), plane_offsets(points, 32))
    with pytest.raises(ValueError, match="reference_points"):
        SurfaceSkip(8, 16, reference_points=0)
