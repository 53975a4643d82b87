"""benchmarks/estimator_finetune.py: phantom-pretrained ESL estimator fine-tuned per fold on real backs (tiny run)."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import estimator_finetune
from pcdiff.estimator.checkpoints import save_estimator
from pcdiff.estimator.module import SpineEstimator

TINY = dict(width=16, num_centres=(64, 16), radii=(0.1, 0.25), num_neighbours=(16, 8), widths=(32, 64), global_dim=64, head_dim=64)


def test_summarise_gives_mean_and_sd_per_row():
    rows = [{"row": r, "esl_lateral_rms_mm": v, "esl_rms_mm": 2 * v, "esl_cobb_err_deg": 3 * v, "isl_rms_mm": v, "cobb_abs_err_deg": v, "finetune_s": 5.0 if i == 1 else None}
            for i, r in enumerate(estimator_finetune.ROWS) for v in (1.0, 3.0)]  # fmt: skip
    table = estimator_finetune.summarise(rows)
    assert [t["row"] for t in table] == list(estimator_finetune.ROWS)
    assert table[0]["esl_lateral_rms_mm"] == 2.0 and table[0]["esl_rms_mm_text"] == "4.0 ± 2.8"
    assert table[1]["finetune_s"] == 5.0 and table[0]["finetune_s"] is None


@pytest.mark.slow
@pytest.mark.real_data
def test_tiny_run_on_pcdare(pcdare_dir, tmp_path, monkeypatch):
    init = save_estimator(SpineEstimator(line="esl", input_frame="landmarks", net_kwargs=TINY).eval(), tmp_path / "init", 2048)
    written = {}
    monkeypatch.setattr(estimator_finetune, "publish", lambda stem, payload, md: written.update(payload) or 0)
    assert estimator_finetune.main(["--init", str(init), "--data", str(pcdare_dir), "--folds", "2", "--steps", "2"]) == 0
    assert {r["row"] for r in written["per_subject"]} == set(estimator_finetune.ROWS)
    assert len(written["per_subject"]) == len(estimator_finetune.ROWS) * 20 and all(np.isfinite(r["esl_rms_mm"]) for r in written["per_subject"])
    with pytest.raises(SystemExit):  # an ESL-frame estimator cannot read a new patient's scan
        esl_frame = save_estimator(SpineEstimator(line="esl", input_frame="esl", net_kwargs=TINY).eval(), tmp_path / "e", 2048)
        estimator_finetune.main(["--init", str(esl_frame), "--data", str(pcdare_dir), "--folds", "2", "--steps", "1"])
