"""PointDiffusion on a handful of phantom scans: the loss falls, samplers return finite clouds, resume continues."""

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from pcdiff.diffusion.module import PointDiffusion
from pcdiff.diffusion.testing import TINY_DENOISERS, TINY_KEYPOINTS, TINY_POINTS, tiny_datamodule, tiny_module


class LossRecorder(Callback):
    def __init__(self):
        self.losses = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.losses.append(float(outputs["loss"]))


def _trainer(tmp_path, max_steps, **kwargs):
    defaults = dict(max_steps=max_steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                    enable_model_summary=False, num_sanity_val_steps=0, default_root_dir=tmp_path,
                    limit_val_batches=0)
    defaults.update(kwargs)
    return L.Trainer(**defaults)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.getbasetemp() / "phantom-cache"


@pytest.fixture(scope="module")
def trained(cache, tmp_path_factory):
    """A tiny PVCNN trained 60 steps (lr 2e-3) on 10 phantom scans, with its per-step losses."""
    L.seed_everything(0)
    module, recorder = tiny_module("pvcnn"), LossRecorder()
    _trainer(tmp_path_factory.mktemp("fit"), 60, callbacks=[recorder]).fit(module, tiny_datamodule(cache))
    return module.eval(), recorder.losses


def test_training_loss_falls(trained):
    _, losses = trained
    assert len(losses) == 60 and np.isfinite(losses).all()
    first, last = np.mean(losses[:3]), np.mean(losses[-20:])
    # epsilon-MSE starts near 1 (the noise's variance) and must drop clearly (to ~0.3 here)
    assert first > 0.8, first
    assert last < 0.6 * first, (first, last)


@pytest.mark.parametrize("sampler", ["ddim", "dpm++", "heun"])
def test_samplers_return_finite_clouds_of_the_right_shape(trained, sampler):
    module, _ = trained
    pipe = module.to_pipeline(sampler=sampler)
    pipe.set_progress_bar_config(disable=True)
    spine = torch.randn(3, TINY_KEYPOINTS, 3) * 0.1 + torch.linspace(0.5, -0.5, TINY_KEYPOINTS)[:, None] * torch.tensor([0, 1.0, 0])
    out = pipe.sample_normalized(spine, num_inference_steps=4, generator=torch.Generator().manual_seed(0))
    assert out.shape == (3, TINY_POINTS, 3)
    assert torch.isfinite(out).all()
    assert pipe.scheduler.config.num_train_timesteps == module.noise_scheduler.config.num_train_timesteps


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_prediction_types_train_and_sample(cache, tmp_path, prediction_type):
    module = tiny_module("pvcnn", prediction_type=prediction_type)
    _trainer(tmp_path, 2).fit(module, tiny_datamodule(cache))
    assert module.to_pipeline().scheduler.config.prediction_type == prediction_type
    x0 = _one_batch(cache)["points"]
    # the target is what the prediction type says (v = sqrt(a) eps - sqrt(1 - a) x0)
    noise, t = torch.randn_like(x0), torch.tensor([100, 800])
    target = module._target(x0, noise, t)
    expected = {"epsilon": noise, "sample": x0, "v_prediction": module.noise_scheduler.get_velocity(x0, noise, t)}
    torch.testing.assert_close(target, expected[prediction_type])


def _one_batch(cache):
    dm = tiny_datamodule(cache, batch_size=2)
    dm.setup("fit")
    return next(iter(dm.train_dataloader()))


def test_all_denoisers_train_a_step(cache, tmp_path):
    for name in TINY_DENOISERS:
        module = tiny_module(name)
        _trainer(tmp_path, 1).fit(module, tiny_datamodule(cache))
        assert module.global_step == 1


