"""The shipped pretrained pipeline (pretrained/phantom-pvcnn): it loads, generates backs on the requested line,
and is a starting point for fine-tuning through the training CLI (--model.init_from)."""

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from pcdiff.data.phantom import SpineParams, generate_phantom
from pcdiff.metrics.surface import surface_variation
from pcdiff.pipelines import SpineToBackPipeline

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "pretrained" / "phantom-pvcnn"
pytestmark = pytest.mark.filterwarnings("ignore:LightningCLI's args parameter")


@pytest.fixture(scope="module")
def pipe() -> SpineToBackPipeline:
    pipe = SpineToBackPipeline.from_pretrained(SHIPPED)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_shipped_folder_is_small_and_safetensors():
    weights = SHIPPED / "denoiser" / "diffusion_pytorch_model.safetensors"
    assert weights.is_file() and weights.stat().st_size < 20e6
    assert not list(SHIPPED.rglob("*.bin")) and not list(SHIPPED.rglob("*.ckpt"))


def test_shipped_pipeline_generates_a_thin_back_on_the_requested_line(pipe):
    """One back for a 40 deg thoracic phantom ESL with the shipped sampler settings: the requested ESL lies on
    the generated surface (mean distance to the nearest point well under a centimetre) and the back is a
    sheet, far from the isotropic blob (surface variation 1/3) of an untrained model."""
    scan = generate_phantom(3, num_points=2048, params=SpineParams(cobb_deg=40.0, curve_type="thoracic"))
    out = pipe(scan.esl, num_points=2048, generator=torch.Generator().manual_seed(0))
    back = out.backs[0]
    assert back.shape == (2048, 3) and np.isfinite(back).all()
    esl_to_back = np.linalg.norm(scan.esl[:, None] - back[None], axis=-1).min(axis=1)  # (L,) mm
    assert esl_to_back.mean() < 8.0, esl_to_back.mean()  # measured 5.8 mm (true phantoms: ~7 mm at 2048 points)
    # the back spans the line's height range (mm), as a real back does
    assert back[:, 1].min() < scan.esl[:, 1].min() and back[:, 1].max() > scan.esl[:, 1].max() - 30.0
    # measured 0.018 (a true phantom: 0.001; the earlier generators: 0.16, an isotropic blob: 1/3)
    assert float(surface_variation(torch.as_tensor(back)[None])) < 0.04


def test_init_from_the_shipped_folder_fine_tunes_through_the_cli(tmp_path):
    """configs/finetune.yaml layered on configs/phantom_pretrain.yaml starts the denoiser from the shipped weights
    (--model.init_from; step count and optimiser afresh), as the README tells users to fine-tune."""
    from safetensors.torch import load_file

    from pcdiff.train import main

    overrides = {
        "trainer": {"max_steps": 1, "logger": False, "enable_progress_bar": False, "enable_model_summary": False,
                    "enable_checkpointing": False, "default_root_dir": str(tmp_path), "callbacks": []},
        "model": {"init_from": str(SHIPPED), "warmup_steps": 1, "lr": 1e-12},
        "data": {"num_points": 128, "phantom_num_scans": 6, "batch_size": 2, "cache_dir": str(tmp_path / "cache")},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(overrides))
    configs = ROOT / "configs"
    cli = main([str(configs / "phantom_pretrain.yaml"), "--config", str(configs / "finetune.yaml"), "--config", str(path)])
    assert cli.trainer.global_step == 1
    shipped = load_file(str(SHIPPED / "denoiser" / "diffusion_pytorch_model.safetensors"))
    tuned = cli.model.denoiser.state_dict()
    assert shipped.keys() == tuned.keys()
    for key, value in shipped.items():  # one step at lr 1e-12 leaves the loaded weights in place
        torch.testing.assert_close(tuned[key], value, atol=1e-6, rtol=0)


def test_finetune_config_fine_tunes_in_the_shipped_weights_frame():
    """configs/finetune.yaml (on configs/phantom_pretrain.yaml) trains in the frame the shipped folder was trained in:
    a fine-tune in another frame would start from weights that place the back elsewhere."""
    from pcdiff.diffusion.module import initial_frame

    base = yaml.safe_load((ROOT / "configs" / "phantom_pretrain.yaml").read_text())["model"]
    tune = yaml.safe_load((ROOT / "configs" / "finetune.yaml").read_text())["model"]
    frame = {"straighten": tune.get("straighten", base.get("straighten", False)),
             "twist_gain": tune.get("twist_gain", base.get("twist_gain", 0.0))}
    assert initial_frame(SHIPPED) == frame
