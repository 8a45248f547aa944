"""ONNX export: every kind of network gives predict_proba's probabilities in onnxruntime and ONNX's reference
evaluator, on real MNIST digits; what cannot be exported is refused naming the layer."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx.reference import ReferenceEvaluator

from nnscratch.activations import STUDY_ACTIVATIONS
from nnscratch.calibration import Calibration
from nnscratch.cli import main
from nnscratch.export import OPSET, ExportError, export_onnx, to_onnx
from nnscratch.layers import ActivationLayer, BatchNorm, Conv2D, Dense, Flatten, Layer
from nnscratch.network import Network
from nnscratch.training import TrainConfig, train

# Every kind of network the engine makes: MLPs with every activation (SELU and hidden softmax
# included), convnets with padding and stride, batch norm after convolutions and after a flatten
# (whose statistics the export permutes into channels-first order), hidden softmax over channels,
# and dropout, which the graph leaves out.
SPECS = {
    "mlp-five-activations": "784-32:relu-32:sigmoid-24:tanh-24:selu-16:softmax-10:softmax",
    "mlp-leaky-identity": "784-64:leaky_relu-32:identity-10:softmax",
    "mlp-bn-dropout": "784-64-bn-relu-dropout0.3-10:softmax",
    "cnn": "1x28x28-conv8k3-relu-maxpool2-conv16k3-relu-maxpool2-flatten-dropout0.5-10:softmax",
    "cnn-bn-pad-stride": "1x28x28-conv8k3p1-bn-relu-maxpool2-conv12k3s2p1-bn-selu-maxpool2-flatten-32:tanh-10:softmax",
    "cnn-flatten-bn-softmax": "1x28x28-conv6k5s2-softmax-maxpool3-flatten-bn-sigmoid-dropout0.2-10:softmax",
}
DIGITS = 200  # test digits each graph is compared on


@pytest.fixture(scope="module", params=["float32", "float64"])
def trained(request, mnist):
    """Each network trained for one epoch on 1,500 MNIST digits (realistic weights and batch-norm statistics)."""
    nets = {}
    for name, spec in SPECS.items():
        net = Network.from_spec(spec, seed=0, dtype=request.param)
        config = TrainConfig(epochs=1, batch_size=32, learning_rate=3e-3, validation_size=0, seed=0)
        train(net, mnist.X_train[:1500], mnist.y_train[:1500], config)
        nets[name] = net
    return nets


def run_onnxruntime(model: onnx.ModelProto, X: np.ndarray) -> np.ndarray:
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": X})[0]


@pytest.mark.mnist
@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", list(SPECS))
def test_graph_gives_predict_proba_on_real_digits(trained, mnist, name):
    net = trained[name]
    X = mnist.X_test[:DIGITS]
    expected = net.predict_proba(X)
    layouts = ["nchw", "flat"] if len(net.input_shape) == 3 else ["flat"]
    for layout in layouts:
        model = to_onnx(net, input_layout=layout)
        onnx.checker.check_model(model, full_check=True)
        X_in = X.reshape(-1, *net.input_shape) if layout == "nchw" else X
        for P in (run_onnxruntime(model, X_in), ReferenceEvaluator(model).run(None, {"input": X_in})[0]):
            assert P.shape == (DIGITS, 10) and P.dtype == np.float32
            np.testing.assert_allclose(P, expected, atol=1e-5, rtol=0)
    assert (expected.argmax(axis=1) == mnist.y_test[:DIGITS]).mean() > 0.3  # the weights learned something


def randomise(net: Network, rng: np.random.Generator) -> Network:
    """Every parameter and running statistic drawn at random (biases, β and means away from 0, variances
    spread over [0.01, 2]), so that a wrong padding, permutation or ε changes the probabilities."""
    for layer in net.layers:
        for name, array in layer.params.items():
            array[...] = rng.normal(0.0, 0.5, array.shape) + (1.0 if name == "gamma" else 0.0)
        if isinstance(layer, BatchNorm):
            layer.state["running_mean"][...] = rng.normal(0.0, 0.5, layer.state["running_mean"].shape)
            layer.state["running_var"][...] = rng.uniform(0.01, 2.0, layer.state["running_var"].shape)
    return net


# Convolutions whose output goes on unpooled, so that every output row and column counts: the last one,
# which reads the end padding, included.  On 11×11 with k3 s2 p1 the windows start at -1, 1, ..., 9 and the
# last covers rows 9, 10 and the padding row 11; on 13×13 with k5 s3 p2 the last covers 10..14.
UNPOOLED_CONV_SPECS = [
    "1x12x12-conv4k3p1-relu-flatten-10",
    "1x12x12-conv4k3s2p1-relu-flatten-10",
    "1x11x11-conv4k3s2p1-relu-flatten-10",
    "1x13x13-conv3k5s3p2-tanh-flatten-10",
    "2x10x7-conv3k3s2p2-sigmoid-conv2k2p1-flatten-5",
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("spec", UNPOOLED_CONV_SPECS)
def test_a_padded_convolution_without_pooling_gives_predict_proba(spec, dtype, rng):
    net = randomise(Network.from_spec(spec, seed=0, dtype=dtype), rng)
    X = rng.random((16, *net.input_shape)).astype(np.float32)
    expected = net.predict_proba(X)
    for layout, X_in in [("nchw", X), ("flat", X.reshape(16, -1))]:
        P = run_onnxruntime(to_onnx(net, input_layout=layout), X_in)
        np.testing.assert_allclose(P, expected, atol=1e-5, rtol=0)
    assert expected.std(axis=0).max() > 0.01  # the inputs reach the output: not the same answer for all


def bn_networks(eps: float) -> dict[str, Network]:
    """Batch norm with a non-default ε after a dense layer, after a convolution and after a flatten."""
    return {
        "dense": Network(12, [Dense(6, "identity"), BatchNorm(eps=eps), ActivationLayer("tanh"), Dense(4)], seed=0),
        "conv": Network(
            (1, 6, 6),
            [
                Conv2D(3, 3, padding=1),
                BatchNorm(eps=eps),
                ActivationLayer("relu"),
                Flatten(),
                BatchNorm(eps=eps),
                Dense(4),
            ],
            seed=0,
        ),
    }


@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_batch_norm_with_a_non_default_epsilon_exports_that_epsilon(kind, rng, tmp_path):
    # Running variances of 0.01 to 2 against ε = 0.01: the default 1e-5 in its place changes
    # 1/sqrt(var + ε) by up to 40%, far beyond the 1e-5 compared.
    net = randomise(bn_networks(1e-2)[kind], rng)
    X = rng.random((20, net.n_in)).astype(np.float32)
    expected = net.predict_proba(X)
    default = bn_networks(1e-5)[kind]  # the same weights and statistics, with the default ε
    default.params[...], default.state[...] = net.params, net.state
    assert np.abs(default.predict_proba(X) - expected).max() > 1e-3
    model = to_onnx(net, input_layout="flat")
    epsilons = [
        a.f for n in model.graph.node if n.op_type == "BatchNormalization" for a in n.attribute if a.name == "epsilon"
    ]
    assert epsilons and epsilons == pytest.approx([1e-2] * len(epsilons))
    np.testing.assert_allclose(run_onnxruntime(model, X), expected, atol=1e-5, rtol=0)
    # saved, loaded and exported from the file: ε travels through the model file too
    net.save(tmp_path / "bn.npz")
    loaded = Network.load(tmp_path / "bn.npz")
    assert [layer.eps for layer in loaded.layers if isinstance(layer, BatchNorm)] == [1e-2] * len(epsilons)
    export_onnx(loaded, tmp_path / "bn.onnx", input_layout="flat")
    np.testing.assert_allclose(run_onnxruntime(onnx.load(tmp_path / "bn.onnx"), X), expected, atol=1e-5, rtol=0)


def test_a_calibrated_model_exports_its_temperature(rng):
    net = randomise(Network.from_spec("1x6x6-conv3k3-relu-flatten-4:softmax", seed=0), rng)
    X = rng.random((20, 36), dtype=np.float32)
    plain = run_onnxruntime(to_onnx(net), X.reshape(20, 1, 6, 6))
    net.calibration = Calibration(temperature=2.5)
    model = to_onnx(net)
    calibrated = run_onnxruntime(model, X.reshape(20, 1, 6, 6))
    np.testing.assert_allclose(calibrated, net.predict_proba(X), atol=1e-6)
    assert np.abs(calibrated - plain).max() > 1e-3  # the temperature changed the answer, as it does predict_proba's
    assert {p.key: p.value for p in model.metadata_props}["nnscratch.temperature"] == "2.5"


def test_graph_declares_its_input_and_output(rng):
    cnn = Network.from_spec("1x28x28-conv4k3-relu-maxpool2-10:softmax", seed=0)
    mlp = Network.from_spec("784-16:relu-10:softmax", seed=0)

    def dims(value):
        return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]

    for net, layout, input_dims in [
        (cnn, None, ["N", 1, 28, 28]),
        (cnn, "flat", ["N", 784]),
        (mlp, None, ["N", 784]),
    ]:
        model = to_onnx(net, input_layout=layout)
        assert model.opset_import[0].version == OPSET == 17  # the opset --help and docs/howto/export.md promise
        assert [i.name for i in model.graph.input] == ["input"] and dims(model.graph.input[0]) == input_dims
        assert [o.name for o in model.graph.output] == ["probabilities"] and dims(model.graph.output[0]) == ["N", 10]
        assert {p.key: p.value for p in model.metadata_props}["nnscratch.spec"] == net.spec
    assert "Dropout" not in {n.op_type for n in to_onnx(Network.from_spec("784-8-dropout0.5-10", seed=0)).graph.node}


def test_conv_weights_are_transposed_to_oihw_and_dense_rows_to_chw():
    net = Network.from_spec("2x5x4-conv3k3-flatten-4:softmax", seed=0)
    weights = {t.name: onnx.numpy_helper.to_array(t) for t in to_onnx(net).graph.initializer}
    conv, dense = net.layers[0], net.layers[2]
    np.testing.assert_array_equal(weights["0.W"], conv.W.transpose(3, 2, 0, 1))  # (F, C, kh, kw)
    # the graph's feature (c, y, x) is row c·(3·2) + y·2 + x; the engine's (y, x, c) is row (y·2 + x)·3 + c
    for c, y, x in [(0, 0, 0), (2, 1, 0), (1, 2, 1)]:
        np.testing.assert_array_equal(weights["2.W"][c * 6 + y * 2 + x], dense.W[(y * 2 + x) * 3 + c])


def test_mlp_cannot_take_images_and_unknown_layouts_are_refused():
    mlp = Network.from_spec("784-16:relu-10:softmax", seed=0)
    with pytest.raises(ExportError, match="flat rows of 784 values"):
        to_onnx(mlp, input_layout="nchw")
    with pytest.raises(ExportError, match="unknown input layout 'nhwc'"):
        to_onnx(mlp, input_layout="nhwc")


class Square(Layer):
    """A layer kind the export does not know: y = x²."""

    kind = "square"

    @property
    def token(self) -> str:
        return "square"

    def forward(self, X, *, training=False, rng=None):
        return X * X, X


def test_a_layer_without_onnx_operator_is_named_and_nothing_is_written(tmp_path):
    net = Network(784, [Dense(8, "relu"), Square(), Dense(10)], seed=0)
    path = tmp_path / "model.onnx"
    with pytest.raises(ExportError, match=r"^layer 1 \('square', Square\) cannot be exported to ONNX"):
        export_onnx(net, path)
    assert not path.exists() and not list(tmp_path.iterdir())


def test_an_activation_without_onnx_operator_is_named(monkeypatch):
    from nnscratch import export

    net = Network.from_spec("784-8:tanh-10:softmax", seed=0)
    monkeypatch.delitem(export._ACTIVATION_OPS, "tanh")
    with pytest.raises(ExportError, match=r"^layer 0 \('8:tanh'\) cannot be exported to ONNX: its activation 'tanh'"):
        to_onnx(net)


@pytest.mark.parametrize("activation", STUDY_ACTIVATIONS)
def test_each_study_activation_exports_and_matches(activation, rng):
    net = Network.from_spec(f"12-7:{activation}-3:softmax", seed=1, dtype="float64")
    X = rng.random((9, 12)).astype(np.float32)
    np.testing.assert_allclose(run_onnxruntime(to_onnx(net), X), net.predict_proba(X), atol=1e-6)


# -- the command line ---------------------------------------------------------------------------


def test_export_command_writes_a_model_onnxruntime_runs(tmp_path, capsys, rng):
    net = Network.from_spec("1x28x28-conv4k3-bn-relu-maxpool2-flatten-dropout0.5-10:softmax", seed=0)
    net.save(tmp_path / "model.npz")
    X = rng.random((5, 1, 28, 28)).astype(np.float32)
    assert main(["export", str(tmp_path / "model.npz"), str(tmp_path / "model.onnx")]) == 0
    assert "input float32[N,1,28,28] → probabilities float32[N,10]" in capsys.readouterr().out
    np.testing.assert_allclose(run_onnxruntime(onnx.load(tmp_path / "model.onnx"), X), net.predict_proba(X), atol=1e-6)
    assert main(["export", str(tmp_path / "model.npz"), str(tmp_path / "flat.onnx"), "--input-layout", "flat"]) == 0
    flat = run_onnxruntime(onnx.load(tmp_path / "flat.onnx"), X.reshape(5, -1))
    np.testing.assert_allclose(flat, net.predict_proba(X), atol=1e-6)


@pytest.mark.parametrize(
    "args, message",
    [
        (["missing.npz", "out.onnx"], "model file 'missing.npz' not found"),
        (["mlp.npz", "no/such/dir/out.onnx"], "directory does not exist"),
        (["mlp.npz", "out.onnx", "--input-layout", "nchw"], "takes flat rows of 784 values"),
    ],
)
def test_export_command_errors_are_one_line(tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    Network.from_spec("784-8:relu-10:softmax", seed=0).save(tmp_path / "mlp.npz")
    assert main(["export", *args]) == 1
    err = capsys.readouterr().err
    assert err.startswith("nnscratch export: error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "out.onnx").exists()


def test_export_without_onnx_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    Network.from_spec("784-8:relu-10:softmax", seed=0).save(tmp_path / "mlp.npz")
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now fails
    assert main(["export", str(tmp_path / "mlp.npz"), str(tmp_path / "out.onnx")]) == 1
    assert "pip install 'nnscratch[onnx]'" in capsys.readouterr().err
    # said before the model is read: the missing library, not the missing file
    assert main(["export", str(tmp_path / "missing.npz"), str(tmp_path / "out.onnx")]) == 1
    assert "pip install 'nnscratch[onnx]'" in capsys.readouterr().err


def test_importing_nnscratch_does_not_import_onnx():
    code = "import sys, nnscratch, nnscratch.cli, nnscratch.export; sys.exit('onnx' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


def test_a_flatten_of_flat_rows_is_exported_as_the_identity(rng):
    net = Network.from_spec("12-8:tanh-flatten-3", seed=0)
    model = to_onnx(net)
    assert "Flatten" not in {node.op_type for node in model.graph.node}
    X = rng.random((5, 12), dtype=np.float32)
    np.testing.assert_allclose(run_onnxruntime(model, X), net.predict_proba(X), rtol=1e-5, atol=1e-6)
