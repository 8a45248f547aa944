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
* says what it is to the code around it: the activation it applies (:attr:`Layer.activation`, None
  for none) and whether it has weights (:attr:`Layer.weighted`), so that nothing outside the layers
  needs to ask for a layer's class;
* computes ``forward(X, training, rng) -> (Y, cache)`` and ``backward(dY, cache, grads) -> dX``,
  writing its parameter gradients into ``grads``, views of the network's flat gradient buffer.

The network works out one :class:`Layout` from those shapes when it is built; the flat parameter
buffer, the gradient views, the optimisers, checkpoints and model files all read that table.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from nnscratch.activations import Activation
from nnscratch.errors import CapacityError, SpecError
from nnscratch.parallel import Threads, thread_pool

Array = npt.NDArray[np.floating]
Shape = tuple[int, ...]
Views = dict[str, Array]


# The largest number a spec or a model file may give for a size, a count, a stride or a padding: ONNX,
# BLAS and most array libraries index with 32-bit integers somewhere, and no layer that fits in memory
# needs more.  (A stride of 10^20 used to train, and only ``export`` failed.)
MAX_SIZE = 2**31 - 1
ECHO_CHARS = 40  # an error message quotes at most this much of a token


def shape_text(shape: Shape) -> str:
    """``(1, 28, 28)`` as ``1x28x28``, ``(784,)`` as ``784``: the way specs write shapes."""
    return "x".join(map(str, shape))


def echo(text: str, limit: int = ECHO_CHARS) -> str:
    """``text`` quoted for an error message, cut to ``limit`` characters and ``…``: a token may be any length."""
    return repr(text if len(text) <= limit else text[:limit] + "…")


def check_size(value: Any, what: str, *, low: int = 1, high: int = MAX_SIZE) -> int:
    """``value`` if it is an int from ``low`` to ``high``; else SpecError naming ``what`` ("a convolution's stride")."""
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        # a huge int has no repr (Python refuses to print more than 4,300 digits)
        huge = isinstance(value, int) and value.bit_length() > 64
        shown = f"a number above {high:,}" if huge else echo(repr(value))
        raise SpecError(f"{what} must be an integer from {low} to {high:,}, got {shown}")
    return value


def spec_int(digits: str, what: str, token: str, *, low: int = 1, high: int = MAX_SIZE) -> int:
    """The ASCII ``digits`` that ``token`` gives for ``what`` as an int from ``low`` to ``high``.

    Raises SpecError naming the token.  The digits are read only when there are few enough of them:
    ``int()`` of 5,000 digits raises a ValueError of its own, and of fewer, takes time for nothing.
    """
    significant = digits.lstrip("0") or "0"
    value = int(significant) if len(significant) <= len(str(high)) else high + 1
    if not low <= value <= high:
        raise SpecError(f"{echo(token)}: the {what} must be from {low} to {high:,}, got {echo(digits)}")
    return value


