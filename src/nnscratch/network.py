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
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from nnscratch.activations import get_activation
from nnscratch.errors import ModelFileError, SpecError
from nnscratch.io import load_npz, save_npz
from nnscratch.layers import LAYERS, ActivationLayer, Conv2D, Dense, Layer, Layout, MaxPool2D
from nnscratch.layers.base import Shape, Views, shape_text
from nnscratch.layers.dropout import alpha_dropout_mask, dropout_mask
from nnscratch.losses import l1_penalty, l2_penalty, softmax, softmax_cross_entropy
from nnscratch.parallel import default_threads, single_threaded_blas
from nnscratch.parallel import pool as parallel_pool
from nnscratch.spec import LayerSpec, format_spec, output_layer, parse_hidden, parse_layer, parse_spec

Array = npt.NDArray[np.floating]
Grads = list[tuple[Array, ...]]

FORMAT_NAME = "nnscratch-model"
FORMAT_VERSION = 2  # 1: dense layers only (W0, b0, ...); 2: any layer stack ("0.W", "3.running_mean", ...)
DTYPES = ("float32", "float64")
PREDICT_VALUES = 1 << 24  # values the widest layer may hold at once while predicting in chunks
MAX_PREDICT_ROWS = 4096

__all__ = ["LayerSpec", "Network", "parse_hidden", "parse_layer", "parse_spec"]


