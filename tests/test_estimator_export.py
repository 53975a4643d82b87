"""pcdiff.estimator.checkpoints / export: a trained estimator saved as a small safetensors folder, reloaded by load_estimator; and the
shipped judge (pretrained/phantom-esl-judge) reads phantom backs it never saw."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pcdiff.data.phantom import generate_phantom
from pcdiff.estimator.checkpoints import EXPORTED_FILES, load_exported_estimator, save_estimator
from pcdiff.estimator.eval_metric import estimate_lines, load_estimator, spine_estimator_metric
from pcdiff.estimator.export import main
from pcdiff.estimator.module import SpineEstimator

PRETRAINED = Path(__file__).resolve().parents[1] / "pretrained"
SHIPPED = PRETRAINED / "phantom-esl-judge"
#: The shipped judges: the first (1000 phantoms, 2400 steps) and v2 (2000 phantoms, 4800 steps; floor 2.6 mm lateral).
SHIPPED_JUDGES = (SHIPPED, PRETRAINED / "phantom-esl-judge-v2")
TINY = dict(width=16, num_centres=(64, 16), radii=(0.1, 0.25), num_neighbours=(16, 8), widths=(32, 64), global_dim=64, head_dim=64)


@pytest.fixture(scope="module")
def scans():
    return [generate_phantom([12345, i], 2048) for i in range(4)]  # a seed no judge trained on


def test_saved_folder_reloads_to_the_same_predictions(tmp_path, scans):
    torch.manual_seed(0)
    model = SpineEstimator(line="esl", input_frame="esl", net_kwargs=TINY).eval()
    with torch.no_grad():  # move the BatchNorm statistics off their defaults, so that saving them is tested too
        model.train()
        model(torch.randn(4, 256, 3))
        model.eval()
    out = save_estimator(model, tmp_path / "judge", num_points=512)
    assert sorted(p.name for p in out.iterdir()) == sorted(EXPORTED_FILES)
    loaded = load_estimator(out)
    assert loaded.num_points == 512 and loaded.hparams.line == "esl" and loaded.hparams.input_frame == "esl"
    backs, esls = [s.points for s in scans], [s.esl for s in scans]
    np.testing.assert_allclose(estimate_lines(loaded, backs, esls), estimate_lines(model, backs, esls, num_points=512), atol=1e-5)


def test_existing_folders_and_bad_input_are_refused(tmp_path, capsys):
    model = SpineEstimator(line="esl", input_frame="esl", net_kwargs=TINY).eval()
    keep = tmp_path / "mine"
    keep.mkdir()
    (keep / "notes.txt").write_text("the user's")
    with pytest.raises(FileExistsError, match="overwrite"):
        save_estimator(model, keep, num_points=256)
    save_estimator(model, keep, num_points=256, overwrite=True)
    assert (keep / "notes.txt").read_text() == "the user's"  # overwrite replaces the export's files, nothing else
    with pytest.raises(ValueError, match="num_points"):
        save_estimator(model, tmp_path / "x", num_points=0)
    with pytest.raises(FileNotFoundError, match="estimator.json"):
        load_exported_estimator(tmp_path)
    with pytest.raises(SystemExit):
        main([str(tmp_path / "missing.ckpt"), str(keep)])  # non-empty folder, no --overwrite: refused before loading
    assert "not empty" in capsys.readouterr().err


@pytest.mark.parametrize("folder", SHIPPED_JUDGES, ids=lambda p: p.name)
def test_shipped_judge_reads_held_out_phantoms(scans, folder):
    """Each shipped judge reads the ESL of phantoms it never saw within a few mm (floors on 100 held-out phantoms:
    3.0 and 2.6 mm lateral), and the same backs scored against each other's lines read far off: it follows the back."""
    judge = load_estimator(folder)
    weights = folder / "diffusion_pytorch_model.safetensors"
    assert weights.stat().st_size < 10e6 and judge.num_points == 2048 and judge.hparams.line == "esl"
    backs = [s.points for s in scans]
    own = spine_estimator_metric(judge, backs, [s.esl for s in scans])
    swapped = spine_estimator_metric(judge, backs, [scans[(i + 1) % 4].esl for i in range(4)])
    assert own["lateral_rms_mm"] < 6.0 and own["rms_mm"] < 8.0
    assert swapped["rms_mm"] > 2 * own["rms_mm"]
