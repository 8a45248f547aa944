"""The network: an ordered stack of layers ending in logits, trained with softmax cross-entropy.

Legend: m = batch size, k = classes.  Inputs arrive as flat rows (m, n) or, for a network on images,
also as (m, C, H, W) or (m, H, W); inside, images are channels-last (m, H, W, C) (see
``nnscratch.layers.base`` for why).

One :class:`~nnscratch.layers.Layout`, worked out when the network is built, places every trainable
array in the flat buffer ``Network.params`` (each layer's arrays are views into it) and every piece
of non-trained state (batch norm's running statistics) in ``Network.state``.  Gradients use the
parameter layout, so an optimiser updates the whole network with a few vector operations and never
sees the state.

The last layer is dense and produces logits Z (m, k); the loss owns the softmax (``losses``), so
no other module needs to know the output is special.

The trainer's ``dropout`` option is carried out by layer objects too: for a training step the
network runs a :class:`Stack`, its own layers with a Dropout layer (AlphaDropout after SELU) after
each hidden dense layer.  Those layers exist only while training: the spec, the model file and
prediction never see them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from nnscratch.activations import Activation, get_activation
from nnscratch.calibration import Calibration
from nnscratch.errors import CapacityError, ModelFileError, NonFiniteOutputError, SpecError
from nnscratch.io import Expected, load_npz, save_npz
from nnscratch.layers import (
    LAYERS,
    ActivationLayer,
    AlphaDropout,
    Conv2D,
    Dense,
    Dropout,
    Layer,
    Layout,
    MaxPool2D,
    Slot,
)
from nnscratch.layers.base import MAX_SIZE, Footprint, Shape, Views, echo, shape_text, size_text
from nnscratch.losses import l1_penalty, l2_penalty, softmax, softmax_cross_entropy
from nnscratch.parallel import default_threads, single_threaded_blas, thread_pool
from nnscratch.spec import (
    DenseSpec,
    check_output_activation,
    dense_output,
    format_spec,
    output_layer,
    parse_hidden,
    parse_layer,
    parse_spec,
)
from nnscratch.tables import TableData

Array = npt.NDArray[np.floating]
Grads = list[tuple[Array, ...]]

FORMAT_NAME = "nnscratch-model"
FORMAT_VERSION = 2  # 1: dense layers only (W0, b0, ...); 2: any layer stack ("0.W", "3.running_mean", ...)
DTYPES = ("float32", "float64")
PREDICT_VALUES = 1 << 24  # values the widest layer may hold at once while predicting in chunks
MAX_PREDICT_ROWS = 4096

__all__ = ["DenseSpec", "Network", "parse_hidden", "parse_layer", "parse_spec"]


class Network:
    """A stack of layers: ``layers[-1]`` is the dense output layer, whose outputs are the logits.

    Build one with :meth:`from_spec` (any spec), :meth:`from_dense` (an MLP from ``DenseSpec``\\ s) or
    directly from layer objects: ``Network((1, 28, 28), [Conv2D(8, 3), ActivationLayer("relu"),
    MaxPool2D(2), Flatten(), Dense(10)], seed=0)``.  In an MLP, ``layers[i].W`` has shape
    (n_in, n_out) and ``layers[i].b`` shape (n_out,).

    ``seed`` draws the initial weights; each layer without an initialiser of its own uses ``init`` if
    given, else the one that suits the activation it feeds (He for ReLU, Glorot for sigmoid, tanh and
    the output, LeCun for SELU).  ``params`` and ``state`` (flat arrays laid out by ``layout`` and
    ``state_layout``) load given values instead of initialising.
    """

    source: str | None = None  # the file a loaded network was read from, for messages

    def __init__(
        self,
        input_shape: int | Sequence[int],
        layers: Sequence[Layer],
        *,
        seed: int | np.random.Generator | None = None,
        dtype: str | np.dtype = "float32",
        init: str | None = None,
        params: Array | None = None,
        state: Array | None = None,
        threads: int | None = None,
    ) -> None:
        dtype = _check_dtype(dtype)
        self.layers: list[Layer] = list(layers)
        # Shapes and memory first, from the spec alone: a network that cannot fit is refused before
        # any array exists (it used to end in a MemoryError, or in minutes of swapping).
        self.input_shape, self.footprint = self.plan(input_shape, self.layers, dtype=dtype, initialize=params is None)
        _choose_inits(self.layers, init)

        self.layout = Layout.of(self.layers, "params")
        self.state_layout = Layout.of(self.layers, "state")
        try:
            self.params = _buffer(params, self.layout.size, dtype, "params")
            self.state = _buffer(state, self.state_layout.size, dtype, "state")
            for layer, p, s in zip(
                self.layers,
                self.layout.split(self.params, self.layers),
                self.state_layout.split(self.state, self.layers),
                strict=True,
            ):
                layer.bind(p, s)
            if params is None:
                rng = np.random.default_rng(seed)
                for layer in self.layers:
                    layer.initialize(rng)
            if state is None:
                for layer in self.layers:
                    layer.reset_state()
        except MemoryError:  # fits the machine, but not the memory free now (or the machine did not say)
            raise CapacityError(
                f"out of memory building the network: its {self.footprint.n_params:,} parameters need "
                f"{size_text(self.footprint.param_bytes)}; choose a smaller network or free some memory"
            ) from None

        self.metadata: dict[str, Any] = {}
        # Temperature and "not sure"/"not a digit" thresholds, fitted on the validation split after training (None:
        # the plain softmax, and no input is called "not a digit").
        self.calibration: Calibration | None = None
        # Worked out once: the weights (what L2, L1 and weight decay apply to), and what a forward
        # pass runs: the layers, or with dropout the stack for the last rate asked for.
        self._weight_slots = [s for s in self.layout.slots if s.name == "W" and self.layers[s.layer].weighted]
        self._stack = Stack.of(self.layers)
        self._dropout_stack: tuple[float, Stack] | None = None
        self.threads = default_threads() if threads is None else threads

    # -- construction ---------------------------------------------------------------------------

    @staticmethod
    def plan(
        input_shape: int | Sequence[int],
        layers: Sequence[Layer],
        *,
        dtype: str | np.dtype = "float32",
        initialize: bool = True,
    ) -> tuple[Shape, Footprint]:
        """Check a network from its shapes alone, as building it does first; no array is made.

        The input shape, the output layer (a softmax output becomes the identity: the loss applies
        it), every layer against the shape it meets (``layer.build``), every size against
        ``MAX_SIZE``, and the memory its parameters (drawn, with ``initialize``) and one example's
        forward pass need against this machine's (``Footprint.check``).  Returns the input shape as
        a tuple and the footprint; raises SpecError naming what does not fit.
        """
        input_shape = (input_shape,) if isinstance(input_shape, int | np.integer) else tuple(input_shape)
        if len(input_shape) not in (1, 3) or not all(
            isinstance(d, int | np.integer) and 1 <= d <= MAX_SIZE for d in input_shape
        ):
            raise SpecError(
                f"the input shape must be (n,) or (C, H, W) of positive sizes up to {MAX_SIZE:,}, "
                f"got {echo(repr(input_shape))}"
            )
        shape: Shape = tuple(int(d) for d in input_shape)
        output = dense_output(layers)
        check_output_activation(output.activation.name, logits=True)
        if output.activation.name == "softmax":
            output.activation = get_activation("identity")  # the loss applies the softmax
        built = shape
        for layer in layers:
            built = layer.build(built)
        footprint = Footprint.of(shape, list(layers), _check_dtype(dtype))
        footprint.check(initialize=initialize)
        return shape, footprint

    @classmethod
    def check_spec(cls, spec: str, *, dtype: str | np.dtype = "float32") -> tuple[Shape, list[Layer]]:
        """:meth:`from_spec` without the arrays: parse ``spec`` and :meth:`plan` it.

        Returns (input shape, layers), the layers built; a command line checks ``--spec`` this way
        before it reads any data, and against the data's shape before it builds the network.
        """
        input_shape, layers = parse_spec(spec)
        return cls.plan(input_shape, layers, dtype=dtype)[0], layers

    @classmethod
    def from_dense(
        cls,
        n_in: int,
        layers: Sequence[DenseSpec],
        *,
        seed: int | np.random.Generator | None = None,
        dtype: str | np.dtype = "float32",
        init: str | None = None,
    ) -> Network:
        """An MLP of dense ``layers`` on ``n_in`` inputs; the last must be softmax (the output layer)."""
        if not layers:
            raise SpecError("a network needs at least an output layer")
        check_output_activation(layers[-1].activation)
        stack: list[Layer] = [spec.layer() for spec in layers[:-1]]
        stack.append(output_layer(layers[-1].units, init=layers[-1].init))
        return cls(n_in, stack, seed=seed, dtype=dtype, init=init)

    from_layers = from_dense  # its earlier name, kept for code that calls it

    @classmethod
    def from_spec(
        cls,
        spec: str,
        *,
        seed: int | np.random.Generator | None = None,
        dtype: str | np.dtype = "float32",
        init: str | None = None,
        threads: int | None = None,
    ) -> Network:
        """Build a network from a spec such as ``"784-32:relu-32:sigmoid-64:selu-64:tanh-10:softmax"`` or
        ``"1x28x28-conv32k3-relu-maxpool2-flatten-10:softmax"`` (the grammar is in ``nnscratch.spec``)."""
        input_shape, layers = parse_spec(spec)
        return cls(input_shape, layers, seed=seed, dtype=dtype, init=init, threads=threads)

    # -- description ----------------------------------------------------------------------------

    @property
    def dtype(self) -> np.dtype:
        return self.params.dtype

    @property
    def n_in(self) -> int:
        """Values per input sample, C·H·W for images."""
        return math.prod(self.input_shape)

    @property
    def n_classes(self) -> int:
        return dense_output(self.layers).units

    @property
    def hidden_activations(self) -> list[tuple[int, Activation]]:
        """(index into ``layers``, activation) of every hidden activation, in order (see :func:`hidden_activations`)."""
        return hidden_activations(self.layers)

    @property
    def weighted_layers(self) -> list[int]:
        """Indices into ``layers`` of the layers with weights W (dense and convolutional), first to last."""
        return [i for i, layer in enumerate(self.layers) if layer.weighted]

    @property
    def weight_slots(self) -> list[Slot]:
        """The slot of each weighted layer's W in ``params``, first to last: what L2, L1 and weight decay
        apply to, and what the diagnostics report ‖dW‖ of."""
        return list(self._weight_slots)

    @property
    def map_layers(self) -> list[int]:
        """Indices into ``layers`` of the convolution and max-pooling layers: the ones whose outputs the
        plots and the web page draw as feature maps."""
        return [i for i, layer in enumerate(self.layers) if isinstance(layer, Conv2D | MaxPool2D)]

    @property
    def is_mlp(self) -> bool:
        """True for a flat input and dense layers only (the networks of model format 1): on flat inputs
        the only layers with weights are dense."""
        return len(self.input_shape) == 1 and all(layer.weighted for layer in self.layers)

    @property
    def spec(self) -> str:
        """The architecture as a spec string, e.g. ``"784-32:relu-10:softmax"``."""
        return format_spec(self.input_shape, self.layers)

    @property
    def n_params(self) -> int:
        return int(self.params.size)

    @property
    def threads(self) -> int:
        """How many threads the layers split their large operations over (see ``nnscratch.parallel``).

        By default every core (or ``$NNSCRATCH_THREADS``); a setting of this process, not of the model:
        files do not store it, and the results do not depend on it except in the last bits of the sums
        the parallel module names.
        """
        return self.pool.n

    @threads.setter
    def threads(self, n: int) -> None:
        self.pool = thread_pool(n)
        stacks = [self._stack] + ([self._dropout_stack[1]] if self._dropout_stack else [])
        for stack in stacks:
            for layer in stack.layers:
                layer.pool = self.pool

    def __repr__(self) -> str:
        return f"Network({self.spec!r}, dtype={self.dtype.name})"

    def summary(self) -> TableData:
        """The layers as a table: each one's spec token, kind, output shape and parameter count, then the totals.

        ``print(net.summary())`` writes it as text; in a notebook a network on its own in a cell shows it
        as an HTML table.  Shapes are written as specs write them: ``32x13x13`` is 32 channels of 13×13.
        """
        rows = [("input", "", shape_text(self.input_shape), "")]
        tokens = self.spec.split("-")[1:]  # one per layer, the output layer's written with its softmax
        for i, (token, layer) in enumerate(zip(tokens, self.layers, strict=True), 1):
            assert layer.output_shape is not None
            count = sum(math.prod(shape) for shape in layer.param_shapes().values())
            kind = type(layer).__name__.removesuffix("Layer")
            rows.append((f"{i:>{len(str(len(tokens)))}}  {token}", kind, shape_text(layer.output_shape), f"{count:,}"))
        n_state = self.state.size
        notes = (
            f"{self.n_params:,} trainable parameters, {size_text(self.params.nbytes)} in {self.dtype.name}"
            + (f"; {n_state:,} running statistics (batch norm), not trained" if n_state else ""),
        )
        return TableData(self.spec, ("layer", "kind", "output shape", "parameters"), rows, notes)

    def _repr_html_(self) -> str:
        return self.summary()._repr_html_()

    def copy(self) -> Network:
        """An independent copy with the same weights and state."""
        layers = [type(layer).from_config(layer.config()) for layer in self.layers]
        net = type(self)(
            self.input_shape,
            layers,
            dtype=self.dtype,
            params=self.params.copy(),
            state=self.state.copy(),
            threads=self.threads,
        )
        net.metadata = dict(self.metadata)
        net.calibration = self.calibration
        return net

    def grad_views(self, flat: Array) -> Grads:
        """Split a flat array laid out like ``params`` into one tuple per layer with parameters,
        in that layer's order: (dW, db) for a dense or convolutional layer, (dγ, dβ) for batch norm."""
        views = self.layout.split(flat, self.layers)
        pairs = zip(self.layers, views, strict=True)
        return [tuple(v[name] for name in layer.param_shapes()) for layer, v in pairs if v]

    # -- inputs ---------------------------------------------------------------------------------

    def check_input(self, X: npt.ArrayLike) -> Array:
        """X in the layout the layers compute on, as the network's dtype; raises ValueError naming the bad shape.

        Flat rows (m, n) always work (and one flat sample (n,)); a network on C×H×W images also takes
        (m, C, H, W), and (m, H, W) when C = 1.  Images are returned channels-last, (m, H, W, C).
        """
        X = np.asarray(X)
        n = self.n_in
        if X.ndim == 1 and X.size == n:
            X = X.reshape(1, -1)
        if len(self.input_shape) == 1:
            if X.ndim != 2 or X.shape[1] != n:
                raise ValueError(
                    f"X must have shape (m, {n}) for this network, got {X.shape}; flatten each image to one row"
                )
            return np.asarray(X, dtype=self.dtype)
        C, H, W = self.input_shape
        if X.ndim == 2 and X.shape[1] == n:
            X = X.reshape(-1, C, H, W)
        elif X.ndim == 3 and C == 1 and X.shape[1:] == (H, W):
            X = X.reshape(-1, 1, H, W)
        elif X.ndim != 4 or X.shape[1:] != (C, H, W):
            one = f", (m, {H}, {W})" if C == 1 else ""
            raise ValueError(f"X must have shape (m, {n}), (m, {C}, {H}, {W}){one} for this network, got {X.shape}")
        # channels-first → channels-last; a view when C = 1, else one copy
        return np.ascontiguousarray(X.transpose(0, 2, 3, 1), dtype=self.dtype)

    def check_labels(self, y: npt.ArrayLike, m: int) -> npt.NDArray[np.intp]:
        """y as an (m,) integer array with every label in [0, k)."""
        y = np.asarray(y)
        if y.shape != (m,):
            raise ValueError(f"y must have shape ({m},) to match X, got {y.shape}")
        if y.size and (not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= self.n_classes):
            raise ValueError(f"labels must be integers in [0, {self.n_classes}); got {y.dtype} values")
        return y.astype(np.intp, copy=False)

    # -- computation ----------------------------------------------------------------------------

    def forward(
        self,
        X: Array,
        *,
        training: bool = False,
        rng: np.random.Generator | None = None,
        dropout: float = 0.0,
        update_state: bool = False,
        keep: bool = False,
    ) -> tuple[Array, Caches]:
        """Logits Z (m, k) for inputs already checked by :meth:`check_input`, and what :meth:`backward` needs.

        ``training`` runs batch norm on batch statistics and, given ``rng``, draws dropout masks;
        ``dropout`` p > 0 also drops each hidden dense layer's outputs with probability p (the
        trainer's ``--dropout``; alpha-dropout after a SELU layer; see :meth:`stack`);
        ``update_state`` folds the batch statistics into the running ones (a training step does; a
        gradient check must not); ``keep`` keeps what backward needs in prediction mode too.
        """
        stack = self.stack(dropout if rng is not None else 0.0)
        caches: list[Any] = [None] * len(stack.layers)
        A = X
        for i in stack.order:
            layer = stack.layers[i]
            # ``keep`` only when asked: a layer written before it existed still runs every other pass
            A, caches[i] = layer.forward(A, training=training, rng=rng, **({"keep": True} if keep else {}))
            if update_state:
                layer.update_state(caches[i])
        return A, Caches(stack, caches)

    def backward(self, dZ: Array, caches: Caches, grad: Array) -> None:
        """Back-propagate dL/dZ (m, k) through the layers :meth:`forward` ran (``caches`` says which),
        writing the gradient into the flat ``grad``."""
        stack = caches.stack
        views = stack.grad_views(grad)
        dA = dZ
        for i in reversed(stack.order):
            dX = stack.layers[i].backward(dA, caches.values[i], views[i], need_dX=i > stack.first_trained)
            if i == stack.first_trained or dX is None:  # no layer below the first trained one needs dX
                break
            dA = dX

    def input_gradient(self, X: npt.ArrayLike, y: npt.ArrayLike, *, of: str = "loss") -> Array:
        """How the answer changes with every input value: ∂F/∂X in the layout of X (flat rows or images).

        ``of="loss"``: F = Σ_i L_i, the sum over the batch of each example's cross-entropy for its label
        y[i] (so each row of the result is that example's own gradient); ``of="logit"``: F = Σ_i z[i, y[i]],
        the logit of each example's label.  In prediction mode: batch norm on its running statistics, no
        dropout, the model's temperature left out (it only rescales the logits).

        The backward pass is the training one run down to the input: every layer passes dX on, the
        first one too (training skips it, as the data has no parameters).
        """
        if of not in ("loss", "logit"):
            raise ValueError(f"of must be 'loss' or 'logit', got {echo(str(of))}")
        given = np.asarray(X)
        checked = self.check_input(given)
        labels = self.check_labels(y, checked.shape[0])
        with single_threaded_blas(), np.errstate(over="ignore", invalid="ignore"):
            Z, caches = self.forward(checked, keep=True)
            self.check_output(Z, checked)
            if of == "loss":
                _, dZ = softmax_cross_entropy(Z.copy(), labels)
                dZ *= checked.shape[0]  # the mean's gradient times m: the sum's
            else:
                dZ = np.zeros_like(Z)
                dZ[np.arange(len(labels)), labels] = 1.0
            stack, dA = caches.stack, dZ
            # the parameters' gradients, not wanted here: a buffer of their own, leaving the trainer's views cached
            views = stack.layout.split(np.empty_like(self.params), stack.layers)
            for i in reversed(stack.order):
                down = stack.layers[i].backward(dA, caches.values[i], views[i], need_dX=True)
                assert down is not None, "a layer asked for dX returned none"
                dA = down
        dX = np.array(dA, copy=True)  # the first layer's dX may be a buffer it reuses
        if dX.ndim == 4:  # channels-last images back to the caller's layout
            dX = dX.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(dX).reshape(given.shape)

    def stack(self, dropout: float = 0.0) -> Stack:
        """The layers a forward pass runs: ``layers``, or with ``dropout`` p > 0 also a Dropout(p) layer after
        each hidden dense layer (AlphaDropout(p) after a SELU one, which keeps its self-normalising mean and
        variance).  A convolution's or an activation layer's outputs are not dropped: a spec places
        dropout there with a layer of its own.

        The stack for the last p asked for is kept, so its dropout layers reuse their buffers from step to step.
        """
        if not dropout:
            return self._stack
        if self._dropout_stack is None or self._dropout_stack[0] != dropout:
            layers: list[Layer] = []
            for layer in self.layers[:-1]:
                layers.append(layer)
                if isinstance(layer, Dense):
                    kind = AlphaDropout if layer.activation.name == "selu" else Dropout
                    layers.append(kind(float(dropout)))
                    layers[-1].pool = self.pool
            layers.append(self.layers[-1])
            self._dropout_stack = (dropout, Stack.of(layers))
        return self._dropout_stack[1]

    def logits(self, X: Array) -> Array:
        """The output layer's Z (m, k) in prediction mode, for inputs already checked."""
        Z, _ = self.forward(X)
        return Z

    def _chunks(self, m: int, batch_size: int | None) -> range:
        """Starts of prediction chunks of ``batch_size`` rows; by default as many rows at once as keep the
        widest layer near PREDICT_VALUES values (4,096 rows for an MLP, a few hundred for a convnet).

        Either way a chunk holds no more rows than half the memory the parameters leave has room for
        (``Footprint.rows_that_fit``): a large ``batch_size`` must not run the machine out of memory.
        """
        if batch_size is None:
            widest = max(layer.widest_values() for layer in self.layers)
            batch_size = max(1, min(MAX_PREDICT_ROWS, PREDICT_VALUES // widest))
        return range(0, m, max(1, min(batch_size, self.footprint.rows_that_fit())))

    def predict_proba(self, X: npt.ArrayLike, *, batch_size: int | None = None) -> Array:
        """Class probabilities P (m, k) for inputs X (see :meth:`check_input`) with values in [0, 1].

        Raises :class:`NonFiniteOutputError` rather than answer NaN: finite weights can still overflow
        (weights near 3e38 do in float32), and NaN is no probability.
        """
        X = self.check_input(X)
        return self.check_output(self.probabilities(X, batch_size=batch_size), X)

    def probabilities(self, X: Array, *, batch_size: int | None = None) -> Array:
        """:meth:`predict_proba` for inputs already checked by :meth:`check_input` (the trainer's own data).

        The values are not checked: the trainer turns them into a validation loss, where NaN is the
        answer it reports.
        """
        out = np.empty((X.shape[0], self.n_classes), dtype=self.dtype)
        chunks = self._chunks(X.shape[0], batch_size)
        temperature = self.calibration.temperature if self.calibration is not None else 1.0
        with single_threaded_blas(), np.errstate(over="ignore", invalid="ignore"):
            for start in chunks:
                Z = self.logits(X[start : start + chunks.step])
                out[start : start + chunks.step] = softmax(Z if temperature == 1.0 else Z / Z.dtype.type(temperature))
        return out

    def all_logits(self, X: npt.ArrayLike, *, batch_size: int | None = None) -> Array:
        """The output layer's logits Z (m, k) for inputs X (see :meth:`check_input`), in prediction mode and
        in chunks as :meth:`predict_proba` takes them; raises :class:`NonFiniteOutputError` as it does."""
        X = self.check_input(X)
        return self.check_output(self.chunked_logits(X, batch_size=batch_size), X)

    def chunked_logits(self, X: Array, *, batch_size: int | None = None) -> Array:
        """:meth:`all_logits` for inputs already checked by :meth:`check_input` (the trainer's own data),
        not checked for NaN."""
        out = np.empty((X.shape[0], self.n_classes), dtype=self.dtype)
        chunks = self._chunks(X.shape[0], batch_size)
        with single_threaded_blas(), np.errstate(over="ignore", invalid="ignore"):
            for start in chunks:
                out[start : start + chunks.step] = self.logits(X[start : start + chunks.step])
        return out

    def verdicts(self, X: npt.ArrayLike, *, batch_size: int | None = None) -> list[str]:
        """For each input, "digit", "not sure" or "not a digit", by the out-of-distribution score and thresholds
        fitted after training (``nnscratch.calibration``); a model without them is "not sure" where no class is
        more likely than not, and never says "not a digit"."""
        return (self.calibration or Calibration()).verdicts(self.all_logits(X, batch_size=batch_size))

    def predict(self, X: npt.ArrayLike, *, batch_size: int | None = None) -> npt.NDArray[np.intp]:
        """Predicted labels (m,) for inputs X; raises :class:`NonFiniteOutputError` where the logits are not finite."""
        X = self.check_input(X)
        labels = np.empty(X.shape[0], dtype=np.intp)
        chunks = self._chunks(X.shape[0], batch_size)
        with single_threaded_blas(), np.errstate(over="ignore", invalid="ignore"):
            for start in chunks:
                rows = X[start : start + chunks.step]
                labels[start : start + chunks.step] = self.check_output(self.logits(rows), rows).argmax(axis=1)
        return labels

    def check_output(self, out: Array, X: Array) -> Array:
        """``out`` (probabilities or logits for inputs X), or NonFiniteOutputError if any value is NaN or infinite.

        One pass over (m, k) values: next to the forward pass that made them it costs nothing measurable.
        """
        if not np.all(np.isfinite(out)):
            if not np.all(np.isfinite(X)):
                raise ValueError("X holds NaN or infinite values; give the network finite inputs (pixels in [0, 1])")
            name = self.source or "the network"
            raise NonFiniteOutputError(
                f"{name} produced non-finite probabilities: its weights are too large for "
                f"{self.dtype.name} arithmetic (largest |weight| {float(np.abs(self.params).max()):.3g}); "
                "retrain it"
            )
        return out

    def layer_outputs(self, X: npt.ArrayLike) -> list[Array]:
        """The output of every layer in prediction mode, the last being the logits.

        Flat outputs are (m, n); feature maps are returned channels-first, (m, C, H, W), as users and
        specs write them.
        """
        A = self.check_input(X)
        outputs = []
        with single_threaded_blas():
            for layer in self.layers:
                A, _ = layer.forward(A)
                outputs.append(A.transpose(0, 3, 1, 2) if A.ndim == 4 else A)
        return outputs

    def loss(
        self, X: npt.ArrayLike, y: npt.ArrayLike, *, l2: float = 0.0, l1: float = 0.0, training: bool = False
    ) -> float:
        """Mean cross-entropy (+ L2 and L1 terms) on X, y (m,), forward only.

        ``training=True`` computes the loss the gradient is of: batch norm on batch statistics
        (dropout stays off); the default is prediction mode.
        """
        X = self.check_input(X)
        y = self.check_labels(y, X.shape[0])
        with single_threaded_blas():
            Z, _ = self.forward(X, training=training)
        loss, _ = softmax_cross_entropy(Z, y)
        return loss + self.penalty(l2=l2, l1=l1)

    @property
    def decayed_ranges(self) -> list[tuple[int, int]]:
        """The (start, stop) runs of ``params`` that are weights (what L2, L1 and weight decay apply to)."""
        return [(slot.offset, slot.offset + slot.size) for slot in self._weight_slots]

    def penalty(self, *, l2: float = 0.0, l1: float = 0.0) -> float:
        """``(λ₂/2) Σ ||W||² + λ₁ Σ |W|`` over the weights of every dense and convolutional layer."""
        weights = [slot.view(self.params) for slot in self._weight_slots]
        return l2_penalty(weights, l2) + l1_penalty(weights, l1)

    def gradient(self, X: npt.ArrayLike, y: npt.ArrayLike, *, l2: float = 0.0, l1: float = 0.0) -> tuple[float, Array]:
        """(loss, g): the training-mode loss on (X, y) without dropout, and its gradient laid out like ``params``.

        Nothing in the network changes (batch norm's running statistics included).
        """
        X = self.check_input(X)
        y = self.check_labels(y, X.shape[0])
        g = np.empty_like(self.params)
        loss, _ = self.loss_and_flat_grad(X, y, g, l2=l2, l1=l1)
        return loss, g

    def loss_and_grads(
        self, X: npt.ArrayLike, y: npt.ArrayLike, *, l2: float = 0.0, l1: float = 0.0
    ) -> tuple[float, Grads]:
        """Mean cross-entropy (+ L2 term) on (X, y) and its gradient, one tuple per layer with parameters.

        For an MLP that is ``(loss, [(dW, db), ...])``, each pair shaped like that layer's (W, b).
        """
        loss, g = self.gradient(X, y, l2=l2, l1=l1)
        return loss, self.grad_views(g)

    def loss_and_flat_grad(
        self,
        X: Array,
        y: npt.NDArray[np.intp],
        grad: Array,
        *,
        l2: float = 0.0,
        l1: float = 0.0,
        dropout: float = 0.0,
        rng: np.random.Generator | None = None,
        update_state: bool = False,
    ) -> tuple[float, Array]:
        """The training step's core: forward, loss, backward into the flat buffer ``grad``.

        Inputs are trusted (the trainer checked them once).  Returns (loss, Z) with Z (m, k) the logits,
        from which the trainer reads the batch accuracy without another forward pass.  ``rng`` draws
        the dropout masks (dropout layers, and ``dropout`` on every hidden dense layer: each unit kept
        with probability 1 - p and scaled by 1/(1 - p), so nothing changes at prediction time; a SELU
        layer gets alpha-dropout instead, which keeps its self-normalising mean and variance).
        """
        with single_threaded_blas():
            # forward, keeping what backward needs
            Z, caches = self.forward(X, training=True, rng=rng, dropout=dropout, update_state=update_state)
            # loss; the loss owns the output softmax, so dZ = (P - Y)/m directly
            loss, dZ = softmax_cross_entropy(Z, y)
            # backward, from the last layer to the first
            self.backward(dZ, caches, grad)
        if l2 or l1:
            loss += self.penalty(l2=l2, l1=l1)
            for slot in self._weight_slots:
                W, dW = slot.view(self.params), slot.view(grad)
                if l2:
                    dW += l2 * W
                if l1:
                    dW += l1 * np.sign(W)
        return loss, Z

    # -- files ----------------------------------------------------------------------------------

    def header(self) -> dict[str, Any]:
        """The architecture and metadata as a JSON-ready dict (the model file's header, format 2)."""
        return {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "input_shape": list(self.input_shape),
            "dtype": self.dtype.name,
            "spec": self.spec,
            "layers": [layer.config() for layer in self.layers],
            "metadata": self.metadata,
            **({"calibration": self.calibration.to_dict()} if self.calibration is not None else {}),
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the weights, state, architecture and ``metadata`` to ``path`` (.npz), atomically."""
        arrays = {**self.layout.arrays(self.params), **self.state_layout.arrays(self.state)}
        return save_npz(path, arrays, self.header())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Network:
        """Read a network written by :meth:`save` (either format); shapes, names and values are validated.

        Every array's shape is checked against the architecture in the file's header before its data
        is read (see ``nnscratch.io.load_npz``), so a file costs memory in proportion to that
        architecture, however far its arrays would inflate.
        """
        source = str(path)
        header, arrays = load_npz(path, expect=lambda header: read_architecture(header, source).file_arrays())
        return cls.from_header(header, arrays, source=source)

    @classmethod
    def from_header(
        cls,
        header: dict[str, Any],
        arrays: dict[str, np.ndarray],
        *,
        source: str,
        params: np.ndarray | None = None,
        state: np.ndarray | None = None,
    ) -> Network:
        """Rebuild a network from a saved header and its arrays (see :meth:`save`).

        ``params`` and ``state``, if given, are the flat buffers instead of the per-array entries
        (checkpoints store them so).  Format 1 files (dense layers, arrays W0, b0, ...) load as they
        always did.
        """
        architecture = read_architecture(header, source)
        input_shape, layers, dtype = architecture.input_shape, architecture.layers, architecture.dtype
        arrays = _format1_arrays(arrays) if architecture.version == 1 else arrays
        layout, state_layout = architecture.layout, architecture.state_layout
        if params is not None:
            for name, flat, size in (("parameters", params, layout.size), ("state", state, state_layout.size)):
                if flat is None and size == 0:
                    continue
                if flat is None or flat.shape != (size,):
                    raise ModelFileError(f"{source}: the {name} do not fit the architecture; the file is corrupted")
                if not np.issubdtype(flat.dtype, np.floating):
                    raise ModelFileError(
                        f"{source}: the {name} hold {flat.dtype} values, not floating-point ones; the file is corrupted"
                    )
        else:
            params = _gather(arrays, layout, source)
            state = _gather(arrays, state_layout, source)
        try:
            with np.errstate(over="ignore"):  # a float64 beyond float32's range becomes inf, refused below
                params = params.astype(dtype, copy=True)
                state = None if state is None else state.astype(dtype, copy=True)
            net = cls(input_shape, layers, dtype=dtype, params=params, state=state)
        except SpecError as exc:
            raise ModelFileError(f"{source}: {exc}") from None
        check_finite(net.params, source, "the parameters")
        check_finite(net.state, source, "the state")
        check_state(net.state, net.state_layout, source, "the state")
        net.metadata = dict(architecture.metadata)
        if "calibration" in header:
            net.calibration = Calibration.from_dict(header["calibration"], source)
        net.source = source
        return net


@dataclass
class Stack:
    """The layers one forward pass runs, with what backward needs to know about them: the order they run
    in (see :func:`_execution_order`), and the lowest one with parameters (no layer below it needs dX).

    Made by :meth:`Network.stack`: the network's own layers, or those and the dropout layers that the
    trainer's dropout option adds.  A dropout layer has no parameters, so the stack lays the gradient
    out exactly as the network does.
    """

    layers: list[Layer]
    order: list[int]
    first_trained: int
    layout: Layout
    _views: tuple[Array, list[Views]] | None = None  # (gradient buffer, its per-layer views)

    @classmethod
    def of(cls, layers: list[Layer]) -> Stack:
        layout = Layout.of(layers, "params")
        with_params = [i for i, (a, b) in enumerate(layout.segments) if b > a]
        first_trained = with_params[0] if with_params else len(layers)
        return cls(layers, _execution_order(layers), first_trained, layout)

    def grad_views(self, grad: Array) -> list[Views]:
        """Per layer, its named views into the flat gradient buffer ``grad``."""
        # The trainer passes the same buffer every step, so its views are made once.
        if self._views is None or self._views[0] is not grad:
            self._views = (grad, self.layout.split(grad, self.layers))
        return self._views[1]


@dataclass(frozen=True)
class Caches:
    """What :meth:`Network.forward` keeps for :meth:`Network.backward`: the stack it ran, and in
    ``values[i]`` the cache of ``stack.layers[i]`` (a dropout layer's is its mask, None when it dropped nothing)."""

    stack: Stack
    values: list[Any]


@dataclass(frozen=True)
class Architecture:
    """What a model file's header declares, before any array is read: the layers (built, shapes only)."""

    version: int  # the model format: 1 (dense layers, arrays W0, b0, ...) or 2
    dtype: np.dtype
    input_shape: Shape
    layers: list[Layer]
    metadata: dict[str, Any]

    @property
    def layout(self) -> Layout:
        return Layout.of(self.layers, "params")

    @property
    def state_layout(self) -> Layout:
        return Layout.of(self.layers, "state")

    def file_arrays(self) -> Expected:
        """The arrays a model file of this architecture holds, name → shape (format 1 names W0, b0, ...;
        its files may hold other arrays too, which are never read)."""
        slots = [*self.layout.slots, *self.state_layout.slots]
        if self.version == 1:
            return Expected({f"{slot.name}{slot.layer}": slot.shape for slot in slots}, skip_others=True)
        return Expected({slot.key: slot.shape for slot in slots})


def read_architecture(header: Any, source: str) -> Architecture:
    """The architecture a model header declares (``Network.header``, or format 1's), its layers built
    for their shapes only: nothing the size of the network is allocated.  Raises ModelFileError."""
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        raise ModelFileError(f"{source} is not an nnscratch model file")
    version = header.get("version")
    if not isinstance(version, int) or version < 1:
        raise ModelFileError(f"{source} has an unknown model format version {version!r}; the file is corrupted")
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{source} uses model format version {version}, newer than this nnscratch understands "
            f"({FORMAT_VERSION}); upgrade nnscratch"
        )
    metadata = header.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise ModelFileError(f"{source} has a corrupted header (metadata is not a mapping); retrain the model")
    try:
        dtype = _check_dtype(header["dtype"])
        if version == 1:
            input_shape: Shape = (int(header["n_in"]),)
            specs = [DenseSpec(int(d["units"]), str(d["activation"]), d.get("init")) for d in header["layers"]]
            layers: list[Layer] = [spec.layer() for spec in specs[:-1]]
            layers += [output_layer(spec.units, init=spec.init) for spec in specs[-1:]]
        else:
            input_shape = tuple(int(d) for d in header["input_shape"])
            layers = [_layer_from_config(config) for config in header["layers"]]
        # Build the layers (shapes only) and check what they would cost before anything is allocated:
        # a header that declares a network this machine cannot hold is refused before its arrays are read.
        Network.plan(input_shape, layers, dtype=dtype, initialize=False)
    except CapacityError as exc:  # a sound file, too large for this machine
        raise ModelFileError(f"{source}: {exc}") from None
    except SpecError as exc:
        raise ModelFileError(f"{source}: {exc}; the file is corrupted") from None
    except (KeyError, TypeError, ValueError, OverflowError, AttributeError) as exc:
        raise ModelFileError(f"{source} has an incomplete header ({exc!r}); retrain the model") from None
    return Architecture(version, dtype, input_shape, layers, metadata)


def check_finite(flat: np.ndarray, source: str, name: str) -> None:
    """Refuse (ModelFileError) saved values that are NaN or infinite, or beyond the range of their dtype."""
    if not np.all(np.isfinite(flat)):
        raise ModelFileError(
            f"{source}: {name} hold non-finite values (NaN, infinity, or beyond {flat.dtype.name}'s range); "
            "the file is corrupted"
        )


def check_state(flat: np.ndarray, layout: Layout, source: str, name: str) -> None:
    """Refuse (ModelFileError) a state buffer laid out by ``layout`` with a negative running variance
    (batch norm would divide by the square root of it: NaN for every input)."""
    for slot in layout.slots:
        if slot.name == "running_var" and np.any(slot.view(flat) < 0):
            raise ModelFileError(
                f"{source}: layer {slot.layer}'s running variance in {name} is negative; the file is corrupted"
            )


def _layer_from_config(config: Any) -> Layer:
    if not isinstance(config, dict) or config.get("kind") not in LAYERS:
        kind = config.get("kind") if isinstance(config, dict) else config
        raise SpecError(f"unknown layer kind {kind!r}")
    return LAYERS[config["kind"]].from_config(config)


def _format1_arrays(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Format 1 names layer i's arrays W{i} and b{i}; format 2 names them "{i}.W" and "{i}.b"."""
    renamed = {}
    for key, value in arrays.items():
        if key[:1] in "Wb" and key[1:].isdigit():
            renamed[f"{int(key[1:])}.{key[0]}"] = value
    return renamed


def _gather(arrays: dict[str, np.ndarray], layout: Layout, source: str) -> np.ndarray:
    """The flat buffer of ``layout`` from per-array entries, each checked against its slot first."""
    for slot in layout.slots:
        if slot.key not in arrays:
            raise ModelFileError(f"{source} is missing the array {slot.key}; the file is incomplete")
        value = arrays[slot.key]
        if value.shape != slot.shape:
            raise ModelFileError(
                f"{source}: array {slot.key} has shape {value.shape} but the architecture needs {slot.shape}; "
                "the file is corrupted"
            )
        if not np.issubdtype(value.dtype, np.floating) or not np.all(np.isfinite(value)):
            raise ModelFileError(f"{source}: array {slot.key} holds non-finite or non-float values")
    flat = np.empty(layout.size, dtype=np.float64)
    for slot in layout.slots:
        slot.view(flat)[...] = arrays[slot.key].reshape(-1)
    return flat


def hidden_activations(layers: Sequence[Layer]) -> list[tuple[int, Activation]]:
    """(index, activation) of every hidden activation in a network's ``layers``, in order: each layer that
    applies an activation other than the identity (a dense layer's own, or an activation layer), the
    output layer excluded (its softmax belongs to the loss)."""
    return [
        (i, layer.activation)
        for i, layer in enumerate(layers[:-1])
        if layer.activation is not None and layer.activation.name != "identity"
    ]


def _execution_order(layers: list[Layer]) -> list[int]:
    """The order the layers run in: as listed, except that a ReLU followed by max pooling runs after it.

    relu(maxpool(Z)) = maxpool(relu(Z)) exactly, and so are their gradients: where a window's maximum
    is positive both route dY to the same first maximum, and where it is not, both pass 0.  Pooling
    first applies the ReLU, forward and backward, to a quarter of the values (for 2×2 windows),
    which measured 2 ms of a 25 ms training step of the Keras-example convnet.
    """
    order = list(range(len(layers)))
    for i, layer in enumerate(layers[:-1]):
        relu = isinstance(layer, ActivationLayer) and layer.activation.name == "relu"
        if relu and isinstance(layers[i + 1], MaxPool2D) and order[i] == i:
            order[i], order[i + 1] = i + 1, i
    return order


def _choose_inits(layers: list[Layer], init: str | None) -> None:
    """Give each layer with weights its initialiser: its own, else ``init``, else the one that suits the
    activation it feeds (its own for a dense layer with one; otherwise the next activation layer
    before the next layer with weights; Glorot for a linear output)."""
    if init is not None:
        from nnscratch.initializers import get_initializer

        get_initializer(init)  # names a bad value
    for i, layer in enumerate(layers):
        if not layer.weighted or layer.init is not None:
            continue
        if init is not None:
            layer.init = init
        elif layer.activation is not None and layer.activation.name != "identity":
            layer.init = layer.activation.default_init
        else:
            # the next layer that applies an activation or has weights of its own (then the output is linear)
            fed = next((nxt for nxt in layers[i + 1 :] if nxt.activation is not None or nxt.weighted), None)
            activation = None if fed is None or fed.weighted else fed.activation
            layer.init = activation.default_init if activation is not None else "glorot"


def _buffer(given: Array | None, size: int, dtype: np.dtype, name: str) -> Array:
    if given is None:
        return np.zeros(size, dtype=dtype)
    if given.shape != (size,) or given.dtype != dtype:
        raise ValueError(f"{name} must be a flat {dtype.name} array of {size} values, got {given.dtype} {given.shape}")
    return given


def _check_dtype(dtype: str | np.dtype) -> np.dtype:
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = str(dtype)
    if name not in DTYPES:
        raise SpecError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    return np.dtype(name)
