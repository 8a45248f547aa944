"""A model as the web app serves it: its description, and what it reads in one drawing.

What the page draws of a network, worked out once per model from its layers:

* every hidden dense layer as cells, one per unit, valued after everything up to the next layer
  with weights (its activation, or the batch norm and activation layers that follow it);
* every convolution and max-pooling layer as feature maps, one small image per channel.  A
  convolution's maps are shown after the elementwise layers that follow it (``after``: its
  activation, batch norm, dropout, which is the identity when predicting), since that is what the
  next layer reads; a pooling layer's maps are its own output.

Feature maps are many values (32×26×26 = 21,632 for ``conv32k3`` on a 28×28 drawing), so they are
sent compactly: per layer, ``scale`` = the largest |value| and ``values`` = the C·H·W values in
row-major (channel, row, column) order as integers in −255..255, value·255/scale rounded.  That is
what the page needs to draw them (scaled per layer, like the dense cells), and half the JSON of the
values rounded to three decimals (91 kB against 182 kB for the 36,384 values of
conv32k3-relu-maxpool2-conv64k3-relu-maxpool2), which would also flatten a layer of small values to 0.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from nnscratch.calibration import Calibration
from nnscratch.errors import ModelFileError
from nnscratch.images import SIDE
from nnscratch.layers import ActivationLayer, BatchNorm, Dropout
from nnscratch.network import Network

Array = npt.NDArray[np.floating]
LEVELS = 255  # feature-map values are sent as integers in -LEVELS..LEVELS
ELEMENTWISE = (ActivationLayer, BatchNorm, Dropout)  # layers that keep a feature map's shape, value by value


@dataclass(frozen=True)
class DenseInfo:
    """A dense layer as ``GET /api/model`` lists it: its units and the activation its cells show."""

    units: int
    activation: str


@dataclass(frozen=True)
class MapsInfo:
    """A convolution or pooling layer whose feature maps are shown: its token, the elementwise layers
    the values pass through after it, and the maps' shape [C, H, W]."""

    layer: str
    after: list[str]
    shape: list[int]


@dataclass(frozen=True)
class ModelInfo:
    """What ``GET /api/model`` and ``GET /api/models`` say about one model."""

    name: str
    spec: str
    layers: list[DenseInfo]  # the hidden dense layers, then the output layer
    feature_maps: list[MapsInfo]
    parameters: int
    test_accuracy: float | None


@dataclass(frozen=True)
class QuantizedMaps:
    """One layer's feature maps for one drawing, as the page receives them: ``values`` (C·H·W,) int16 in
    −255..255, times ``scale``/255 the real values.  (``plotdata.FeatureMaps`` holds the real values.)"""

    layer: str
    after: list[str]
    shape: list[int]
    scale: float
    values: npt.NDArray[np.int16]


@dataclass(frozen=True)
class Reading:
    """What one model reads in one drawing: the answer of ``POST /api/predict``.

    ``activations`` holds one (units,) array per hidden dense layer; ``pixels`` (784,) is the 28×28
    image the network saw, row by row.
    """

    model: str
    label: int
    verdict: str  # "digit", "not sure" or "not a digit" (nnscratch.calibration)
    probabilities: Array  # calibrated by the model's temperature, if it has one
    activations: list[Array]
    feature_maps: list[QuantizedMaps]
    pixels: Array = field(repr=False)


