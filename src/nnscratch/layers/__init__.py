"""The layers a network is a stack of, one module per kind, forward beside backward.

Every layer keeps the interface of :class:`~nnscratch.layers.base.Layer`; ``LAYERS`` finds a kind
by the name model files record, and the spec parser asks each kind whether a token is one of its layers
(``Layer.parse``).
"""

from nnscratch.layers.activation import ActivationLayer
from nnscratch.layers.base import Layer, Layout, Slot, shape_text
from nnscratch.layers.batchnorm import BatchNorm
from nnscratch.layers.conv2d import Conv2D
from nnscratch.layers.dense import Dense, DenseCache
from nnscratch.layers.dropout import AlphaDropout, Dropout
from nnscratch.layers.flatten import Flatten
from nnscratch.layers.pool import MaxPool2D

# Every kind, in the order the spec grammar lists them (spec.GRAMMAR).
LAYERS: dict[str, type[Layer]] = {
    cls.kind: cls for cls in (Conv2D, MaxPool2D, BatchNorm, Flatten, Dropout, AlphaDropout, ActivationLayer, Dense)
}

__all__ = [
    "LAYERS",
    "ActivationLayer",
    "AlphaDropout",
    "BatchNorm",
    "Conv2D",
    "Dense",
    "DenseCache",
    "Dropout",
    "Flatten",
    "Layer",
    "Layout",
    "MaxPool2D",
    "Slot",
    "shape_text",
]
