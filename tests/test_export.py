"""python -m pcdiff.export: an existing non-empty folder needs --overwrite, which replaces the earlier export."""

import json

import pytest

from pcdiff.export import export_pipeline, main
from pcdiff.pipelines import SpineToBackPipeline


def _scheduler_class(folder):
    return json.loads((folder / "model_index.json").read_text())["scheduler"][1]


def test_existing_export_is_refused_without_overwrite(checkpoint, tmp_path, capsys):
    out = tmp_path / "pipe"
    main([str(checkpoint), str(out), "--sampler", "ddim"])
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(SystemExit) as exc:
        main([str(checkpoint), str(out), "--sampler", "dpm++"])
    assert exc.value.code == 2
    assert "--overwrite" in capsys.readouterr().err
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    with pytest.raises(FileExistsError, match="overwrite"):  # the Python API refuses too
        export_pipeline(checkpoint, out)


def test_overwrite_replaces_the_earlier_export(checkpoint, tmp_path):
    out = tmp_path / "pipe"
    main([str(checkpoint), str(out), "--sampler", "ddim"])
    assert _scheduler_class(out) == "DDIMScheduler"
    stale = out / "denoiser" / "diffusion_pytorch_model.bin"  # e.g. from an older, non-safetensors export
    stale.write_bytes(b"old")
    (out / "notes.txt").write_text("mine")
    main([str(checkpoint), str(out), "--sampler", "dpm++", "--overwrite"])
    assert _scheduler_class(out) == "DPMSolverMultistepScheduler"
    assert not stale.exists()
    assert (out / "notes.txt").read_text() == "mine"  # only the earlier pipeline is removed
    SpineToBackPipeline.from_pretrained(str(out))


def test_empty_existing_folder_needs_no_flag(checkpoint, tmp_path):
    out = tmp_path / "pipe"
    out.mkdir()
    assert main([str(checkpoint), str(out)]) == out
    assert (out / "model_index.json").is_file()


def test_a_damaged_checkpoint_is_one_clear_line(tmp_path, capsys):
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(SystemExit) as exc:
        main([str(junk), str(tmp_path / "pipe")])
    assert exc.value.code == 2
    assert f"checkpoint: {junk}: not a pcdiff checkpoint, or corrupt" in capsys.readouterr().err
    assert not (tmp_path / "pipe").exists()


def test_export_records_the_trained_settings(checkpoint, tmp_path):
    """model_index.json keeps a copy of the settings, so that a later edit of one warns on reload."""
    main([str(checkpoint), str(tmp_path / "pipe")])
    index = json.loads((tmp_path / "pipe" / "model_index.json").read_text())
    assert index["_pcdiff_trained_with"]["num_keypoints"] == index["num_keypoints"]
    assert "num_points" not in index["_pcdiff_trained_with"]  # a generation default, free to change
