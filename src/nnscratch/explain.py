"""Which input values an answer rests on: attributions from the hand-written backward pass.

Legend: x an input (one row, or one image), z_t(x) the logit of the explained class t (by default the
class the network predicts), g(x) = ∂z_t/∂x its gradient with respect to the input
(``Network.input_gradient(..., of="logit")``).  Each method gives one attribution per input value, in the
layout of the input:

* ``gradient``: g(x), how much z_t moves per unit of each pixel (a saliency map; Simonyan et al., 2014).
* ``gradxinput``: x ⊙ g(x), the first-order share of each pixel in z_t (Shrikumar et al., 2016).
* ``smoothgrad``: the mean of g over ``samples`` noisy copies x + ε, ε ~ N(0, σ²) per pixel with σ =
  ``noise`` (inputs are in [0, 1]): the gradient's fine-grained noise averages out (Smilkov et al., 2017).
* ``integrated``: integrated gradients (Sundararajan, Taly and Yan, 2017), from a baseline x′ (all zeros,
  a black image, by default) along the straight path to x:

      IG(x) = (x − x′) ⊙ ∫₀¹ g(x′ + α (x − x′)) dα  ≈  (x − x′) ⊙ (1/S) Σ_{s=1..S} g(x′ + (s − ½)/S · (x − x′))

  (the midpoint rule with S = ``steps`` points).  By the fundamental theorem of calculus along the path,
  Σ IG(x) = z_t(x) − z_t(x′): *completeness*.  The sum misses it only by the quadrature's error; that gap,
  Σ IG − (z_t(x) − z_t(x′)), is the *convergence delta* (as Captum names it), returned per example with
  ``return_delta=True``.  A ReLU network's gradient jumps along the path, so the rule converges slowly:
  on the shipped reader and the first 20 MNIST test digits the largest gap was 3.2% of z_t(x) − z_t(x′)
  at 64 steps, 0.81% at 128, 0.56% at 256 and 0.12% at 512.  The default, 256, keeps it within 1%
  (a test checks it on MNIST's test digits).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from nnscratch.errors import check_name
from nnscratch.network import Network

METHODS = ("gradient", "gradxinput", "smoothgrad", "integrated")
STEPS = 256
SAMPLES = 25
NOISE = 0.15
CHUNK_ROWS = 2048  # rows per backward pass when a method evaluates many points per example

Array = npt.NDArray[np.floating]


def explain(
    net: Network,
    X: npt.ArrayLike,
    method: str = "integrated",
    target: npt.ArrayLike | None = None,
    *,
    steps: int = STEPS,
    samples: int = SAMPLES,
    noise: float = NOISE,
    baseline: npt.ArrayLike | None = None,
    seed: int | None = 0,
    return_delta: bool = False,
) -> Array | tuple[Array, Array]:
    """Attributions of ``net``'s logit for class ``target`` (default: its prediction) to each value of X, in
    the layout of X (flat rows (m, n), images (m, C, H, W) or (m, H, W), or one row (n,)).

    ``steps`` and ``baseline`` (same layout as X, or one row for all; default zeros) are integrated
    gradients'; ``samples``, ``noise`` and ``seed`` SmoothGrad's.  With ``return_delta`` the integrated
    gradients come with their completeness gap per example (m,): Σ attributions − (z_t(x) − z_t(x′)).
    """
    check_name(METHODS, method, "explanation method")
    given = np.asarray(X)
    rows = net.check_input(given).reshape(-1, net.n_in)  # (m, n) in the network's own order (channels-last)
    m = rows.shape[0]
    Z = net.all_logits(given)
    targets = Z.argmax(axis=1) if target is None else np.broadcast_to(np.asarray(target), (m,))
    targets = net.check_labels(targets, m)
    if method in ("gradient", "gradxinput"):
        g = _gradients(net, rows, targets)
        values = g if method == "gradient" else rows * g
        delta = None
    elif method == "smoothgrad":
        _check_count(samples, "samples")
        if not (isinstance(noise, int | float) and 0 <= noise <= 1):
            raise ValueError(f"noise must be a standard deviation in [0, 1], got {noise!r}")
        rng = np.random.default_rng(seed)
        noisy = rows[:, None, :] + rng.normal(0.0, noise, (m, samples, rows.shape[1])).astype(rows.dtype)
        g = _gradients(net, noisy.reshape(m * samples, -1), np.repeat(targets, samples))
        values, delta = g.reshape(m, samples, -1).mean(axis=1), None
    else:
        _check_count(steps, "steps")
        start = _baseline(net, baseline, given, m)
        alphas = ((np.arange(steps) + 0.5) / steps).astype(rows.dtype)
        path = start[:, None, :] + alphas[None, :, None] * (rows - start)[:, None, :]
        g = _gradients(net, path.reshape(m * steps, -1), np.repeat(targets, steps))
        values = (rows - start) * g.reshape(m, steps, -1).mean(axis=1)
        picked = np.arange(m)
        reached = Z[picked, targets] - net.all_logits(_in_layout(net, start, given))[picked, targets]
        delta = values.sum(axis=1, dtype=np.float64) - reached
    out = _in_layout(net, values, given)
    if return_delta:
        if delta is None:
            raise ValueError(f"only integrated gradients have a completeness gap, not {method!r}")
        return out, np.asarray(delta)
    return out


def _check_count(value: int, name: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 10_000:
        raise ValueError(f"{name} must be a whole number from 1 to 10,000, got {value!r}")


def _gradients(net: Network, rows: Array, targets: npt.NDArray[np.intp]) -> Array:
    """∂z_t/∂x for each row (in the network's own value order), in chunks of rows."""
    out = np.empty_like(rows)
    for start in range(0, rows.shape[0], CHUNK_ROWS):
        part = slice(start, start + CHUNK_ROWS)
        chunk = _in_layout(net, rows[part], None)
        gradient = net.input_gradient(chunk, targets[part], of="logit")
        out[part] = _own_order(net, gradient)
    return out


def _baseline(net: Network, baseline: npt.ArrayLike | None, given: np.ndarray, m: int) -> Array:
    if baseline is None:
        return np.zeros((m, net.n_in), dtype=net.dtype)
    base = np.asarray(baseline, dtype=net.dtype)
    if base.size == net.n_in:  # one baseline for every example
        base = np.broadcast_to(base.reshape(1, *given.shape[1:]) if given.ndim > 1 else base, given.shape)
    return net.check_input(base).reshape(-1, net.n_in)


def _in_layout(net: Network, rows: Array, given: np.ndarray | None) -> Array:
    """Rows in the network's own order (channels-last for images) back in the layout of ``given``
    (channels-first flat rows when ``given`` is None)."""
    if len(net.input_shape) == 3:
        C, H, W = net.input_shape
        rows = rows.reshape(-1, H, W, C).transpose(0, 3, 1, 2).reshape(-1, net.n_in)
    return np.ascontiguousarray(rows).reshape(given.shape) if given is not None else rows


def _own_order(net: Network, gradient: Array) -> Array:
    """A gradient of channels-first flat rows in the network's own order (channels-last for images)."""
    if len(net.input_shape) == 3:
        C, H, W = net.input_shape
        return gradient.reshape(-1, C, H, W).transpose(0, 2, 3, 1).reshape(-1, net.n_in)
    return gradient
