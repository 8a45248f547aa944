"""Export a network to ONNX: the computation of ``Network.predict_proba`` as a graph other runtimes run.

Legend: N = batch size (a dynamic dimension of the graph), C×H×W = an image, n = values per input,
k = classes.

>>> from nnscratch.export import export_onnx
>>> export_onnx(Network.load("model.npz"), "model.onnx")      # then onnxruntime.InferenceSession("model.onnx")

The graph's input is named ``input`` and its output ``probabilities``, float32 (N, k), rows summing
to 1.  What the input looks like:

* an MLP takes flat rows, float32 (N, n), as ``predict_proba`` does (784 values per MNIST digit);
* a network on images takes channels-first images, float32 (N, C, H, W) (``input_layout="nchw"``,
  the default, as PyTorch and ONNX convnets do), or flat rows (N, C·H·W) in channels-first order
  (``input_layout="flat"``; the graph reshapes them), the two layouts ``predict_proba`` accepts.

How the engine's layers become ONNX operators (opset 17):

* dense → ``Gemm`` (Z = X W + b, W (n_in, n_out) as it is), then its activation;
* convolution → ``Conv``.  The engine keeps its filters HWIO, W (k, k, C, F), because that makes the
  forward pass one product of the im2col columns; ONNX wants OIHW, so W is transposed (3, 2, 0, 1).
  Both compute the same cross-correlation with the same zero padding and stride;
* max pooling → ``MaxPool`` with kernel = stride (floor mode, as the engine drops a remainder);
* batch norm → ``BatchNormalization`` in its inference form, y = γ (x - running mean) / sqrt(running
  var + ε) + β, per unit after a dense layer and per channel after a convolution;
* activations → ``Relu``, ``Sigmoid``, ``Tanh``, ``Selu`` (the engine's α and λ), ``LeakyRelu``
  (slope 0.01), ``Softmax`` over axis 1 (the units of a row, or the channels of an NCHW map, as the
  engine's softmax runs over its channels-last maps' last axis); identity adds no node;
* dropout → nothing: it is the identity when predicting;
* flatten → ``Flatten``.  The engine flattens its channels-last maps in (y, x, c) order; the graph's
  NCHW maps flatten in (c, y, x) order.  Rather than transposing every map back, the export permutes
  the parameters that follow: the rows of the next dense layer (and the statistics of a batch norm
  between them), so the graph computes exactly the engine's function;
* the output layer's logits → ``Softmax``: the engine's loss owns the output softmax; the graph adds it.
  A calibrated model's logits are first divided by its temperature (``Div``), as ``predict_proba`` does;
  the temperature is also among the model's properties.  The verdicts ("not sure", "not a digit") are
  not in the graph: their thresholds are in the model file.

The ``onnx`` package is an optional dependency (``pip install 'nnscratch[onnx]'``); ``import nnscratch``
never imports it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from nnscratch.activations import SELU_ALPHA, SELU_LAMBDA, LeakyReLU
from nnscratch.errors import NNScratchError, check_name
from nnscratch.io import atomic_write
from nnscratch.layers import ActivationLayer, AlphaDropout, BatchNorm, Conv2D, Dense, Dropout, Flatten, Layer, MaxPool2D
from nnscratch.network import Network

if TYPE_CHECKING:
    import onnx

OPSET = 17  # BatchNormalization-15, Softmax-13 (one axis); run by every onnxruntime since 1.12
INPUT_LAYOUTS = ("nchw", "flat")
INPUT_NAME, OUTPUT_NAME = "input", "probabilities"
Perm = npt.NDArray[np.intp] | None  # which of the engine's flat features each of the graph's is (None: the same)

# The activations ONNX has an operator for: (operator, its attributes).  Softmax is handled apart
# (it needs the axis); identity adds no node.
_ACTIVATION_OPS: dict[str, tuple[str, dict[str, Any]]] = {
    "relu": ("Relu", {}),
    "sigmoid": ("Sigmoid", {}),
    "tanh": ("Tanh", {}),
    "selu": ("Selu", {"alpha": SELU_ALPHA, "gamma": SELU_LAMBDA}),
    "leaky_relu": ("LeakyRelu", {"alpha": LeakyReLU.slope}),
}


class ExportError(NNScratchError, ValueError):
    """A network (or one of its layers) cannot be written as ONNX, or onnx is not installed."""


def require_onnx() -> Any:
    """The ``onnx`` module, or an :class:`ExportError` that says how to install it."""
    try:
        import onnx
    except ImportError:
        raise ExportError("exporting to ONNX needs the onnx package: pip install 'nnscratch[onnx]'") from None
    return onnx


class _Graph:
    """The nodes and initialisers of the graph being built, with fresh names for the tensors between them."""

    def __init__(self, onnx_module) -> None:
        self.onnx = onnx_module
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []

    def constant(self, name: str, value: npt.ArrayLike, dtype: npt.DTypeLike = np.float32) -> str:
        array = np.ascontiguousarray(value, dtype=dtype)
        self.initializers.append(self.onnx.numpy_helper.from_array(array, name))
        return name

    def node(self, op: str, inputs: list[str], name: str, **attributes: Any) -> str:
        self.nodes.append(self.onnx.helper.make_node(op, inputs, [name], name=name, **attributes))
        return name


def to_onnx(net: Network, *, input_layout: str | None = None) -> onnx.ModelProto:
    """The ONNX model (opset 17, float32) that computes ``net.predict_proba``; see the module docstring.

    ``input_layout`` is ``"nchw"`` (the default for a network on images) or ``"flat"`` (the only one an
    MLP has).  Raises :class:`ExportError` naming the layer that has no ONNX equivalent.
    """
    onnx = require_onnx()
    image = len(net.input_shape) == 3
    layout = input_layout or ("nchw" if image else "flat")
    check_name(INPUT_LAYOUTS, layout, "input layout", error=ExportError)
    if layout == "nchw" and not image:
        raise ExportError(
            f"the network takes flat rows of {net.n_in} values, not images; export it with the flat input layout"
        )
    graph = _Graph(onnx)
    if layout == "nchw":
        input_dims: list[int | str] = ["N", *net.input_shape]
        x = INPUT_NAME
    else:
        input_dims = ["N", net.n_in]
        x = INPUT_NAME
        if image:
            shape = graph.constant("input_shape", [-1, *net.input_shape], np.int64)
            x = graph.node("Reshape", [INPUT_NAME, shape], "input_nchw")

    # perm[j]: which of the engine's flat features the graph's feature j is, after an NCHW flatten
    # (None: the same order).  Parameters indexed by feature are gathered through it.
    perm: Perm = None
    for i, layer in enumerate(net.layers):
        x, perm = _layer(graph, i, layer, x, perm)
    temperature = net.calibration.temperature if net.calibration is not None else 1.0
    if temperature != 1.0:
        x = graph.node("Div", [x, graph.constant("temperature", [temperature])], "calibrated_logits")
    probabilities = graph.node("Softmax", [x], OUTPUT_NAME, axis=1)

    helper, TensorProto = onnx.helper, onnx.TensorProto
    model = helper.make_model(
        helper.make_graph(
            graph.nodes,
            "nnscratch",
            [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, input_dims)],
            [helper.make_tensor_value_info(probabilities, TensorProto.FLOAT, ["N", net.n_classes])],
            graph.initializers,
        ),
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="nnscratch",
        doc_string=f"nnscratch network {net.spec}: input {layout} float32 {input_dims}, output probabilities",
    )
    properties = {"nnscratch.spec": net.spec, "nnscratch.input_layout": layout}
    helper.set_model_props(model, properties | {"nnscratch.temperature": repr(temperature)})
    onnx.checker.check_model(model, full_check=True)
    return model


def _layer(graph: _Graph, i: int, layer: Layer, x: str, perm: Perm) -> tuple[str, Perm]:
    """Add layer i's nodes after tensor ``x``: its operator (``_OPERATORS``), then the activation it
    applies, if any; returns the output tensor and the feature permutation after it."""
    operator = _OPERATORS.get(layer.kind)
    if operator is None:
        raise ExportError(
            f"layer {i} ({layer.token!r}, {type(layer).__name__}) cannot be exported to ONNX: nnscratch has no "
            "ONNX operator for this kind of layer; remove it from the network or use the model in nnscratch"
        )
    x, perm = operator(graph, f"{i}_{layer.kind}", i, layer, x, perm)
    if layer.activation is not None:
        x = _activation(graph, i, layer, layer.activation.name, x)
    return x, perm


def _dense(graph: _Graph, name: str, i: int, layer: Dense, x: str, perm: Perm) -> tuple[str, Perm]:
    W = layer.W if perm is None else layer.W[perm]  # rows in the graph's feature order
    W_name, b_name = graph.constant(f"{i}.W", W), graph.constant(f"{i}.b", layer.b)
    return graph.node("Gemm", [x, W_name, b_name], name), None


def _conv(graph: _Graph, name: str, i: int, layer: Conv2D, x: str, perm: Perm) -> tuple[str, Perm]:
    W = graph.constant(f"{i}.W", layer.W.transpose(3, 2, 0, 1))  # HWIO → OIHW
    b = graph.constant(f"{i}.b", layer.b)
    k, s, p = layer.kernel, layer.stride, layer.padding
    return graph.node("Conv", [x, W, b], name, kernel_shape=[k, k], strides=[s, s], pads=[p, p, p, p]), None


def _max_pool(graph: _Graph, name: str, i: int, layer: MaxPool2D, x: str, perm: Perm) -> tuple[str, Perm]:
    k = layer.size
    return graph.node("MaxPool", [x], name, kernel_shape=[k, k], strides=[k, k]), None


def _batch_norm(graph: _Graph, name: str, i: int, layer: BatchNorm, x: str, perm: Perm) -> tuple[str, Perm]:
    arrays = [layer.params["gamma"], layer.params["beta"], layer.state["running_mean"], layer.state["running_var"]]
    names = ("gamma", "beta", "running_mean", "running_var")
    inputs = [graph.constant(f"{i}.{n}", a if perm is None else a[perm]) for n, a in zip(names, arrays, strict=True)]
    return graph.node("BatchNormalization", [x, *inputs], name, epsilon=layer.eps), perm


def _identity(graph: _Graph, name: str, i: int, layer: Layer, x: str, perm: Perm) -> tuple[str, Perm]:
    """No node: an activation layer is only its activation, and dropout is the identity when predicting."""
    return x, perm


def _flatten(graph: _Graph, name: str, i: int, layer: Flatten, x: str, perm: Perm) -> tuple[str, Perm]:
    assert layer.input_shape is not None
    if len(layer.input_shape) == 1:
        return x, perm
    C, H, W = layer.input_shape
    # The graph's feature j = (c, y, x) in row-major order is the engine's (y, x, c).
    order = np.arange(H * W * C).reshape(H, W, C).transpose(2, 0, 1).reshape(-1)
    return graph.node("Flatten", [x], name, axis=1), order


# How each kind of layer (``Layer.kind``, as model files record it) becomes ONNX nodes; its activation follows.
_OPERATORS: dict[str, Callable[..., tuple[str, Perm]]] = {
    Dense.kind: _dense,
    Conv2D.kind: _conv,
    MaxPool2D.kind: _max_pool,
    BatchNorm.kind: _batch_norm,
    ActivationLayer.kind: _identity,
    Dropout.kind: _identity,
    AlphaDropout.kind: _identity,
    Flatten.kind: _flatten,
}


def _activation(graph: _Graph, i: int, layer: Layer, activation: str, x: str) -> str:
    if activation == "identity":
        return x
    name = f"{i}_{activation}"
    if activation == "softmax":
        return graph.node("Softmax", [x], name, axis=1)  # units of a row, or channels of an NCHW map
    if activation not in _ACTIVATION_OPS:
        raise ExportError(
            f"layer {i} ({layer.token!r}) cannot be exported to ONNX: its activation {activation!r} has no ONNX "
            f"operator in nnscratch; the exportable ones are identity, softmax, {', '.join(_ACTIVATION_OPS)}"
        )
    op, attributes = _ACTIVATION_OPS[activation]
    return graph.node(op, [x], name, **attributes)


def export_onnx(
    net: Network, path: str | os.PathLike[str], *, input_layout: str | None = None
) -> tuple[Path, onnx.ModelProto]:
    """Write :func:`to_onnx` of ``net`` to ``path`` atomically; returns (the path, the model).

    A network whose weights are finite but overflow (NonFiniteOutputError from a probe of a blank and
    a full input) is refused rather than written: its graph would answer NaN.
    """
    net.predict_proba(np.stack([np.zeros(net.input_shape), np.ones(net.input_shape)]))
    model = to_onnx(net, input_layout=input_layout)
    data = model.SerializeToString()
    return atomic_write(path, lambda f: f.write(data)), model


def describe_io(model: onnx.ModelProto) -> str:
    """``input float32[N,1,28,28] → probabilities float32[N,10]``: the graph's signature in one line."""

    def text(value) -> str:
        dims = [d.dim_param or str(d.dim_value) for d in value.type.tensor_type.shape.dim]
        return f"{value.name} float32[{','.join(dims)}]"

    return f"{text(model.graph.input[0])} → {text(model.graph.output[0])}"


__all__ = ["INPUT_LAYOUTS", "OPSET", "ExportError", "describe_io", "export_onnx", "require_onnx", "to_onnx"]
