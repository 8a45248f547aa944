"""The spec grammar: a network written as one string, and the errors that name what does not fit.

Tokens are joined by ``-``:

* the input: ``CxHxW`` for images such as ``1x28x28``, or a number for flat inputs (``784``);
* ``conv{F}k{K}`` with optional ``s{S}`` (stride) and ``p{P}`` (zero padding): ``conv32k3``,
  ``conv32k3p1``, ``conv16k5s2p2``;
* ``maxpool{K}`` (window and stride K); ``bn`` (batch norm); ``flatten``; ``dropout{P}`` (``dropout0.25``);
  ``alphadropout{P}`` (alpha-dropout, for SELU networks);
* an activation name alone is a layer: ``relu``, ``sigmoid``, ``tanh``, ``selu``, ``softmax``, ...;
* a dense layer is ``UNITS:ACTIVATION[:INIT]`` (``128:relu``) or ``UNITS``.  A bare ``UNITS`` is ReLU,
  as in ``784-128-10``, unless batch norm or an activation follows it (``784-256-bn-relu-10``), when
  it is linear and that layer supplies the non-linearity;
* the last token is the output layer, ``10:softmax`` (or ``10``): a dense layer whose outputs are the
  logits that the loss turns into probabilities.

``flatten`` is implied before the first dense layer that meets an image.  Example:
``1x28x28-conv32k3-relu-maxpool2-conv64k3-relu-maxpool2-flatten-dropout0.5-10:softmax``.

Parsing checks the words: plain ASCII only (digits are 0-9: Python's ``int`` would also read ``３２``),
no spaces or line breaks, and every number at most ``MAX_SIZE``; an error quotes at most the first
40 characters of a token.  Building the network (``Network``) checks that every layer fits the shape
it meets, with an error naming the token and that shape, and that the whole fits in memory.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from nnscratch.activations import ACTIVATIONS
from nnscratch.errors import SpecError, check_name
from nnscratch.initializers import INITIALIZERS
from nnscratch.layers import LAYERS, ActivationLayer, BatchNorm, Dense, Flatten, Layer
from nnscratch.layers.base import MAX_SIZE, Shape, echo, shape_text, spec_int

EXAMPLES = "784-128:relu-10:softmax or 1x28x28-conv32k3-relu-maxpool2-10:softmax"
# The layers a spec may hold, from the registry of layer kinds: "conv{F}k{K}[s{S}][p{P}], maxpool{K}, ..."
_WRITTEN = [cls.grammar for cls in LAYERS.values()]
GRAMMAR = f"{', '.join(_WRITTEN[:-1])} or {_WRITTEN[-1]}"


@dataclass(frozen=True)
class DenseSpec:
    """One dense layer of an MLP: its width, activation name and (optional) initialiser name.

    A list of them is an MLP's hidden layers (``--hidden 32:relu,64:tanh``) and the layers of a format-1
    model file; any other network is a spec (``parse_spec``).
    """

    units: int
    activation: str
    init: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.units, int) or not 1 <= self.units <= MAX_SIZE:
            shown = "a larger number" if isinstance(self.units, int) and self.units > 0 else echo(repr(self.units))
            raise SpecError(f"a layer needs a positive number of units, at most {MAX_SIZE:,}; got {shown}")
        check_name(ACTIVATIONS, self.activation, "activation")
        if self.init is not None:
            check_name(INITIALIZERS, self.init, "initialiser")

    def __str__(self) -> str:
        return f"{self.units}:{self.activation}" + (f":{self.init}" if self.init else "")

    def layer(self) -> Dense:
        """The dense layer this describes.  As the output layer (``softmax``) it produces logits."""
        return Dense(self.units, self.activation, init=self.init)


LayerSpec = DenseSpec  # its earlier name, kept for code that imports it

# [0-9], not \d: \d and int() also read other scripts' digits, such as the fullwidth ３２.
_DENSE = re.compile(r"^([0-9]+)(?::([A-Za-z_\-]+))?(?::([A-Za-z_]+))?\Z")
_INPUT = re.compile(r"^(?:([0-9]+)x([0-9]+)x([0-9]+)|([0-9]+))\Z")
_NUMBER = re.compile(r"^[0-9]")
# Anything but printable ASCII (spaces, tabs, line breaks, control and non-ASCII characters); a
# --hidden list may have spaces after its commas.
_FOREIGN = re.compile(r"[^\x21-\x7e]")
_FOREIGN_BUT_SPACE = re.compile(r"[^\x20-\x7e]")


def check_text(text: str, what: str, *, spaces: bool = False) -> None:
    """Refuse ``text`` (``what``, e.g. "network spec") if it holds anything but printable ASCII.

    ``spaces`` lets plain spaces through (a --hidden list such as ``32:relu, 64:tanh``).
    """
    found = (_FOREIGN_BUT_SPACE if spaces else _FOREIGN).search(text)
    if found:
        char = found.group()
        raise SpecError(
            f"the {what} {echo(text)} holds {char!r} (U+{ord(char):04X}) at character {found.start() + 1}; "
            f"write it in plain ASCII, digits 0-9, without {'line breaks' if spaces else 'spaces or line breaks'}"
        )


def parse_layer(text: str, *, default_activation: str = "relu") -> DenseSpec:
    """Parse a dense layer ``UNITS[:ACTIVATION[:INIT]]``, e.g. ``"64:selu"`` or ``"32:relu:uniform"``."""
    check_text(text, "layer", spaces=True)
    text = text.strip(" ")
    match = _DENSE.match(text)
    if not match:
        raise SpecError(f"cannot read layer {echo(text)}; write UNITS:ACTIVATION such as 64:relu")
    units, activation, init = match.groups()
    activation = (activation or default_activation).lower().replace("-", "_")
    # 0 is let through to DenseSpec, which says that a layer needs a positive number of units
    n_units = spec_int(units, "number of units", text) if units.strip("0") else 0
    return DenseSpec(n_units, activation, init.lower() if init else None)


def parse_hidden(text: str) -> list[DenseSpec]:
    """Parse the command line's hidden-layer list, e.g. ``"32:relu,32:sigmoid,64:selu,64:tanh"``.

    An empty string means no hidden layer (softmax regression).
    """
    check_text(text, "list of hidden layers", spaces=True)
    if not text.strip(" "):
        return []
    return [parse_layer(part) for part in text.split(",")]


def parse_input(token: str) -> Shape:
    """``"784"`` → (784,); ``"1x28x28"`` → (1, 28, 28) (channels, height, width)."""
    match = _INPUT.match(token)
    if not match:
        raise SpecError(f"cannot read the input {echo(token)}; write a number such as 784 or CxHxW such as 1x28x28")
    digits = [d for d in match.groups() if d is not None]
    if any(not d.strip("0") for d in digits):
        raise SpecError(f"the input size must be positive, got {echo(token)}")
    return tuple(spec_int(d, "input size", token) for d in digits)


def parse_token(token: str) -> Layer | None:
    """The layer a token other than a dense layer describes, or None if it is not one of them: each kind
    of layer (``LAYERS``) reads its own tokens (``Layer.parse``)."""
    word = token.strip().lower()
    for cls in LAYERS.values():
        layer = cls.parse(word)
        if layer is not None:
            return layer
    return None


def parse_spec(spec: str) -> tuple[Shape, list[Layer]]:
    """Parse a whole spec into (input shape, layers), the output layer last; see the module docstring."""
    check_text(spec, "network spec")
    tokens = spec.split("-")
    if len(tokens) < 2 or not _INPUT.match(tokens[0]):
        raise SpecError(
            f"cannot read network spec {echo(spec)}; write INPUT-LAYER-...-CLASSES:softmax such as {EXAMPLES}"
        )
    input_shape = parse_input(tokens[0])
    *hidden, last = tokens[1:]
    layers: list[Layer] = []
    image = len(input_shape) == 3
    for i, token in enumerate(hidden):
        layer = parse_token(token)
        if layer is None:
            if not _NUMBER.match(token):
                raise SpecError(f"unknown layer {echo(token)} in {echo(spec)}; write {GRAMMAR}")
            following = parse_token(hidden[i + 1]) if i + 1 < len(hidden) else None
            linear = isinstance(following, ActivationLayer | BatchNorm)
            layer = parse_layer(token, default_activation="identity" if linear else "relu").layer()
        if isinstance(layer, Dense) and image:
            layers.append(Flatten())
        image = image and not isinstance(layer, Flatten | Dense)
        layers.append(layer)
    if parse_token(last) is not None or not _NUMBER.match(last):
        raise SpecError(
            f"the network must end in its dense output layer, such as 10:softmax; {echo(spec)} ends in {echo(last)}"
        )
    output = parse_layer(last, default_activation="softmax")
    check_output_activation(output.activation)
    if image:
        layers.append(Flatten())
    layers.append(output_layer(output.units, init=output.init))
    return input_shape, layers


def square_side(n_features: int) -> int | None:
    """The side of the square image that ``n_features`` flat values are (28 for MNIST's 784), else None."""
    side = math.isqrt(n_features)
    return side if side * side == n_features else None


def compose_spec(inputs: int | Shape, middle: str | Sequence[str], n_classes: int, *, image: bool = False) -> str:
    """The spec of a network on ``inputs`` (784, or a shape such as (1, 28, 28)) whose hidden layers are
    ``middle`` (tokens, or tokens already joined by ``-``; empty for none), ending in ``n_classes`` outputs.

    ``image=True`` reads flat ``inputs`` as one square channel (784 as 1x28x28), as a convnet needs;
    a number of values that is no square is refused.
    """
    if image and isinstance(inputs, int):
        side = square_side(inputs)
        if side is None:
            raise SpecError(
                f"a convolutional network needs square images, but the data has {inputs} values per image; "
                "write the network with --spec"
            )
        inputs = (1, side, side)
    head = str(inputs) if isinstance(inputs, int) else shape_text(tuple(inputs))
    body = middle if isinstance(middle, str) else "-".join(middle)
    return "-".join(part for part in (head, body.strip("-"), f"{n_classes}:softmax") if part)


def check_fits(
    input_shape: Shape, layers: Sequence[Layer], n_features: int, n_classes: int, *, exact_classes: bool = True
) -> None:
    """Refuse (SpecError) a parsed network whose input is not ``n_features`` values per example, or whose
    output has not ``n_classes`` classes (with ``exact_classes=False``: fewer than the labels need)."""
    n_in, classes = math.prod(input_shape), dense_output(layers).units
    if n_in != n_features:
        side = square_side(n_features)
        square = f" or 1x{side}x{side}" if side else ""
        raise SpecError(
            f"the network's input {shape_text(input_shape)} ({n_in} values) does not match the data's "
            f"{n_features} values per image; start the spec with {n_features}{square}"
        )
    if classes != n_classes if exact_classes else classes < n_classes:
        data = f"the data has {n_classes}" if exact_classes else f"the labels go up to {n_classes - 1}"
        raise SpecError(f"the network ends in {classes} classes but {data}; end the spec in {n_classes}:softmax")


def dense_output(layers: Sequence[Layer]) -> Dense:
    """The output layer of a stack of layers: the last, which must be dense (SpecError otherwise)."""
    if not layers:
        raise SpecError("a network needs at least an output layer")
    output = layers[-1]
    if not isinstance(output, Dense):
        raise SpecError(f"the last layer must be the dense output layer, such as 10:softmax, not {output.token!r}")
    return output


def check_output_activation(name: str, *, logits: bool = False) -> None:
    """Refuse an output activation other than softmax: the network is trained with softmax cross-entropy.

    ``logits=True`` also accepts identity, the built output layer's (the loss applies the softmax).
    """
    if name != "softmax" and not (logits and name == "identity"):
        raise SpecError(f"the output layer must use softmax (it is trained with cross-entropy), not {echo(name)}")


def output_layer(classes: int, *, init: str | None = None) -> Dense:
    """The output layer for ``classes`` classes: dense, no activation; the loss applies the softmax."""
    return Dense(classes, "identity", init=init)


def format_spec(input_shape: Shape, layers: list[Layer]) -> str:
    """The spec string of a network, the inverse of :func:`parse_spec`."""
    tokens = [shape_text(input_shape)]
    for i, layer in enumerate(layers[:-1]):
        following = layers[i + 1]
        if isinstance(layer, Dense) and layer.activation.name == "identity":
            # bare UNITS reads as linear exactly when batch norm or an activation follows
            linear = isinstance(following, ActivationLayer | BatchNorm)
            tokens.append(str(layer.units) if linear else layer.token)
        else:
            tokens.append(layer.token)
    tokens.append(f"{dense_output(layers).units}:softmax")
    return "-".join(tokens)