class Layer:
    """Base class of every layer.  Subclasses set ``kind`` and override what applies to them.

    ``pool`` is the thread pool the layer splits its large operations over (see ``nnscratch.parallel``);
    the network sets it, and a layer on its own uses one thread.
    """

    kind: ClassVar[str]
    pool: Threads = thread_pool(1)

    activation: Activation | None = None
    """The activation this layer applies to its output: a dense layer's own, or an activation layer's
    (the identity counts: it is the output layer's); None for a layer that applies none."""

    weighted: ClassVar[bool] = False
    """True for a layer with weights, its parameter ``W`` (dense and convolutional layers): what L2,
    L1 and AdamW's weight decay apply to (not biases, nor batch norm's γ and β), what an initialiser
    draws from fan-in and fan-out, and what the diagnostics report ‖dW‖ of."""

    init: str | None = None
    """A weighted layer's initialiser; None lets the network choose the one that suits the activation it feeds."""

    def __init__(self) -> None:
        self.input_shape: Shape | None = None
        self.output_shape: Shape | None = None
        self.params: Views = {}  # views into the network's flat parameter buffer, once bound
        self.state: Views = {}  # views into its non-trained state buffer

    flat: Array
    """The parameters of a layer made on its own with :meth:`materialize` (in a network: ``net.params``)."""

    grammar: ClassVar[str]
    """How a spec writes this kind of layer, for the grammar a message lists, e.g. ``maxpool{K}``."""

    # -- description --------------------------------------------------------------------------

    @classmethod
    def parse(cls, token: str) -> Layer | None:
        """The layer of this kind a spec's ``token`` (lower case) writes, or None if it writes another kind."""
        return None

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

    def example_values(self) -> int:
        """Values one example makes this layer allocate in a forward pass while predicting: by default
        its output; more where it needs scratch (a convolution's im2col columns), 0 where it returns a view.

        :class:`Footprint` adds these up to refuse a network that cannot fit before any array exists.
        """
        assert self.output_shape is not None, "the layer is not built yet"
        return math.prod(self.output_shape)

    def widest_values(self) -> int:
        """Values per example of the largest single array this layer makes while predicting: its output
        by default (a convolution's im2col columns where they are more).  Prediction sizes its chunks
        of rows by the widest layer's."""
        assert self.output_shape is not None, "the layer is not built yet"
        return math.prod(self.output_shape)

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

    def forward(
        self, X: Array, *, training: bool = False, rng: np.random.Generator | None = None, keep: bool = False
    ) -> tuple[Array, Any]:
        """Y from X, and what :meth:`backward` needs.  ``rng`` draws dropout masks (None: no dropout).

        ``training`` selects batch statistics and dropout (and buffers reused from step to step);
        predicting keeps only what the output needs, unless ``keep`` asks for what :meth:`backward` needs
        too: the gradient of an answer with respect to the input, in prediction mode
        (``Network.input_gradient``)."""
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

    def view(self, flat: Array) -> Array:
        """This array's values in ``flat`` (a buffer laid out by the slot's table), as a flat view (size,)."""
        return flat[self.offset : self.offset + self.size]


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
        return {slot.key: slot.view(flat).reshape(slot.shape) for slot in self.slots}


@functools.cache
def available_memory() -> int | None:
    """Bytes of memory this process may use: the machine's physical memory, or a smaller container
    (cgroup) limit; None where the system does not say (then nothing is refused in advance).

    Read once per process: reading it took 50 µs, half of what predicting one row costs."""
    try:
        total: int | None = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows) or no such name
        total = None
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit():  # "max" (cgroup v2) means no limit; v1 writes a huge number instead
            total = int(text) if total is None else min(total, int(text))
        break
    return total if total is not None and total > 0 else None


