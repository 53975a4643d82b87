"""python -m pcdiff.generate / pcdiff.export: spines from parameters, files or the prior; readable 4D-Spine output."""

import json

import numpy as np
import pytest

from pcdiff.data.io import read_point_cloud
from pcdiff.data.phantom import SpineParams, spine_lines
from pcdiff.diffusion.testing import TINY_POINTS
from pcdiff.export import main as export_main
from pcdiff.generate import main as generate_main
from pcdiff.generate import read_spine_file, scan_seed


def _read(folder):
    """(points (N, 3) mm, JSON document) of a written subject. The raw readers, not ``read_subject``: an
    untrained model's backs are metres wide and ``read_subject`` rightly refuses them as not in mm
    (tests/test_end_to_end.py reads a trained model's output with ``read_subject``)."""
    points, _, _ = read_point_cloud(folder / f"{folder.name}_processed.ply")
    return points, json.loads((folder / f"{folder.name}_processed.json").read_text())


def _quiet(args):
    return [*args, "--steps", "2", "--batch-size", "2"]


def test_generate_from_parameters_writes_readable_scans(checkpoint, tmp_path):
    out = tmp_path / "gen"
    written = generate_main(_quiet(["--checkpoint", str(checkpoint), "--cobb", "0", "40", "--curve-type", "thoracic",
                                    "--out", str(out), "--seed", "3"]))
    assert sorted(p.name for p in written) == ["cobb0p0_curve_typethoracic", "cobb40p0_curve_typethoracic"]
    points, doc = _read(out / "cobb40p0_curve_typethoracic")
    assert points.shape == (TINY_POINTS, 3) and np.isfinite(points).all()
    # the conditioning spine is the requested phantom ESL, in mm, under the 4D-Spine pipeline key
    esl, _ = spine_lines(SpineParams(cobb_deg=40.0, curve_type="thoracic"))
    np.testing.assert_allclose(np.asarray(doc["esl"]["pcdicomapp"]), esl, atol=1e-3)
    assert doc["phantom"]["cobb_deg"] == 40.0 and doc["cobb"] == 40.0
    assert doc["generated"]["num_inference_steps"] == 2 and doc["generated"]["seed"] == scan_seed(3, 1)
    np.testing.assert_allclose(doc["specialPts"]["C7"], esl[0], atol=1e-3)

    # reproducible: the same seed regenerates the same scans; other batch sizes too
    again = generate_main(["--checkpoint", str(checkpoint), "--cobb", "0", "40", "--curve-type", "thoracic",
                           "--out", str(tmp_path / "again"), "--seed", "3", "--steps", "2", "--batch-size", "1"])
    assert len(again) == 2
    # (up to float32 round-off, relative to the cloud's extent: batched kernels differ in summation order)
    again_points = _read(tmp_path / "again" / "cobb40p0_curve_typethoracic")[0]
    np.testing.assert_allclose(again_points, points, atol=1e-5 * np.abs(points).max())
    with pytest.raises(FileExistsError):
        generate_main(_quiet(["--checkpoint", str(checkpoint), "--cobb", "0", "--out", str(out), "--seed", "3",
                              "--curve-type", "thoracic"]))


def test_generate_from_spine_files_and_exported_pipeline(checkpoint, tmp_path):
    esl, _ = spine_lines(SpineParams(cobb_deg=25.0, curve_type="lumbar", apex="L2", convexity="left"))
    csv = tmp_path / "mine.csv"
    csv.write_text("x,y,z\n" + "\n".join(",".join(f"{v:.4f}" for v in p) for p in esl))
    js = tmp_path / "other.json"
    js.write_text(json.dumps({"esl": esl[::-1].tolist()}))
    np.testing.assert_allclose(read_spine_file(csv), esl, atol=1e-3)

    exported = export_main([str(checkpoint), str(tmp_path / "pipe"), "--sampler", "ddim"])
    out = tmp_path / "gen"
    generate_main(_quiet(["--pipeline", str(exported), "--spine", str(csv), str(js), "--num-per-spine", "2",
                          "--out", str(out)]))
    assert sorted(p.name for p in out.iterdir()) == ["mine_00", "mine_01", "other_00", "other_01"]
    (a, doc), (b, _) = _read(out / "mine_00"), _read(out / "mine_01")
    assert not np.allclose(a, b)  # distinct seeds
    assert doc["generated"]["sampler"] == "DDIMScheduler"
    # a line given bottom -> top is written top -> bottom, like every spinal line pcdiff writes
    np.testing.assert_allclose(np.asarray(_read(out / "other_00")[1]["esl"]["pcdicomapp"])[0], esl[0], atol=1e-3)