def test_validation_logs_loss_and_chamfer_in_mm(trained, cache, tmp_path):
    module, _ = trained
    metrics = _trainer(tmp_path, 1, limit_val_batches=None).validate(module, tiny_datamodule(cache), verbose=False)[0]
    assert np.isfinite(metrics["val/loss"])
    # Chamfer of generated vs true scans in mm: positive and finite (the tiny model is far from good)
    assert 0 < metrics["val/chamfer_mm"] < 1e7


def test_resume_continues_step_count_and_ema(cache, tmp_path):
    L.seed_everything(0)
    ckpt = ModelCheckpoint(dirpath=tmp_path, save_last=True, save_top_k=0)
    module = tiny_module("pvcnn")
    _trainer(tmp_path, 5, enable_checkpointing=True, callbacks=[ckpt]).fit(module, tiny_datamodule(cache))
    assert module.global_step == 5 and int(module.ema.n_averaged) == 5
    state = torch.load(tmp_path / "last.ckpt", map_location="cpu", weights_only=True)
    assert any(k.startswith("ema.module.") for k in state["state_dict"])  # EMA weights travel in the checkpoint
    assert state["hyper_parameters"]["data_scale"] == module.hparams.data_scale  # normalisation too

    resumed = tiny_module("pvcnn")
    _trainer(tmp_path, 8).fit(resumed, tiny_datamodule(cache), ckpt_path=tmp_path / "last.ckpt")
    assert resumed.global_step == 8
    assert int(resumed.ema.n_averaged) == 8

    reloaded = PointDiffusion.load_from_checkpoint(tmp_path / "last.ckpt", map_location="cpu")
    for a, b in zip(reloaded.ema.parameters(), module.ema.parameters()):
        torch.testing.assert_close(a, b)


def test_config_errors_are_loud():
    with pytest.raises(ValueError, match="prediction_type"):
        tiny_module("pvcnn", scheduler_kwargs={"prediction_type": "sample"})
    with pytest.raises(ValueError, match="unknown scheduler"):
        tiny_module("pvcnn", sampler="dpm+++")
    with pytest.raises(ValueError, match="unknown denoiser"):
        PointDiffusion(denoiser="unet")
    with pytest.raises(ValueError, match="p_uncond"):
        tiny_module("pvcnn", p_uncond=1.0)


def test_module_refuses_a_mismatched_datamodule(cache, tmp_path):
    module = tiny_module("pvcnn", num_keypoints=TINY_KEYPOINTS + 1)
    with pytest.raises(ValueError, match="num_keypoints"):
        _trainer(tmp_path, 1).fit(module, tiny_datamodule(cache))


def test_init_from_refuses_a_missing_or_damaged_file_naming_the_option(tmp_path):
    from pcdiff.diffusion.module import initial_denoiser_weights

    with pytest.raises(FileNotFoundError, match="model.init_from.*no such checkpoint"):
        initial_denoiser_weights(tmp_path / "missing.ckpt")
    bad = tmp_path / "random.ckpt"
    bad.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ValueError, match="model.init_from.*not a pcdiff checkpoint, or corrupt"):
        initial_denoiser_weights(bad)
    with pytest.raises(FileNotFoundError, match="model.init_from.*safetensors"):
        initial_denoiser_weights(tmp_path)


def test_init_from_a_training_checkpoint_loads_its_ema_denoiser(checkpoint):
    from pcdiff.diffusion.module import initial_denoiser_weights

    weights = initial_denoiser_weights(checkpoint)
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    ema = {k[len("ema.module."):]: v for k, v in state.items() if k.startswith("ema.module.")}
    assert weights.keys() == ema.keys() and all(torch.equal(weights[k], ema[k]) for k in ema)


