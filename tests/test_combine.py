"""pcdiff.data.combine: one training folder of linked files from several scan folders."""

from __future__ import annotations

import pytest

from pcdiff.data.combine import combine_folders, main, parse_labelled
from pcdiff.data.readers.dataset import read_dataset
from pcdiff.data.synth import write_phantom_dataset


def test_combined_folder_is_read_as_both_sources(tmp_path):
    write_phantom_dataset(tmp_path / "a", 3, seed=0, num_points=256)
    write_phantom_dataset(tmp_path / "b", 3, seed=0, num_points=256)  # the same names: the reader tells them apart
    counts = combine_folders(tmp_path / "mix", {"phantoms": tmp_path / "a", "again": tmp_path / "b"}, {"again": 2})
    assert counts == {"phantoms": 6, "again": 4}  # .ply + .json per subject
    assert all(p.is_symlink() for p in (tmp_path / "mix").rglob("*") if p.is_file())
    scans = read_dataset(tmp_path / "mix")
    names = sorted(s.name for s in scans)
    assert len(scans) == 5 and names[:2] == ["again__phantom_s0_00000", "again__phantom_s0_00001"]


def test_combine_refuses_to_write_into_a_used_folder_and_bad_sources(tmp_path):
    write_phantom_dataset(tmp_path / "a", 1, seed=0, num_points=256)
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "mine.txt").write_text("keep")
    with pytest.raises(FileExistsError):
        combine_folders(tmp_path / "used", {"a": tmp_path / "a"})
    assert (tmp_path / "used" / "mine.txt").read_text() == "keep"
    with pytest.raises(FileNotFoundError, match="missing"):
        combine_folders(tmp_path / "new", {"x": tmp_path / "missing"})
    with pytest.raises(ValueError, match="not sources"):
        combine_folders(tmp_path / "new", {"a": tmp_path / "a"}, {"b": 1})
    with pytest.raises(ValueError, match=">= 1"):
        combine_folders(tmp_path / "new", {"a": tmp_path / "a"}, {"a": 0})
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no file"):  # checked before anything is linked
        combine_folders(tmp_path / "new", {"a": tmp_path / "a", "e": tmp_path / "empty"})
    assert not (tmp_path / "new").exists()
    for bad in ("nolabel", "=dir", "a/b=dir"):
        with pytest.raises(ValueError):
            parse_labelled(bad, "a source")


def test_cli_reports_errors_by_exit(tmp_path, capsys):
    write_phantom_dataset(tmp_path / "a", 2, seed=0, num_points=256)
    assert main(["--out", str(tmp_path / "mix"), f"p={tmp_path / 'a'}", "--first", "p=1"]) == 0
    assert '"p": 2' in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "mix"), f"p={tmp_path / 'a'}"])
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "m2"), f"p={tmp_path / 'a'}", f"p={tmp_path / 'a'}"])
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "m3"), f"p={tmp_path / 'a'}", "--first", "p=two"])
    assert "--first p=two" in capsys.readouterr().err
