"""Coordinate frames (pcdiff.geometry.frames): the normalisations (mm <-> normalised <-> model space, their
names) and the spine-straightened frame, and their use by the data module, training module and pipeline."""

from typing import get_type_hints

import numpy as np
import pytest
import torch
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from pcdiff.data.datamodule import BackScanDataModule
from pcdiff.data.transforms import Normalize, spine_frame
from pcdiff.diffusion.module import PointDiffusion
from pcdiff.diffusion.testing import TINY_DENOISERS, TINY_KEYPOINTS, TINY_POINTS, tiny_datamodule, tiny_module
from pcdiff.geometry.frames.normalisation import INVERTIBLE_FROM_LINE, NORMALIZATIONS, Normalization
from pcdiff.geometry.frames.normalisation import check_normalization, frame_name, frame_of, line_frame
from pcdiff.geometry.frames.normalisation import from_model, to_mm, to_model, to_normalised
from pcdiff.geometry.frames.straightened import straighten, unstraighten
from pcdiff.geometry.polyline import resample_polyline
from pcdiff.pipelines.spine_to_back import SpineToBackPipeline


def _random_line(rng: np.random.Generator, k: int) -> torch.Tensor:
    """(1, k, 3) keypoints top to bottom (y strictly decreasing), with lateral and depth wiggles."""
    ys = np.linspace(1.0, -1.0, k)
    line = np.stack([rng.normal(0, 0.2, k), ys, rng.normal(0, 0.1, k)], axis=1)
    return torch.tensor(line, dtype=torch.float64)[None]


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(2, 20))
def test_unstraighten_inverts_straighten_and_keeps_heights(seed, k):
    rng = np.random.default_rng(seed)
    line = _random_line(rng, k)
    points = torch.tensor(rng.uniform(-1.5, 1.5, (1, 64, 3)))  # some above and below the line's span
    flat = straighten(points, line)
    torch.testing.assert_close(flat[..., 1], points[..., 1])  # heights unchanged
    torch.testing.assert_close(unstraighten(flat, line), points)


def test_the_line_maps_to_the_vertical_axis():
    rng = np.random.default_rng(0)
    line = _random_line(rng, 12)
    # points on the line itself (its keypoints and the midpoints of its segments)
    mids = (line[:, 1:] + line[:, :-1]) / 2
    on_line = torch.cat([line, mids], dim=1)
    flat = straighten(on_line, line)
    torch.testing.assert_close(flat[..., [0, 2]], torch.zeros_like(flat[..., [0, 2]]))
    # a point 5 units to the right of the line at some height stays 5 to the right
    off = on_line + torch.tensor([5.0, 0.0, 0.0], dtype=torch.float64)
    torch.testing.assert_close(straighten(off, line)[..., 0], torch.full(off.shape[:2], 5.0, dtype=torch.float64))


def test_straightened_pipeline_puts_the_line_back():
    """A straightened model's samples are the same normalised draw moved onto the requested line: sampling
    one tiny model for two different lines, the difference of the two outputs is the lines' offset."""
    torch.manual_seed(0)
    module = tiny_module("pvcnn", straighten=True).eval()
    pipe = module.to_pipeline(sampler="ddim")
    pipe.set_progress_bar_config(disable=True)
    assert pipe.config.straighten
    ys = torch.linspace(0.5, -0.5, TINY_KEYPOINTS)
    straight = torch.stack([torch.zeros_like(ys), ys, torch.zeros_like(ys)], dim=-1)[None]  # x = z = 0
    bent = straight.clone()
    bent[..., 0] = 0.1 * torch.sin(3 * ys)
    # the denoiser sees the keypoints too, so swap in a network that ignores them: zero-init cross-attention
    # is already closed in an untrained model, and spine_relative is off, so only the frame differs
    a = pipe.sample_normalized(straight, num_inference_steps=3, generator=torch.Generator().manual_seed(1))
    b = pipe.sample_normalized(bent, num_inference_steps=3, generator=torch.Generator().manual_seed(1))
    assert a.shape == (1, TINY_POINTS, 3)
    torch.testing.assert_close(b, unstraighten(a, bent), atol=1e-5, rtol=1e-5)


def test_straightened_training_step_runs_and_differs_from_plain():
    torch.manual_seed(0)
    batch = {
        "points": torch.randn(2, TINY_POINTS, 3) * 0.3,
        "spine": torch.stack([torch.linspace(0.3, -0.3, TINY_KEYPOINTS)] * 3, dim=-1)[None].repeat(2, 1, 1),
    }
    losses = []
    for flag in (False, True):
        torch.manual_seed(0)
        module = tiny_module("pvcnn", straighten=flag)
        losses.append(module._shared_step(batch, 0, "val"))
    assert all(torch.isfinite(loss) for loss in losses)
    assert not torch.isclose(losses[0], losses[1])  # the frame changes what the model is asked to predict