def test_load_widened_switches_on_spine_relative_features_without_changing_the_function():
    """Fine-tuning a PVCNN with spine-relative inputs from weights without them: the widened input layer starts
    with zero weight on the new features, so the network computes what the old one did; a real mismatch
    (another width) is refused with the tensor's name."""
    from pcdiff.diffusion.module import load_widened
    from pcdiff.diffusion.testing import TINY_DENOISERS
    from pcdiff.models import build_denoiser

    torch.manual_seed(0)
    old = build_denoiser("pvcnn", **TINY_DENOISERS["pvcnn"]).eval()
    new = build_denoiser("pvcnn", **{**TINY_DENOISERS["pvcnn"], "spine_relative": True}).eval()
    widened = load_widened(new, old.state_dict())
    assert widened == ["input_proj.weight"]
    sample, spine = torch.randn(2, 64, 3), torch.randn(2, 8, 3).sort(dim=1, descending=True).values
    with torch.no_grad():
        torch.testing.assert_close(new(sample, 10, spine).sample, old(sample, 10, spine).sample)
    wider = build_denoiser("pvcnn", **{**TINY_DENOISERS["pvcnn"], "width": TINY_DENOISERS["pvcnn"]["width"] * 2})
    with pytest.raises(RuntimeError, match="not a widening"):
        load_widened(wider, old.state_dict())


def test_initial_frame_is_read_from_folders_and_a_fine_tune_in_another_frame_warns(tmp_path, caplog):
    """``initial_frame`` reads the frame a pipeline folder was trained in (0 twist for folders from before the
    untwisted frame); starting a model in another frame from it logs a warning, the same frame does not."""
    import json
    import logging

    from pcdiff.diffusion.module import initial_frame

    twisted = tiny_module("pvcnn", straighten=True, twist_gain=1.5)
    twisted.to_pipeline().save_pretrained(tmp_path / "pipe")
    assert initial_frame(tmp_path / "pipe") == {"straighten": True, "twist_gain": 1.5}
    old = tmp_path / "old"
    old.mkdir()
    (old / "model_index.json").write_text(json.dumps({"straighten": True}))
    assert initial_frame(old) == {"straighten": True, "twist_gain": 0.0}
    with caplog.at_level(logging.WARNING, logger="pcdiff.diffusion.module"):
        tiny_module("pvcnn", straighten=True, twist_gain=1.5, init_from=str(tmp_path / "pipe"))
        assert "another frame" not in caplog.text
        tiny_module("pvcnn", straighten=True, init_from=str(tmp_path / "pipe"))
        assert "another frame" in caplog.text
    with pytest.raises(ValueError, match="straighten"):
        tiny_module("pvcnn", twist_gain=1.0)


def test_a_fine_tuned_checkpoint_loads_without_its_start_weights(tmp_path, caplog):
    """``load_from_checkpoint`` of a model fine-tuned from ``init_from`` neither needs the start weights any more
    (deleted here) nor re-reads them (no frame warning), and gives back the checkpoint's own weights."""
    import logging
    import shutil

    import lightning as L

    from pcdiff.diffusion.module import PointDiffusion

    start = tmp_path / "start"
    tiny_module("pvcnn", straighten=True).to_pipeline().save_pretrained(start)
    tuned = tiny_module("pvcnn", straighten=True, twist_gain=2.0, init_from=str(start))  # another frame: warns once
    with torch.no_grad():
        next(tuned.denoiser.parameters()).add_(1.0)  # its own weights, unlike the start's
    trainer = L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.strategy.connect(tuned)
    trainer.save_checkpoint(tmp_path / "tuned.ckpt")
    shutil.rmtree(start)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="pcdiff.diffusion.module"):
        loaded = PointDiffusion.load_from_checkpoint(tmp_path / "tuned.ckpt", map_location="cpu")
    assert "another frame" not in caplog.text
    assert loaded.hparams.twist_gain == 2.0
    for ours, theirs in zip(loaded.denoiser.parameters(), tuned.denoiser.parameters()):
        torch.testing.assert_close(ours, theirs)
    with pytest.raises(FileNotFoundError, match="model.init_from"):  # asked for explicitly, they are read
        PointDiffusion.load_from_checkpoint(tmp_path / "tuned.ckpt", map_location="cpu", init_from=str(start))
