"""Scheduler factory: names and aliases resolve, unknown names/settings are refused, samplers share the schedule."""

import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler

from pcdiff.diffusion.ema import make_ema
from pcdiff.diffusion.schedulers import available_schedulers, build_sampler, build_scheduler


def test_aliases_and_class_names_build_the_same_class():
    assert isinstance(build_scheduler("ddpm"), DDPMScheduler)
    assert isinstance(build_scheduler("DDPMScheduler"), DDPMScheduler)
    dpm = build_scheduler("dpm++")
    assert isinstance(dpm, DPMSolverMultistepScheduler) and dpm.config.algorithm_type == "dpmsolver++"
    assert "ddim" in available_schedulers() and "HeunDiscreteScheduler" in available_schedulers()


def test_point_clouds_are_not_clipped_to_the_unit_box():
    assert build_scheduler("ddpm").config.clip_sample is False
    assert build_scheduler("ddpm", clip_sample=True).config.clip_sample is True


def test_unknown_name_and_setting_are_refused():
    with pytest.raises(ValueError, match="unknown scheduler 'foo'.*ddpm"):
        build_scheduler("foo")
    with pytest.raises(ValueError, match="does not take \\['beta_stat'\\]"):
        build_scheduler("ddpm", beta_stat=0.1)
    with pytest.raises(ValueError, match="does not take"):
        build_sampler("ddim", build_scheduler("ddpm"), solver_order=2)


def test_sampler_shares_the_training_schedule():
    train = build_scheduler("ddpm", num_train_timesteps=500, beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction")
    for name, cls in [("ddim", DDIMScheduler), ("dpm++", DPMSolverMultistepScheduler), ("euler", EulerDiscreteScheduler)]:
        s = build_sampler(name, train)
        assert isinstance(s, cls)
        assert s.config.num_train_timesteps == 500
        assert s.config.beta_schedule == "squaredcos_cap_v2"
        assert s.config.prediction_type == "v_prediction"
        torch.testing.assert_close(s.alphas_cumprod, train.alphas_cumprod)
    # built from a saved config dict as well
    assert build_sampler("ddim", dict(train.config)).config.num_train_timesteps == 500


def test_few_step_sampling_starts_from_the_last_training_timestep():
    s = build_sampler("ddim", build_scheduler("ddpm"))
    s.set_timesteps(10)
    assert int(s.timesteps[0]) == 999


def test_incompatible_sampler_is_refused():
    with pytest.raises(ValueError, match="cannot sample a model trained with DDPMScheduler"):
        build_sampler("FlowMatchEulerDiscreteScheduler", build_scheduler("ddpm"))


def test_ema_warms_up_then_follows_the_weights():
    model = torch.nn.Linear(2, 2)
    ema = make_ema(model, decay=0.9)
    assert not any(p.requires_grad for p in ema.parameters())
    ema.update_parameters(model)  # first update copies
    torch.testing.assert_close(ema.module.weight, model.weight.detach())
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update_parameters(model)  # n=1: decay min(0.9, 2/11)
    expected = model.weight.detach() - 2.0 / 11.0
    torch.testing.assert_close(ema.module.weight, expected)
    with pytest.raises(ValueError, match="decay"):
        make_ema(model, decay=1.0)
