"""The whole path on a few phantom scans: train CLI -> checkpoint -> export -> generate CLI -> read_subject.

Slow (a tiny model trained a few hundred steps): run with ``pytest -m slow tests/test_end_to_end.py``.
"""

from pathlib import Path

import numpy as np
import pytest
import yaml

from pcdiff.data.io import read_subject
from pcdiff.data.phantom import SpineParams, spine_lines
from pcdiff.diffusion.testing import TINY_DENOISERS, TINY_KEYPOINTS, TINY_POINTS
from pcdiff.export import main as export_main
from pcdiff.generate import main as generate_main
from pcdiff.train import main as train_main

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:LightningCLI's args parameter")]
STEPS = 300


def test_train_export_generate_read(tmp_path_factory, tmp_path):
    cache = tmp_path_factory.getbasetemp() / "phantom-cache"
    config = {
        "seed_everything": 0,
        "trainer": {"max_steps": STEPS, "logger": False, "enable_progress_bar": False, "enable_model_summary": False,
                    "default_root_dir": str(tmp_path), "limit_val_batches": 0, "num_sanity_val_steps": 0,
                    "callbacks": [{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                                   "init_args": {"dirpath": str(tmp_path), "save_last": True, "save_top_k": 0}}]},
        "model": {"denoiser": "pvcnn", "denoiser_kwargs": TINY_DENOISERS["pvcnn"], "prediction_type": "v_prediction",
                  "lr": 2e-3, "warmup_steps": 20, "ema_decay": 0.99, "log_images": False},
        "data": {"num_points": TINY_POINTS, "num_keypoints": TINY_KEYPOINTS, "batch_size": 8, "phantom_num_scans": 12,
                 "val_fraction": 0.2, "test_fraction": 0.0, "cache_dir": str(cache)},
    }
    (tmp_path / "e2e.yaml").write_text(yaml.safe_dump(config))
    cli = train_main([str(tmp_path / "e2e.yaml")])
    assert cli.trainer.global_step == STEPS

    exported = export_main([str(tmp_path / "last.ckpt"), str(tmp_path / "pipe")])
    out = tmp_path / "gen"
    generate_main(["--pipeline", str(exported), "--cobb", "0", "40", "--curve-type", "thoracic", "--steps", "20",
                   "--out", str(out), "--num-points", "512"])
    for cobb in (0, 40):
        name = f"cobb{cobb}p0_curve_typethoracic"
        scan = read_subject(Path(out) / name)  # checks units (mm) and axes on load
        assert scan.points.shape == (512, 3)
        esl, _ = spine_lines(SpineParams(cobb_deg=float(cobb), curve_type="thoracic"))
        # a back around its spine: centred within 60 mm of the line's middle, about as tall as the line
        center = (esl[0] + esl[-1]) / 2
        assert np.linalg.norm(np.median(scan.points, 0)[:2] - center[:2]) < 60.0
        height = np.percentile(scan.points[:, 1], 95) - np.percentile(scan.points[:, 1], 5)
        assert 0.5 * (esl[0, 1] - esl[-1, 1]) < height < 2.0 * (esl[0, 1] - esl[-1, 1])
