"""The spine_estimator metric: checkpoint loading, the input frame, and errors against the conditioning line."""

import lightning as L
import numpy as np
import pytest
import torch

from pcdiff.estimator.module import SpineEstimator
from pcdiff.estimator.eval_metric import estimate_lines, load_estimator, spine_estimator_metric

TINY = dict(width=16, num_centres=(32, 8), radii=(0.1, 0.25), num_neighbours=(8, 8), widths=(16, 32), global_dim=32,
            head_dim=32)


def vertical_lines(b: int, rng: np.random.Generator) -> np.ndarray:
    """(B, 50, 3) straight vertical lines in mm at random places and lengths (top -> bottom)."""
    length = rng.uniform(350, 500, size=(b, 1))
    t = np.linspace(0.5, -0.5, 50)[None]
    base = rng.uniform(-100, 100, size=(b, 1, 3))
    lines = np.stack([np.zeros_like(t * length), t * length, np.zeros_like(t * length)], axis=-1)
    return (lines + base).astype(np.float32)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A Lightning checkpoint of an untrained tiny estimator (its zero-initialised head predicts the template)."""
    path = tmp_path_factory.mktemp("est") / "est.ckpt"
    model = SpineEstimator(num_keypoints=16, net_kwargs=TINY)
    trainer = L.Trainer(max_steps=0, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, accelerator="cpu")
    trainer.strategy.connect(model)
    trainer.save_checkpoint(path)
    return path


def test_untrained_estimator_returns_the_esl_frame_template_in_mm(checkpoint):
    est = load_estimator(checkpoint)
    assert est.num_points == 2048 and not est.training
    rng = np.random.default_rng(0)
    spines = vertical_lines(3, rng)
    backs = rng.normal(size=(3, 300, 3)).astype(np.float32) * 100
    pred = estimate_lines(est, backs, spines)
    assert pred.shape == (3, 16, 3)
    # the template (0, +-0.5, 0) in the ESL frame is the straight line between the ESL's ends
    np.testing.assert_allclose(pred[:, 0], spines[:, 0], atol=1e-3)
    np.testing.assert_allclose(pred[:, -1], spines[:, -1], atol=1e-3)
    res = spine_estimator_metric(est, backs, spines)
    assert res["mean_mm"] < 1e-3 and res["n"] == 3 and res["line"] == "esl"
    shifted = spine_estimator_metric(est, backs, spines + np.array([7.0, 0, 0], np.float32), esl=spines)
    assert shifted["mean_mm"] == pytest.approx(7.0, abs=1e-2)
    assert shifted["lateral_rms_mm"] == pytest.approx(7.0, abs=1e-2)


def test_lists_of_different_sizes_are_accepted(checkpoint):
    est = load_estimator(checkpoint)
    rng = np.random.default_rng(1)
    spines = list(vertical_lines(2, rng))
    backs = [rng.normal(size=(n, 3)).astype(np.float32) * 100 for n in (200, 5000)]
    assert estimate_lines(est, backs, spines, num_points=256).shape == (2, 16, 3)


def test_checkpoint_with_the_old_flat_network_settings_loads(checkpoint, tmp_path):
    """Checkpoints written before net_kwargs hold the network's settings flat, as num_centers/num_neighbors."""
    ckpt = torch.load(checkpoint, weights_only=True)
    hp = ckpt["hyper_parameters"]
    old = {"num_centers" if k == "num_centres" else "num_neighbors" if k == "num_neighbours" else k: v
           for k, v in hp.pop("net_kwargs").items()}  # fmt: skip
    hp.update(old)
    torch.save(ckpt, tmp_path / "old.ckpt")
    est, again = load_estimator(checkpoint), load_estimator(tmp_path / "old.ckpt")
    assert again.hparams.net_kwargs == TINY
    backs = torch.randn(2, 300, 3)
    torch.testing.assert_close(again(backs), est(backs))


def test_frames_generated_backs_cannot_provide_are_refused(tmp_path):
    est = SpineEstimator(num_keypoints=8, line="isl", input_frame="landmarks", net_kwargs=TINY).eval()
    with pytest.raises(ValueError, match="landmarks"):
        estimate_lines(est, np.zeros((1, 100, 3), np.float32), None)
    with pytest.raises(ValueError, match="frame_lines"):
        estimate_lines(SpineEstimator(num_keypoints=8, net_kwargs=TINY).eval(), np.zeros((1, 100, 3), np.float32), None)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_estimator(tmp_path / "missing.ckpt")


