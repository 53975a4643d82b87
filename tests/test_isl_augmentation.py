"""benchmarks/isl_augmentation.py and the weighted offset fit it relies on (pcdiff.estimator.isl_offset)."""

import numpy as np
import pytest

from benchmarks.isl_augmentation import (
    REFERENCE_ROW,
    TrainingSet,
    _verdict,
    asymmetry_coverage,
    balanced_weights,
    cobb_band,
    evaluate,
    large_curves,
    load_diffusion,
    phantom_seeds,
    phantom_set,
    summarize,
    twin_phantoms,
)
from pcdiff.data.phantom.generator import generate_phantom
from pcdiff.estimator.isl_offset import OffsetExample, fit_isl_offset, fit_isl_offset_examples, offset_example

K = 16


def _example(dz, gain=0.0, width=300.0, seed=0, sign=1.0):
    """An ESL down x = 0, an asymmetry profile (``sign`` flips it), and the ISL ``dz`` mm deeper and ``gain`` x
    (centred asymmetry) aside."""
    rng = np.random.default_rng(seed)
    esl = np.stack([np.zeros(K), np.linspace(400, 0, K), np.zeros(K)], axis=1)
    asym = sign * rng.normal(0, 5, K)
    isl = esl.copy()
    isl[:, 0] += gain * (asym - asym.mean())
    isl[:, 2] += dz
    return OffsetExample(esl=esl, isl=isl, asymmetry=asym, width_mm=width)