def size_text(n_bytes: float) -> str:
    """A number of bytes for people: ``27.1 GB`` (decimal units, as ``free -h --si`` and disk makers count)."""
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if n_bytes < 1000 or unit == "TB":
            return f"{n_bytes:,.0f} {unit}" if unit == "bytes" else f"{n_bytes:,.1f} {unit}"
        n_bytes /= 1000
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class Footprint:
    """The memory a network needs, worked out from its built layers' shapes before any array exists.

    * ``param_bytes``: the flat parameter and state buffers (``n_params`` trainable values);
    * ``init_bytes``: the largest layer's initial weights, which an initialiser draws in float64
      before they are copied into the buffer;
    * ``example_bytes``: one example's forward pass while predicting: its input and every layer's
      :meth:`Layer.example_values` together, since the caches keep them all until the pass ends.

    ``heaviest`` names the layer with the most parameters and ``widest`` the one that allocates the
    most per example, for the message that refuses a network.
    """

    n_params: int
    param_bytes: int
    init_bytes: int
    example_bytes: int
    heaviest: str
    heaviest_bytes: int
    widest: str
    widest_bytes: int
    widest_shape: Shape

    @classmethod
    def of(cls, input_shape: Shape, layers: list[Layer], dtype: npt.DTypeLike) -> Footprint:
        """The footprint of ``layers``, already built on ``input_shape``, with parameters of ``dtype``."""
        itemsize = np.dtype(dtype).itemsize
        sizes = [sum(math.prod(shape) for shape in layer.param_shapes().values()) for layer in layers]
        state = sum(math.prod(shape) for layer in layers for shape in layer.state_shapes().values())
        values = [layer.example_values() for layer in layers]
        heavy = max(range(len(layers)), key=sizes.__getitem__)
        wide = max(range(len(layers)), key=values.__getitem__)

        def name(i: int) -> str:  # the output layer's token says identity: the loss applies its softmax
            token = layers[i].token
            return f"the output layer {echo(token.split(':')[0] + ':softmax')}" if i == len(layers) - 1 else echo(token)

        # the shape the heaviest layer meets, as the layer before an implied flatten made it
        meets = layers[heavy - 1].input_shape if heavy and layers[heavy - 1].kind == "flatten" else None
        meets = meets or layers[heavy].input_shape or input_shape

        return cls(
            n_params=sum(sizes),
            param_bytes=(sum(sizes) + state) * itemsize,
            init_bytes=8 * sizes[heavy],
            example_bytes=(math.prod(input_shape) + sum(values)) * itemsize,
            heaviest=f"{name(heavy)} on the {shape_text(meets)} input it meets",
            heaviest_bytes=sizes[heavy] * itemsize,
            widest=name(wide),
            widest_bytes=values[wide] * itemsize,
            widest_shape=tuple(layers[wide].output_shape or ()),
        )

    def check(self, *, initialize: bool = True, memory: int | None = None) -> None:
        """Raise CapacityError if the parameters (drawn, with ``initialize``) and one example's forward pass
        do not fit in ``memory`` bytes (default: :func:`available_memory`)."""
        memory = available_memory() if memory is None else memory
        if memory is None:
            return
        have = f"this machine has {size_text(memory)} of memory"
        weights = self.param_bytes + (self.init_bytes if initialize else 0)
        activations = (
            f"one example needs {size_text(self.example_bytes)} in a forward pass, {size_text(self.widest_bytes)} "
            f"of them in {self.widest} (output {shape_text(self.widest_shape)})"
        )
        advice = "choose fewer filters, less padding, a larger stride or a smaller input, or pool sooner"
        if self.example_bytes > memory:  # first: a huge image makes the dense weights after it huge too
            raise CapacityError(f"{activations}; {have}; {advice}")
        if weights > memory:
            drawn = f" ({size_text(self.init_bytes)} more while they are drawn)" if initialize else ""
            raise CapacityError(
                f"the network's {self.n_params:,} parameters need {size_text(self.param_bytes)}{drawn}, "
                f"{size_text(self.heaviest_bytes)} of them in {self.heaviest}; {have}; "
                "choose fewer filters or units, or pool before the dense layers"
            )
        if self.param_bytes + self.example_bytes > memory:
            raise CapacityError(f"{activations}, beside {size_text(self.param_bytes)} of parameters; {have}; {advice}")

    def check_batch(self, batch_size: int, *, memory: int | None = None, smaller: str = "a smaller batch size") -> None:
        """Raise CapacityError if training on batches of ``batch_size`` cannot fit in ``memory`` bytes;
        the message advises ``smaller`` (how the caller's user chooses a smaller batch).

        A rough bound, on purpose on the safe side: four copies of the parameters (the weights, their
        gradient and Adam's two moments), and three times one example's forward pass per example
        (the training buffers, the caches, and the gradients of the activations on the way back).
        """
        memory = available_memory() if memory is None else memory
        if memory is None:
            return
        weights, batch = 4 * self.param_bytes, 3 * batch_size * self.example_bytes
        if weights + batch > memory:
            raise CapacityError(
                f"training on batches of {batch_size:,} needs about {size_text(weights + batch)}: "
                f"{size_text(weights)} for the parameters, their gradient and the optimiser's state, and "
                f"{size_text(batch)} for the activations; this machine has {size_text(memory)} of memory; "
                f"choose {smaller} or a smaller network"
            )

    def rows_that_fit(self, memory: int | None = None) -> int:
        """How many examples one prediction chunk may hold: half the memory the parameters leave, at least one."""
        memory = available_memory() if memory is None else memory
        if memory is None:
            return MAX_SIZE
        return max(1, (memory - self.param_bytes) // 2 // max(1, self.example_bytes))
