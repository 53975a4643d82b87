"""python -m pcdiff.train: positional config, dotted overrides, default fit, linked data/model settings, resume."""

from pathlib import Path

import pytest
import yaml

from pcdiff.diffusion.testing import TINY_DENOISERS, TINY_KEYPOINTS, TINY_POINTS
from pcdiff.train import main, normalize_argv

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
# pytest's own sys.argv is not ours: LightningCLI warns when args are given besides it
pytestmark = pytest.mark.filterwarnings("ignore:LightningCLI's args parameter")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.getbasetemp() / "phantom-cache"


def test_argv_forms():
    assert normalize_argv(["a.yaml"]) == ["fit", "--config", "a.yaml"]
    assert normalize_argv(["a.yml", "--data.batch_size", "32"]) == ["fit", "--config", "a.yml", "--data.batch_size", "32"]
    assert normalize_argv(["--config", "a.yaml"]) == ["fit", "--config", "a.yaml"]
    assert normalize_argv(["validate", "a.yaml", "--ckpt_path", "x.ckpt"]) == ["validate", "--config", "a.yaml", "--ckpt_path", "x.ckpt"]
    assert normalize_argv(["fit", "--config", "a.yaml"]) == ["fit", "--config", "a.yaml"]
    assert normalize_argv(["--help"]) == ["--help"]


@pytest.mark.parametrize("name", ["quickstart", "pvcnn", "pointnet2", "transformer"])
def test_shipped_configs_parse(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([str(CONFIGS / f"{name}.yaml"), "--print_config"])
    assert exit_info.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["denoiser"] == ("pvcnn" if name == "quickstart" else name)
    assert "num_points" not in printed["model"]  # linked from data.num_points


def _tiny_config(tmp_path: Path, cache: Path) -> Path:
    config = {
        "seed_everything": 0,
        "trainer": {"max_steps": 3, "logger": False, "enable_progress_bar": False, "enable_model_summary": False,
                    "default_root_dir": str(tmp_path), "limit_val_batches": 1, "val_check_interval": 3,
                    "check_val_every_n_epoch": None, "num_sanity_val_steps": 0,
                    "callbacks": [{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                                   "init_args": {"dirpath": str(tmp_path / "ckpt"), "save_last": True, "save_top_k": 0}}]},
        "model": {"denoiser": "pvcnn", "denoiser_kwargs": TINY_DENOISERS["pvcnn"], "num_inference_steps": 2,
                  "val_num_samples": 1, "log_images": False, "warmup_steps": 1},
        "data": {"num_points": TINY_POINTS, "num_keypoints": TINY_KEYPOINTS, "batch_size": 4, "phantom_num_scans": 12,
                 "val_fraction": 0.2, "test_fraction": 0.0, "cache_dir": str(cache)},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_fit_with_positional_config_and_overrides(tmp_path, cache):
    config = _tiny_config(tmp_path, cache)
    cli = main([str(config), "--data.batch_size", "2", "--model.lr", "5e-4"])
    assert cli.datamodule.hparams.batch_size == 2
    assert cli.model.hparams.lr == 5e-4 and isinstance(cli.model.hparams.lr, float)
    # data settings reach the model, so the checkpoint records the normalisation
    assert cli.model.hparams.num_keypoints == TINY_KEYPOINTS and cli.model.hparams.num_points == TINY_POINTS
    assert cli.trainer.global_step == 3
    last = tmp_path / "ckpt" / "last.ckpt"
    assert last.is_file()


@pytest.mark.slow
def test_resume_and_validate_from_the_cli(tmp_path, cache):
    config = _tiny_config(tmp_path, cache)
    main([str(config)])
    last = tmp_path / "ckpt" / "last.ckpt"
    resumed = main(["fit", "--config", str(config), "--trainer.max_steps", "5", "--ckpt_path", str(last)])
    assert resumed.trainer.global_step == 5

    validated = main(["validate", str(config), "--ckpt_path", str(last)])
    assert "val/loss" in validated.trainer.callback_metrics


def test_unknown_override_is_refused(tmp_path, cache):
    with pytest.raises(SystemExit):
        main([str(_tiny_config(tmp_path, cache)), "--model.learning_rate", "1e-3"])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (["--model.denoiser", "unet"], "--model.denoiser: unknown 'unet'; choose from ['pointnet2', 'pvcnn', 'transformer']"),
        (["--data.num_keypoints", "0"], "data.num_keypoints must be >= 2, got 0"),
        (["--data.num_points", "0"], "data.num_points must be >= 1, got 0"),
    ],
)
def test_bad_settings_are_one_line_usage_errors(tmp_path, cache, capsys, override, message):
    """Refused before any data is read or generated (no traceback, no 'phantom JSON' blamed)."""
    with pytest.raises(SystemExit) as exit_info:
        main([str(_tiny_config(tmp_path, cache)), *override])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"error: {message}"


@pytest.mark.parametrize("stage_one", ["phantom_pretrain", "quickstart"])
def test_stage_two_config_layers_on_stage_one(capsys, stage_one):
    """The second stage of the shipped model and of the quickstart (README, make demo): <stage1>.yaml with
    <stage1>_2048.yaml on top trains the same model at 2048 points from stage 1's weights, into its own folder."""
    with pytest.raises(SystemExit) as exit_info:
        main([str(CONFIGS / f"{stage_one}.yaml"), "--config", str(CONFIGS / f"{stage_one}_2048.yaml"), "--print_config"])
    assert exit_info.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["data"]["num_points"] == 2048
    assert printed["model"]["init_from"] == f"outputs/{stage_one}/last.ckpt"
    assert printed["model"]["denoiser_kwargs"]["surface_neighbors"] == 16  # the stage-1 model, unchanged
    assert printed["trainer"]["default_root_dir"] == f"outputs/{stage_one}_2048"
    assert all(f"{stage_one}_2048" in cb["init_args"]["dirpath"] for cb in printed["trainer"]["callbacks"] if "dirpath" in cb["init_args"])
