"""benchmarks/estimator_finetune.py: synthetic-pretrained ESL estimators fine-tuned per fold on real backs (tiny run)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmarks import estimator_finetune
from pcdiff.estimator.checkpoints import save_estimator
from pcdiff.estimator.module import SpineEstimator

TINY = dict(width=16, num_centres=(64, 16), radii=(0.1, 0.25), num_neighbours=(16, 8), widths=(32, 64), global_dim=64, head_dim=64)


def _records(rows, values_by_seed):
    """Records of every row for subjects a, b and the seeds of ``values_by_seed`` ({seed: (value of a, value of b)});
    every measure equals the value, scaled by the row's index + 1."""
    return [{"row": row, "subject": name, "seed": seed, "finetune_s": 5.0 if i == 1 else None,
             **{key: (i + 1) * v for key in estimator_finetune.MEASURES}}
            for i, row in enumerate(rows) for seed, values in values_by_seed.items() for name, v in zip("ab", values)]  # fmt: skip


def test_summarise_gives_mean_sd_over_subjects_and_the_range_over_seeds():
    rows = estimator_finetune.all_rows(["phantom"])
    table = estimator_finetune.summarise(_records(rows, {0: (1.0, 3.0), 1: (3.0, 5.0)}), rows)
    assert [t["row"] for t in table] == rows
    first = table[0]
    assert first["n"] == 2 and first["seeds"] == 2
    # mean over everything 3.0; subject means 2 and 4 -> SD 1.41; seed means 2 and 4
    assert first["esl_rms_mm"] == 3.0 and first["esl_rms_mm_seed_range"] == (2.0, 4.0)
    assert first["esl_rms_mm_text"] == "3.0 ± 1.4 (2.0-4.0)"
    assert table[1]["finetune_s"] == 5.0 and table[0]["finetune_s"] is None
    one_seed = estimator_finetune.summarise(_records(rows, {0: (1.0, 3.0)}), rows)
    assert one_seed[0]["esl_rms_mm_text"] == "2.0 ± 1.4"


def test_paired_difference_counts_subjects_better_than_the_reference():
    rows = ["tuned", "control"]
    recs = _records(rows, {0: (1.0, 3.0), 1: (3.0, 5.0)})  # control = 2 x tuned
    paired = estimator_finetune.paired_difference(recs, "tuned", "control")
    # differences: -1, -3 (seed 0), -3, -5 (seed 1)
    assert paired["esl_rms_mm"] == -3.0 and paired["esl_rms_mm_seed_range"] == (-4.0, -2.0)
    assert paired["esl_rms_mm_better"] == 2 and paired["esl_rms_mm_text"] == "-3.0 (-4.0 to -2.0), 2/2 better"
    worse = estimator_finetune.paired_difference(recs, "control", "tuned")
    assert worse["cobb_abs_err_deg_better"] == 0


def test_cobb_bands_split_subjects_by_their_clinical_angle():
    def rec(row, subject, cobb, esl, err):
        return {"row": row, "subject": subject, "seed": 0, "cobb_clinical_deg": cobb, "esl_rms_mm": esl,
                "cobb_abs_err_deg": err}

    records = [rec("r", "a", 10.0, 4.0, 2.0), rec("r", "b", 24.9, 6.0, 4.0), rec("r", "c", 25.0, 9.0, 1.0),
               rec("r", "d", 40.0, 20.0, 10.0), rec("q", "a", 10.0, 1.0, 1.0)]  # fmt: skip
    assert estimator_finetune.band_names() == ["< 25", "25-40", ">= 40"]
    (band,) = estimator_finetune.by_cobb_band(records, ["r"])
    assert band["< 25"] == "5.0 mm / 3.0°" and band["n_< 25"] == 2
    assert band["25-40"] == "9.0 mm / 1.0°" and band[">= 40"] == "20.0 mm / 10.0°"
    (empty,) = estimator_finetune.by_cobb_band(records, ["q"])
    assert empty["25-40"] is None and empty["n_>= 40"] == 0


def test_parse_inits_takes_labels_or_a_bare_path():
    assert estimator_finetune.parse_inits(["a.ckpt"]) == {"phantom": Path("a.ckpt")}
    assert estimator_finetune.parse_inits(["phantoms=a", "diffusion=b"]) == {"phantoms": Path("a"), "diffusion": Path("b")}
    for bad in (["x=a", "x=b"], ["=a"], ["x="]):
        with pytest.raises(ValueError):
            estimator_finetune.parse_inits(bad)


@pytest.mark.slow
@pytest.mark.real_data
def test_tiny_run_on_pcdare(pcdare_dir, tmp_path, monkeypatch):
    first = save_estimator(SpineEstimator(line="esl", input_frame="landmarks", net_kwargs=TINY).eval(), tmp_path / "a", 2048)
    second = save_estimator(SpineEstimator(line="esl", input_frame="landmarks", net_kwargs=TINY).eval(), tmp_path / "b", 2048)
    written = {}
    monkeypatch.setattr(estimator_finetune, "publish", lambda stem, payload, md: written.update(payload, md=md) or 0)
    assert estimator_finetune.main(["--init", str(first), "--init", f"other={second}", "--data", str(pcdare_dir),
                                    "--folds", "2", "--steps", "2", "--seeds", "0", "1"]) == 0
    rows = estimator_finetune.all_rows(["phantom", "other"])
    assert {r["row"] for r in written["per_subject"]} == set(rows)
    assert len(written["per_subject"]) == len(rows) * 20 * 2 and all(np.isfinite(r["esl_rms_mm"]) for r in written["per_subject"])
    assert "{" not in written["md"] and "2 steps x batch" in written["md"]  # every f-string filled in
    assert [b["row"] for b in written["bands"]][:2] == ["phantom-pretrained + fine-tuned", "other-pretrained + fine-tuned"]
    assert "By clinical Cobb band" in written["md"] and "against the first (`phantom`)" in written["md"]
    assert [(p["row"], p["reference"]) for p in written["against_first"]] == [
        ("other-pretrained + fine-tuned", "phantom-pretrained + fine-tuned")]
    assert [p["row"] for p in written["paired"]] == ["phantom-pretrained + fine-tuned", "other-pretrained + fine-tuned"]
    with pytest.raises(SystemExit):  # an ESL-frame estimator cannot read a new patient's scan
        esl_frame = save_estimator(SpineEstimator(line="esl", input_frame="esl", net_kwargs=TINY).eval(), tmp_path / "e", 2048)
        estimator_finetune.main(["--init", str(esl_frame), "--data", str(pcdare_dir), "--folds", "2", "--steps", "1"])
