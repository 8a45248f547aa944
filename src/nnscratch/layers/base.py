"""The interface every layer keeps, and the table that lays all parameters out in one flat buffer.

Legend: m = batch size.  Arrays that flow between layers are either flat, (m, n), or images,
(m, H, W, C) channels-last.  Shapes outside the arrays (specs, ``input_shape``, ``output_shape``,
model files) are written as users write them: ``(n,)`` or ``(C, H, W)``.

Why channels-last: a convolution is one matrix product of the im2col columns (m·Ho·Wo, kh·kw·C) by
the filters (kh·kw·C, F), and its result is already (m, Ho, Wo, F) in memory, the layout the next
layer reads.  Channels-first would need a transpose of every feature map, forward and backward.
Batch norm per channel is then batch norm per unit of the (m·H·W, C) view, with no copy.

A layer

* states its output shape from its input shape (:meth:`Layer.build`, which refuses an input it
  cannot take with one line naming the layer's token and the shape it met);
* states the shapes of its trainable parameters (:meth:`Layer.param_shapes`) and of its
  non-trained state (:meth:`Layer.state_shapes`, batch norm's running statistics);
* computes ``forward(X, training, rng) -> (Y, cache)`` and ``backward(dY, cache, grads) -> dX``,
  writing its parameter gradients into ``grads``, views of the network's flat gradient buffer.

The network works out one :class:`Layout` from those shapes when it is built; the flat parameter
buffer, the gradient views, the optimisers, checkpoints and model files all read that table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from nnscratch.errors import SpecError
from nnscratch.parallel import Threads
from nnscratch.parallel import pool as pool_of

Array = npt.NDArray[np.floating]
Shape = tuple[int, ...]
Views = dict[str, Array]


def shape_text(shape: Shape) -> str:
    """``(1, 28, 28)`` as ``1x28x28``, ``(784,)`` as ``784``: the way specs write shapes."""
    return "x".join(map(str, shape))


class Layer:
    """Base class of every layer.  Subclasses set ``kind`` and override what applies to them.

    ``pool`` is the thread pool the layer splits its large operations over (see ``nnscratch.parallel``);
    the network sets it, and a layer on its own uses one thread.
    """

    kind: ClassVar[str]
    pool: Threads = pool_of(1)

    def __init__(self) -> None:
        self.input_shape: Shape | None = None
        self.output_shape: Shape | None = None
        self.params: Views = {}  # views into the network's flat parameter buffer, once bound
        self.state: Views = {}  # views into its non-trained state buffer

    # -- description --------------------------------------------------------------------------

    @property
    def token(self) -> str:
        """How this layer is written in a spec string, e.g. ``conv32k3`` or ``128:relu``."""
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        """A JSON-ready description (the model file's record of this layer); ``kind`` names the class.

        Every other key is an argument of the constructor, so ``from_config(config())`` rebuilds it.
        """
        return {"kind": self.kind}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layer:
        """The layer :meth:`config` described (raises SpecError or TypeError if it is malformed)."""
        return cls(**{key: value for key, value in config.items() if key != "kind"})

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.token!r})"

    # -- shapes -------------------------------------------------------------------------------

    def build(self, input_shape: Shape) -> Shape:
        """Record ``input_shape`` and return the output shape; raises SpecError if the input does not fit."""
        self.input_shape = tuple(input_shape)
        self.output_shape = self.output_shape_for(self.input_shape)
        return self.output_shape

    def output_shape_for(self, input_shape: Shape) -> Shape:
        return input_shape

    def refuse(self, input_shape: Shape, reason: str) -> SpecError:
        """The one-line error for an input this layer cannot take."""
        return SpecError(f"{self.token!r} cannot take the {shape_text(input_shape)} input it meets: {reason}")

    def param_shapes(self) -> dict[str, Shape]:
        """Trainable parameters, in the order they are laid out in the flat buffer."""
        return {}

    def state_shapes(self) -> dict[str, Shape]:
        """Non-trained state (never seen by an optimiser, kept by checkpoints and model files)."""
        return {}

    decayed: ClassVar[tuple[str, ...]] = ()
    """Names of the parameters an L2 penalty applies to (weights, not biases or scales)."""

    def views(self, segment: Array) -> Views:
        """Named views into ``segment``, this layer's part of a flat buffer laid out by :meth:`param_shapes`.

        Used for the parameters and for every gradient buffer; a layer may add views of its own (a
        convolution adds ``Wb``, its weights and bias as one matrix).
        """
        return _split(segment, self.param_shapes())

    def state_views(self, segment: Array) -> Views:
        """Named views into ``segment``, this layer's part of the state buffer."""
        return _split(segment, self.state_shapes())

    def bind(self, params: Views, state: Views) -> None:
        """Take views of the network's buffers as this layer's parameters and state."""
        self.params, self.state = params, state

    def initialize(self, rng: np.random.Generator) -> None:
        """Fill the bound parameters with their initial values."""

    def reset_state(self) -> None:
        """Set the bound state to its starting values (a network built without given state)."""

    # -- computation --------------------------------------------------------------------------

    def forward(self, X: Array, *, training: bool = False, rng: np.random.Generator | None = None) -> tuple[Array, Any]:
        """Y from X, and what :meth:`backward` needs.  ``rng`` draws dropout masks (None: no dropout)."""
        raise NotImplementedError

    def backward(self, dY: Array, cache: Any, grads: Views, *, need_dX: bool = True) -> Array | None:
        """dX from dY (``dY`` may be overwritten); parameter gradients are written into ``grads``.

        ``need_dX=False`` lets a layer skip dX when nothing below it has parameters.
        """
        raise NotImplementedError

    def update_state(self, cache: Any) -> None:
        """After a training step's forward pass: fold the batch into the running state (batch norm)."""

    def scratch(self, name: str, shape: tuple[int, ...], dtype: npt.DTypeLike, *, fill: float | None = None) -> Array:
        """A buffer of ``shape`` kept by this layer from one training step to the next.

        Training writes every large intermediate into such buffers instead of fresh arrays: a fresh
        array of several megabytes costs its page faults again every batch, which measured 40% of a
        convolutional network's training step (43 ms against 26 ms per batch of 128).  The price is
        that a training-mode forward's outputs and cache, and a backward's dX, are only valid until
        the same layer's next training step; prediction never uses these buffers.  ``fill`` sets a
        new buffer once (a padding border, a column of ones) for parts that later steps never write.
        """
        buffers: dict[tuple[Any, ...], Array] = self.__dict__.setdefault("_scratch", {})
        key = (name, shape, dtype)
        array = buffers.get(key)
        if array is None:
            if len(buffers) > 32:  # many batch sizes: keep memory bounded
                buffers.clear()
            array = buffers[key] = np.empty(shape, dtype=dtype)
            if fill is not None:
                array[...] = fill
        return array

    # -- standalone use -----------------------------------------------------------------------

    def materialize(
        self, input_shape: Shape, *, seed: int | np.random.Generator | None = 0, dtype: npt.DTypeLike = "float64"
    ) -> Layer:
        """Build, allocate and initialise this layer on its own (outside a network), e.g. for a test.

        Returns ``self``.  Its parameters live in one flat array, ``self.flat``.
        """
        self.build(input_shape)
        self.flat = np.zeros(Layout.of([self], "params").size, dtype=dtype)
        self.state_flat = np.zeros(Layout.of([self], "state").size, dtype=dtype)
        self.bind(self.views(self.flat), self.state_views(self.state_flat))
        self.initialize(np.random.default_rng(seed))
        self.reset_state()
        return self


def fresh(name: str, shape: tuple[int, ...], dtype: npt.DTypeLike, *, fill: float | None = None) -> Array:
    """A new array: what prediction uses where training takes ``Layer.scratch`` (same signature)."""
    return np.empty(shape, dtype=dtype) if fill is None else np.full(shape, fill, dtype=dtype)


def _split(segment: Array, shapes: dict[str, Shape]) -> Views:
    views, offset = {}, 0
    for name, shape in shapes.items():
        size = math.prod(shape)
        views[name] = segment[offset : offset + size].reshape(shape)
        offset += size
    return views


@dataclass(frozen=True)
class Slot:
    """One array in a flat buffer: which layer owns it, its name and shape, and where it starts."""

    layer: int
    name: str
    shape: Shape
    offset: int

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def key(self) -> str:
        """The array's name in model files and checkpoints, e.g. ``0.W``."""
        return f"{self.layer}.{self.name}"


@dataclass(frozen=True)
class Layout:
    """Where every array of every layer lives in one flat buffer, worked out once from the layers' shapes.

    The slots are in layer order, and within a layer in the order the layer lists its shapes, so
    each layer's arrays form one contiguous segment (``segments``).
    """

    kind: str  # "params" (trained) or "state" (not trained)
    slots: tuple[Slot, ...]
    segments: tuple[tuple[int, int], ...]  # (start, stop) of each layer's part
    size: int

    @classmethod
    def of(cls, layers: list[Layer], kind: str) -> Layout:
        """The layout of the layers' parameters (``kind="params"``) or of their state (``"state"``)."""
        slots, segments, offset = [], [], 0
        for i, layer in enumerate(layers):
            start = offset
            shapes = layer.param_shapes() if kind == "params" else layer.state_shapes()
            for name, shape in shapes.items():
                slots.append(Slot(i, name, tuple(shape), offset))
                offset += math.prod(shape)
            segments.append((start, offset))
        return cls(kind, tuple(slots), tuple(segments), offset)

    def split(self, flat: Array, layers: list[Layer]) -> list[Views]:
        """Per layer, its named views into ``flat`` (a buffer of ``size`` values laid out by this table)."""
        method = "views" if self.kind == "params" else "state_views"
        return [getattr(layer, method)(flat[a:b]) for layer, (a, b) in zip(layers, self.segments, strict=True)]

    def arrays(self, flat: Array) -> dict[str, Array]:
        """Every slot's view into ``flat``, keyed ``"layer.name"``."""
        return {slot.key: flat[slot.offset : slot.offset + slot.size].reshape(slot.shape) for slot in self.slots}
