"""benchmarks.training.train_with_cli: the benchmarks train through ``python -m pcdiff.train`` itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.training import CONFIGS_DIR, train_with_cli


def test_train_with_cli_never_reuses_a_folder_with_a_checkpoint(tmp_path: Path):
    (tmp_path / "last.ckpt").write_bytes(b"a previous run")
    with pytest.raises(FileExistsError, match="previous run"):
        train_with_cli([CONFIGS_DIR / "quickstart.yaml"], {"trainer": {"max_steps": 1}}, tmp_path)
    assert (tmp_path / "last.ckpt").read_bytes() == b"a previous run"


@pytest.mark.parametrize("settings", [{}, {"trainer": {"max_steps": 0}}, {"trainer": {"max_steps": "10"}}])
def test_train_with_cli_needs_a_positive_step_count(tmp_path: Path, settings):
    with pytest.raises(ValueError, match="max_steps"):
        train_with_cli([CONFIGS_DIR / "quickstart.yaml"], settings, tmp_path)


@pytest.mark.slow
def test_train_with_cli_reports_the_commands_error(tmp_path: Path):
    """A setting the CLI rejects fails with the command and the tail of its log, not a silent missing checkpoint."""
    with pytest.raises(RuntimeError, match="pcdiff.train") as info:
        train_with_cli([CONFIGS_DIR / "quickstart.yaml"],
                       {"trainer": {"max_steps": 1}, "model": {"denoiser": "no-such-denoiser"}}, tmp_path)
    assert "no-such-denoiser" in str(info.value)
    assert (tmp_path / "run.yaml").is_file() and not (tmp_path / "last.ckpt").exists()
