"""The network: a stack of dense layers ending in softmax, trained with cross-entropy.

Legend: m = batch size, n_in = input features (784 for MNIST), k = classes (10 for MNIST).

All parameters live in one flat buffer ``Network.params``; each layer's W and b are views into it.
Gradients use the same layout, so an optimiser updates the whole network with a few vector operations.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from nnscratch.activations import ACTIVATIONS, get_activation
from nnscratch.errors import ModelFileError, SpecError
from nnscratch.initializers import INITIALIZERS, get_initializer
from nnscratch.io import load_npz, save_npz
from nnscratch.layers import Dense, DenseCache
from nnscratch.losses import l2_penalty, softmax_cross_entropy

Array = npt.NDArray[np.floating]
Grads = list[tuple[Array, Array]]

FORMAT_NAME = "nnscratch-model"
FORMAT_VERSION = 1
DTYPES = ("float32", "float64")


@dataclass(frozen=True)
class LayerSpec:
    """One dense layer: its width, activation name and (optional) initialiser name."""

    units: int
    activation: str
    init: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.units, int) or self.units < 1:
            raise SpecError(f"a layer needs a positive number of units, got {self.units!r}")
        if self.activation not in ACTIVATIONS:
            raise SpecError(f"unknown activation {self.activation!r}; choose one of: {', '.join(ACTIVATIONS)}")
        if self.init is not None and self.init not in INITIALIZERS:
            raise SpecError(f"unknown initialiser {self.init!r}; choose one of: {', '.join(INITIALIZERS)}")

    def __str__(self) -> str:
        return f"{self.units}:{self.activation}" + (f":{self.init}" if self.init else "")


_LAYER = re.compile(r"^\s*(\d+)\s*(?::\s*([A-Za-z_\-]+)\s*)?(?::\s*([A-Za-z_]+)\s*)?$")


def parse_layer(text: str, *, default_activation: str = "relu") -> LayerSpec:
    """Parse ``UNITS[:ACTIVATION[:INIT]]``, e.g. ``"64:selu"`` or ``"32:relu:uniform"``."""
    match = _LAYER.match(text)
    if not match:
        raise SpecError(f"cannot read layer {text.strip()!r}; write UNITS:ACTIVATION such as 64:relu")
    units, activation, init = match.groups()
    activation = (activation or default_activation).lower().replace("-", "_")
    return LayerSpec(int(units), activation, init.lower() if init else None)


def parse_hidden(text: str) -> list[LayerSpec]:
    """Parse the CLI's hidden-layer list, e.g. ``"32:relu,32:sigmoid,64:selu,64:tanh"``.

    An empty string means no hidden layer (softmax regression).
    """
    if not text.strip():
        return []
    return [parse_layer(part) for part in text.split(",")]


def parse_spec(spec: str) -> tuple[int, list[LayerSpec]]:
    """Parse a full spec ``"784-32:relu-...-10:softmax"`` into (n_in, layers).

    The first item is the input size; the last layer must be softmax (it may be written ``10``).
    """
    parts = [p for p in spec.split("-")]
    if len(parts) < 2 or not parts[0].strip().isdigit():
        raise SpecError(
            f"cannot read network spec {spec!r}; write INPUTS-UNITS:ACT-...-CLASSES:softmax "
            "such as 784-128:relu-10:softmax"
        )
    n_in = int(parts[0])
    layers = [parse_layer(p) for p in parts[1:-1]]
    layers.append(parse_layer(parts[-1], default_activation="softmax"))
    return n_in, layers


class Network:
    """A multi-layer perceptron: dense layers, each with its activation, the last one softmax.

    Build one with :meth:`from_spec` (or :meth:`from_layers`); ``layers[i].W`` has shape (n_in, n_out)
    and ``layers[i].b`` shape (n_out,).
    """

    def __init__(self, n_in: int, specs: Sequence[LayerSpec], params: Array) -> None:
        if n_in < 1:
            raise SpecError(f"the input size must be positive, got {n_in}")
        if not specs:
            raise SpecError("a network needs at least an output layer")
        if specs[-1].activation != "softmax":
            raise SpecError(
                f"the output layer must use softmax (it is trained with cross-entropy), not {specs[-1].activation!r}"
            )
        if np.dtype(params.dtype).name not in DTYPES:
            raise SpecError(f"dtype must be one of {', '.join(DTYPES)}, got {params.dtype}")
        sizes = [n_in] + [s.units for s in specs]
        expected = _n_params(sizes)
        if params.shape != (expected,):
            raise ValueError(f"params must be a flat array of {expected} values, got shape {params.shape}")
        self.n_in = n_in
        self.specs = list(specs)
        self.params = params
        self.layers: list[Dense] = []
        for spec, W, b in zip(specs, *_split(params, sizes), strict=True):
            self.layers.append(Dense(W, b, get_activation(spec.activation), init=spec.init))
        self.metadata: dict[str, Any] = {}
        self._grad_views: tuple[Array, Grads] | None = None  # (buffer, its per-layer views)

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
        """Build and initialise a network of ``layers`` on ``n_in`` inputs.

        Each layer uses its own ``init`` if given, else ``init`` if given, else the default for its
        activation (He for ReLU, Glorot for sigmoid/tanh/softmax, LeCun for SELU).
        """
        dtype = _check_dtype(dtype)
        rng = np.random.default_rng(seed)
        if init is not None:
            get_initializer(init)
        specs = [
            LayerSpec(s.units, s.activation, s.init or init or ACTIVATIONS[s.activation].default_init) for s in layers
        ]
        sizes = [n_in] + [s.units for s in specs]
        params = np.empty(_n_params(sizes), dtype=dtype)
        net = cls(n_in, specs, params)
        for layer, spec in zip(net.layers, specs, strict=True):
            W, b = get_initializer(spec.init)(layer.n_in, layer.n_out, rng)
            layer.W, layer.b = W, b
        return net

    @classmethod
    def from_spec(
        cls,
        spec: str,
        *,
        seed: int | np.random.Generator | None = None,
        dtype: str | np.dtype = "float32",
        init: str | None = None,
    ) -> Network:
        """Build a network from ``"784-32:relu-32:sigmoid-64:selu-64:tanh-10:softmax"``."""
        n_in, layers = parse_spec(spec)
        return cls.from_layers(n_in, layers, seed=seed, dtype=dtype, init=init)

    # -- description ----------------------------------------------------------------------------

    @property
    def dtype(self) -> np.dtype:
        return self.params.dtype

    @property
    def n_classes(self) -> int:
        return self.layers[-1].n_out

    @property
    def spec(self) -> str:
        """The architecture as a spec string, e.g. ``"784-32:relu-10:softmax"``."""
        return "-".join([str(self.n_in)] + [f"{s.units}:{s.activation}" for s in self.specs])

    @property
    def n_params(self) -> int:
        return int(self.params.size)

    def __repr__(self) -> str:
        return f"Network({self.spec!r}, dtype={self.dtype.name})"

    def copy(self) -> Network:
        """An independent copy with the same weights."""
        net = type(self)(self.n_in, self.specs, self.params.copy())
        net.metadata = dict(self.metadata)
        return net

    def grad_views(self, flat: Array) -> Grads:
        """Split a flat array laid out like ``params`` into per-layer (dW, db) views."""
        sizes = [self.n_in] + [s.units for s in self.specs]
        return list(zip(*_split(flat, sizes), strict=True))

    # -- computation ----------------------------------------------------------------------------

    def check_input(self, X: npt.ArrayLike) -> Array:
        """X as a (m, n_in) array of the network's dtype; raises ValueError naming the bad shape."""
        X = np.asarray(X)
        if X.ndim == 1 and X.size == self.n_in:
            X = X.reshape(1, -1)
        if X.ndim != 2 or X.shape[1] != self.n_in:
            raise ValueError(
                f"X must have shape (m, {self.n_in}) for this network, got {X.shape}; flatten each image to one row"
            )
        return np.asarray(X, dtype=self.dtype)

    def check_labels(self, y: npt.ArrayLike, m: int) -> npt.NDArray[np.intp]:
        """y as an (m,) integer array with every label in [0, k)."""
        y = np.asarray(y)
        if y.shape != (m,):
            raise ValueError(f"y must have shape ({m},) to match X, got {y.shape}")
        if y.size and (not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= self.n_classes):
            raise ValueError(f"labels must be integers in [0, {self.n_classes}); got {y.dtype} values")
        return y.astype(np.intp, copy=False)

    def logits(self, X: Array) -> Array:
        """The output layer's pre-activation Z (m, k), without keeping anything for backward."""
        A = X
        for layer in self.layers[:-1]:
            A = layer.activation.forward(layer.linear(A))
        return self.layers[-1].linear(A)

    def predict_proba(self, X: npt.ArrayLike, *, batch_size: int = 4096) -> Array:
        """Class probabilities P (m, k) for inputs X (m, n_in) with values in [0, 1]."""
        X = self.check_input(X)
        out = np.empty((X.shape[0], self.n_classes), dtype=self.dtype)
        softmax = self.layers[-1].activation
        for start in range(0, X.shape[0], batch_size):
            out[start : start + batch_size] = softmax.forward(self.logits(X[start : start + batch_size]))
        return out

    def predict(self, X: npt.ArrayLike, *, batch_size: int = 4096) -> npt.NDArray[np.intp]:
        """Predicted labels (m,) for inputs X (m, n_in)."""
        X = self.check_input(X)
        labels = np.empty(X.shape[0], dtype=np.intp)
        for start in range(0, X.shape[0], batch_size):
            labels[start : start + batch_size] = self.logits(X[start : start + batch_size]).argmax(axis=1)
        return labels

    def activations(self, X: npt.ArrayLike) -> list[Array]:
        """The output A (m, n_out) of every layer for inputs X, the last being the probabilities."""
        A = self.check_input(X)
        outputs = []
        for layer in self.layers:
            A, _ = layer.forward(A)
            outputs.append(A)
        return outputs

    def loss(self, X: npt.ArrayLike, y: npt.ArrayLike, *, l2: float = 0.0) -> float:
        """Mean cross-entropy (+ L2 term) of the network on X (m, n_in), y (m,), forward only."""
        X = self.check_input(X)
        y = self.check_labels(y, X.shape[0])
        loss, _ = softmax_cross_entropy(self.logits(X), y)
        return loss + l2_penalty([layer.W for layer in self.layers], l2)

    def loss_and_grads(self, X: npt.ArrayLike, y: npt.ArrayLike, *, l2: float = 0.0) -> tuple[float, Grads]:
        """Mean cross-entropy (+ L2 term) on (X, y) and its gradient for every layer.

        X (m, n_in) floats, y (m,) integer labels.  Returns ``(loss, [(dW, db), ...])`` with one pair per
        layer, shaped like that layer's (W, b).
        """
        X = self.check_input(X)
        y = self.check_labels(y, X.shape[0])
        flat = np.empty_like(self.params)
        loss, _ = self.loss_and_flat_grad(X, y, flat, l2=l2)
        return loss, self.grad_views(flat)

    def loss_and_flat_grad(
        self,
        X: Array,
        y: npt.NDArray[np.intp],
        grad: Array,
        *,
        l2: float = 0.0,
        dropout: float = 0.0,
        rng: np.random.Generator | None = None,
    ) -> tuple[float, Array]:
        """The training step's core: forward, loss, backward into the flat buffer ``grad``.

        Inputs are trusted (the trainer checked them once).  Returns (loss, Z) with Z (m, k) the logits,
        from which the trainer reads the batch accuracy without another forward pass.

        ``dropout`` p > 0 applies inverted dropout to every hidden layer's output: each unit is kept
        with probability 1 - p and scaled by 1/(1 - p), so nothing changes at prediction time.  The
        masks M are drawn from ``rng``; backward multiplies dA by the same M.
        """
        # forward, keeping what backward needs
        caches: list[DenseCache] = []
        masks: list[Array | None] = []
        A = X
        for layer in self.layers[:-1]:
            A, cache = layer.forward(A)
            caches.append(cache)
            mask = None
            if dropout:
                assert rng is not None, "dropout needs a random generator"
                mask = rng.random(A.shape, dtype=self.dtype) >= dropout
                mask = mask * self.dtype.type(1.0 / (1.0 - dropout))
                A = A * mask  # a new array: the cache keeps the undropped A for the derivative
            masks.append(mask)
        out = self.layers[-1]
        Z = out.linear(A)
        # loss; the output softmax is fused with cross-entropy, so dZ = (P - Y)/m directly
        loss, dZ = softmax_cross_entropy(Z, y)
        # backward, from the last layer to the first
        # The trainer passes the same buffer every step, so its views are made once.
        if self._grad_views is None or self._grad_views[0] is not grad:
            self._grad_views = (grad, self.grad_views(grad))
        views = self._grad_views[1]
        dA, _, _ = out.backward_linear(dZ, A, need_dX=len(self.layers) > 1, out=views[-1])
        for i in range(len(self.layers) - 2, -1, -1):
            if masks[i] is not None:
                dA *= masks[i]
            dA, _, _ = self.layers[i].backward(dA, caches[i], need_dX=i > 0, out=views[i])
        if l2:
            loss += l2_penalty([layer.W for layer in self.layers], l2)
            for layer, (dW, _) in zip(self.layers, views, strict=True):
                dW += l2 * layer.W
        return loss, Z

    # -- files ----------------------------------------------------------------------------------

    def header(self) -> dict[str, Any]:
        """The architecture and metadata as a JSON-ready dict (the model file's header)."""
        return {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "n_in": self.n_in,
            "dtype": self.dtype.name,
            "layers": [{"units": s.units, "activation": s.activation, "init": s.init} for s in self.specs],
            "metadata": self.metadata,
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the weights, architecture and ``metadata`` to ``path`` (.npz), atomically."""
        header = self.header()
        arrays = {}
        for i, layer in enumerate(self.layers):
            arrays[f"W{i}"], arrays[f"b{i}"] = layer.W, layer.b
        return save_npz(path, arrays, header)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Network:
        """Read a network written by :meth:`save`; shapes and names are validated."""
        header, arrays = load_npz(path)
        return cls.from_header(header, arrays, source=str(path))

    @classmethod
    def from_header(
        cls, header: dict[str, Any], arrays: dict[str, np.ndarray], *, source: str, params: np.ndarray | None = None
    ) -> Network:
        """Rebuild a network from a saved header and its arrays W0, b0, ... (see :meth:`save`).

        ``params``, if given, is the flat parameter vector instead of the per-layer arrays.
        """
        if header.get("format") != FORMAT_NAME:
            raise ModelFileError(f"{source} is not an nnscratch model file")
        version = header.get("version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise ModelFileError(
                f"{source} uses model format version {version}, newer than this nnscratch understands "
                f"({FORMAT_VERSION}); upgrade nnscratch"
            )
        try:
            n_in = int(header["n_in"])
            dtype = _check_dtype(header["dtype"])
            specs = [LayerSpec(int(d["units"]), str(d["activation"]), d.get("init")) for d in header["layers"]]
        except SpecError as exc:
            raise ModelFileError(f"{source}: {exc}") from None
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise ModelFileError(f"{source} has an incomplete header ({exc!r}); retrain the model") from None
        metadata = header.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise ModelFileError(f"{source} has a corrupted header (metadata is not a mapping); retrain the model")
        if n_in < 1:
            raise ModelFileError(f"{source}: the input size must be positive, got {n_in}; the file is corrupted")
        # Check the arrays against the architecture before allocating anything: a header that lies
        # about the sizes must not make loading allocate more than the file holds.
        sizes = [n_in] + [s.units for s in specs]
        flat = params
        if flat is not None:
            if flat.shape != (_n_params(sizes),) or not np.all(np.isfinite(flat)):
                raise ModelFileError(f"{source}: the parameters do not fit the architecture; the file is corrupted")
        else:
            for i, (rows, cols) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
                for name, shape in ((f"W{i}", (rows, cols)), (f"b{i}", (cols,))):
                    if name not in arrays:
                        raise ModelFileError(f"{source} is missing the array {name}; the file is incomplete")
                    value = arrays[name]
                    if value.shape != shape:
                        raise ModelFileError(
                            f"{source}: array {name} has shape {value.shape} but the architecture needs "
                            f"{shape}; the file is corrupted"
                        )
                    if not np.issubdtype(value.dtype, np.floating) or not np.all(np.isfinite(value)):
                        raise ModelFileError(f"{source}: array {name} holds non-finite or non-float values")
        params = np.empty(_n_params(sizes), dtype=dtype)
        try:
            net = cls(n_in, specs, params)
        except SpecError as exc:
            raise ModelFileError(f"{source}: {exc}") from None
        if flat is not None:
            params[...] = flat
        for i, layer in enumerate(net.layers if flat is None else []):
            layer.W, layer.b = arrays[f"W{i}"], arrays[f"b{i}"]
        net.metadata = dict(metadata)
        return net


def _check_dtype(dtype: str | np.dtype) -> np.dtype:
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = str(dtype)
    if name not in DTYPES:
        raise SpecError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    return np.dtype(name)


def _n_params(sizes: list[int]) -> int:
    """How many weights and biases dense layers of these sizes (inputs first) hold."""
    return sum(n_in * n_out + n_out for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=False))


def _split(flat: Array, sizes: list[int]) -> tuple[list[Array], list[Array]]:
    """Views W_i (sizes[i], sizes[i+1]) and b_i (sizes[i+1],) into ``flat``, laid out W0 b0 W1 b1 ..."""
    Ws, bs, offset = [], [], 0
    for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
        Ws.append(flat[offset : offset + n_in * n_out].reshape(n_in, n_out))
        offset += n_in * n_out
        bs.append(flat[offset : offset + n_out])
        offset += n_out
    return Ws, bs
