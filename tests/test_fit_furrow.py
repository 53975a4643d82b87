"""python -m pcdiff.estimator.fit_furrow: fits the learned furrow on phantoms and saves it without overwriting."""

import numpy as np
import pytest

from pcdiff.data.phantom import generate_phantom
from pcdiff.data.sample import BackScan
from pcdiff.estimator.fit_furrow import fit_model, main, prepare
from pcdiff.estimator.geometric import geometric_esl
from pcdiff.estimator.learned_furrow import LearnedFurrow


def test_cli_fits_on_phantoms_saves_and_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "furrow"
    assert main(["--out", str(out), "--phantoms", "2", "--points", "8000", "--smoothness", "4", "--top-anchor", "0.5"]) == 0
    assert "2 phantoms (seed 7, 8000 points)" in capsys.readouterr().out
    model = LearnedFurrow.load(out)
    assert model.params.smoothness == 4.0 and model.params.top_anchor == 0.5
    scan = generate_phantom([7, 5], 8000)
    assert geometric_esl(scan, method="path", furrow=model).shape == (64, 3)
    with pytest.raises(SystemExit):
        main(["--out", str(out), "--phantoms", "2", "--points", "8000"])
    assert "exists" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "other"), "--phantoms", "0"])


def test_real_backs_are_weighted_to_count_as_much_as_the_phantoms():
    backs = [prepare(generate_phantom([7, i], 8000)) for i in range(3)]
    equal = fit_model(backs[:2], backs[2:])  # one "real" back weighted as much as two phantoms together
    assert equal.weights.shape == fit_model(backs, []).weights.shape
    assert not np.allclose(equal.weights, fit_model(backs, []).weights)
    with pytest.raises(ValueError, match="ESL"):
        prepare(BackScan(name="no_esl", points=np.zeros((10, 3))))