def test_a_subject_file_as_spine_gives_its_landmarks_and_both_lines(checkpoint, tmp_path):
    """New backs for a labelled subject's spine carry its C7-DM landmarks and its ISL: a folder of them can train a
    landmark-frame or ISL estimator (benchmarks.estimator_finetune's pretraining on generated backs)."""
    from pcdiff.data.phantom import generate_phantom
    from pcdiff.data.readers.writer import write_subject

    subject = write_subject(generate_phantom(7, 256, name="donor"), tmp_path / "data")
    out = tmp_path / "gen"
    generate_main(_quiet(["--checkpoint", str(checkpoint), "--spine", str(subject / "donor_processed.json"),
                          "--out", str(out)]))
    _, doc = _read(out / "donor")
    original = json.loads((subject / "donor_processed.json").read_text())
    assert set(doc["specialPts"]) == set(original["specialPts"]) == {"C7", "DL", "DR", "DM"}
    for name, xyz in original["specialPts"].items():
        np.testing.assert_allclose(doc["specialPts"][name], xyz, atol=1e-4)
    for line in ("esl", "isl"):
        np.testing.assert_allclose(np.asarray(doc[line]["pcdicomapp"]), np.asarray(original[line]["pcdicomapp"]), atol=1e-3)


def test_generate_from_the_prior(checkpoint, tmp_path):
    written = generate_main(_quiet(["--checkpoint", str(checkpoint), "--n", "3", "--out", str(tmp_path), "--seed", "1"]))
    assert len(written) == 3
    _, doc = _read(tmp_path / "prior0000")
    assert doc["spine_source"] == "phantom prior" and "curve_type" in doc["phantom"]


def test_phantom_start_begins_each_back_from_a_phantom_of_its_spine(checkpoint, tmp_path, capsys):
    out = tmp_path / "gen"
    argv = ["--checkpoint", str(checkpoint), "--cobb", "40", "--curve-type", "thoracic", "--seed", "2"]
    generate_main(_quiet([*argv, "--phantom-start", "0.3", "--out", str(out)]))
    points, doc = _read(out / "cobb40p0_curve_typethoracic")
    assert points.shape == (TINY_POINTS, 3) and doc["generated"]["phantom_start"]["strength"] == 0.3
    # the start is used: the same seed from pure noise gives another back
    generate_main(_quiet([*argv, "--out", str(tmp_path / "noise")]))
    from_noise = _read(tmp_path / "noise" / "cobb40p0_curve_typethoracic")[0]
    assert not np.allclose(points, from_noise)
    # a file with only one line cannot make a phantom
    csv = tmp_path / "one_line.csv"
    esl, _ = spine_lines(SpineParams(cobb_deg=20.0, curve_type="lumbar"))
    csv.write_text("x,y,z\n" + "\n".join(",".join(f"{v:.4f}" for v in p) for p in esl))
    message = _usage_error(["--checkpoint", str(checkpoint), "--spine", str(csv), "--phantom-start", "0.2",
                            "--out", str(tmp_path / "x")], capsys)
    assert "needs both the ESL and the ISL" in message