# ------------------------------------------------------------------ normalisation: mm <-> normalised <-> model
def _mm_line(rng: np.random.Generator, k: int = 20) -> np.ndarray:
    """(k, 3) float32 spinal line in mm, top to bottom, somewhere in front of the scanner."""
    ys = np.linspace(450.0, 0.0, k) + rng.normal(0, 20)
    return np.stack([rng.normal(0, 15, k) + rng.normal(0, 50), ys, rng.normal(-60, 5, k)], axis=1).astype(np.float32)


def _old_spine_frame(line: np.ndarray) -> tuple[np.ndarray, float]:
    """The formula of ``pcdiff.data.transforms.spine_frame`` before it moved to ``pcdiff.geometry.frames``."""
    a, b = np.asarray(line[0], np.float64), np.asarray(line[-1], np.float64)
    return ((a + b) / 2).astype(np.float32), float(np.linalg.norm(a - b))


@pytest.mark.parametrize("seed", range(4))
def test_frame_of_a_line_is_the_old_spine_frame(seed):
    line = _mm_line(np.random.default_rng(seed))
    center, scale = frame_of("line", line=line)
    old_center, old_scale = _old_spine_frame(line)
    np.testing.assert_array_equal(center, old_center)
    assert center.dtype == np.float32 and center.shape == (3,) and scale == old_scale
    assert spine_frame is line_frame  # the data module's name for it
    # only the ends count: reversed or resampled to keypoints, a line keeps its frame
    for same in (line[::-1], resample_polyline(line, 7)):
        c, s = frame_of("line", line=same)
        np.testing.assert_allclose(c, center, atol=1e-3)
        assert s == pytest.approx(scale, rel=1e-6)
    # the other line-centred normalisations keep the centre, with their own scale
    for normalize, fixed_scale, want in [("fixed", 500.0, 500.0), ("center", None, 1.0)]:
        c, s = frame_of(normalize, line=line, fixed_scale=fixed_scale)
        np.testing.assert_array_equal(c, center)
        assert s == want
    c, s = frame_of("none")
    np.testing.assert_array_equal(c, np.zeros(3))
    assert s == 1.0


def test_frame_of_landmarks_is_c7_to_dm():
    landmarks = np.array([[0, 450, -5], [-40, 10, 0], [40, 10, 0], [6, 0, 5]], np.float32)  # C7, DL, DR, DM
    center, scale = frame_of("landmarks", landmarks=landmarks)
    np.testing.assert_allclose(center, [3, 225, 0])
    assert scale == pytest.approx(float(np.linalg.norm([6, 450, 10])))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mm_to_normalised_to_mm_round_trip(dtype):
    rng = np.random.default_rng(0)
    points = rng.uniform(-300, 300, (4, 50, 3)).astype(dtype)  # (B, N, 3) mm
    center = rng.normal(0, 100, (4, 3)).astype(np.float32)  # (B, 3) mm
    scale = rng.uniform(300, 600, 4).astype(np.float32)  # (B,) mm
    normed = to_normalised(points, center, scale)
    assert normed.shape == points.shape and normed.dtype == dtype
    np.testing.assert_allclose(normed[2], (points[2] - center[2]) / scale[2], rtol=1e-6)
    np.testing.assert_allclose(to_mm(normed, center, scale), points, atol=1e-3)
    # one frame for one cloud: (N, 3) with (3,) and a float
    np.testing.assert_allclose(to_normalised(points[1], center[1], float(scale[1])), normed[1], rtol=1e-6)
    # tensors: the type, dtype and device of the points; the frame may come as arrays
    t = torch.from_numpy(points)
    back = to_mm(to_normalised(t, torch.from_numpy(center), torch.from_numpy(scale)), center, scale)
    assert isinstance(back, torch.Tensor) and back.dtype == t.dtype
    torch.testing.assert_close(back, t, atol=1e-3, rtol=0)


def test_frame_shapes_that_do_not_fit_the_points_are_refused():
    points = torch.zeros(2, 10, 3)
    with pytest.raises(ValueError, match=r"expected center \(\.\.\., 3\) and scale"):
        to_mm(points, torch.zeros(2, 1, 3), torch.ones(2))
    with pytest.raises(ValueError, match=r"expected center \(\.\.\., 3\) and scale"):
        to_normalised(points, torch.zeros(2, 3), torch.ones(2, 1))
    with pytest.raises(ValueError, match=r"\(\.\.\., N, 3\)"):
        to_mm(torch.zeros(10, 2), torch.zeros(3), 1.0)


def test_model_space_round_trip_with_and_without_straightening():
    rng = np.random.default_rng(1)
    line = _random_line(rng, 8).float()  # (1, 8, 3) normalised keypoints
    points = torch.randn(1, 64, 3)
    torch.testing.assert_close(to_model(points, 2.0), points * 2.0)
    torch.testing.assert_close(to_model(points, 2.0, line), straighten(points, line) * 2.0)
    for by in (None, line):
        torch.testing.assert_close(from_model(to_model(points, 2.0, by), 2.0, by), points)


