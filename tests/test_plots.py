"""Every plot function returns a Figure with the panels and marks its data calls for, including for awkward
inputs, and save_png writes it as a non-empty PNG, atomically; the figures show themselves in IPython; the
sets of ``--plots`` per kind of network; and what ``plotdata`` measures for them."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.figure import Figure

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


def drawn(fig) -> Figure:
    """``fig``, checked to be a Figure of this module's own: an Agg canvas and no pyplot."""
    assert isinstance(fig, Figure), f"a plot returned {type(fig).__name__}, not a Figure"
    assert type(fig.canvas).__name__ == "FigureCanvasAgg"
    return fig


def assert_saved(fig, path):
    """save_png writes ``fig`` as a non-empty PNG at ``path`` and returns that path."""
    assert plots.save_png(drawn(fig), path) == path
    assert_png(path)


def titles(fig) -> list[str]:
    return [ax.get_title() for ax in fig.axes if ax.axison]


def pictured(fig) -> list[Axes]:
    """The axes of a figure that show an image."""
    return [ax for ax in fig.axes if ax.images]


def legend_texts(legend) -> list[str]:
    return [text.get_text() for text in legend.get_texts()]


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
    fig = drawn(plots.learning_curves({"a": history, "b": history}))
    assert titles(fig) == ["Cross-entropy loss", "Accuracy", "Error rate (lower is better)"]
    assert fig.get_suptitle() == "Learning curves"
    loss, accuracy, error = fig.axes
    assert [len(ax.get_lines()) for ax in fig.axes] == [4, 4, 4]  # training and validation of each run
    assert loss.get_yscale() == error.get_yscale() == "log" and accuracy.get_yscale() == "linear"
    epochs = [r.epoch for r in history.epochs]
    np.testing.assert_array_equal(accuracy.get_lines()[1].get_xdata(), epochs)
    np.testing.assert_allclose(accuracy.get_lines()[1].get_ydata(), [100 * r.val_accuracy for r in history.epochs])
    assert [legend_texts(legend) for legend in fig.legends] == [["a", "b"]]  # one legend beside the panels
    assert_saved(fig, tmp_path / "lc.png")


def test_learning_curves_without_a_validation_set(tmp_path, trained):
    _, history, _, _ = trained
    record = history.to_dict()
    for epoch in record["epochs"]:
        epoch["val_loss"] = epoch["val_accuracy"] = math.nan
    fig = drawn(plots.learning_curves({"one": History.from_dict(record)}, title="One run"))
    assert fig.get_suptitle() == "One run" and not fig.legends
    assert legend_texts(fig.axes[1].get_legend()) == ["training"]
    assert_saved(fig, tmp_path / "lc.png")


def test_activation_functions(tmp_path):
    fig = drawn(plots.activation_functions(list(STUDY_ACTIVATIONS)))
    assert titles(fig) == ["relu", "sigmoid", "tanh", "selu", "softmax (a₁ and ∂a₁/∂z₁)"]
    for ax in fig.axes:
        assert [line.get_label() for line in ax.get_lines()[:2]] == ["f(z)", "f′(z)"]
    value, slope = fig.axes[0].get_lines()[:2]  # relu and its derivative, as the code computes them
    z = value.get_xdata()
    np.testing.assert_allclose(value.get_ydata(), np.maximum(z, 0))
    np.testing.assert_array_equal(slope.get_ydata()[z < 0], 0)
    np.testing.assert_array_equal(slope.get_ydata()[z > 0], 1)
    assert_saved(fig, tmp_path / "act.png")