def test_weights_move_the_mean_offset_and_the_gain_between_the_groups():
    # mirrored pairs: the mean lateral shape of each group is 0, so the gain alone carries the lateral offsets
    a = [_example(-50, 0.5, seed=0, sign=s) for s in (1, -1)]
    b = [_example(-70, 1.0, seed=10 + i // 2, sign=(1, -1)[i % 2]) for i in range(6)]
    plain = fit_isl_offset_examples(a + b)
    assert plain.offset[:, 2].mean() == pytest.approx(-65)  # 2 x -50 and 6 x -70
    equal = fit_isl_offset_examples(a + b, balanced_weights(np.array([True] * 2 + [False] * 6)))
    assert equal.offset[:, 2].mean() == pytest.approx(-60)
    assert equal.depth_mean == pytest.approx(-60)
    only_a = fit_isl_offset_examples(a + b, [1, 1] + [0] * 6)
    assert only_a.lateral_gain == pytest.approx(0.5)
    assert only_a.offset[:, 2].mean() == pytest.approx(-50)
    assert 0.5 < equal.lateral_gain < 1.0


def test_a_weight_of_two_counts_as_two_copies_and_none_as_ones():
    rng = np.random.default_rng(3)
    backs = [_example(-60 + rng.normal(0, 8), rng.uniform(0, 1), width=rng.uniform(250, 330), seed=i) for i in range(5)]
    doubled = fit_isl_offset_examples(backs + [backs[0]])
    weighted = fit_isl_offset_examples(backs, [2, 1, 1, 1, 1])
    np.testing.assert_allclose(weighted.offset, doubled.offset, atol=1e-9)
    np.testing.assert_allclose(weighted.depth_coef, doubled.depth_coef, atol=1e-9)
    assert weighted.lateral_gain == pytest.approx(doubled.lateral_gain)
    ones = fit_isl_offset_examples(backs, np.ones(5))
    none = fit_isl_offset_examples(backs)
    np.testing.assert_allclose(ones.offset, none.offset)
    assert ones.depth_coef == pytest.approx(none.depth_coef) and ones.lateral_gain == pytest.approx(none.lateral_gain)


def test_weights_are_checked():
    backs = [_example(-60, seed=i) for i in range(3)]
    for bad in ([1, 1], [1, -1, 1], [1, 0, 0]):
        with pytest.raises(ValueError, match="weights"):
            fit_isl_offset_examples(backs, bad)


def test_fit_from_examples_is_fit_from_lines():
    scans = [generate_phantom(9000 + i, 2048) for i in range(3)]
    lines = ([s.esl for s in scans], [s.isl for s in scans], [s.points for s in scans], [280.0, 300.0, 320.0])
    direct = fit_isl_offset(*lines, num_keypoints=K)
    examples = [offset_example(e, i, p, w, K) for e, i, p, w in zip(*lines)]
    via = fit_isl_offset_examples(examples)
    np.testing.assert_allclose(direct.offset, via.offset)
    assert direct.lateral_gain == pytest.approx(via.lateral_gain)


def test_balanced_weights_give_real_and_synthetic_half_each():
    is_real = np.array([True] * 3 + [False] * 9)
    w = balanced_weights(is_real)
    assert w[is_real].sum() == pytest.approx(w[~is_real].sum())
    assert w.mean() == pytest.approx(1.0)
    np.testing.assert_array_equal(balanced_weights(np.ones(4, dtype=bool)), np.ones(4))


def test_cobb_bands_and_phantom_seeds():
    assert [cobb_band(c) for c in (0, 19.9, 20, 39.9, 40, 90)] == ["< 20°", "< 20°", "20-40°", "20-40°", ">= 40°", ">= 40°"]
    with pytest.raises(ValueError):
        cobb_band(-1)
    seeds = [set(phantom_seeds(d, 100, large)) for d in range(3) for large in (False, True)]
    assert all(len(s) == 100 and min(s) >= 20000 for s in seeds)  # clear of the diffusion backs' 7000s
    assert len(set().union(*seeds)) == 600  # disjoint
    with pytest.raises(ValueError):
        phantom_seeds(0, 501)


def test_asymmetry_coverage_counts_keypoints_with_scan_on_both_sides():
    x, y = np.meshgrid(np.arange(-100, 101, 2.0), np.arange(0, 401, 2.0))
    points = np.stack([x.ravel(), y.ravel(), np.zeros(x.size)], axis=1)
    line = np.stack([np.zeros(10), np.linspace(380, 20, 10), np.zeros(10)], axis=1)
    assert asymmetry_coverage(points, line) == 1.0
    assert asymmetry_coverage(points[points[:, 0] < 20], line) == 0.0  # nothing on the right side
    line[5:, 0] = 80.0  # half the line sits where x + 50 is off the scan
    assert asymmetry_coverage(points, line) == 0.5


def _fake_npz(path, cobbs, **overrides):
    backs = [generate_phantom(9100 + i, 1024) for i in range(len(cobbs))]
    arrays = {"points": np.stack([b.points for b in backs]), "esl": np.stack([b.esl for b in backs]),
              "isl": np.stack([b.isl for b in backs]), "cobb": np.array(cobbs, dtype=np.float64),
              "seed": np.arange(9100, 9100 + len(cobbs))}
    arrays.update(overrides)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return backs


def test_load_diffusion_skips_a_missing_file_and_reads_a_fake_one(tmp_path):
    assert load_diffusion(tmp_path / "none.npz")[0] is None
    assert "skipped" in load_diffusion(tmp_path / "none.npz")[1]
    backs = _fake_npz(tmp_path / "d.npz", [10.0, 45.0, 60.0])
    diffusion, note = load_diffusion(tmp_path / "d.npz")
    assert len(diffusion.examples) == 3 and "3 backs" in note and "2 with Cobb >= 40" in note
    np.testing.assert_allclose(diffusion.examples[0].isl[-1], backs[0].isl[-1], atol=1e-3)  # top -> bottom, in mm
    assert large_curves(diffusion).cobb.tolist() == [45.0, 60.0]
    assert large_curves(diffusion, 50.0) is None  # a single back cannot be fitted on
    twins, note = twin_phantoms(diffusion)  # the fake backs are phantoms of their seeds: the twins match
    assert twins is not None and "reproduces" in note and twins.num_points == 1024
    np.testing.assert_allclose(twins.examples[2].isl, diffusion.examples[2].isl, atol=1e-3)
    _fake_npz(tmp_path / "other.npz", [10.0, 45.0], seed=np.array([1, 2]))  # seeds that did not make these lines
    assert twin_phantoms(load_diffusion(tmp_path / "other.npz")[0])[0] is None
    _fake_npz(tmp_path / "bad.npz", [10.0, 45.0], seed=None)
    with pytest.raises(ValueError, match="seed"):
        load_diffusion(tmp_path / "bad.npz")
    _fake_npz(tmp_path / "bad2.npz", [10.0, 45.0], cobb=np.zeros(3))
    with pytest.raises(ValueError, match="expected"):
        load_diffusion(tmp_path / "bad2.npz")


def test_evaluate_and_summarize_on_phantoms_standing_in_for_real_backs():
    """4 phantoms as the 'real' subjects, 2 folds; a synthetic source with 2 draws, and one missing."""
    scans = [generate_phantom(9200 + i, 2048, name=f"s{i}") for i in range(4)]
    draws = [phantom_set(range(9300 + 10 * d, 9303 + 10 * d), 2048) for d in range(2)]
    rows = (TrainingSet(REFERENCE_ROW, ("real",)), TrainingSet("synthetic only", ("phantoms",)),
            TrainingSet("needs diffusion", ("real", "diffusion")))
    records, fits = evaluate(scans, 2, {"phantoms": draws}, rows)
    assert len(records) == (1 + 2) * 4 * 2  # (real only + 2 draws) x 4 subjects x 2 ESLs
    assert {r["row"] for r in records} == {REFERENCE_ROW, "synthetic only"}
    assert {(f["n_real"], f["n_synthetic"]) for f in fits} == {(2, 0), (0, 3)}
    table = summarize(records, fits, rows)
    assert [(t["row"], t["esl"]) for t in table] == [(REFERENCE_ROW, "furrow"), ("synthetic only", "furrow"),
                                                     (REFERENCE_ROW, "true"), ("synthetic only", "true")]
    assert all(np.isfinite(t["isl_rms_mm"]) for t in table)
    assert table[1]["draws"] == 2 and table[1]["isl_rms_mm_sd_draws"] is not None
    verdict = "\n".join(_verdict(table))
    assert "`synthetic only`" in verdict and "lateral gain" in verdict  # the plain-words lines name the row


def test_summarize_pairs_each_row_with_real_only():
    """Row 'x' is 1 mm better than real only on every subject in both draws: the paired difference says so."""
    records, fits = [], []
    for row, shift, draws in ((REFERENCE_ROW, 0.0, 1), ("x", -1.0, 2)):
        for d in range(draws):
            fits.append({"row": row, "draw": d, "fold": 0, "n_real": 2, "n_synthetic": 0, "offset_mean_mm": [0, 0, -60], "offset_x_swing_mm": 0.0,
                         "depth_slope": 0.0, "lateral_gain": 0.0})
            for k, cobb in enumerate((10.0, 30.0, 50.0)):
                value = 10.0 + k + shift + 0.5 * d
                records.append({"row": row, "draw": d, "subject": f"s{k}", "esl": "true", "band": cobb_band(cobb),
                                "isl_rms_mm": value, "isl_lateral_rms_mm": value, "cobb_abs_err_deg": value})
    table = summarize(records, fits, (TrainingSet(REFERENCE_ROW, ("real",)), TrainingSet("x", ("phantoms",))))
    x = table[1]
    assert x["isl_rms_mm_diff"] == pytest.approx(-0.75)  # -1 + mean(0, 0.5)
    assert x["isl_rms_mm_diff_better"] == 3
    assert x["isl_rms_mm_sd_draws"] == pytest.approx(np.std([10.0, 10.5], ddof=1))
    assert x["isl_rms_mm_band_>= 40°"] == pytest.approx(12 - 0.75)
    assert "isl_rms_mm_diff" not in table[0]


def test_donor_backs_are_built_per_fold_from_the_training_backs_only(monkeypatch):
    """Donor backs: the spines of a synthetic source carried by the fold's training backs, labelled with the spines'
    own lines; never a held-out back."""
    import benchmarks.isl_augmentation as aug

    scans = [generate_phantom(9200 + i, 2048, name=f"s{i}") for i in range(4)]
    spines = [phantom_set(range(9300, 9303), 2048)]
    used = []
    respine = aug.respine_donor
    monkeypatch.setattr(aug, "respine_donor", lambda donor, *a, **k: used.append(donor.name) or respine(donor, *a, **k))
    sets = aug.donor_sets(scans, np.array([0, 1, 3]), spines)
    assert used and set(used) <= {"s0", "s1", "s3"} and len(sets[0].examples) == 3
    np.testing.assert_allclose(sets[0].examples[1].isl, spines[0].examples[1].isl, atol=0.05)  # the spine's own labels (resampled again)
    assert np.ptp(sets[0].examples[1].asymmetry) > 0  # read off the moved back
    rows = (TrainingSet(REFERENCE_ROW, ("real",)), TrainingSet("real + donors", ("real", "donors")))
    trains = []
    build = aug.donor_sets
    monkeypatch.setattr(aug, "donor_sets", lambda scans, train, spines: trains.append(train.tolist()) or build(scans, train, spines))
    records, fits = evaluate(scans, 2, {"phantoms": spines}, rows, per_fold={"donors": "phantoms"})
    fold_of = aug.fold_split(len(scans), 2)
    assert trains == [np.flatnonzero(fold_of != f).tolist() for f in range(2)]  # each fold's donors: its training backs
    assert {(f["n_real"], f["n_synthetic"]) for f in fits if f["row"] == "real + donors"} == {(2, 3)}
    assert {r["row"] for r in records} == {REFERENCE_ROW, "real + donors"}