def test_donor_start_begins_each_copy_from_its_next_nearest_donor_moved_onto_the_spine(checkpoint, tmp_path, capsys):
    from pcdiff.data.io import write_subject
    from pcdiff.data.phantom import generate_phantom
    from pcdiff.data.respine import PCDARE_ROTATION_GAIN, rank_donors

    request = SpineParams(cobb_deg=40.0, curve_type="thoracic")
    donors = tmp_path / "donors"
    scans = {name: generate_phantom(7, 2048, params=params, name=name) for name, params in
             (("straight", SpineParams()), ("same_curve", request), ("lumbar", SpineParams(cobb_deg=35.0, curve_type="lumbar")))}
    names = list(scans)
    for scan in scans.values():
        write_subject(scan, donors)
    out = tmp_path / "gen"
    argv = ["--checkpoint", str(checkpoint), "--cobb", "40", "--curve-type", "thoracic", "--seed", "2"]
    generate_main(_quiet([*argv, "--donors", str(donors), "--donor-start", "0.3", "--num-per-spine", "2", "--out", str(out)]))
    (first, doc), (_, second) = _read(out / "cobb40p0_curve_typethoracic_00"), _read(out / "cobb40p0_curve_typethoracic_01")
    assert first.shape == (TINY_POINTS, 3) and doc["generated"]["donor_start"]["strength"] == 0.3
    # three donors are too few to fit the turn's gain: the one fitted on the public PCdare backs
    assert doc["generated"]["donor_start"]["rotation_gain"] == PCDARE_ROTATION_GAIN
    # copy 0 starts from the donor whose spine is the requested one, copy 1 from the next nearest
    esl, _ = spine_lines(request)
    ranked = [names[i] for i in rank_donors(esl, [scans[n].esl for n in names])]
    assert ranked[0] == "same_curve" and doc["generated"]["start_from"] == "same_curve"
    assert second["generated"]["start_from"] == ranked[1]
    generate_main(_quiet([*argv, "--out", str(tmp_path / "noise")]))
    assert not np.allclose(first, _read(tmp_path / "noise" / "cobb40p0_curve_typethoracic")[0])
    assert "go together" in _usage_error([*argv, "--donor-start", "0.2", "--out", str(tmp_path / "x")], capsys)
    assert "not a folder" in _usage_error([*argv, "--donors", str(tmp_path / "nope"), "--donor-start", "0.2",
                                           "--out", str(tmp_path / "x")], capsys)
    assert "one start" in _usage_error([*argv, "--donors", str(donors), "--donor-start", "0.2", "--phantom-start", "0.2",
                                        "--out", str(tmp_path / "x")], capsys)
    assert not (tmp_path / "x").exists()


def _usage_error(argv, capsys) -> str:
    """Run generate expecting argparse's usage error (exit 2); return its one-line message."""
    with pytest.raises(SystemExit) as exc:
        generate_main(argv)
    assert exc.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


def test_bad_requests_are_refused(checkpoint, tmp_path, capsys):
    assert "one way" in _usage_error(["--checkpoint", str(checkpoint), "--n", "2", "--cobb", "10", "--out", str(tmp_path)], capsys)
    assert "curve-type" in _usage_error(["--checkpoint", str(checkpoint), "--cobb", "30", "--out", str(tmp_path)], capsys)
    assert "exactly one" in _usage_error(["--n", "1", "--out", str(tmp_path)], capsys)
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2\n3,4\n")
    with pytest.raises(ValueError, match="shape"):
        read_spine_file(bad)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--steps", "0"], "--steps must be >= 1, got 0"),
        (["--steps", "-2"], "--steps must be >= 1, got -2"),
        (["--num-points", "0"], "--num-points must be >= 1, got 0"),
        (["--num-points", "-5"], "--num-points must be >= 1, got -5"),
        (["--batch-size", "0"], "--batch-size must be >= 1"),
        (["--cobb", "200", "--curve-type", "thoracic"], "--cobb 200.0 --curve-type thoracic: SpineParams.cobb_deg must lie in [0, 120)"),
        (["--length-mm", "50"], "--length-mm 50.0: SpineParams.length_mm must lie in [200, 800] mm"),
        (["--spine", "nope.csv"], "--spine nope.csv: no such file"),
        (["--phantom-start", "0"], "--phantom-start must lie in (0, 1], got 0.0"),
    ],
)
def test_settings_are_checked_before_the_model_loads(tmp_path, monkeypatch, capsys, extra, message):
    """Usage errors (exit 2) up front: the checkpoint here is random bytes, so loading it would fail differently."""
    import pcdiff.generate as generate

    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(bytes(range(256)) * 8)
    monkeypatch.setattr(generate, "load_pipeline", lambda *a: pytest.fail("the model was loaded before the check"))
    assert message in _usage_error(["--checkpoint", str(junk), "--out", str(tmp_path / "out"), *extra], capsys)
    assert not (tmp_path / "out").exists()