def test_gradient_norms_including_a_run_without_a_finished_epoch(tmp_path):
    norms = {
        "relu": [[1.0, 0.5, 0.1], [0.8, 0.4, 0.2]],
        "sigmoid": [[0.1, 0.01, 0.001], [0.2, 0.02, 0.002]],
        "diverged": [],
    }
    fig = drawn(plots.gradient_norms(norms))
    assert titles(fig) == ["relu", "sigmoid", "diverged (no finished epoch)"]
    relu = fig.axes[0]
    assert relu.get_yscale() == "log" and len(relu.get_lines()) == 3
    np.testing.assert_allclose(relu.get_lines()[2].get_ydata(), [0.1, 0.2])
    assert [legend_texts(legend) for legend in fig.legends] == [["layer 1", "layer 2", "layer 3 (output)"]]
    assert_saved(fig, tmp_path / "g.png")
    named = drawn(plots.gradient_norms(norms, layer_names=["conv8k3", "dense 32", "output"]))
    assert legend_texts(named.legends[0]) == ["conv8k3", "dense 32", "output"]
    assert_saved(named, tmp_path / "named.png")


def test_activation_histograms(tmp_path, trained):
    net, _, X, y = trained
    panels = histogram_panels(net, X, y)
    fig = drawn(plots.activation_histograms(panels, title="Histograms"))
    shown = [ax for ax in fig.axes if ax.axison]
    assert len(shown) == len(panels) == 2 and fig.get_suptitle() == "Histograms"
    for ax, panel in zip(shown, panels, strict=True):
        assert ax.get_title().startswith(panel.title) and ax.get_yscale() == "log"
        assert [bar.get_height() for bar in ax.patches] == list(panel.counts)
    assert_saved(fig, tmp_path / "h.png")


def test_layer_profiles(tmp_path):
    profiles = {
        "relu": LayerProfile((0.5, 0.7), (1.0, 1.4), (0.5, 0.2, 0.1)),
        "tanh": LayerProfile((0.0, None), (0.6, 0.5), (0.3, 0.1, 0.05)),
    }
    fig = drawn(plots.layer_profiles(profiles))
    assert titles(fig) == ["Mean activation", "Std of activations (dotted: 1)", "Gradient norm ‖dW‖"]
    assert [legend_texts(legend) for legend in fig.legends] == [["relu", "tanh"]]
    np.testing.assert_allclose(fig.axes[2].get_lines()[1].get_ydata(), [0.3, 0.1, 0.05])
    assert_saved(fig, tmp_path / "p.png")
    one = LayerProfile((0.5, 0.7), (1.0, 1.4), (0.5, 0.2, 0.1), ("1 relu", "2 relu"), ("1 a", "2 b", "3 output"))
    fig = drawn(plots.layer_profiles({"net": one}, title="One net"))
    assert not fig.legends and fig.get_suptitle() == "One net"
    assert [t.get_text() for t in fig.axes[2].get_xticklabels()] == ["1\na", "2\nb", "3\noutput"]
    assert_saved(fig, tmp_path / "one.png")


def test_confusion_mistakes_and_weights(tmp_path, trained):
    net, _, X, y = trained
    P = net.predict_proba(X)
    C = np.bincount(y * 10 + P.argmax(axis=1), minlength=100).reshape(10, 10)
    fig = drawn(plots.confusion(C))
    matrix, _colour_bar = fig.axes
    assert matrix.get_title() == f"Confusion matrix: {100 * np.trace(C) / C.sum():.2f}% correct"
    assert [t.get_text() for t in matrix.texts] == [str(c) for c in C.flat]
    assert_saved(fig, tmp_path / "c.png")

    fig = drawn(plots.confident_mistakes(X, y, P))
    wrong = int((P.argmax(axis=1) != y).sum())
    assert len(pictured(fig)) == min(16, wrong)
    assert fig.get_suptitle() == f"The most confidently wrong test images ({wrong} wrong of {len(y)})"
    assert_saved(fig, tmp_path / "m.png")

    fig = drawn(plots.first_layer_weights(net.layers[0].W))
    tiles = pictured(fig)
    assert len(tiles) == 16 and tiles[0].get_title() == "unit 1"  # every unit of the 16
    np.testing.assert_allclose(tiles[0].images[0].get_array(), net.layers[0].W[:, 0].reshape(28, 28))
    assert_saved(fig, tmp_path / "w.png")


