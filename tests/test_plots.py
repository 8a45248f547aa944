"""Every plot function writes a non-empty PNG, including for awkward inputs; the sets of ``--plots`` per
kind of network; and what ``plotdata`` measures for them."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest

from nnscratch import plots
from nnscratch.activations import STUDY_ACTIVATIONS
from nnscratch.cli import main
from nnscratch.network import Network
from nnscratch.plotdata import FeatureMaps, Histogram, LayerProfile, ModelPlotData, histogram_panels, measure
from nnscratch.training import History, TrainConfig, train
from tests.test_data import write_tiny_mnist

PNG = b"\x89PNG\r\n\x1a\n"
CONV = "1x8x8-conv4k3-relu-maxpool2-flatten-8:tanh-3:softmax"
MLP_SET = {
    "learning_curves.png",
    "activations.png",
    "confusion_matrix.png",
    "confident_mistakes.png",
    "reliability.png",
    "first_layer_weights.png",
    "activation_histograms.png",
}
CONV_SET = MLP_SET - {"first_layer_weights.png"} | {"first_layer_filters.png", "feature_maps.png"}


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


@pytest.fixture(scope="module")
def convnet():
    rng = np.random.default_rng(0)
    X = rng.random((120, 64)).astype(np.float32)
    y = (X[:, :3].argmax(axis=1)).astype(np.intp)
    net = Network.from_spec(CONV, seed=0)
    history = train(net, X, y, TrainConfig(epochs=2, batch_size=32, learning_rate=1e-2, validation_size=20))
    return net, history, X, y


def test_importing_plots_selects_no_backend_and_no_pyplot():
    code = (
        "import sys, matplotlib, nnscratch.plots; print(matplotlib.get_backend(), 'matplotlib.pyplot' in sys.modules)"
    )
    env = {**os.environ, "MPLBACKEND": "svg"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert done.stdout.split() == ["svg", "False"], done.stderr


def test_learning_curves_of_several_runs(tmp_path, trained):
    _, history, _, _ = trained
    assert_png(plots.learning_curves({"a": history, "b": history}, tmp_path / "lc.png"))


def test_learning_curves_without_a_validation_set(tmp_path, trained):
    _, history, _, _ = trained
    record = history.to_dict()
    for epoch in record["epochs"]:
        epoch["val_loss"] = epoch["val_accuracy"] = math.nan
    assert_png(plots.learning_curves({"one": History.from_dict(record)}, tmp_path / "lc.png"))


def test_activation_functions(tmp_path):
    assert_png(plots.activation_functions(list(STUDY_ACTIVATIONS), tmp_path / "act.png"))


def test_gradient_norms_including_a_run_without_a_finished_epoch(tmp_path):
    norms = {
        "relu": [[1.0, 0.5, 0.1], [0.8, 0.4, 0.2]],
        "sigmoid": [[0.1, 0.01, 0.001], [0.2, 0.02, 0.002]],
        "diverged": [],
    }
    assert_png(plots.gradient_norms(norms, tmp_path / "g.png"))
    assert_png(plots.gradient_norms(norms, tmp_path / "named.png", layer_names=["conv8k3", "dense 32", "output"]))


def test_activation_histograms(tmp_path, trained):
    net, _, X, y = trained
    assert_png(plots.activation_histograms(histogram_panels(net, X, y), tmp_path / "h.png"))


def test_layer_profiles(tmp_path):
    profiles = {
        "relu": LayerProfile((0.5, 0.7), (1.0, 1.4), (0.5, 0.2, 0.1)),
        "tanh": LayerProfile((0.0, None), (0.6, 0.5), (0.3, 0.1, 0.05)),
    }
    assert_png(plots.layer_profiles(profiles, tmp_path / "p.png"))
    one = LayerProfile((0.5, 0.7), (1.0, 1.4), (0.5, 0.2, 0.1), ("1 relu", "2 relu"), ("1 a", "2 b", "3 output"))
    assert_png(plots.layer_profiles({"net": one}, tmp_path / "one.png"))


def test_confusion_mistakes_and_weights(tmp_path, trained):
    net, _, X, y = trained
    P = net.predict_proba(X)
    C = np.bincount(y * 10 + P.argmax(axis=1), minlength=100).reshape(10, 10)
    assert_png(plots.confusion(C, tmp_path / "c.png"))
    assert_png(plots.confident_mistakes(X, y, P, tmp_path / "m.png"))
    assert_png(plots.first_layer_weights(net.layers[0].W, tmp_path / "w.png"))


def test_filters_of_one_and_of_several_channels(tmp_path, rng):
    assert_png(plots.conv_filters(rng.standard_normal((3, 3, 1, 12)), tmp_path / "one.png"))
    assert_png(plots.conv_filters(rng.standard_normal((5, 5, 3, 40)), tmp_path / "rgb.png"))  # 64 of 120 drawn


def test_feature_maps_of_signed_and_non_negative_layers(tmp_path, rng):
    layers = [
        FeatureMaps("conv40k3 → 40x6x6", rng.standard_normal((40, 6, 6))),
        FeatureMaps("pool", rng.random((2, 3, 3))),
    ]
    assert_png(plots.feature_maps(rng.random(64), layers, tmp_path / "f.png", shape=(1, 8, 8)))


def test_image_shape_is_square_for_mnist_and_exact_otherwise():
    assert plots.image_shape(784) == (28, 28)
    assert plots.image_shape(12) == (3, 4)
    assert plots.image_shape(13) == (1, 13)


def test_pictures_of_flat_rows_follow_the_input_shape():
    row = np.arange(18.0)
    assert plots.picture(row, (18,)).shape == (3, 6)
    np.testing.assert_array_equal(plots.picture(row, (2, 3, 3)), (row[:9] + row[9:]).reshape(3, 3) / 2)


def test_the_evaluation_plots_draw_given_arrays_without_a_network(tmp_path, rng):
    m = 30
    P = rng.dirichlet(np.ones(3), m)
    data = ModelPlotData(
        spec="a network",
        input_shape=(1, 8, 8),
        activations=("relu", "softmax"),
        X=rng.random((m, 64)),
        y=rng.integers(0, 3, m),
        P=P,
        first_layer_weights=None,
        filters=rng.standard_normal((3, 3, 1, 4)),
        digit=0,
        feature_maps=(FeatureMaps("conv4k3 → 4x6x6", rng.standard_normal((4, 6, 6))),),
        histograms=(Histogram("layer 2: relu", (5, 1, 2), (0.0, 1.0, 2.0, 3.0), 0.9, 0.7, 0.2, 1),),
        probe=m,
    )
    made = plots.save_evaluation_plots(data, tmp_path)
    assert [p.name for p in made] == [  # no logits given: no reliability diagram
        "confusion_matrix.png",
        "confident_mistakes.png",
        "first_layer_filters.png",
        "feature_maps.png",
        "activation_histograms.png",
    ]


def test_inputs_that_are_not_square_images_are_still_drawn(tmp_path, rng):
    X = rng.random((40, 12))
    y = rng.integers(0, 3, 40)
    net = Network.from_spec("12-5:relu-3:softmax", seed=0)
    made = plots.save_evaluation_plots(measure(net, X, y), tmp_path)
    assert {p.name for p in made} >= {"confident_mistakes.png", "first_layer_weights.png"}
    for path in made:
        assert path.read_bytes().startswith(PNG)


def test_training_and_evaluation_sets_of_an_mlp(tmp_path, trained):
    net, history, X, y = trained
    data = measure(net, X, y)
    made = plots.save_training_plots(data, history, tmp_path / "new" / "train")
    assert {p.name for p in made} == MLP_SET
    for path in made:
        assert_png(path)
    assert len(plots.save_evaluation_plots(data, tmp_path / "eval")) == 5


def test_training_and_evaluation_sets_of_a_convnet(tmp_path, convnet):
    net, history, X, y = convnet
    data = measure(net, X, y)
    made = plots.save_training_plots(data, history, tmp_path / "train")
    assert {p.name for p in made} == CONV_SET
    for path in made:
        assert_png(path)
    assert {p.name for p in plots.save_evaluation_plots(data, tmp_path / "eval")} == CONV_SET - {
        "learning_curves.png",
        "activations.png",
    }


def test_what_is_measured_for_a_convnet(convnet):
    net, _, X, y = convnet
    data = measure(net, X, y)
    assert data.first_layer_weights is None and data.filters.shape == (3, 3, 1, 4)
    np.testing.assert_array_equal(data.filters, net.layers[0].params["W"])
    assert [(f.title, f.maps.shape) for f in data.feature_maps] == [
        ("conv4k3 → 4x6x6", (4, 6, 6)),
        ("maxpool2 → 4x3x3", (4, 3, 3)),
    ]
    np.testing.assert_allclose(data.feature_maps[0].maps, net.layer_outputs(X[:1])[0][0], rtol=1e-6)
    assert [h.title for h in data.histograms] == ["layer 2: relu, 4x6x6", "layer 5: 8:tanh"]
    assert [h.grad_layer for h in data.histograms] == [1, 5]  # the convolution feeds the relu; the dense its tanh
    assert all(h.grad_norm > 0 for h in data.histograms)
    assert data.activations == ("relu", "tanh", "softmax") and data.P.shape == (120, 3)


def test_first_layer_weights_of_an_image_network_are_in_the_inputs_order(rng):
    net = Network.from_spec("2x3x3-5:tanh-3:softmax", seed=0)  # flatten reads channels-last, X rows channels-first
    X = rng.random((4, 18))
    W = measure(net, X, rng.integers(0, 3, 4)).first_layer_weights
    dense = net.layers[1]
    np.testing.assert_allclose(np.tanh(X @ W + dense.b), net.layer_outputs(X)[1], rtol=1e-5)


def test_plot_directory_that_is_a_file_is_refused(tmp_path, trained):
    net, history, X, y = trained
    data = measure(net, X[:20], y[:20])
    (tmp_path / "taken").write_text("")
    with pytest.raises(NotADirectoryError, match="not a directory"):
        plots.save_training_plots(data, history, tmp_path / "taken")
    with pytest.raises(NotADirectoryError, match="not a directory"):
        plots.save_evaluation_plots(data, tmp_path / "taken")


def test_train_and_evaluate_write_the_plots_of_a_convnet(tmp_path, rng, capsys):
    write_tiny_mnist(tmp_path / "data", rng, n_train=60, n_test=20, side=8, classes=3)
    model = tmp_path / "m.npz"
    args = ["train", "--data-dir", str(tmp_path / "data"), "--spec", CONV, "--epochs", "1", "-o", str(model), "-q"]
    assert main([*args, "--plots", str(tmp_path / "train")]) == 0
    assert {p.name for p in (tmp_path / "train").glob("*.png")} == CONV_SET
    assert main(["evaluate", str(model), "--data-dir", str(tmp_path / "data"), "--plots", str(tmp_path / "eval")]) == 0
    assert {p.name for p in (tmp_path / "eval").glob("*.png")} == CONV_SET - {"learning_curves.png", "activations.png"}
    assert "wrote 6 plots" in capsys.readouterr().out


def test_the_reliability_diagram_shows_the_calibration_before_and_after_the_temperature(tmp_path, rng):
    from matplotlib.figure import Figure

    Z, y = rng.normal(0, 3, (300, 4)), rng.integers(0, 4, 300)
    shown = {}
    real_save = plots.save_png

    def keep(fig: Figure, path):
        top = fig.axes[0]
        shown[path.name] = ([line.get_label() for line in top.get_lines()], top.get_title())
        return real_save(fig, path)

    from nnscratch.calibration import expected_calibration_error
    from nnscratch.losses import softmax

    plots.save_png = keep
    try:
        assert_png(plots.reliability_diagram(Z, y, 2.0, tmp_path / "a.png"))
        plots.reliability_diagram(Z, y, 1.0, tmp_path / "b.png")
    finally:
        plots.save_png = real_save
    before, after = expected_calibration_error(softmax(Z), y), expected_calibration_error(softmax(Z / 2), y)
    labels, title = shown["a.png"]
    assert labels == [
        "calibrated",
        f"as trained: ECE {100 * before:.2f}%",
        f"temperature 2.000: ECE {100 * after:.2f}%",
    ]
    assert "15 bins" in title
    assert shown["b.png"][0] == ["calibrated", f"as trained: ECE {100 * before:.2f}%"]  # no temperature: one curve
