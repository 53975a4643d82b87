"""benchmarks.diffusion_backs: phantom spines for (surface, ESL, ISL) triples of generated backs."""

from __future__ import annotations

import pytest

from benchmarks.diffusion_backs import main, phantom_spines


def test_phantom_spines_takes_consecutive_seeds_then_only_large_curves():
    seeds, scans = phantom_spines(3, 2, seed_start=7000, large_cobb=40.0)
    assert seeds[:3] == [7000, 7001, 7002] and len(seeds) == len(scans) == 5
    assert all(s > 7002 for s in seeds[3:]) and seeds[3] < seeds[4]
    assert all(float(scan.meta["cobb"]) >= 40.0 for scan in scans[3:])
    assert all(scan.isl is not None and scan.esl is not None for scan in scans)


def test_an_existing_output_is_kept(tmp_path, capsys):
    out = tmp_path / "backs.npz"
    out.write_bytes(b"earlier study")
    with pytest.raises(SystemExit):
        main(["--out", str(out), "--n", "1", "--n-large", "0"])
    assert out.read_bytes() == b"earlier study" and "exists" in capsys.readouterr().err


def test_phantom_start_strength_is_checked(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "b.npz"), "--n", "1", "--n-large", "0", "--phantom-start", "1.5"])
    assert "--phantom-start must lie in (0, 1]" in capsys.readouterr().err
    assert not (tmp_path / "b.npz").exists()