def test_filters_of_one_and_of_several_channels(tmp_path, rng):
    one = drawn(plots.conv_filters(rng.standard_normal((3, 3, 1, 12))))
    assert [ax.get_title() for ax in pictured(one)] == [f"filter {f}" for f in range(1, 13)]
    assert_saved(one, tmp_path / "one.png")
    rgb = drawn(plots.conv_filters(rng.standard_normal((5, 5, 3, 40))))  # 21 whole filters fit in 64 images
    assert len(pictured(rgb)) == 63 and "the first 21 shown" in rgb.get_suptitle()
    assert_saved(rgb, tmp_path / "rgb.png")


def test_feature_maps_of_signed_and_non_negative_layers(tmp_path, rng):
    layers = [
        FeatureMaps("conv40k3 → 40x6x6", rng.standard_normal((40, 6, 6))),
        FeatureMaps("pool", rng.random((2, 3, 3))),
    ]
    fig = drawn(plots.feature_maps(rng.random(64), layers, shape=(1, 8, 8)))
    maps = [ax.images[0].get_cmap().name for ax in pictured(fig)]
    assert maps == ["gray_r"] + ["RdBu_r"] * 32 + ["magma"] * 2  # the input, 32 of 40 signed maps, 2 pooled
    assert [part.get_suptitle() for part in fig.subfigs[1:]] == [
        "conv40k3 → 40x6x6 (the first 32 of 40 channels)",
        "pool",
    ]
    assert fig.get_suptitle() == "Feature maps"
    assert_saved(fig, tmp_path / "f.png")


def test_attribution_beside_the_digit(tmp_path, rng):
    pixels, values = rng.random(784), rng.standard_normal(784)
    fig = drawn(plots.attribution(pixels, values, title="a 7", shape=(28, 28)))
    seen, explained = pictured(fig)
    assert (seen.get_title(), explained.get_title(), fig.get_suptitle()) == (
        "what the network saw",
        "attribution",
        "a 7",
    )
    reach = np.abs(values).max()
    assert explained.images[0].get_clim() == (-reach, reach)  # centred on zero
    np.testing.assert_allclose(explained.images[0].get_array(), values.reshape(28, 28))
    assert_saved(fig, tmp_path / "a.png")


def test_attacked_digits_mark_the_answers_the_attack_changed(tmp_path, rng):
    X, attacked = rng.random((3, 784)), rng.random((3, 784))
    fig = drawn(plots.attacked_digits(X, attacked, np.array([1, 2, 3]), np.array([1, 5, 3]), title="FGSM"))
    below = [ax.title for ax in pictured(fig)][3:]  # a row of digits above a row of their attacked copies
    assert [ax.get_title() for ax in pictured(fig)[:3]] == ["a 1", "a 2", "a 3"]
    assert [t.get_text() for t in below] == ["read as 1", "read as 5", "read as 3"]
    assert [t.get_color() for t in below] == ["black", "red", "black"]
    assert fig.get_suptitle() == "FGSM"
    assert_saved(fig, tmp_path / "attacked.png")


def test_robustness_curves_start_at_the_clean_accuracy(tmp_path):
    results = [
        {"model": "m/relu.npz", "clean_accuracy": 0.98, "attacked": [{"epsilon": 0.2, "accuracy": 0.1}]},
        {"model": "cnn.npz", "clean_accuracy": 0.99, "attacked": [{"epsilon": 0.1, "accuracy": 0.7}]},
    ]
    fig = drawn(plots.robustness(results, method="pgd", steps=10))
    (ax,) = fig.axes
    assert ax.get_title() == "Accuracy under PGD, 10 steps"
    assert legend_texts(ax.get_legend()) == ["relu.npz", "cnn.npz"]
    np.testing.assert_allclose(ax.get_lines()[0].get_xydata(), [[0.0, 98.0], [0.2, 10.0]])
    assert_saved(fig, tmp_path / "robustness.png")


