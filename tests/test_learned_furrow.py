"""The learned furrow cost (pcdiff.estimator.learned_furrow) on synthetic backs with a known furrow."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from synthetic_backs import back_with_furrow

from pcdiff.data.sample import BackScan
from pcdiff.estimator.geometric import geometric_esl
from pcdiff.estimator.learned_furrow import (
    FEATURE_NAMES,
    HEIGHT_NODES,
    LearnedFurrow,
    band_features,
    fit_furrow_cost,
    furrow_example,
    height_basis,
)

HEIGHTS = np.linspace(380, 20, 64)


def _curve(amplitude: float, phase: float):
    return lambda y: amplitude * np.sin(y / 400 * 2 * np.pi + phase)


def _line(furrow_x) -> np.ndarray:
    ys = np.linspace(390, 10, 80)
    return np.stack([furrow_x(ys), ys, np.zeros_like(ys)], axis=1)


@pytest.fixture(scope="module")
def training_examples():
    curves = [_curve(20, 0.0), _curve(-15, 1.0), _curve(30, 2.5)]
    return [furrow_example(back_with_furrow(c, 30000, seed=i), HEIGHTS, _line(c)) for i, c in enumerate(curves)]


def test_band_features_shape_and_values():
    points = back_with_furrow(_curve(20, 0.0), 30000)
    grid, features = band_features(points, HEIGHTS)
    assert features.shape == (len(grid.bands), int(grid.keep.sum()), len(FEATURE_NAMES) * len(HEIGHT_NODES))
    assert np.isfinite(features).all()
    assert grid.bands[0] == pytest.approx(380) and grid.bands[-1] == pytest.approx(20)


def test_fitted_cost_finds_the_furrow_of_an_unseen_back(training_examples):
    weights = fit_furrow_cost(training_examples)
    assert weights.shape == (len(FEATURE_NAMES) * len(HEIGHT_NODES),)
    truth = _curve(-25, 4.0)
    points = back_with_furrow(truth, 30000, seed=9)
    x = LearnedFurrow(weights).path_x(points, HEIGHTS)
    assert np.sqrt(np.mean((x - truth(HEIGHTS)) ** 2)) < 3.0
    # the unfitted cost (all weights 0) is flat: the path it traces does not follow the furrow
    flat = LearnedFurrow(np.zeros_like(weights)).with_tracer(smoothness=4.0, top_anchor=0.0).path_x(points, HEIGHTS)
    assert np.sqrt(np.mean((flat - truth(HEIGHTS)) ** 2)) > 8.0


def test_a_back_of_weight_zero_counts_as_absent(training_examples):
    with_zero = fit_furrow_cost(training_examples, weights=[1.0, 1.0, 0.0])
    without = fit_furrow_cost(training_examples[:2])
    np.testing.assert_allclose(with_zero, without, rtol=1e-4, atol=1e-6)


def test_fit_refuses_bad_input(training_examples):
    outside = furrow_example(back_with_furrow(_curve(10, 0.0), 20000), HEIGHTS, _line(_curve(10, 0.0)) + [0, 1000, 0])
    assert not outside.inside.any()
    with pytest.raises(ValueError, match="no training back of positive weight"):
        fit_furrow_cost([outside])
    with pytest.raises(ValueError, match="weights"):
        fit_furrow_cost(training_examples, weights=[1.0, -1.0, 1.0])
    with pytest.raises(ValueError, match="weights"):
        fit_furrow_cost(training_examples, weights=[1.0, 1.0])
    with pytest.raises(ValueError, match="positive weight"):
        fit_furrow_cost(training_examples, weights=[0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="weights for"):
        LearnedFurrow(np.zeros(5)).path_x(back_with_furrow(_curve(10, 0.0), 20000), HEIGHTS)


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=2, max_value=200), st.floats(min_value=-500, max_value=500), st.floats(min_value=10, max_value=800))
def test_height_basis_is_a_partition_of_unity(num_bands, top, span):
    basis = height_basis(np.linspace(top, top - span, num_bands))
    assert basis.shape == (num_bands, len(HEIGHT_NODES))
    np.testing.assert_allclose(basis.sum(axis=1), 1.0)
    assert basis[0, 0] == pytest.approx(1.0) and basis[-1, -1] == pytest.approx(1.0)


def test_geometric_esl_traces_a_learned_furrow(training_examples):
    truth = _curve(15, 3.0)
    points = back_with_furrow(truth, 30000, seed=5)
    scan = BackScan(name="synthetic", points=points.astype(np.float32),
                    landmarks={"C7": np.array([0.0, 380.0, 0.0]), "DM": np.array([0.0, 20.0, 0.0])})
    line = geometric_esl(scan, method="path", furrow=LearnedFurrow(fit_furrow_cost(training_examples)))
    assert line.shape == (64, 3)
    assert np.sqrt(np.mean((line[:, 0] - truth(line[:, 1])) ** 2)) < 3.0


def test_a_saved_cost_loads_back_and_is_never_overwritten_silently(tmp_path, training_examples):
    model = LearnedFurrow(fit_furrow_cost(training_examples)).with_tracer(smoothness=8.0, top_anchor=1.0)
    path = model.save(tmp_path / "furrow", fitted_on="3 synthetic backs")
    loaded = LearnedFurrow.load(tmp_path / "furrow")
    np.testing.assert_array_equal(loaded.weights, model.weights)
    assert loaded.params == model.params and LearnedFurrow.load(path).params == model.params
    with pytest.raises(FileExistsError, match="overwrite"):
        model.save(tmp_path / "furrow")
    model.with_tracer(smoothness=2.0, top_anchor=0.0).save(tmp_path / "furrow", overwrite=True)
    assert LearnedFurrow.load(tmp_path / "furrow").params.smoothness == 2.0
    with pytest.raises(FileNotFoundError, match="fit_furrow"):
        LearnedFurrow.load(tmp_path / "nowhere")
    path.write_text(path.read_text().replace("pcdiff-learned-furrow-1", "something-else"))
    with pytest.raises(ValueError, match="format"):
        LearnedFurrow.load(path)
