import lightning as L
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from pcdiff.estimator.metrics import line_errors, pearson, summarize
from pcdiff.estimator.model import SpineEstimatorNet
from pcdiff.estimator.module import SpineEstimator, to_mm

TINY = dict(width=16, num_centres=(64, 16), radii=(0.1, 0.25), num_neighbours=(16, 8), widths=(32, 64), global_dim=64, head_dim=64)


def vertical_line(k: int = 32, x: float = 0.0, length: float = 400.0) -> np.ndarray:
    return np.stack([np.full(k, x), np.linspace(length / 2, -length / 2, k), np.zeros(k)], axis=1)


def toy_batch(b: int, k: int = 16, n: int = 256, seed: int = 0) -> dict[str, torch.Tensor]:
    """Backs with a ridge along a bent line x = a (0.25 - y^2), spine keypoints on that line (normalised)."""
    g = torch.Generator().manual_seed(seed)
    a = (torch.rand(b, 1, generator=g) - 0.5) * 1.6  # (B, 1)
    xy = torch.rand(b, n, 2, generator=g) * torch.tensor([0.8, 1.0]) - torch.tensor([0.4, 0.5])
    ridge = a * (0.25 - xy[..., 1] ** 2)
    z = 0.1 * torch.exp(-(((xy[..., 0] - ridge) / 0.1) ** 2))
    points = torch.stack([xy[..., 0], xy[..., 1], z], dim=-1)
    ys = torch.linspace(0.5, -0.5, k).expand(b, k)
    spine = torch.stack([a * (0.25 - ys**2), ys, torch.full_like(ys, -0.1)], dim=-1)
    return {"points": points, "spine": spine, "center": torch.zeros(b, 3), "scale": torch.full((b,), 400.0)}


def test_line_errors_zero_for_identical_lines_and_shift_for_shifted():
    line = vertical_line()
    (row,) = line_errors(line, line)
    assert row["mean_mm"] == pytest.approx(0, abs=1e-6) and row["max_mm"] == pytest.approx(0, abs=1e-6)
    assert row["cobb_abs_err_deg"] == pytest.approx(0, abs=1e-6)
    shifted = line + np.array([5.0, 0.0, 0.0])
    rows = line_errors(np.stack([shifted, line]), np.stack([line, line]))
    assert rows[0]["mean_mm"] == pytest.approx(5.0, abs=1e-3)
    assert rows[0]["rms_mm"] == pytest.approx(5.0, abs=1e-3)
    assert rows[0]["lateral_rms_mm"] == pytest.approx(5.0, abs=1e-6)
    assert rows[1]["mean_mm"] == pytest.approx(0.0, abs=1e-6)


def test_line_errors_point_to_curve_ignores_parametrisation_but_sees_bends():
    line = vertical_line(32)
    (row,) = line_errors(vertical_line(9), line)  # same line, other keypoints
    assert row["max_mm"] < 1e-3
    bent = line.copy()
    bent[10:20, 0] += 12.0
    (row,) = line_errors(bent, line)
    assert row["max_mm"] == pytest.approx(12.0, abs=0.5)
    assert row["cobb_pred_deg"] > 10 and row["cobb_true_deg"] < 1


def test_line_errors_and_summary_reject_bad_input():
    with pytest.raises(ValueError, match=r"\(B, K, 3\)"):
        line_errors(np.zeros((2, 5, 2)), np.zeros((2, 5, 3)))
    with pytest.raises(ValueError, match="no subjects"):
        summarize([])


def test_summary_aggregates():
    rows = line_errors(np.stack([vertical_line(x=d) for d in (0.0, 2.0, 4.0)]), np.stack([vertical_line()] * 3))
    s = summarize(rows)
    assert s["n"] == 3
    assert s["mean_mm"] == pytest.approx(2.0, abs=1e-3)
    assert s["max_max_mm"] == pytest.approx(4.0, abs=1e-3)
    assert np.isnan(s["cobb_r"])  # all Cobb angles are 0: no correlation defined
    assert pearson([1, 2, 3], [2, 4, 6.5]) > 0.99


