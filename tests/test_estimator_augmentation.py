"""benchmarks/augmentation.py: helpers, and tiny end-to-end runs of the study and the folds mode."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks import augmentation
from pcdiff.data.sample import BackScan

PCDARE = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "pcdare"


def _scan(name: str, x_offset: float) -> BackScan:
    y = np.linspace(200, -200, 30)
    esl = np.stack([np.full_like(y, x_offset), y, np.zeros_like(y)], axis=1)
    isl = esl - np.array([0.0, 0.0, 60.0])
    return BackScan(name=name, points=np.random.default_rng(0).normal(size=(300, 3)) * 100, esl=esl, isl=isl)


def test_lines_like_mixes_training_lines_within_their_range():
    train = [_scan("a", 0.0), _scan("b", 10.0)]
    pairs = augmentation.lines_like(train, 20, np.random.default_rng(0))
    assert len(pairs) == 20
    for esl, isl in pairs:
        assert esl.shape == isl.shape == (100, 3)
        np.testing.assert_allclose(esl[:, 2] - isl[:, 2], 60.0, atol=1e-4)  # the ISL keeps its depth
        assert np.ptp(esl[:, 0]) < 1e-4  # a mix of two straight lines is straight


def test_prepare_uses_the_esl_frame_and_the_requested_line():
    s = augmentation.Settings(num_points=64, num_keypoints=8, line="isl")
    arrays = augmentation.prepare([_scan("a", 5.0)], s)
    assert arrays["points"].shape == (1, 64, 3) and arrays["spine"].shape == (1, 8, 3)
    np.testing.assert_allclose(arrays["center"][0], [5.0, 0.0, 0.0], atol=1e-4)  # middle of the ESL's ends
    np.testing.assert_allclose(arrays["scale"][0], 400.0, rtol=1e-5)
    np.testing.assert_allclose(arrays["spine"][0, :, 2], -60.0 / 400.0, atol=1e-5)  # ISL target, ESL frame
    assert np.isnan(arrays["cobb_clinical"][0])


@pytest.mark.slow
def test_tiny_study_writes_table_json_and_plot(tmp_path):
    stem = augmentation.main(["--quick", "--n", "4", "--seeds", "0", "--steps", "2", "--n-test", "4", "--m", "4",
                              "--points", "128", "--out", str(tmp_path), "--tag", "tiny"])
    res = json.loads(stem.with_suffix(".json").read_text())
    assert {r["condition"] for r in res["results"]} == set(augmentation.Settings().conditions)
    assert all(np.isfinite(r["mean_mm"]) and r["mean_mm"] > 0 for r in res["results"])
    assert res["synthetic_source"] == "phantom"  # no generator: honestly labelled
    assert "real+synth (phantom)" in stem.with_suffix(".md").read_text()
    assert stem.with_suffix(".png").stat().st_size > 0


@pytest.mark.slow
@pytest.mark.real_data
@pytest.mark.skipif(not PCDARE.is_dir(), reason=f"PCdare subjects not found at {PCDARE}")
def test_tiny_folds_on_pcdare(tmp_path):
    stem = augmentation.main(["--quick", "--real-dir", str(PCDARE), "--folds", "2", "--seeds", "0", "--steps", "2",
                              "--m", "4", "--points", "128", "--out", str(tmp_path), "--tag", "tiny"])
    res = json.loads(stem.with_suffix(".json").read_text())
    assert res["n_subjects"] == 20
    assert [r["condition"] for r in res["summary"]] == ["mean-line", "phantom-only", "real-only", "phantom+real"]
    assert len(res["per_subject"]) == 4 * 20


def test_diffusion_generator_conditions_on_the_given_lines(tmp_path):
    import torch

    from pcdiff.diffusion.testing import tiny_module

    torch.manual_seed(0)
    pipe = tiny_module("pvcnn").eval().to_pipeline(sampler="ddim")
    pipe.save_pretrained(tmp_path / "pipe")
    s = augmentation.Settings(num_points=32, num_keypoints=8, gen_steps=2)
    gen = augmentation.Generator(str(tmp_path / "pipe"), s)
    assert gen.label == "diffusion"
    pairs = augmentation.lines_like([_scan("a", 0.0), _scan("b", 30.0)], 3, np.random.default_rng(0))
    scans = gen.from_lines(pairs, seed=0, prefix="g")
    assert [sc.name for sc in scans] == ["g0", "g1", "g2"]
    for sc, (esl, isl) in zip(scans, pairs):
        assert sc.points.shape[0] >= 32 and np.isfinite(sc.points).all()
        np.testing.assert_allclose(sc.isl, isl, atol=1e-5)
    assert augmentation.prepare(scans, s)["points"].shape == (3, 32, 3)
    with pytest.raises(ValueError, match="--generator"):
        augmentation.Generator(None, s).from_lines(pairs, 0, "p")
