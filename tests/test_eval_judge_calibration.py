"""``--metric spine_estimator --cobb-calibration DIR``: the network judge's Cobb reading calibrated on true backs."""

from pathlib import Path

import numpy as np
import pytest
import torch

from pcdiff.data.phantom import generate_phantom
from pcdiff.data.readers.writer import write_subject
from pcdiff.data.sample import BackScan
from pcdiff.estimator.checkpoints import load_estimator
from pcdiff.estimator.eval_metric import judge_cobb_calibration, spine_estimator
from pcdiff.metrics.registry import EvalInputs

JUDGE = Path(__file__).resolve().parents[1] / "pretrained" / "phantom-esl-judge"


def _generated(scan: BackScan) -> BackScan:
    return BackScan(name=scan.name, points=scan.points, esl=scan.esl, meta={"generated": {"model": "test", "seed": 0}})


def _inputs(generated, reference=None) -> EvalInputs:
    return EvalInputs(generated=generated, reference=reference, generated_points=torch.zeros(len(generated), 0, 3),
                      reference_points=None, pairs=None)  # fmt: skip


@pytest.fixture(scope="module")
def calibration_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("calibration")
    for seed in range(20, 24):
        write_subject(generate_phantom(seed, 2048, name=f"calib_{seed}"), folder)
    return folder


def test_calibrated_rows_are_the_fitted_line_applied_to_each_reading(calibration_dir):
    judged = [_generated(generate_phantom(seed, 2048, name=f"judged_{seed}")) for seed in range(2)]
    reference = [generate_phantom(seed, 2048, name=f"ref_{seed}") for seed in range(2, 4)]
    out = spine_estimator(_inputs(judged, reference), str(JUDGE), cobb_calibration=str(calibration_dir))
    from pcdiff.eval import load_scans

    calibration = judge_cobb_calibration(load_estimator(JUDGE), load_scans(str(calibration_dir), "x")[0])
    assert calibration.n == 4 and any("Cobb calibrated on 4 true backs" in note for note in out.notes)
    for label in ("generated", "reference"):
        rows = out.per_sample[label]
        for row in rows:
            expected = calibration.intercept_deg + calibration.slope * row["cobb_pred_deg"]
            assert row["cobb_calibrated_deg"] == pytest.approx(expected)
            assert row["cobb_calibrated_abs_err_deg"] == pytest.approx(abs(expected - row["cobb_true_deg"]))
        tag = "ESL estimator, generated" if label == "generated" else "ESL estimator, reference (floor)"
        assert out.summary[f"{tag} Cobb MAE, calibrated [deg]"] == pytest.approx(
            np.mean([r["cobb_calibrated_abs_err_deg"] for r in rows]))
    plain = spine_estimator(_inputs(judged), str(JUDGE))  # without the option: no calibrated key, same raw reading
    assert not any("calibrated" in key for key in plain.summary)
    assert plain.per_sample["generated"][0]["cobb_pred_deg"] == pytest.approx(out.per_sample["generated"][0]["cobb_pred_deg"])


def test_the_calibration_is_refused_on_generated_backs_shared_subjects_or_the_geometric_judge(calibration_dir, tmp_path):
    judged = [_generated(generate_phantom(0, 2048, name="judged_0"))]
    with pytest.raises(ValueError, match="generated back"):
        judge_cobb_calibration(load_estimator(JUDGE), judged)
    shared = [_generated(generate_phantom(20, 2048, name="calib_20"))]
    with pytest.raises(ValueError, match="shares subjects"):
        spine_estimator(_inputs(shared), str(JUDGE), cobb_calibration=str(calibration_dir))
    with pytest.raises(ValueError, match="drop it with --estimator geometric"):
        spine_estimator(_inputs(judged), None, estimator="geometric", cobb_calibration=str(calibration_dir))