def test_augmented_examples_beside_their_originals(tmp_path, rng):
    originals, variants = rng.random((2, 8, 8)), rng.random((2, 3, 8, 8))
    fig = drawn(plots.augmented_examples(originals, variants))
    assert len(pictured(fig)) == 8
    assert [ax.get_title() for ax in fig.axes[:4]] == ["original", "variant 1", "variant 2", "variant 3"]
    np.testing.assert_array_equal(fig.axes[5].images[0].get_array(), variants[1, 0])
    assert_saved(fig, tmp_path / "aug.png")


def test_save_png_writes_atomically(tmp_path, monkeypatch):
    import nnscratch.io

    fig = plots.figure(figsize=(3, 2))
    fig.subplots().plot([1, 3, 2])
    path = tmp_path / "figure.png"
    assert plots.save_png(fig, str(path)) == path  # a str is taken too; a Path comes back
    assert path.read_bytes() == fig._repr_png_()  # the image a notebook shows
    path.write_bytes(b"the previous plot")

    def crash(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(nnscratch.io.os, "fsync", crash)  # the disk fails once the PNG is in the temporary file
    with pytest.raises(OSError, match="Input/output error"):
        plots.save_png(fig, path)
    assert path.read_bytes() == b"the previous plot"  # untouched, and no temporary file left behind
    assert [p.name for p in tmp_path.iterdir()] == ["figure.png"]
    monkeypatch.undo()
    with pytest.raises(OSError):  # a directory where the file would go is refused, not replaced
        plots.save_png(fig, tmp_path)


def test_figures_show_themselves_in_ipython():
    formatters = pytest.importorskip("IPython.core.formatters")
    from IPython.core.interactiveshell import InteractiveShell

    fig = plots.confusion(np.array([[3, 1], [0, 4]]))
    shell_before = InteractiveShell.initialized()
    try:
        data, _ = formatters.format_display_data(fig)  # makes IPython's global shell if there is none
    finally:
        if not shell_before:  # leave none behind: later code would think it runs under IPython
            InteractiveShell.clear_instance()
    assert data["image/png"].startswith(PNG)  # not just the text "<Figure size ...>"
    assert drawn(plots.figure())._repr_png_().startswith(PNG)


def test_every_plotting_function_returns_a_figure_and_writes_no_file(tmp_path, monkeypatch, rng):
    monkeypatch.chdir(tmp_path)
    Z, y = rng.normal(0, 2, (50, 3)), rng.integers(0, 3, 50)
    made = {
        "reliability_diagram": plots.reliability_diagram(Z, y, 1.5),
        "confusion": plots.confusion(np.eye(3, dtype=int)),
        "attribution": plots.attribution(rng.random(12), rng.standard_normal(12)),
        "first_layer_weights": plots.first_layer_weights(rng.standard_normal((12, 3))),
    }
    for name, fig in made.items():
        assert isinstance(fig, Figure), name
    assert not list(tmp_path.iterdir())


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
    from nnscratch.calibration import expected_calibration_error
    from nnscratch.losses import softmax

    Z, y = rng.normal(0, 3, (300, 4)), rng.integers(0, 4, 300)
    before, after = expected_calibration_error(softmax(Z), y), expected_calibration_error(softmax(Z / 2), y)
    fig = drawn(plots.reliability_diagram(Z, y, 2.0))
    top, bottom = fig.axes
    assert [line.get_label() for line in top.get_lines()] == [
        "calibrated",
        f"as trained: ECE {100 * before:.2f}%",
        f"temperature 2.000: ECE {100 * after:.2f}%",
    ]
    assert "15 bins" in top.get_title()
    assert len(bottom.patches) == 15 and bottom.get_yscale() == "log"  # images per bin
    assert_saved(fig, tmp_path / "a.png")
    plain = drawn(plots.reliability_diagram(Z, y, 1.0))
    assert [line.get_label() for line in plain.axes[0].get_lines()] == [  # no temperature: one curve
        "calibrated",
        f"as trained: ECE {100 * before:.2f}%",
    ]
