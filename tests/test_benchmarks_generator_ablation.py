"""benchmarks.generator_ablation: the judge column (the network-free ESL reader on every row's backs)."""

from __future__ import annotations

import numpy as np
import torch

from benchmarks.generator_ablation import judge_row
from pcdiff.data.phantom import generate_phantom


def test_judge_row_reads_each_back_against_its_requested_line():
    """True phantom backs judged against their own ESL read closer (and at a smaller Cobb difference) than against
    shuffled lines: the column measures spine-following, not a constant."""
    scans = [generate_phantom(seed, 4096) for seed in range(3)]
    backs = torch.as_tensor(np.stack([s.points for s in scans]), dtype=torch.float32)
    own = judge_row(backs, [s.esl for s in scans])
    swapped = judge_row(backs, [scans[(i + 1) % 3].esl for i in range(3)])
    assert own["judge_failed"] == 0 and set(own) == {"judge_lateral_mm", "judge_cobb_deg", "judge_failed"}
    assert own["judge_lateral_mm"] < 10.0 < swapped["judge_lateral_mm"]
    assert swapped["judge_lateral_mm"] > 2 * own["judge_lateral_mm"]


def test_judge_row_adds_the_network_judge_columns_with_an_estimator():
    """With an ESL estimator (here untrained and tiny: only the plumbing is tested) the row gains the network judge's
    lateral RMS and Cobb errors, finite, beside the geometric judge's."""
    from pcdiff.estimator.module import SpineEstimator

    scans = [generate_phantom(seed, 2048) for seed in range(3)]
    backs = torch.as_tensor(np.stack([s.points for s in scans]), dtype=torch.float32)
    tiny = dict(width=16, num_centres=(64, 16), radii=(0.1, 0.25), num_neighbours=(16, 8), widths=(32, 64),
                global_dim=64, head_dim=64)
    estimator = SpineEstimator(line="esl", input_frame="esl", net_kwargs=tiny).eval()
    row = judge_row(backs, [s.esl for s in scans], estimator)
    assert {"net_judge_lateral_mm", "net_judge_cobb_deg", "net_judge_cobb_large_deg"} <= set(row)
    assert np.isfinite(row["net_judge_lateral_mm"]) and np.isfinite(row["net_judge_cobb_deg"])
    assert row["judge_lateral_mm"] == judge_row(backs, [s.esl for s in scans])["judge_lateral_mm"]


def test_row_sampler_parses_label_sampler_steps_and_karras_and_refuses_malformed_specs():
    import argparse

    import pytest

    from benchmarks.generator_ablation import parse_row_sampler

    assert parse_row_sampler("reference=ddpm:1000") == ("reference", ("ddpm", 1000, {}))
    assert parse_row_sampler("fast=dpm++:20:karras") == ("fast", ("dpm++", 20, {"use_karras_sigmas": True}))
    for bad in ("ddpm:1000", "x=ddpm", "x=ddpm:0", "x=ddpm:ten", "x=ddpm:20:sharp", "=ddpm:20"):
        with pytest.raises(argparse.ArgumentTypeError, match="LABEL=SAMPLER:STEPS"):
            parse_row_sampler(bad)


def test_row_guidance_parses_label_and_scale_and_refuses_malformed_specs():
    import argparse

    import pytest

    from benchmarks.generator_ablation import parse_row_guidance

    assert parse_row_guidance("g2=2.0") == ("g2", 2.0)
    assert parse_row_guidance("plain=1") == ("plain", 1.0)
    for bad in ("2.0", "=2", "g=", "g=two", "g=-1"):
        with pytest.raises(argparse.ArgumentTypeError, match="LABEL=SCALE"):
            parse_row_guidance(bad)


def test_save_backs_writes_backs_beside_the_true_scans_and_never_overwrites(tmp_path):
    from types import SimpleNamespace

    import pytest

    from benchmarks.generator_ablation import save_backs

    test = SimpleNamespace(points=torch.zeros(2, 5, 3), center=torch.ones(2, 3), scale=torch.full((2,), 2.0),
                           names=["a", "b"], esl_mm=[np.zeros((4, 3)), np.ones((6, 3))])
    backs = torch.rand(2, 5, 3)
    save_backs(tmp_path / "row.npz", backs, test)
    saved = np.load(tmp_path / "row.npz")
    np.testing.assert_allclose(saved["backs_mm"], backs.numpy())
    assert saved["true_mm"].shape == (2, 5, 3) and list(saved["names"]) == ["a", "b"]
    assert saved["esl_mm_1"].shape == (6, 3)
    with pytest.raises(FileExistsError):
        save_backs(tmp_path / "row.npz", backs, test)


def test_asymmetry_scores_tell_a_back_of_the_same_spine_from_one_of_another_spine():
    """A second phantom of the same spine (another body, same vertebral rotation) carries the reference's rotation
    profile; a back of another curved spine, read along the reference's line, does not."""
    from benchmarks.scoring import asymmetry_scores
    from pcdiff.data.phantom import SpineParams, generate_phantom as draw

    scans = [draw(seed, 4096) for seed in range(40)]
    curved = sorted(scans, key=lambda s: -float(s.meta["cobb"]))[:2]  # the two largest curves of 40 draws
    twins = [draw([99, i], 4096, params=SpineParams(**s.meta["phantom"]["spine"])) for i, s in enumerate(curved)]
    refs = torch.as_tensor(np.stack([s.points for s in curved]), dtype=torch.float32)
    same = asymmetry_scores(torch.as_tensor(np.stack([t.points for t in twins]), dtype=torch.float32), refs,
                            [s.esl for s in curved])
    other = asymmetry_scores(refs.flip(0), refs, [s.esl for s in curved])
    assert (same["asym_corr"] > 0.8).all() and (same["asym_amplitude_ratio"] > 0.5).all()
    assert (other["asym_corr"] < same["asym_corr"] - 0.3).all()


