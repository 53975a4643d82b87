"""The network-free judge: ``--metric spine_estimator --estimator geometric`` (pcdiff.estimator.eval_metric)."""

import numpy as np
import pytest
import torch

from pcdiff.data.phantom import generate_phantom
from pcdiff.data.readers.writer import write_subject
from pcdiff.data.sample import BackScan
from pcdiff.estimator.eval_metric import fit_isl_judge, geometric_spine_metric, line_end_heights, spine_estimator
from pcdiff.eval import main
from pcdiff.metrics.registry import EvalInputs


@pytest.fixture(scope="module")
def phantoms() -> list[BackScan]:
    """Four true phantom backs with their ESL, 4096 points (0.2 s)."""
    return [generate_phantom(seed, 4096, name=f"phantom_{seed:02d}") for seed in range(4)]


def as_generated(scan: BackScan) -> BackScan:
    """A back as pcdiff.generate writes it for a spine file: points and the conditioning ESL, no landmarks."""
    return BackScan(name=scan.name, points=scan.points, esl=scan.esl, meta={"generated": {"model": "test", "seed": 0}})


def test_true_backs_read_close_to_their_own_esl_and_far_from_another(phantoms):
    """Phantoms 0-3 against their own ESL: measured lateral RMS 7.5 mm (7.3 / 13.4 / 4.5 / 4.7), 3D RMS 8.1 mm.
    Each back judged against the next phantom's ESL: lateral 23.5 mm, 3D 31.8 mm. A judge that ignored the
    back (or the line) could not tell the two apart."""
    backs, esls = [s.points for s in phantoms], [s.esl for s in phantoms]
    names = [s.name for s in phantoms]
    own = geometric_spine_metric(backs, esls, names=names)
    assert own["n"] == 4 and own["n_failed"] == 0 and own["line"] == "esl"
    assert own["lateral_rms_mm"] < 10.0 and own["rms_mm"] < 11.0
    assert [r["name"] for r in own["per_subject"]] == names
    assert all({"lateral_rms_mm", "rms_mm", "cobb_abs_err_deg"} <= set(r) for r in own["per_subject"])
    other = geometric_spine_metric(backs, esls[1:] + esls[:1], names=names)
    assert other["lateral_rms_mm"] > max(15.0, 2 * own["lateral_rms_mm"])
    assert other["rms_mm"] > max(20.0, 2 * own["rms_mm"])
    assert "isl_rms_mm" not in own and own["isl_n"] == 0


def test_heights_are_the_ends_of_the_line_either_direction(phantoms):
    esl = phantoms[0].esl
    assert line_end_heights(esl) == line_end_heights(esl[::-1]) == (pytest.approx(esl[0, 1]), pytest.approx(esl[-1, 1]))
    with pytest.raises(ValueError, match="same height"):
        line_end_heights(np.zeros((5, 3)))


def test_a_back_that_cannot_be_read_is_listed_not_averaged(phantoms):
    far = phantoms[1].esl + np.array([0.0, 3000.0, 0.0], np.float32)  # the heights lie far above the back
    res = geometric_spine_metric([phantoms[0].points, phantoms[1].points], [phantoms[0].esl, far], names=["a", "b"])
    assert res["n"] == 1 and res["n_failed"] == 1
    assert "error" in res["per_subject"][1] and res["per_subject"][1]["name"] == "b"
    with pytest.raises(ValueError, match="none of the 1 backs"):
        geometric_spine_metric([phantoms[1].points], [far])


def test_isl_offset_fitted_on_other_subjects_only(phantoms):
    """ISL from the read ESL + an offset fitted on phantoms 10-12 (measured on phantoms 0-3: ISL RMS 18.6 mm)."""
    fit = [generate_phantom(seed, 4096, name=f"fit_{seed}") for seed in range(10, 13)]
    model = fit_isl_judge(fit)
    res = geometric_spine_metric([s.points for s in phantoms], [s.esl for s in phantoms],
                                 isls=[s.isl for s in phantoms], isl_model=model)  # fmt: skip
    assert res["isl_n"] == 4 and res["isl_rms_mm"] < 30.0
    with pytest.raises(ValueError, match="generated back"):
        fit_isl_judge([as_generated(s) for s in fit])
    with pytest.raises(ValueError, match="at least 2"):
        fit_isl_judge(fit[:1])


