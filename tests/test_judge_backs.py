"""benchmarks/judge_backs.py: the judges' table over saved backs, on three phantoms (geometric judge: nothing trained)."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import judge_backs
from pcdiff.data.phantom import generate_phantom


def _save(path, backs: np.ndarray, true: np.ndarray, esl: list[np.ndarray], names: list[str]) -> None:
    np.savez_compressed(path, backs_mm=backs, true_mm=true, names=np.asarray(names),
                        **{f"esl_mm_{i}": e for i, e in enumerate(esl)})  # fmt: skip


@pytest.fixture(scope="module")
def phantoms():
    scans = [generate_phantom(seed, 4096) for seed in (3, 4, 5)]
    return np.stack([s.points for s in scans]), [s.esl.astype(np.float64) for s in scans], [s.name for s in scans]


def test_true_backs_score_the_floor_and_a_shifted_back_scores_worse(phantoms, tmp_path, monkeypatch):
    true, esl, names = phantoms
    monkeypatch.setattr(judge_backs, "publish", lambda stem, payload, md: 0)
    captured = {}
    real_row = judge_backs.judge_row

    def spy(per_subject, floor=None):
        row = real_row(per_subject, floor)
        captured.setdefault("rows", []).append(row)
        return row

    monkeypatch.setattr(judge_backs, "judge_row", spy)
    _save(tmp_path / "same.npz", true, true, esl, names)
    shifted = true.copy()
    shifted[..., 0] += 25.0 * np.sin(shifted[..., 1] / 120.0)  # a lateral wave the requested ESL does not have
    _save(tmp_path / "wave.npz", shifted, true, esl, names)
    assert judge_backs.main(["--backs", f"same={tmp_path / 'same.npz'}", "--backs", f"wave={tmp_path / 'wave.npz'}"]) == 0
    floor, same, wave = captured["rows"]
    assert same["cobb_vs_true_back_deg"] == pytest.approx(0.0, abs=1e-9)
    assert same["lateral_rms_mm"] == pytest.approx(floor["lateral_rms_mm"])
    assert wave["lateral_rms_mm"] > floor["lateral_rms_mm"] + 5
    assert 0.0 <= wave["within_tolerance"] <= 1.0 and wave["n_read"] + wave["n_failed"] == 3


def test_noisy_backs_keep_their_mean_and_thicken_in_depth():
    backs = np.zeros((2, 4000, 3), np.float32)
    noisy = judge_backs.noisy_backs(backs, 5.0)
    np.testing.assert_allclose(noisy.std(axis=(0, 1)), [1.5, 1.5, 5.0], rtol=0.05)
    assert np.abs(noisy.mean(axis=(0, 1))).max() < 0.2
    with pytest.raises(ValueError):
        judge_backs.noisy_backs(backs, -1.0)


def test_bad_input(phantoms, tmp_path):
    true, esl, names = phantoms
    with pytest.raises(SystemExit):
        judge_backs.main(["--backs", f"x={tmp_path / 'missing.npz'}"])
    np.savez(tmp_path / "bad.npz", points=true)
    with pytest.raises(ValueError, match="not a --save-backs file"):
        judge_backs.load_backs(tmp_path / "bad.npz")
    _save(tmp_path / "a.npz", true, true, esl, names)
    _save(tmp_path / "b.npz", true, true, esl, ["other"] * 3)
    with pytest.raises(SystemExit):
        judge_backs.main(["--backs", f"a={tmp_path / 'a.npz'}", "--backs", f"b={tmp_path / 'b.npz'}"])


def test_judge_row_reads_a_pull_towards_the_mean_as_a_slope_under_one():
    from benchmarks.judge_backs import judge_row

    true = np.array([5.0, 15.0, 30.0, 45.0])
    rows = [{"lateral_rms_mm": 1.0, "rms_mm": 1.0, "cobb_pred_deg": 0.6 * t + 4.0, "cobb_true_deg": t,
             "cobb_abs_err_deg": abs(0.4 * t - 4.0)} for t in true]
    row = judge_row(rows)
    assert row["cobb_slope"] == pytest.approx(0.6)
    assert row["cobb_mae_large_deg"] == pytest.approx(np.mean([8.0, 14.0]))


def test_calibrated_rows_map_every_network_reading_through_the_fit_on_other_phantoms(phantoms, tmp_path, monkeypatch):
    """--calibrate-on: the shipped judge reads true phantoms of other seeds, a line maps its Cobb reading, and every
    network row comes again as 'network, calibrated' with exactly that map applied per back; a calibration folder
    holding a scored spine is refused."""
    import dataclasses
    from pathlib import Path

    from pcdiff.data.io import read_dataset, write_subject
    from pcdiff.estimator.eval_metric import load_estimator
    from pcdiff.estimator.judge_calibration import fit_cobb_calibration

    judge_folder = Path(__file__).resolve().parents[1] / "pretrained" / "phantom-esl-judge"
    true, esl, names = phantoms
    _save(tmp_path / "same.npz", true, true, esl, names)
    for seed in (11, 12, 13, 14):
        write_subject(dataclasses.replace(generate_phantom(seed, 2048), name=f"calib_{seed}"), tmp_path / "calib")
    payloads = []

    def keep(stem, payload, md):
        payloads.append(payload)
        return 0

    monkeypatch.setattr(judge_backs, "publish", keep)
    args = ["--backs", f"same={tmp_path / 'same.npz'}", "--estimator", str(judge_folder),
            "--calibrate-on", str(tmp_path / "calib")]
    assert judge_backs.main(args) == 0
    payload = payloads[0]
    cal = payload["calibration"]
    assert cal["n"] == 4 and cal["folder"] == str(tmp_path / "calib")
    calib = read_dataset(tmp_path / "calib")
    reads = judge_backs.judge("network", [s.points for s in calib], [s.esl for s in calib], [s.name for s in calib],
                              load_estimator(judge_folder))
    fitted = fit_cobb_calibration([r["cobb_pred_deg"] for r in reads], [r["cobb_true_deg"] for r in reads])
    assert cal["slope"] == pytest.approx(fitted.slope) and cal["intercept_deg"] == pytest.approx(fitted.intercept_deg)
    raw, calibrated = payload["per_back"]["network/same"], payload["per_back"]["network, calibrated/same"]
    for r, c in zip(raw, calibrated):
        assert c["cobb_pred_deg"] == pytest.approx(cal["intercept_deg"] + cal["slope"] * r["cobb_pred_deg"])
        assert c["lateral_rms_mm"] == r["lateral_rms_mm"]
    assert [row["judge"] for row in payload["table"]].count("network, calibrated") == 2  # floor + the one file
    write_subject(dataclasses.replace(generate_phantom(3, 2048), name=names[0]), tmp_path / "calib")  # a scored spine
    with pytest.raises(SystemExit, match="scored spines"):
        judge_backs.main(args)


def test_calibrate_on_needs_the_network_judge(phantoms, tmp_path):
    true, esl, names = phantoms
    _save(tmp_path / "same.npz", true, true, esl, names)
    with pytest.raises(SystemExit):
        judge_backs.main(["--backs", f"same={tmp_path / 'same.npz'}", "--calibrate-on", str(tmp_path)])