def test_second_seed_row_compares_two_noise_draws_of_a_row():
    """Two draws with the same rotation profile agree (correlation 1 between seeds); the keys the table shows exist."""
    from types import SimpleNamespace

    from benchmarks.generator_ablation import second_seed_row
    from pcdiff.data.phantom import generate_phantom as draw

    scans = sorted((draw(seed, 2048) for seed in range(20)), key=lambda s: -float(s.meta["cobb"]))[:3]
    points = torch.as_tensor(np.stack([s.points for s in scans]), dtype=torch.float32)
    test = SimpleNamespace(points=points, center=torch.zeros(3, 3), scale=torch.ones(3), esl_mm=[s.esl for s in scans])
    row = second_seed_row(points.clone(), points, test)
    assert set(row) == {"seed1_1-NNA-CD", "seed1_asym_corr", "asym_corr_between_seeds"}
    assert np.isclose(row["asym_corr_between_seeds"], 1.0) and np.isclose(row["seed1_asym_corr"], 1.0)
    shuffled = second_seed_row(points.flip(0), points, test)
    assert shuffled["asym_corr_between_seeds"] < 0.9


def test_row_phantom_start_parses_label_and_strength_and_refuses_malformed_specs():
    import argparse

    import pytest

    from benchmarks.generator_ablation import parse_row_phantom_start

    assert parse_row_phantom_start("ps02=0.2") == ("ps02", 0.2)
    assert parse_row_phantom_start("full=1") == ("full", 1.0)
    for bad in ("0.2", "=0.2", "p=", "p=0", "p=1.5", "p=-0.1", "p=nan"):
        with pytest.raises(argparse.ArgumentTypeError, match="LABEL=STRENGTH"):
            parse_row_phantom_start(bad)


def test_phantom_starts_lie_on_each_test_scans_line_in_its_frame(tmp_path):
    from types import SimpleNamespace

    from scipy.spatial import cKDTree

    from benchmarks.generator_ablation import phantom_starts
    from pcdiff.data.io import write_subject
    from pcdiff.geometry.frames import to_mm

    scans = [generate_phantom(seed, 2048, name=f"s{seed}") for seed in range(2)]
    for scan in scans:
        write_subject(scan, tmp_path)
    center = torch.tensor(np.stack([s.esl.mean(0) for s in scans]), dtype=torch.float32)
    scale = torch.tensor([200.0, 250.0])
    test = SimpleNamespace(names=[s.name for s in scans], center=center, scale=scale)
    starts = phantom_starts(test, tmp_path, 4096)
    assert starts.shape == (2, 4096, 3)
    for i, scan in enumerate(scans):
        back = to_mm(starts[i], center[i], scale[i]).numpy()
        assert cKDTree(back).query(scan.esl)[0].mean() < 6.0  # mm: on the scan's own ESL, in its frame


def test_an_exported_pipeline_folder_samples_the_same_backs_as_its_checkpoint(tmp_path):
    """--checkpoint LABEL=FOLDER: the shipped model is scored from its pipeline folder (no training checkpoint
    ships); the folder, its sampler rebuilt on the folder's noise schedule, gives the very backs its module gives."""
    from benchmarks.generator_ablation import density_scaled_skips, load_scored_model
    from benchmarks.sampling import sample_backs
    from pcdiff.diffusion.testing import TINY_DENOISERS, TINY_KEYPOINTS, tiny_module
    from pcdiff.pipelines import SpineToBackPipeline

    torch.manual_seed(0)
    module = tiny_module("pvcnn", denoiser_kwargs={**TINY_DENOISERS["pvcnn"], "surface_neighbors": 8})
    for p in module.sampling_denoiser.parameters():  # a non-zero output layer, so that the backs depend on the weights
        torch.nn.init.normal_(p, std=0.05)
    module.eval().to_pipeline(sampler="euler").save_pretrained(tmp_path / "folder")
    loaded = load_scored_model(tmp_path / "folder")
    assert isinstance(loaded, SpineToBackPipeline) and not loaded.denoiser.training
    spines = torch.linspace(-0.5, 0.5, TINY_KEYPOINTS)[None, :, None] * torch.tensor([0.1, 1.0, 0.05])
    spines = spines.repeat(2, 1, 1)
    draw = dict(num_points=64, sampler="dpm++", num_inference_steps=3, sampler_kwargs={"use_karras_sigmas": True})
    from_module, _ = sample_backs(module, spines, **draw)
    from_folder, _ = sample_backs(loaded, spines, **draw)
    torch.testing.assert_close(from_folder, from_module)
    for model in (module, loaded):  # every denoiser of each (a checkpoint's two, a folder's one) scales its k
        skips = density_scaled_skips(model, 32)
        assert skips and all(skip.neighbors_at(64) == 16 for skip in skips)
