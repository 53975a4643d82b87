"""SpineToBackPipeline.from_pretrained on folders that are not what they claim (issue #14.3 and its messages):
a foreign module in model_index.json is refused before any import, missing files are named, edited settings warn."""

import json
import sys

import pytest

from pcdiff.diffusion.testing import TINY_KEYPOINTS, tiny_module
from pcdiff.export import record_trained_settings
from pcdiff.pipelines import SpineToBackPipeline


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny untrained pipeline saved as pcdiff.export saves it (with ``_pcdiff_trained_with``)."""
    out = tmp_path_factory.mktemp("pipe") / "pipe"
    pipe = tiny_module("pvcnn").to_pipeline(sampler="ddim")
    pipe.save_pretrained(str(out), safe_serialization=True)
    record_trained_settings(out, pipe)
    return out


def _copy(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def _edit_index(folder, **changes):
    path = folder / "model_index.json"
    index = json.loads(path.read_text())
    index.update(changes)
    path.write_text(json.dumps(index))


@pytest.mark.parametrize(
    "entry",
    [["x", "X"], ["diffusers_x", "X"], ["os", "system"], ["pcdiff/../x", "X"], ["pcdiff.models", "__import__('x')"]],
)
def test_a_foreign_module_is_refused_before_any_import(exported, tmp_path, monkeypatch, entry):
    folder = _copy(exported, tmp_path / "pipe")
    marker = tmp_path / "x_ran"
    (folder / "x.py").write_text(f"open({str(marker)!r}, 'w').close()\nclass X: pass\n")
    (tmp_path / "diffusers_x.py").write_text(f"open({str(marker)!r}, 'w').close()\nclass X: pass\n")
    _edit_index(folder, denoiser=entry)
    # as `generate --pipeline .` run inside the folder: x.py would be importable from the working directory
    monkeypatch.chdir(folder)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ValueError, match=r"component denoiser = .* is not allowed.*nothing was imported"):
        SpineToBackPipeline.from_pretrained(folder)
    assert not marker.exists()
    assert "x" not in sys.modules and "diffusers_x" not in sys.modules


def test_missing_weights_name_the_safetensors_file(exported, tmp_path):
    folder = _copy(exported, tmp_path / "pipe")
    (folder / "denoiser" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=r"denoiser: missing the denoiser's weights diffusion_pytorch_model\.safetensors"):
        SpineToBackPipeline.from_pretrained(folder)
    (folder / "scheduler" / "scheduler_config.json").unlink()
    with pytest.raises(FileNotFoundError, match="scheduler_config.json"):
        SpineToBackPipeline.from_pretrained(folder, denoiser=tiny_module("pvcnn").sampling_denoiser)


def test_an_edited_num_keypoints_warns(exported, tmp_path, recwarn):
    SpineToBackPipeline.from_pretrained(exported)
    assert not [w for w in recwarn if "trained with" in str(w.message)]  # as exported: silent
    folder = _copy(exported, tmp_path / "pipe")
    _edit_index(folder, num_keypoints=TINY_KEYPOINTS * 2)
    with pytest.warns(UserWarning, match=rf"num_keypoints = {TINY_KEYPOINTS * 2}, but the model was trained with num_keypoints = {TINY_KEYPOINTS}"):
        pipe = SpineToBackPipeline.from_pretrained(folder)
    assert pipe.config.num_keypoints == TINY_KEYPOINTS * 2  # a deliberate edit still loads


def test_a_file_or_foreign_json_is_refused(tmp_path):
    (tmp_path / "model_index.json").write_text("not json")
    with pytest.raises(ValueError, match="not a readable JSON file"):
        SpineToBackPipeline.from_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match="is a file; expected an exported SpineToBackPipeline folder"):
        SpineToBackPipeline.from_pretrained(tmp_path / "model_index.json")