class Network:
    """A stack of layers: ``layers[-1]`` is the dense output layer, whose outputs are the logits.

    Build one with :meth:`from_spec` (any spec), :meth:`from_layers` (an MLP from ``LayerSpec``\\ s) or
    directly from layer objects: ``Network((1, 28, 28), [Conv2D(8, 3), ActivationLayer("relu"),
    MaxPool2D(2), Flatten(), Dense(10)], seed=0)``.  In an MLP, ``layers[i].W`` has shape
    (n_in, n_out) and ``layers[i].b`` shape (n_out,).

    ``seed`` draws the initial weights; each layer without an initialiser of its own uses ``init`` if
    given, else the one that suits the activation it feeds (He for ReLU, Glorot for sigmoid, tanh and
    the output, LeCun for SELU).  ``params`` and ``state`` (flat arrays laid out by ``layout`` and
    ``state_layout``) load given values instead of initialising.
    """

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
        input_shape = (input_shape,) if isinstance(input_shape, int | np.integer) else tuple(input_shape)
        if len(input_shape) not in (1, 3) or not all(isinstance(d, int | np.integer) and d >= 1 for d in input_shape):
            raise SpecError(f"the input shape must be (n,) or (C, H, W) of positive sizes, got {input_shape!r}")
        self.input_shape: Shape = tuple(int(d) for d in input_shape)
        self.layers: list[Layer] = list(layers)
        if not self.layers:
            raise SpecError("a network needs at least an output layer")
        output = self.layers[-1]
        if not isinstance(output, Dense):
            raise SpecError(f"the last layer must be the dense output layer, such as 10:softmax, not {output.token!r}")
        if output.activation.name == "softmax":
            output.activation = get_activation("identity")  # the loss applies the softmax
        elif output.activation.name != "identity":
            raise SpecError(
                f"the output layer must use softmax (it is trained with cross-entropy), not {output.activation.name!r}"
            )
        shape = self.input_shape
        for layer in self.layers:
            shape = layer.build(shape)
        _choose_inits(self.layers, init)

        self.layout = Layout.of(self.layers, "params")
        self.state_layout = Layout.of(self.layers, "state")
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

        self.metadata: dict[str, Any] = {}
        # Worked out once: which arrays L2 decays, where training applies hidden dropout, and the
        # lowest layer with parameters (no layer below it needs dX).
        self._decayed = [s for s in self.layout.slots if s.name in self.layers[s.layer].decayed]
        self._hidden_dense = [isinstance(layer, Dense) for layer in self.layers[:-1]] + [False]
        with_params = [i for i, (a, b) in enumerate(self.layout.segments) if b > a]
        self._first_trained = with_params[0] if with_params else len(self.layers)
        self._grad_views: tuple[Array, list[Views]] | None = None  # (buffer, its per-layer views)
        self._order = _execution_order(self.layers)
        self.threads = default_threads() if threads is None else threads

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def from_layers(
        cls,
        n_in: int,
        layers: Sequence[LayerSpec],
        *,
        seed: int | np.random.Generator | None = None,
        dtype: str | np.dtype = "float32",
        init: str | None = None,
    ) -> Network:
        """An MLP of dense ``layers`` on ``n_in`` inputs; the last must be softmax (the output layer)."""
        if not layers:
            raise SpecError("a network needs at least an output layer")
        if layers[-1].activation != "softmax":
            raise SpecError(
                f"the output layer must use softmax (it is trained with cross-entropy), not {layers[-1].activation!r}"
            )
        stack: list[Layer] = [spec.layer() for spec in layers[:-1]]
        stack.append(output_layer(layers[-1].units, init=layers[-1].init))
        return cls(n_in, stack, seed=seed, dtype=dtype, init=init)

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
        return self.layers[-1].n_out  # type: ignore[attr-defined]

    @property
    def is_mlp(self) -> bool:
        """True for a flat input and dense layers only (the networks of model format 1)."""
        return len(self.input_shape) == 1 and all(isinstance(layer, Dense) for layer in self.layers)

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
        self.pool = parallel_pool(n)
        for layer in self.layers:
            layer.pool = self.pool

    def __repr__(self) -> str:
        return f"Network({self.spec!r}, dtype={self.dtype.name})"

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
    ) -> tuple[Array, list[Any], list[Array | None]]:
        """Logits Z (m, k) for inputs already checked by :meth:`check_input`, with every layer's cache.

        ``training`` runs batch norm on batch statistics and, given ``rng``, draws dropout masks;
        ``dropout`` p > 0 also drops each hidden dense layer's outputs with probability p (the
        trainer's ``--dropout``; alpha-dropout after a SELU layer), returning each layer's factor on
        dA for backward; ``update_state`` folds the batch statistics into the running ones (a training
        step does; a gradient check must not).
        """
        caches: list[Any] = [None] * len(self.layers)
        masks: list[Array | None] = [None] * len(self.layers)
        A = X
        for i in self._order:
            layer = self.layers[i]
            A, caches[i] = layer.forward(A, training=training, rng=rng)
            if update_state:
                layer.update_state(caches[i])
            if dropout and self._hidden_dense[i] and rng is not None:
                # a new array: the cache keeps the undropped A for the derivative
                if layer.activation.name == "selu":  # type: ignore[attr-defined]
                    masks[i], shift = alpha_dropout_mask(A.shape, dropout, rng, self.dtype)
                    A = A * masks[i]
                    A += shift
                else:
                    masks[i] = dropout_mask(A.shape, dropout, rng, self.dtype)
                    A = A * masks[i]
        return A, caches, masks

    def backward(self, dZ: Array, caches: list[Any], masks: list[Array | None], grad: Array) -> None:
        """Back-propagate dL/dZ (m, k) through every layer, writing the gradient into the flat ``grad``."""
        # The trainer passes the same buffer every step, so its views are made once.
        if self._grad_views is None or self._grad_views[0] is not grad:
            self._grad_views = (grad, self.layout.split(grad, self.layers))
        views = self._grad_views[1]
        dA = dZ
        for i in reversed(self._order):
            if masks[i] is not None:
                dA *= masks[i]
            dA = self.layers[i].backward(dA, caches[i], views[i], need_dX=i > self._first_trained)
            if i == self._first_trained:
                break

    def logits(self, X: Array) -> Array:
        """The output layer's Z (m, k) in prediction mode, for inputs already checked."""
        Z, _, _ = self.forward(X)
        return Z

    def _chunks(self, m: int, batch_size: int | None) -> range:
        """Starts of prediction chunks of ``batch_size`` rows; by default as many rows at once as keep the
        widest layer near PREDICT_VALUES values (4,096 rows for an MLP, a few hundred for a convnet)."""
        if batch_size is None:
            widest = max(math.prod(layer.output_shape) for layer in self.layers)  # type: ignore[arg-type]
            for layer in self.layers:
                if isinstance(layer, Conv2D):
                    _, Ho, Wo = layer.output_shape  # type: ignore[misc]
                    widest = max(widest, Ho * Wo * (layer.n_columns + 1))
            batch_size = max(1, min(MAX_PREDICT_ROWS, PREDICT_VALUES // widest))
        return range(0, m, batch_size)

    def predict_proba(self, X: npt.ArrayLike, *, batch_size: int | None = None) -> Array:
        """Class probabilities P (m, k) for inputs X (see :meth:`check_input`) with values in [0, 1]."""
        return self.probabilities(self.check_input(X), batch_size=batch_size)

    def probabilities(self, X: Array, *, batch_size: int | None = None) -> Array:
        """:meth:`predict_proba` for inputs already checked by :meth:`check_input` (the trainer's own data)."""
        out = np.empty((X.shape[0], self.n_classes), dtype=self.dtype)
        chunks = self._chunks(X.shape[0], batch_size)
        with single_threaded_blas():
            for start in chunks:
                out[start : start + chunks.step] = softmax(self.logits(X[start : start + chunks.step]))
        return out

    def predict(self, X: npt.ArrayLike, *, batch_size: int | None = None) -> npt.NDArray[np.intp]:
        """Predicted labels (m,) for inputs X."""
        X = self.check_input(X)
        labels = np.empty(X.shape[0], dtype=np.intp)
        chunks = self._chunks(X.shape[0], batch_size)
        with single_threaded_blas():
            for start in chunks:
                labels[start : start + chunks.step] = self.logits(X[start : start + chunks.step]).argmax(axis=1)
        return labels

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
            Z, _, _ = self.forward(X, training=training)
        loss, _ = softmax_cross_entropy(Z, y)
        return loss + self.penalty(l2=l2, l1=l1)

    @property
    def decayed_ranges(self) -> list[tuple[int, int]]:
        """The (start, stop) runs of ``params`` that are weights (what L2, L1 and weight decay apply to)."""
        return [(slot.offset, slot.offset + slot.size) for slot in self._decayed]

    def penalty(self, *, l2: float = 0.0, l1: float = 0.0) -> float:
        """(λ₂/2) Σ ||W||² + λ₁ Σ |W| over the weights of every dense and convolutional layer."""
        weights = [self._slot(self.params, s) for s in self._decayed]
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
            Z, caches, masks = self.forward(X, training=True, rng=rng, dropout=dropout, update_state=update_state)
            # loss; the loss owns the output softmax, so dZ = (P - Y)/m directly
            loss, dZ = softmax_cross_entropy(Z, y)
            # backward, from the last layer to the first
            self.backward(dZ, caches, masks, grad)
        if l2 or l1:
            loss += self.penalty(l2=l2, l1=l1)
            for slot in self._decayed:
                W, dW = self._slot(self.params, slot), self._slot(grad, slot)
                if l2:
                    dW += l2 * W
                if l1:
                    dW += l1 * np.sign(W)
        return loss, Z

    @staticmethod
    def _slot(flat: Array, slot) -> Array:
        return flat[slot.offset : slot.offset + slot.size]

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
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the weights, state, architecture and ``metadata`` to ``path`` (.npz), atomically."""
        arrays = {**self.layout.arrays(self.params), **self.state_layout.arrays(self.state)}
        return save_npz(path, arrays, self.header())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Network:
        """Read a network written by :meth:`save` (either format); shapes and names are validated."""
        header, arrays = load_npz(path)
        return cls.from_header(header, arrays, source=str(path))

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
        if header.get("format") != FORMAT_NAME:
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
                specs = [LayerSpec(int(d["units"]), str(d["activation"]), d.get("init")) for d in header["layers"]]
                layers = [spec.layer() for spec in specs[:-1]]
                layers += [output_layer(spec.units, init=spec.init) for spec in specs[-1:]]
                arrays = _format1_arrays(arrays)
            else:
                input_shape = tuple(int(d) for d in header["input_shape"])
                layers = [_layer_from_config(config) for config in header["layers"]]
            if not layers:
                raise SpecError("a network needs at least an output layer")
            if not input_shape or any(d < 1 for d in input_shape):
                raise SpecError(f"the input size must be positive, got {shape_text(input_shape)}")
            # Build the layers (shapes only) before allocating anything: a header that lies about the
            # sizes must not make loading allocate more than the file holds.
            shape = input_shape
            for layer in layers:
                shape = layer.build(shape)
        except SpecError as exc:
            raise ModelFileError(f"{source}: {exc}; the file is corrupted") from None
        except (KeyError, TypeError, ValueError, OverflowError, AttributeError) as exc:
            raise ModelFileError(f"{source} has an incomplete header ({exc!r}); retrain the model") from None
        layout, state_layout = Layout.of(layers, "params"), Layout.of(layers, "state")
        if params is not None:
            for name, flat, size in (("parameters", params, layout.size), ("state", state, state_layout.size)):
                if flat is None and size == 0:
                    continue
                if flat is None or flat.shape != (size,) or not np.all(np.isfinite(flat)):
                    raise ModelFileError(f"{source}: the {name} do not fit the architecture; the file is corrupted")
        else:
            params = _gather(arrays, layout, source)
            state = _gather(arrays, state_layout, source)
        try:
            net = cls(
                input_shape,
                layers,
                dtype=dtype,
                params=params.astype(dtype, copy=True),
                state=None if state is None else state.astype(dtype, copy=True),
            )
        except SpecError as exc:
            raise ModelFileError(f"{source}: {exc}") from None
        net.metadata = dict(metadata)
        return net


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
        flat[slot.offset : slot.offset + slot.size] = arrays[slot.key].reshape(-1)
    return flat


def _execution_order(layers: list[Layer]) -> list[int]:
    """The order the layers run in: as listed, except that a ReLU followed by max pooling runs after it.

    relu(maxpool(Z)) = maxpool(relu(Z)) exactly, and so are their gradients: where a window's maximum
    is positive both route dY to the same first maximum, and where it is not, both pass 0.  Pooling
    first applies the ReLU, forward and backward, to a quarter of the values (for 2×2 windows),
    which measured 2 ms of a 25 ms training step of the Keras-example convnet.
    """
    order = list(range(len(layers)))
    for i in range(len(layers) - 1):
        relu = isinstance(layers[i], ActivationLayer) and layers[i].activation.name == "relu"  # type: ignore[attr-defined]
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
        if not isinstance(layer, Dense | Conv2D) or layer.init is not None:
            continue
        if init is not None:
            layer.init = init
        elif isinstance(layer, Dense) and layer.activation.name != "identity":
            layer.init = layer.activation.default_init
        else:
            fed = next((nxt for nxt in layers[i + 1 :] if isinstance(nxt, ActivationLayer | Dense | Conv2D)), None)
            layer.init = fed.activation.default_init if isinstance(fed, ActivationLayer) else "glorot"


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
