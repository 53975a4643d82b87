"""Fidelity benchmarks (benchmarks/fidelity.py, benchmarks/real_conditioning.py): helpers and a tiny end-to-end run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from benchmarks import fidelity, real_conditioning
from benchmarks.retrieval import nearest_spines
from benchmarks.scoring import paired_distances

PCDARE = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "pcdare"


def test_nearest_spines_finds_the_matching_line():
    gen = torch.Generator().manual_seed(0)
    bank = torch.randn(10, 8, 3, generator=gen)
    query = bank[[3, 7, 0]] + 1e-3 * torch.randn(3, 8, 3, generator=gen)
    idx, dist = nearest_spines(query, bank)
    assert idx.tolist() == [3, 7, 0]
    assert (dist < 1e-2).all()
    with pytest.raises(ValueError, match=r"\(Q, K, 3\)"):
        nearest_spines(query[:, :4], bank)


def test_paired_distances_are_in_mm_and_zero_for_identical_clouds():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 32, 3, generator=gen)
    same = paired_distances(x, x, torch.tensor([400.0, 500.0]))
    assert all(abs(v).max() < 1e-6 for v in same.values())
    shifted = paired_distances(x, x + torch.tensor([0.01, 0.0, 0.0]), torch.tensor([400.0, 500.0]))
    # a rigid shift of 0.01 normalised units moves every point by 4 mm / 5 mm: EMD = the shift exactly,
    # Chamfer (nearest neighbours, not squared) at most the shift
    assert shifted["emd_mm"] == pytest.approx([4.0, 5.0], rel=1e-4)
    assert (shifted["chamfer_mm"] <= shifted["emd_mm"] + 1e-6).all()


def test_subject_folds_partition_the_subjects():
    names = [f"s{i}" for i in range(20)]
    folds = real_conditioning.subject_folds(names, 5, seed=0)
    assert [len(f) for f in folds] == [4] * 5
    assert sorted(n for f in folds for n in f) == sorted(names)
    with pytest.raises(ValueError, match="--folds"):
        real_conditioning.subject_folds(names, 21, seed=0)


def test_sampler_grid_full_and_reduced():
    s = fidelity.MODES["quick"]
    full = fidelity.sampler_grid("pvcnn", s)
    assert ("ddpm", s.ddpm_steps, 1.0) in full and ("dpm++", 50, s.guidance) in full
    assert len(full) == (1 + 2 * len(s.steps)) * 2
    assert fidelity.sampler_grid("transformer", s) == [("dpm++", 20, 1.0), ("dpm++", 20, s.guidance)]


def test_real_targets_read_the_esl_both_ways_beside_the_real_backs_own_figure():
    def row(point: float, plane: float) -> dict:
        return {"esl_to_surface_mm": {"mean": point}, "esl_to_plane_mm": {"mean": plane},
                "depth_extent_mm": {"mean": 150.0}, "chamfer_mm": {"mean": 14.0}}

    summ = {"gen": row(5.0, 1.5), "ret": row(7.5, 3.0), "real": row(4.5, 1.0),
            "generated_vs_real_pooled": {"1-NNA-CD": 50.0}}
    text = real_conditioning.targets(summ)
    # 1 - 5/7.5 = 33.3% to the nearest point (the real back: 40.0%); 1 - 1.5/3 = 50% to the plane (real: 66.7%)
    assert "33.3% to the nearest point (>= 40%: NOT met; the real back itself: 40.0%)" in text
    assert "50.0% to the local plane of the nearest points (>= 40%: met; the real back itself: 66.7%)" in text
    assert "1.00x the real one's (within 25%: met)" in text and "(<= 75%: met)" in text


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


@pytest.mark.slow
def test_fidelity_tiny_end_to_end(tmp_path):
    payload = fidelity.main(["--mode", "tiny", "--cache-dir", str(tmp_path / "cache"), "--out-dir", str(tmp_path)])
    s = fidelity.MODES["tiny"]
    kinds = [r["kind"] for r in payload["rows"]]
    expected_generators = sum(len(fidelity.sampler_grid(d, s)) for d in s.denoisers)
    assert kinds[:2] == ["floor", "retrieval"] and kinds.count("generator") == expected_generators
    for r in payload["rows"]:
        assert _finite(r["chamfer_mm_mean"]) and r["chamfer_mm_mean"] > 0
        assert 0.0 <= r["1-NNA-CD"] <= 100.0
        # 64-point backs are too sparse for the midline: unmeasurable ones are counted, never averaged in
        assert 0 <= r["spine_metric_failed"] <= s.test_scans
        assert _finite(r["lateral_mm"]) or r["spine_metric_failed"] == s.test_scans
    assert all(r["sample_s_per_scan"] > 0 for r in payload["rows"] if r["kind"] == "generator")
    on_disk = json.loads((tmp_path / "fidelity.json").read_text())
    assert on_disk["rows"] == json.loads(json.dumps(payload["rows"]))
    md = (tmp_path / "fidelity.md").read_text()
    assert "Command:" in md and "floor" in md and "retrieval" in md and (tmp_path / "fidelity.png").is_file()


@pytest.mark.slow
@pytest.mark.skipif(not (PCDARE / "Upright").is_dir(), reason=f"PCdare data not found at {PCDARE}")
def test_real_conditioning_tiny_end_to_end(tmp_path):
    payload = real_conditioning.main(
        ["--mode", "tiny", "--src", str(PCDARE), "--cache-dir", str(tmp_path / "cache"), "--out-dir", str(tmp_path),
         "--phantom-start", "0.5", "--fold-dir", str(tmp_path / "folds")]
    )
    assert payload["summary"]["subjects"] == len(payload["subjects"]) == 20
    held_out = [n for f in payload["folds"] for n in f["held_out"]]
    assert sorted(held_out) == sorted({r["subject"] for r in payload["subjects"]})
    for r in payload["subjects"]:
        assert r["retrieved"] != r["subject"]
        assert _finite(r["gen_chamfer_mm"]) and _finite(r["ret_chamfer_mm"]) and _finite(r["gen_emd_mm"])
    md = (tmp_path / "real_conditioning.md").read_text()
    assert md.count("retrieval") >= 1 and "strength 0.5" in md and "phantom of the subject's lines" in md
    for r in payload["subjects"]:  # (64 points are too few for the spine metrics: those are NaN here)
        assert _finite(r["sdedit0.5_chamfer_mm"]) and _finite(r["phantom_chamfer_mm"])
    assert "1-NNA-CD" in payload["summary"]["sdedit0.5_vs_real_pooled"]
    assert (tmp_path / "real_conditioning.png").is_file()

    # --fold-dir keeps the fold models and a second run reuses them (scores of the same models reproduce) ...
    kept = sorted((tmp_path / "folds").glob("fold*/last.ckpt"))
    assert len(kept) == len(payload["folds"]) and all((c.parent / "recipe.json").is_file() for c in kept)
    stamps = [c.stat().st_mtime_ns for c in kept]
    again = real_conditioning.main(
        ["--mode", "tiny", "--src", str(PCDARE), "--cache-dir", str(tmp_path / "cache"), "--out-dir", str(tmp_path / "again"),
         "--phantom-start", "0.5", "--respine-start", "0.5", "--fold-dir", str(tmp_path / "folds")]
    )
    assert [c.stat().st_mtime_ns for c in kept] == stamps
    assert [f["train_s"] for f in again["folds"]] == [f["train_s"] for f in payload["folds"]]
    assert again["summary"]["gen"]["chamfer_mm"]["mean"] == pytest.approx(payload["summary"]["gen"]["chamfer_mm"]["mean"])
    # --respine-start: the retrieved back moved onto the subject's lines, and the model started from it; near-copies of
    # real backs, so their 1-NNA is per fold only
    for r in again["subjects"]:
        assert all(_finite(r[f"{who}_chamfer_mm"]) for who in ("respined", "respined_shear", "respine_sdedit0.5"))
    for who in ("respined", "respine_sdedit0.5"):
        assert f"{who}_vs_real_pooled" not in again["summary"] and "1-NNA-CD" in again["summary"][f"{who}_vs_real_fold_mean"]
    assert "moved onto the subject's lines" in (tmp_path / "again" / "real_conditioning.md").read_text()
    # --draw: the same fold models, other noise and other start phantoms
    other = real_conditioning.main(
        ["--mode", "tiny", "--src", str(PCDARE), "--cache-dir", str(tmp_path / "cache"), "--out-dir", str(tmp_path / "draw1"),
         "--phantom-start", "0.5", "--fold-dir", str(tmp_path / "folds"), "--draw", "1"]
    )
    assert [c.stat().st_mtime_ns for c in kept] == stamps and other["draw"] == 1
    for key in ("gen", "phantom"):
        assert other["summary"][key]["chamfer_mm"]["mean"] != pytest.approx(payload["summary"][key]["chamfer_mm"]["mean"])
    # ... but never a model of other settings
    with pytest.raises(SystemExit):
        real_conditioning.main(["--mode", "tiny", "--src", str(PCDARE), "--cache-dir", str(tmp_path / "cache"),
                                "--out-dir", str(tmp_path / "other"), "--train-steps", "3", "--fold-dir", str(tmp_path / "folds")])