def _inputs(generated, reference=None) -> EvalInputs:
    return EvalInputs(generated=generated, reference=reference, generated_points=torch.zeros(len(generated), 0, 3),
                      reference_points=None, pairs=None)  # fmt: skip


def test_bad_input_is_refused_with_a_clear_error(phantoms):
    gen = [as_generated(s) for s in phantoms[:2]]
    with pytest.raises(ValueError, match="unknown estimator 'mirror'"):
        spine_estimator(_inputs(gen), None, estimator="mirror")
    with pytest.raises(ValueError, match="drop --estimator-checkpoint"):
        spine_estimator(_inputs(gen), "some.ckpt", estimator="geometric")
    isl_only = BackScan(name="isl_only", points=phantoms[0].points, isl=phantoms[0].isl)
    with pytest.raises(ValueError, match="'isl_only' has no ESL.*ISL-conditioned"):
        spine_estimator(_inputs([isl_only]), None, estimator="geometric")
    with pytest.raises(ValueError, match="--isl-fit belongs to --estimator geometric"):
        spine_estimator(_inputs(gen), "some.ckpt", estimator="network", isl_fit="somewhere")
    with pytest.raises(ValueError, match="or --estimator geometric"):
        spine_estimator(_inputs(gen), None)


def test_cli_judges_generated_backs_and_reads_the_floor(phantoms, tmp_path, capsys):
    gen_dir, ref_dir = tmp_path / "generated", tmp_path / "reference"
    for scan in phantoms:
        write_subject(as_generated(scan), gen_dir)
        write_subject(scan, ref_dir)
    out = main(["--metric", "spine_estimator", "--estimator", "geometric", "--generated", str(gen_dir),
                "--reference", str(ref_dir), "--no-progress", "--device", "cpu", "--out", str(tmp_path / "res.json")])  # fmt: skip
    m = out["metrics"]
    gen, floor = m["geometric judge, generated ESL lateral RMS [mm]"], m["geometric judge, reference (floor) ESL lateral RMS [mm]"]
    assert 0 < gen < 10.0 and gen == pytest.approx(floor)  # the same backs, the same lines, read alike
    assert m["geometric judge, generated backs read"] == 4 and m["geometric judge, generated backs not read"] == 0
    assert "geometric judge, generated ESL Cobb |difference| [deg]" in m and "geometric judge, generated ESL 3D RMS [mm]" in m
    assert not any(k.startswith("geometric judge") and "ISL" in k for k in m)
    rows = out["per_sample"]["spine_estimator"]
    assert sorted(r["name"] for r in rows["generated"]) == sorted(s.name for s in phantoms) and len(rows["reference"]) == 4
    assert any("no ISL judged" in n for n in out["notes"]) and "no ISL judged" in capsys.readouterr().out
    assert (tmp_path / "res.json").is_file()
    # fitting the ISL offset on the generated backs themselves is refused
    with pytest.raises(SystemExit, match="generated back"):
        main(["--metric", "spine_estimator", "--estimator", "geometric", "--generated", str(gen_dir),
              "--isl-fit", str(gen_dir), "--no-progress", "--device", "cpu"])  # fmt: skip
    with pytest.raises(SystemExit, match="share subjects"):
        main(["--metric", "spine_estimator", "--estimator", "geometric", "--generated", str(gen_dir),
              "--reference", str(ref_dir), "--isl-fit", str(ref_dir), "--no-progress", "--device", "cpu"])  # fmt: skip
    with pytest.raises(SystemExit):  # argparse: not one of the choices
        main(["--metric", "spine_estimator", "--estimator", "mirror", "--generated", str(gen_dir)])
    assert "invalid choice: 'mirror'" in capsys.readouterr().err
