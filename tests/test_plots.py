"""Every plot function writes a non-empty PNG, including for awkward inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nnscratch import plots
from nnscratch.activations import STUDY_ACTIVATIONS
from nnscratch.diagnostics import histograms
from nnscratch.network import Network
from nnscratch.training import TrainConfig, train

PNG = b"\x89PNG\r\n\x1a\n"


def assert_png(path):
    data = path.read_bytes()
    assert data.startswith(PNG) and len(data) > 5000


@pytest.fixture(scope="module")
def trained():
    rng = np.random.default_rng(0)
    X = rng.random((300, 784)).astype(np.float32)
    y = (X[:, :10].argmax(axis=1) % 10).astype(np.intp)
    net = Network.from_spec("784-16:relu-12:tanh-10:softmax", seed=0)
    history = train(net, X, y, TrainConfig(epochs=3, batch_size=32, learning_rate=1e-2, validation_size=60))
    return net, history, X, y


def test_learning_curves_of_several_runs(tmp_path, trained):
    _, history, _, _ = trained
    assert_png(plots.learning_curves({"a": history.to_dict(), "b": history.to_dict()}, tmp_path / "lc.png"))


def test_learning_curves_without_a_validation_set(tmp_path, trained):
    _, history, _, _ = trained
    record = history.to_dict()
    for epoch in record["epochs"]:
        epoch["val_loss"] = epoch["val_accuracy"] = math.nan
    assert_png(plots.learning_curves({"one": record}, tmp_path / "lc.png"))


def test_activation_functions(tmp_path):
    assert_png(plots.activation_functions(list(STUDY_ACTIVATIONS), tmp_path / "act.png"))


def test_gradient_norms_including_a_run_without_a_finished_epoch(tmp_path):
    norms = {
        "relu": [[1.0, 0.5, 0.1], [0.8, 0.4, 0.2]],
        "sigmoid": [[0.1, 0.01, 0.001], [0.2, 0.02, 0.002]],
        "diverged": [],
    }
    assert_png(plots.gradient_norms(norms, tmp_path / "g.png"))


def test_activation_histograms(tmp_path, trained):
    net, _, X, _ = trained
    assert_png(plots.activation_histograms(histograms(net, X), tmp_path / "h.png"))


def test_layer_profiles(tmp_path):
    profiles = {
        "relu": {"activation_mean": [0.5, 0.7], "activation_std": [1.0, 1.4], "grad_norm": [0.5, 0.2, 0.1]},
        "tanh": {"activation_mean": [0.0, 0.01], "activation_std": [0.6, 0.5], "grad_norm": [0.3, 0.1, 0.05]},
    }
    assert_png(plots.layer_profiles(profiles, tmp_path / "p.png"))
    one = {"net": profiles["relu"] | {"activations": ["relu", "relu"]}}
    assert_png(plots.layer_profiles(one, tmp_path / "one.png"))


def test_confusion_mistakes_and_weights(tmp_path, trained):
    net, _, X, y = trained
    P = net.predict_proba(X)
    C = np.bincount(y * 10 + P.argmax(axis=1), minlength=100).reshape(10, 10)
    assert_png(plots.confusion(C, tmp_path / "c.png"))
    assert_png(plots.confident_mistakes(X, y, P, tmp_path / "m.png"))
    assert_png(plots.first_layer_weights(net.layers[0].W, tmp_path / "w.png"))


def test_image_shape_is_square_for_mnist_and_exact_otherwise():
    assert plots.image_shape(784) == (28, 28)
    assert plots.image_shape(12) == (3, 4)
    assert plots.image_shape(13) == (1, 13)


def test_inputs_that_are_not_square_images_are_still_drawn(tmp_path, rng):
    X = rng.random((40, 12))
    y = rng.integers(0, 3, 40)
    net = Network.from_spec("12-5:relu-3:softmax", seed=0)
    made = plots.save_evaluation_plots(net, X, y, tmp_path)
    assert {p.name for p in made} >= {"confident_mistakes.png", "first_layer_weights.png"}
    for path in made:
        assert path.read_bytes().startswith(PNG)


def test_training_and_evaluation_sets(tmp_path, trained):
    net, history, X, y = trained
    made = plots.save_training_plots(net, history, X, y, tmp_path / "new" / "train")
    assert {p.name for p in made} == {
        "learning_curves.png",
        "activations.png",
        "confusion_matrix.png",
        "confident_mistakes.png",
        "first_layer_weights.png",
        "activation_histograms.png",
    }
    for path in made:
        assert_png(path)
    assert len(plots.save_evaluation_plots(net, X, y, tmp_path / "eval")) == 4


def test_plot_directory_that_is_a_file_is_refused(tmp_path, trained):
    net, history, X, y = trained
    (tmp_path / "taken").write_text("")
    with pytest.raises(NotADirectoryError, match="not a directory"):
        plots.save_training_plots(net, history, X, y, tmp_path / "taken")
    with pytest.raises(NotADirectoryError, match="not a directory"):
        plots.save_evaluation_plots(net, X, y, tmp_path / "taken")
