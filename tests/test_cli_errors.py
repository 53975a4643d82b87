"""Command lines name the bad option and exit with argparse's usage error (code 2), not a traceback."""

import pytest

from pcdiff import generate
from pcdiff.data import synth


def test_generate_refuses_missing_checkpoint(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        generate.main(["--checkpoint", str(tmp_path / "missing.ckpt"), "--out", str(tmp_path / "out")])
    assert exc.value.code == 2
    assert "--checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_synth_refuses_bad_count(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        synth.main(["--out", str(tmp_path / "out"), "--n", "0"])
    assert exc.value.code == 2
    assert "n must be >= 1" in capsys.readouterr().err


def test_synth_refuses_to_overwrite_without_flag(tmp_path, capsys):
    out = tmp_path / "out"
    assert synth.main(["--out", str(out), "--n", "1", "--points", "256"]) == 0
    with pytest.raises(SystemExit) as exc:
        synth.main(["--out", str(out), "--n", "1", "--points", "256"])
    assert exc.value.code == 2
    assert "overwrite" in capsys.readouterr().err