def test_landmark_frame_estimators_read_scans_given_their_landmarks():
    """A landmark-frame estimator reads a real-style scan when each back's (4, 3) C7, DL, DR, DM are given: the
    prediction moves with the scan (a shifted scan and shifted landmarks give the shifted line)."""
    from pcdiff.data.phantom import generate_phantom

    est = SpineEstimator(num_keypoints=8, line="esl", input_frame="landmarks", net_kwargs=TINY).eval()
    scan = generate_phantom(0, 512)
    lm = np.stack([scan.landmarks[k] for k in ("C7", "DL", "DR", "DM")])
    shift = np.array([30.0, -20.0, 5.0], np.float32)
    a = estimate_lines(est, [scan.points], None, landmarks=[lm])
    b = estimate_lines(est, [scan.points + shift], None, landmarks=[lm + shift])
    assert a.shape == (1, 8, 3)
    np.testing.assert_allclose(b - a, np.broadcast_to(shift, a.shape), atol=1e-3)
    with pytest.raises(ValueError, match="landmark sets"):
        estimate_lines(est, [scan.points, scan.points], None, landmarks=[lm])


def test_eval_cli_runs_the_registered_metric(checkpoint, tmp_path):
    from pcdiff.eval import main

    rng = np.random.default_rng(2)
    spines = vertical_lines(4, rng)
    backs = (rng.normal(size=(4, 400, 3)) * 100).astype(np.float32)
    names = [f"subject_{i}" for i in range(4)]
    np.savez(tmp_path / "gen.npz", points=backs, esl=spines, names=np.array(names))
    out = main(["--metric", "spine_estimator", "--generated", str(tmp_path / "gen.npz"), "--num-points", "256",
                "--estimator-checkpoint", str(checkpoint), "--no-progress", "--device", "cpu"])
    assert out["metrics"]["ESL estimator, generated mean [mm]"] < 1e-3  # untrained: the straight ESL-end line
    rows = out["per_sample"]["spine_estimator"]["generated"]  # one row per back, by subject name
    assert [r["name"] for r in rows] == names
    assert all(r["mean_mm"] < 1e-3 and r["cobb_abs_err_deg"] < 1.0 for r in rows)
    with pytest.raises(SystemExit, match="estimator-checkpoint"):
        main(["--metric", "spine_estimator", "--generated", str(tmp_path / "gen.npz"), "--num-points", "256", "--device", "cpu"])


def test_eval_cli_reads_scans_with_their_landmarks_for_a_landmark_frame_estimator(tmp_path):
    """`pcdiff.eval --metric spine_estimator` with a landmark-frame estimator reads each scan in its own C7-DM frame
    (an estimator pre-trained on generated backs scored on true scans), and refuses a scan without C7 by name."""
    from pcdiff.data.phantom import generate_phantom
    from pcdiff.data.readers.writer import write_subject
    from pcdiff.estimator.checkpoints import save_estimator
    from pcdiff.eval import main

    est = SpineEstimator(num_keypoints=8, line="esl", input_frame="landmarks", net_kwargs=TINY).eval()
    saved = save_estimator(est, tmp_path / "est", 256)
    scans = [generate_phantom(i, 512, name=f"p{i}") for i in range(2)]
    for scan in scans:
        write_subject(scan, tmp_path / "data")
    args = ["--metric", "spine_estimator", "--generated", str(tmp_path / "data"), "--estimator-checkpoint", str(saved),
            "--no-progress", "--device", "cpu"]
    out = main(args)
    rows = out["per_sample"]["spine_estimator"]["generated"]
    assert [r["name"] for r in rows] == ["p0", "p1"]
    # an untrained estimator gives its template in each scan's own C7-DM frame: the same as estimate_lines with them
    lms = [np.stack([s.landmarks[k] for k in ("C7", "DL", "DR", "DM")]) for s in scans]
    expected = spine_estimator_metric(est, [s.points for s in scans], [s.esl for s in scans], landmarks=lms, num_points=256)
    assert [r["mean_mm"] for r in rows] == pytest.approx([r["mean_mm"] for r in expected["per_subject"]], rel=1e-4)
    no_c7 = generate_phantom(5, 512, name="no_c7")
    no_c7.landmarks.pop("C7")
    write_subject(no_c7, tmp_path / "data")
    with pytest.raises(SystemExit, match="'no_c7' has no C7"):
        main(args)
