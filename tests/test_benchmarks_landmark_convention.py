"""benchmarks/landmark_convention.py: C7 / DM offsets from the ESL's ends, and the mapping to the phantoms' convention."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from benchmarks import landmark_convention as lc
from pcdiff.data.phantom import generate_phantom


def test_a_phantoms_landmarks_are_its_esl_ends_and_do_not_move():
    scan = generate_phantom(3, 256)
    np.testing.assert_allclose(lc.landmark_offsets(scan), 0.0, atol=3.0)  # DM lies on the skin, within ~2 mm of the ESL end
    lms = np.stack([scan.landmarks[k] for k in ("C7", "DL", "DR", "DM")])
    np.testing.assert_allclose(lc.mapped_landmarks(lms, lc.mean_landmark_offsets([scan])), lms, atol=3.0)


def test_mapping_moves_c7_and_dm_back_onto_the_esl_ends_and_leaves_the_dimples():
    shift = np.array([[30.0, 2.0, 3.0], [3.0, -24.0, 12.0]])
    moved = []
    for seed in (0, 1):
        scan = generate_phantom(seed, 256)
        lm = dict(scan.landmarks)
        lm["C7"], lm["DM"] = lm["C7"] + shift[0], lm["DM"] + shift[1]
        moved.append(replace(scan, landmarks=lm))
    offsets = lc.mean_landmark_offsets(moved)
    np.testing.assert_allclose(offsets, shift, atol=3.0)
    lms = np.stack([moved[0].landmarks[k] for k in ("C7", "DL", "DR", "DM")])
    mapped = lc.mapped_landmarks(lms, offsets)
    esl = moved[0].esl if moved[0].esl[0, 1] > moved[0].esl[-1, 1] else moved[0].esl[::-1]
    np.testing.assert_allclose(mapped[[0, 3]], esl[[0, -1]], atol=3.0)
    np.testing.assert_array_equal(mapped[1:3], lms[1:3])


def test_summarise_keeps_the_order_of_first_appearance():
    recs = [{"estimator": e, "landmarks": m, "lateral_rms_mm": v, "rms_mm": v, "cobb_abs_err_deg": v, "cobb_pred_deg": v,
             "cobb_true_deg": v} for e in ("b", "a") for m in ("raw", "mapped in-fold") for v in (1.0, 3.0)]  # fmt: skip
    table = lc.summarise(recs)
    assert [(t["estimator"], t["landmarks"]) for t in table] == [("b", "raw"), ("b", "mapped in-fold"), ("a", "raw"), ("a", "mapped in-fold")]
    assert table[0]["rms_mm_text"] == "2.0 ± 1.4" and table[0]["n"] == 2
    with pytest.raises(SystemExit):
        lc.main(["--estimator", "no_label_path"])
