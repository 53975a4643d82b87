"""benchmarks/train_on_synthetic.py: zero-shot landmark-frame ESL estimators read on folders of true scans (tiny run)."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import train_on_synthetic
from pcdiff.data.phantom import generate_phantom
from pcdiff.data.readers.writer import write_subject
from pcdiff.estimator.checkpoints import save_estimator
from pcdiff.estimator.module import SpineEstimator

TINY = dict(width=16, num_centres=(32, 8), radii=(0.1, 0.25), num_neighbours=(8, 8), widths=(16, 32), global_dim=32, head_dim=32)


def test_read_row_gives_mean_sd_and_cobb_correlation():
    per_scan = [{"lateral_rms_mm": v, "rms_mm": 2 * v, "cobb_abs_err_deg": v, "cobb_pred_deg": 10 * v, "cobb_true_deg": 10 * v + 1}
                for v in (1.0, 3.0)]  # fmt: skip
    row = train_on_synthetic.read_row(per_scan, estimator="phantoms", scans="heldout")
    assert row["estimator"] == "phantoms" and row["scans"] == "heldout"
    assert row["n"] == 2 and row["rms_mm"] == 4.0 and row["rms_mm_text"] == "4.0 ± 2.8"
    assert row["cobb_r"] == pytest.approx(1.0)


def test_tiny_run_scores_every_estimator_on_every_scan_set(tmp_path, monkeypatch):
    folders = {}
    for label, seeds in (("a", (0, 1)), ("b", (2, 3, 4))):
        for s in seeds:
            write_subject(generate_phantom(s, 512, name=f"p{s}"), tmp_path / label)
        folders[label] = tmp_path / label
    estimators = [save_estimator(SpineEstimator(num_keypoints=8, line="esl", input_frame="landmarks", net_kwargs=TINY).eval(),
                                 tmp_path / f"est{i}", 256) for i in range(2)]  # fmt: skip
    written = {}
    monkeypatch.setattr(train_on_synthetic, "publish", lambda stem, payload, md: written.update(payload, md=md) or 0)
    argv = ["--estimator", f"one={estimators[0]}", "--estimator", f"two={estimators[1]}", "--scans", f"a={folders['a']}",
            "--scans", f"b={folders['b']}", "--num-points", "256"]
    assert train_on_synthetic.main(argv) == 0
    assert [(r["scans"], r["estimator"], r["n"]) for r in written["table"]] == [("a", "one", 2), ("a", "two", 2), ("b", "one", 3), ("b", "two", 3)]
    assert len(written["per_scan"]) == 2 * 5 and all(np.isfinite(r["rms_mm"]) for r in written["per_scan"])
    assert "| b | two | 3 |" in written["md"]
    with pytest.raises(SystemExit):  # an ESL-frame estimator cannot read a new patient's scan
        esl_frame = save_estimator(SpineEstimator(num_keypoints=8, line="esl", input_frame="esl", net_kwargs=TINY).eval(), tmp_path / "e", 256)
        train_on_synthetic.main(["--estimator", f"x={esl_frame}", "--scans", f"a={folders['a']}"])
    with pytest.raises(SystemExit):  # a bare path: which estimator is it?
        train_on_synthetic.main(["--estimator", str(estimators[0]), "--scans", f"a={folders['a']}"])