def test_model_shapes_template_and_save_reload(tmp_path):
    torch.manual_seed(0)
    net = SpineEstimatorNet(num_keypoints=12, **TINY).eval()
    points = torch.randn(2, 200, 3)
    out = net(points).keypoints
    assert out.shape == (2, 12, 3)
    # untrained: the zero-initialised head returns the straight template line, top -> bottom
    np.testing.assert_allclose(out[0, :, 1].detach().numpy(), np.linspace(0.5, -0.5, 12), atol=1e-6)
    with torch.no_grad():
        net.head[-1].bias.normal_()
    net.save_pretrained(tmp_path)
    again = SpineEstimatorNet.from_pretrained(tmp_path).eval()
    torch.testing.assert_close(again(points).keypoints, net(points).keypoints)
    with pytest.raises(ValueError, match=r"\(B, N, 3\)"):
        net(torch.randn(2, 200))
    with pytest.raises(ValueError, match="one entry per level"):
        SpineEstimatorNet(num_centres=(8,), radii=(0.1,), num_neighbours=(4, 4), widths=(8,))


def test_module_rejects_mismatched_keypoints_and_bad_options():
    with pytest.raises(ValueError, match="loss"):
        SpineEstimator(loss="huber")
    module = SpineEstimator(num_keypoints=8, net_kwargs=TINY)
    with pytest.raises(ValueError, match="num_keypoints"):
        module.training_step(toy_batch(2, k=16), 0)


def test_to_mm():
    x = torch.tensor([[[0.5, -0.5, 0.0]]])
    out = to_mm(x, torch.tensor([[10.0, 20.0, 30.0]]), torch.tensor([400.0]))
    torch.testing.assert_close(out, torch.tensor([[[210.0, -180.0, 30.0]]]))


def test_estimator_learns_a_toy_ridge():
    """Trained for a few seconds, the net must beat the best constant line (the mean spine) on held-out toys."""
    torch.manual_seed(0)
    train = [toy_batch(8, seed=s) for s in range(8)]
    test = toy_batch(32, seed=100)
    module = SpineEstimator(num_keypoints=16, lr=3e-3, net_kwargs={**TINY, "dropout": 0.0})
    trainer = L.Trainer(
        max_epochs=20, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, accelerator="cpu",
    )
    trainer.fit(module, DataLoader(train, batch_size=None))
    module.eval()
    with torch.no_grad():
        pred = module(test["points"])
    err = (pred - test["spine"]).abs().mean()
    mean_line = torch.stack([b["spine"] for b in train]).mean(dim=(0, 1))
    baseline = (mean_line - test["spine"]).abs().mean()
    assert err < 0.75 * baseline, (float(err), float(baseline))


def test_frame_is_recorded_and_the_isl_frame_refused():
    from pcdiff.estimator.train import input_frame

    assert input_frame("line", "esl") == "esl"
    assert input_frame("landmarks", "isl") == "landmarks"
    assert SpineEstimator(line="isl", input_frame="landmarks", net_kwargs=TINY).hparams.input_frame == "landmarks"
    with pytest.raises(ValueError, match="ISL's own frame"):
        SpineEstimator(line="isl", input_frame=input_frame("line", "isl"), net_kwargs=TINY)


@pytest.mark.slow
def test_cli_fast_dev_run_on_phantoms(tmp_path):
    from pcdiff.estimator.train import main

    cli = main(
        [
            "configs/estimator.yaml", "--trainer.fast_dev_run", "1", "--trainer.default_root_dir", str(tmp_path),
            "--data.phantom_num_scans", "12", "--data.num_points", "256", "--data.cache_dir", str(tmp_path / "cache"),
            "--data.batch_size", "4", "--data.line", "isl", "--data.normalize", "landmarks",
            "--model.net_kwargs.num_centres", "[64, 16]", "--model.net_kwargs.widths", "[32, 64]",
            "--model.net_kwargs.global_dim", "64",
        ]
    )
    assert cli.model.hparams.line == "isl" and cli.model.hparams.input_frame == "landmarks"


@pytest.mark.parametrize(("config", "normalize", "steps"), [("estimator_phantom_judge", "line", 2400),
                                                              ("estimator_phantom_landmarks", "landmarks", 1600)])
def test_phantom_estimator_configs_compose_with_the_estimator_config(capsys, config, normalize, steps):
    """The phantom-trained estimators' configs layer onto configs/estimator.yaml: the ESL, 2048 points, the generator's
    1000 training phantoms (seed 1); the judge reads in the ESL's own frame (what generated backs allow), the other
    in the landmark frame (what a new patient's scan allows)."""
    from pcdiff.estimator.train import main

    with pytest.raises(SystemExit) as exc:
        main(["configs/estimator.yaml", "--config", f"configs/{config}.yaml", "--print_config"])
    assert exc.value.code in (0, None)
    printed = capsys.readouterr().out
    for expected in (f"max_steps: {steps}", "phantom_num_scans: 1000", "phantom_seed: 1", "num_points: 2048",
                     "line: esl", f"normalize: {normalize}", f"dirpath: outputs/{config}"):
        assert expected in printed, expected