class ServedModel:
    """A network with the name the web app knows it by, and the layer outputs its page shows."""

    def __init__(self, name: str, net: Network) -> None:
        if net.n_in != SIDE * SIDE:
            raise ValueError(
                f"the web app needs a model with {SIDE * SIDE} inputs (28×28 images); {name} has {net.n_in}"
            )
        self.name, self.net = name, net
        self.dense = dense_blocks(net)
        self.maps = map_blocks(net)

    def info(self) -> ModelInfo:
        accuracy = self.net.metadata.get("test_accuracy")
        hidden = [DenseInfo(units, activation) for units, activation, _ in self.dense]
        return ModelInfo(
            name=self.name,
            spec=self.net.spec,
            layers=[*hidden, DenseInfo(self.net.n_classes, "softmax")],
            feature_maps=[MapsInfo(token, after, list(shape)) for token, after, shape, _ in self.maps],
            parameters=self.net.n_params,
            test_accuracy=float(accuracy) if isinstance(accuracy, int | float) else None,
        )

    def explain(self, pixels: Array, method: str) -> Array:
        """The attribution of the answer's logit to each of the 784 pixels (``nnscratch.explain``)."""
        from nnscratch.explain import explain

        values = explain(self.net, pixels.reshape(1, -1), method)
        return np.ascontiguousarray(np.asarray(values, dtype=np.float32).reshape(-1))

    def attack(self, pixels: Array, epsilon: float, method: str, steps: int) -> Attacked:
        """The drawing attacked away from the model's answer, every pixel within ε (``nnscratch.attack``)."""
        from nnscratch.attack import attack

        row = pixels.reshape(1, -1)
        was = int(self.net.predict(row)[0])
        moved = attack(self.net, row, [was], epsilon, method, steps=steps)
        calibration = self.net.calibration or Calibration()
        logits = self.net.all_logits(moved)
        probabilities = calibration.probabilities(logits)[0]
        return Attacked(
            model=self.name,
            method=method,
            epsilon=epsilon,
            was=was,
            label=int(probabilities.argmax()),
            verdict=calibration.verdicts(logits)[0],
            probabilities=np.ascontiguousarray(probabilities, dtype=np.float32),
            pixels=np.ascontiguousarray(moved.reshape(-1), dtype=np.float32),
        )

    def read(self, pixels: Array) -> Reading:
        """The prediction for one drawing, pixels (784,) in [0, 1], with every layer output the page shows."""
        # NaN would reach the page as null: a network whose weights overflow answers with an error instead
        # (raised here, so NumPy's overflow warnings on the way would only add noise to the log)
        with np.errstate(over="ignore", invalid="ignore"):
            outputs = self.net.layer_outputs(pixels.reshape(1, -1))
            logits = self.net.check_output(outputs[-1], pixels)
        calibration = self.net.calibration or Calibration()
        probabilities = calibration.probabilities(logits)[0]
        outputs = [output[0] for output in outputs]
        return Reading(
            model=self.name,
            label=int(probabilities.argmax()),
            verdict=calibration.verdicts(logits)[0],
            probabilities=probabilities,
            activations=[np.ascontiguousarray(outputs[shown]) for _, _, shown in self.dense],  # as orjson needs
            feature_maps=[quantize(token, after, outputs[shown]) for token, after, _, shown in self.maps],
            pixels=np.ascontiguousarray(pixels),
        )


@dataclass(frozen=True)
class Attacked:
    """What ``POST /api/attack`` answers: the attacked drawing and what the model reads in it now."""

    model: str
    method: str
    epsilon: float
    was: int  # the label of the drawing as sent
    label: int
    verdict: str
    probabilities: Array
    pixels: Array


def quantize(layer: str, after: list[str], maps: Array) -> QuantizedMaps:
    """One layer's maps (C, H, W) as integers in −255..255 relative to their largest |value|."""
    scale = float(np.abs(maps).max())
    values = np.rint(maps * (LEVELS / scale)) if scale > 0 else np.zeros(maps.shape)
    # ravel copies into C order: the maps are a channels-first view of channels-last memory
    return QuantizedMaps(layer, after, list(maps.shape), scale, values.astype(np.int16).ravel())


def dense_blocks(net: Network) -> list[tuple[int, str, int]]:
    """(units, activation, index of the layer output to show) for every hidden dense layer of ``net``.

    A dense layer's units are shown after everything up to the next layer with weights: its own
    activation, or the batch norm and activation layers that follow it.
    """
    blocks = []
    weighted = net.weighted_layers
    for i, following in zip(weighted[:-1], weighted[1:], strict=True):
        shape = net.layers[i].output_shape or ()
        if len(shape) != 1:  # a convolution: its outputs are feature maps (``map_blocks``)
            continue
        # the last activation before the next weights: the dense layer's own, or an activation layer's after it
        last = [layer.activation for layer in net.layers[i:following] if layer.activation is not None][-1]
        blocks.append((shape[0], last.name, following - 1))
    return blocks


def map_blocks(net: Network) -> list[tuple[str, list[str], tuple[int, ...], int]]:
    """(token, tokens after it, shape (C, H, W), index of the layer output to show) for every
    convolution and max-pooling layer of ``net``."""
    blocks = []
    for i in net.map_layers:
        layer, shown = net.layers[i], i
        if layer.weighted:  # a convolution: shown after what follows it value by value, as the next layer reads it
            while shown + 1 < len(net.layers) and isinstance(net.layers[shown + 1], ELEMENTWISE):
                shown += 1
        after = [between.token for between in net.layers[i + 1 : shown + 1]]
        blocks.append((layer.token, after, layer.output_shape or (), shown))
    return blocks


def load_models(paths: Iterable[str | os.PathLike[str]]) -> list[ServedModel]:
    """The models in ``paths``, each named by its file's name; raises ModelFileError for two of one name."""
    models: list[ServedModel] = []
    for path in paths:
        name = Path(path).name
        if any(model.name == name for model in models):
            raise ModelFileError(
                f"two models are named {name}; the page and the API tell models apart by file name, "
                "so copy or rename one"
            )
        models.append(ServedModel(name, Network.load(path)))
    return models
