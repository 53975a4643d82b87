import pytest
import torch

from pcdiff.diffusion.testing import TINY_DENOISERS
from pcdiff.models import DENOISERS, DenoiserOutput, build_denoiser

NAMES = sorted(TINY_DENOISERS)


def make(name: str, seed: int = 0):
    torch.manual_seed(seed)
    return build_denoiser(name, **TINY_DENOISERS[name]).eval()


def randomize_zero_init(model) -> None:
    """The cross-attention output projections start at zero (the condition has no effect at init);
    give them random weights so the conditioning path can be observed."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "to_out" in name:
                p.normal_(0.0, 0.3)


def config_of(model) -> dict:
    """The registered options, as JSON would store them (tuples become lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in model.config.items() if not k.startswith("_")}


def inputs(batch: int = 2, n: int = 37, k: int = 5, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, n, 3, generator=g)
    spine = torch.cumsum(torch.rand(batch, k, 3, generator=g) * 0.2, dim=1)
    t = torch.randint(0, 1000, (batch,), generator=g)
    return x, t, spine


def test_every_registered_denoiser_is_tested():
    assert set(TINY_DENOISERS) == set(DENOISERS)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("batch,n,k", [(1, 1, 1), (1, 37, 5), (3, 61, 8)])
def test_output_shape(name, batch, n, k):
    model = make(name)
    x, t, spine = inputs(batch, n, k)
    out = model(x, t, spine)
    assert isinstance(out, DenoiserOutput)
    assert out.sample.shape == (batch, n, 3)
    assert torch.isfinite(out.sample).all()
    (tup,) = model(x, t, spine, return_dict=False)
    torch.testing.assert_close(tup, out.sample)


@pytest.mark.parametrize("name", NAMES)
def test_scalar_timestep_equals_broadcast(name):
    model = make(name)
    x, _, spine = inputs()
    torch.testing.assert_close(model(x, 10, spine).sample, model(x, torch.tensor([10, 10]), spine).sample)
    torch.testing.assert_close(model(x, torch.tensor(10.0), spine).sample, model(x, 10, spine).sample)


@pytest.mark.parametrize("name", NAMES)
def test_condition_changes_output(name):
    model = make(name)
    x, t, spine = inputs()
    # at init the cross-attention is zero, so the spine cannot matter yet
    torch.testing.assert_close(model(x, t, spine).sample, model(x, t, spine + 0.3).sample)
    randomize_zero_init(model)
    a, b = model(x, t, spine).sample, model(x, t, spine + 0.3).sample
    assert (a - b).abs().max() > 1e-4


@pytest.mark.parametrize("name", NAMES)
def test_condition_mask_uses_null_tokens(name):
    model = make(name)
    randomize_zero_init(model)
    x, t, spine = inputs()
    other = spine.flip(1) * 2.0 + 0.1
    off = torch.tensor([False, False])
    null_a, null_b = model(x, t, spine, condition_mask=off).sample, model(x, t, other, condition_mask=off).sample
    torch.testing.assert_close(null_a, null_b)
    assert (null_a - model(x, t, spine).sample).abs().max() > 1e-4
    # a mixed batch gives each sample what it would get alone (the mask isolates the two sequences)
    mixed = model(x, t, other, condition_mask=torch.tensor([True, False])).sample
    torch.testing.assert_close(mixed[:1], model(x[:1], t[:1], other[:1]).sample, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(mixed[1:], null_b[1:], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(model(x, t, spine, condition_mask=torch.tensor([True, True])).sample,
                               model(x, t, spine).sample)


@pytest.mark.parametrize("name", NAMES)
def test_save_pretrained_roundtrip(name, tmp_path):
    model = make(name)
    randomize_zero_init(model)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "diffusion_pytorch_model.safetensors").exists()
    reloaded = type(model).from_pretrained(tmp_path, low_cpu_mem_usage=False).eval()
    assert config_of(reloaded) == config_of(model)
    x, t, spine = inputs()
    mask = torch.tensor([True, False])
    torch.testing.assert_close(reloaded(x, t, spine, mask).sample, model(x, t, spine, mask).sample, rtol=0, atol=0)


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_every_parameter(name):
    model = make(name).train()
    randomize_zero_init(model)
    x, t, spine = inputs()
    x.requires_grad_(True)
    out = model(x, t, spine, condition_mask=torch.tensor([True, False])).sample
    out.square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"no gradient for {missing}"
    assert x.grad is not None and torch.isfinite(x.grad).all()
    # DistributedDataParallel needs every parameter in the graph even when no condition is dropped
    model.zero_grad(set_to_none=True)
    model(x, t, spine, condition_mask=torch.tensor([True, True])).sample.sum().backward()
    assert not [n for n, p in model.named_parameters() if p.grad is None]


@pytest.mark.parametrize("name", NAMES)
def test_bad_inputs_are_loud(name):
    model = make(name)
    x, t, spine = inputs()
    with pytest.raises(ValueError, match=r"sample of shape \(B, N, 3\)"):
        model(x[..., :2], t, spine)
    with pytest.raises(ValueError, match="encoder_hidden_states"):
        model(x, t, spine[:1])
    with pytest.raises(ValueError, match="condition_mask"):
        model(x, t, spine, condition_mask=torch.tensor([True]))
    with pytest.raises(ValueError, match="timestep"):
        model(x, torch.zeros(3), spine)


def test_factory_rejects_unknown_names_and_options():
    with pytest.raises(ValueError, match=r"valid names are \['pointnet2', 'pvcnn', 'transformer'\]"):
        build_denoiser("unet")
    with pytest.raises(TypeError):
        build_denoiser("pvcnn", not_an_option=3)
    with pytest.raises(ValueError, match="equal length"):
        build_denoiser("pvcnn", channel_mults=(1, 2), voxel_resolutions=(8,))
    with pytest.raises(ValueError, match="equal length"):
        build_denoiser("pointnet2", radii=(0.1,))
    with pytest.raises(ValueError, match="depth"):
        build_denoiser("transformer", depth=0)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_learns_a_spine_dependent_target(name):
    """Fit ``0.5 x + shift`` where ``shift`` is only visible through the spine keypoints: without the
    condition the error cannot drop below Var(shift) = 0.25 per coordinate."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)

    def batch(b, gen):
        x = torch.randn(b, 64, 3, generator=gen) * 0.5
        shift = torch.randn(b, 1, 3, generator=gen) * 0.5
        spine = torch.linspace(-1, 1, 8)[None, :, None] * torch.tensor([0.0, 1.0, 0.0]) + shift
        return x, spine, 0.5 * x + shift

    model = build_denoiser(name, **TINY_DENOISERS[name])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(250):
        x, spine, y = batch(8, g)
        loss = (model(x, torch.randint(0, 1000, (8,), generator=g), spine).sample - y).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        x, spine, y = batch(64, torch.Generator().manual_seed(123))
        mse = (model(x, 5, spine).sample - y).square().mean().item()
    assert mse < 0.05, f"{name}: held-out MSE {mse:.3f}, the spine shift (variance 0.25) was not learnt"