def test_a_damaged_or_foreign_checkpoint_is_one_clear_line(checkpoint, tmp_path, capsys):
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(bytes(range(256)) * 8)
    err = _usage_error(["--checkpoint", str(junk), "--out", str(tmp_path / "out")], capsys)
    assert f"--checkpoint: {junk}: not a pcdiff checkpoint, or corrupt" in err
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(checkpoint.read_bytes()[: checkpoint.stat().st_size // 2])
    assert "not a pcdiff checkpoint, or corrupt" in _usage_error(["--checkpoint", str(cut), "--out", str(tmp_path)], capsys)
    import torch

    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"line": "isl"}}, foreign)
    assert "not a PointDiffusion checkpoint" in _usage_error(["--checkpoint", str(foreign), "--out", str(tmp_path)], capsys)


def test_a_file_where_a_folder_is_expected_and_back(checkpoint, tmp_path, capsys):
    err = _usage_error(["--pipeline", str(checkpoint), "--out", str(tmp_path)], capsys)
    assert "is a file; expected an exported pipeline folder" in err and "does not exist" not in err
    err = _usage_error(["--checkpoint", str(tmp_path), "--out", str(tmp_path / "o")], capsys)
    assert "is a folder; expected a .ckpt file" in err


def test_both_lines_of_a_file_only_when_it_holds_both(tmp_path):
    from pcdiff.generate import both_lines

    esl, isl = spine_lines(SpineParams(cobb_deg=30.0, curve_type="thoracic"))
    both = tmp_path / "both.json"
    both.write_text(json.dumps({"esl": esl.tolist(), "isl": isl[::-1].tolist()}))
    only = tmp_path / "only.json"
    only.write_text(json.dumps({"esl": esl.tolist()}))
    plain = tmp_path / "plain.csv"
    plain.write_text("x,y,z\n" + "\n".join(",".join(f"{v:.4f}" for v in p) for p in esl))
    lines = both_lines(both)
    np.testing.assert_allclose(lines["isl"], isl, atol=1e-4)  # read top -> bottom
    assert both_lines(only) == {} and both_lines(plain) == {}


def test_donors_whose_lines_cannot_be_moved_are_left_out_by_name(caplog):
    import dataclasses

    from pcdiff.data.phantom import generate_phantom
    from pcdiff.generate import DonorStart

    good = generate_phantom(7, 256, params=SpineParams(), name="good")
    short = dataclasses.replace(generate_phantom(8, 256, name="short"), esl=good.esl[:3])  # 3 points: too few
    with caplog.at_level("WARNING"):
        start = DonorStart([good, short], 64)
    assert [d.name for d in start.donors] == ["good"] and "short" in caplog.text
    with pytest.raises(ValueError, match="no scan with a usable"):
        DonorStart([short], 64)


def test_the_starts_pickle_for_spawned_workers():
    import pickle

    from pcdiff.data.phantom import generate_phantom
    from pcdiff.generate import DonorStart, PhantomStart, SpineRequest

    esl, isl = spine_lines(SpineParams(cobb_deg=30.0, curve_type="lumbar"))
    request = SpineRequest("r", esl, lines={"esl": esl, "isl": isl})
    donors = [generate_phantom(i, 256, params=SpineParams(cobb_deg=10.0 * i, curve_type="thoracic"), name=f"d{i}") for i in range(2)]
    for start in (PhantomStart(64), DonorStart(donors, 64)):
        again = pickle.loads(pickle.dumps(start))
        np.testing.assert_array_equal(again(request, 5, 0)[0], start(request, 5, 0)[0])