def test_unknown_names_and_misplaced_fixed_scales_are_refused():
    line = _mm_line(np.random.default_rng(0))
    names = r"one of \('line', 'landmarks', 'fixed', 'center', 'none'\)"
    with pytest.raises(ValueError, match=rf"frame_of: unknown mode 'unit'; normalize must be {names}"):
        frame_of("unit", line=line)
    with pytest.raises(ValueError, match=rf"Normalize: unknown mode 'unit'; normalize must be {names}"):
        Normalize("unit")
    with pytest.raises(ValueError, match=rf"data: unknown mode 'unit'; normalize must be {names}"):
        BackScanDataModule(normalize="unit")
    with pytest.raises(ValueError, match=rf"model: unknown mode 'unit'; normalize must be {names}"):
        tiny_module(normalize="unit")
    with pytest.raises(ValueError, match="frame_name: unknown mode 'spine'"):
        frame_name("spine", "esl")
    with pytest.raises(ValueError, match="exactly when mode='fixed'"):
        frame_of("fixed", line=line)
    with pytest.raises(ValueError, match="exactly when mode='fixed'"):
        check_normalization("line", 450.0)
    with pytest.raises(ValueError, match="must be > 0 mm"):
        check_normalization("fixed", 0.0)
    with pytest.raises(ValueError, match="cannot be inverted from a spinal line alone"):
        check_normalization("landmarks", from_line_only=True)
    with pytest.raises(ValueError, match="needs the spinal line"):
        frame_of("center")
    with pytest.raises(ValueError, match="needs the scan's landmarks"):
        frame_of("landmarks", line=line)


def test_one_vocabulary_of_normalisations():
    assert Normalize.MODES == NORMALIZATIONS == ("line", "landmarks", "fixed", "center", "none")
    assert set(INVERTIBLE_FROM_LINE) == set(NORMALIZATIONS) - {"landmarks"}
    for init in (BackScanDataModule.__init__, PointDiffusion.__init__):
        assert get_type_hints(init)["normalize"] == Normalization
    assert [frame_name(n, "isl") for n in NORMALIZATIONS] == ["isl", "landmarks", "fixed", "center", "none"]


@pytest.fixture(scope="module")
def phantom_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("phantom-cache")


@pytest.mark.parametrize("normalize, fixed_scale", [("fixed", 500.0), ("center", None), ("line", None)])
def test_every_line_normalisation_trains_and_exports(phantom_cache, normalize, fixed_scale):
    """``fixed`` and ``center`` reach training (data module and model) and the exported pipeline, whose frame
    of a line in mm is the data module's."""
    dm = tiny_datamodule(phantom_cache, normalize=normalize, fixed_scale=fixed_scale)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    if normalize != "line":
        torch.testing.assert_close(batch["scale"], torch.full((4,), fixed_scale or 1.0))
    pipe = tiny_module(normalize=normalize, fixed_scale=fixed_scale).to_pipeline()
    assert (pipe.config.normalize, pipe.config.fixed_scale) == (normalize, fixed_scale)
    keypoints, center, scale = pipe.prepare_spines(to_mm(batch["spine"], batch["center"], batch["scale"]))
    torch.testing.assert_close(center, batch["center"], atol=1e-3, rtol=0)
    torch.testing.assert_close(scale, batch["scale"])
    # the line's ends are kept by resampling (its inner keypoints move a little: arc length along the keypoints)
    ends = [0, -1]
    torch.testing.assert_close(keypoints[:, ends], batch["spine"][:, ends], atol=1e-3 / scale.min().item(), rtol=0)  # 1 um


def test_a_pipeline_refuses_what_it_cannot_invert():
    module = tiny_module()
    with pytest.raises(ValueError, match="SpineToBackPipeline: give the fixed scale in mm exactly when mode='fixed'"):
        SpineToBackPipeline(module.denoiser, module.noise_scheduler, normalize="fixed")
    with pytest.raises(ValueError, match="SpineToBackPipeline: normalize='landmarks' cannot be inverted"):
        SpineToBackPipeline(module.denoiser, module.noise_scheduler, normalize="landmarks")


@pytest.mark.filterwarnings("ignore:LightningCLI's args parameter")
def test_the_training_cli_links_fixed_scale_into_the_model(tmp_path):
    from pcdiff.train import PcdiffCLI

    config = {
        "seed_everything": 0,
        "trainer": {"max_steps": 1, "logger": False, "enable_checkpointing": False, "enable_progress_bar": False,
                    "default_root_dir": str(tmp_path)},
        "model": {"denoiser": "pvcnn", "denoiser_kwargs": TINY_DENOISERS["pvcnn"], "log_images": False},
        "data": {"num_points": TINY_POINTS, "num_keypoints": TINY_KEYPOINTS, "cache_dir": str(tmp_path),
                 "normalize": "fixed", "fixed_scale": 450.0},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    cli = PcdiffCLI(PointDiffusion, BackScanDataModule, args=["--config", str(path)], run=False)
    assert (cli.model.hparams.normalize, cli.model.hparams.fixed_scale) == ("fixed", 450.0)
    assert cli.model.to_pipeline().config.fixed_scale == 450.0
