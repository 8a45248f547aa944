"""Threads: chunks cover the work once, results are fixed for a thread count, and what differs is pinned."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest

from nnscratch.errors import SpecError
from nnscratch.layers import ActivationLayer, BatchNorm, Conv2D, MaxPool2D
from nnscratch.network import Network
from nnscratch.optimizers import Adam, Momentum
from nnscratch.parallel import (
    ENV_THREADS,
    GRAIN,
    MAX_THREADS,
    Threads,
    default_threads,
    single_threaded_blas,
    thread_pool,
)
from nnscratch.training import TrainConfig, train

CNN = "1x12x12-conv8k3p1-bn-relu-maxpool2-conv8k3-relu-flatten-dropout0.2-16:tanh-3"


@pytest.fixture
def split_everything(monkeypatch):
    """Small test arrays split over the threads as large ones would (no operation stays whole)."""
    import nnscratch.parallel

    monkeypatch.setattr(nnscratch.parallel, "GRAIN", 1)


def test_chunks_cover_the_range_once_in_order():
    threads = Threads(3)
    assert threads.chunks(10, size=GRAIN) == [(0, 3), (3, 6), (6, 10)]
    assert threads.chunks(2, size=GRAIN) == [(0, 1), (1, 2)]  # never an empty chunk
    assert threads.chunks(1000, size=1) == [(0, 1000)]  # small work stays on the calling thread
    seen = []
    threads.run(lambda a, b: seen.extend(range(a, b)), 10, size=GRAIN)
    assert sorted(seen) == list(range(10))
    assert threads.run(lambda a, b: (a, b), 10, size=GRAIN) == [(0, 3), (3, 6), (6, 10)]


def test_a_failing_chunk_raises_in_the_caller_and_the_pool_keeps_working():
    threads = Threads(2)

    def fail_late(a, b):
        if a > 0:
            raise ValueError(f"chunk {a}:{b}")
        return a

    with pytest.raises(ValueError, match="chunk 5:10"):
        threads.run(fail_late, 10, size=GRAIN)
    assert threads.run(lambda a, b: b - a, 10, size=GRAIN) == [5, 5]


def test_workers_follow_the_callers_floating_point_error_handling():
    threads = Threads(2)
    big = np.full(2 * GRAIN, 3e38, dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any overflow warning from any thread would fail here
        with np.errstate(over="ignore"):
            threads.run(lambda a, b: big[a:b] * np.float32(10), big.size)
        with np.errstate(over="raise"), pytest.raises(FloatingPointError):
            threads.run(lambda a, b: big[a:b] * np.float32(10), big.size)


def test_thread_counts_are_checked(monkeypatch):
    for n in (0, MAX_THREADS + 1, 10**6, 2.0, True):  # a million threads would exhaust memory before refusing
        with pytest.raises(SpecError, match=f"an integer from 1 to {MAX_THREADS}, got {n!r}"):
            Threads(n)
    assert Threads(MAX_THREADS).n == MAX_THREADS  # no worker starts before the first run
    with pytest.raises(SpecError, match="from 1 to 256"):
        Network.from_spec("4-2", threads=100_000)
    for text in ("lots", "0", "257"):
        monkeypatch.setenv(ENV_THREADS, text)
        with pytest.raises(SpecError, match=f"{ENV_THREADS} must be a number of threads from 1 to 256, got '{text}'"):
            default_threads()
    monkeypatch.setenv(ENV_THREADS, "3")
    assert default_threads() == 3 and Network.from_spec("4-2").threads == 3
    assert thread_pool(3) is thread_pool(3)  # one pool of each size per process


def test_blas_uses_one_thread_inside_the_engine():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    controller = threadpoolctl.ThreadpoolController()
    with single_threaded_blas(), single_threaded_blas():
        inside = [lib["num_threads"] for lib in controller.info() if lib["user_api"] == "blas"]
    assert inside and set(inside) == {1}


def test_a_blas_library_loaded_after_the_first_block_is_held_to_one_thread_too():
    # SciPy brings an OpenBLAS of its own beside NumPy's; imported after the engine first ran (as a test
    # of scikit-learn or PyTorch may do), its threads must be held too.  A fresh interpreter, so that
    # SciPy is really loaded in between.
    pytest.importorskip("threadpoolctl")
    code = (
        "import threadpoolctl\n"
        "from nnscratch.parallel import single_threaded_blas\n"
        "with single_threaded_blas(): pass\n"
        "import scipy.linalg\n"
        "controller = threadpoolctl.ThreadpoolController()\n"
        "with single_threaded_blas():\n"
        "    inside = [(lib['filepath'], lib['num_threads']) for lib in controller.info()\n"
        "              if lib['user_api'] == 'blas']\n"
        "print(inside)\n"
        "assert len(inside) >= 2 and all(n == 1 for _, n in inside), inside\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    "make, shape",
    [
        (lambda: ActivationLayer("selu"), (4, 40, 40)),
        (lambda: MaxPool2D(2), (8, 33, 30)),
        (lambda: ActivationLayer("softmax"), (16, 20, 20)),
    ],
)
def test_elementwise_layers_give_the_same_bits_on_any_number_of_threads(make, shape, rng, split_everything):
    X = rng.standard_normal((10, shape[1], shape[2], shape[0])).astype(np.float32)
    C, H, W = make().build(shape)
    dY = rng.standard_normal((10, H, W, C)).astype(np.float32)
    results = []
    for n in (1, 2, 3):
        layer = make().materialize(shape)
        layer.pool = Threads(n)
        Y, cache = layer.forward(X, training=True)
        results.append((Y.copy(), np.array(layer.backward(dY.copy(), cache, {}))))
    for Y, dX in results[1:]:
        np.testing.assert_array_equal(Y, results[0][0])
        np.testing.assert_array_equal(dX, results[0][1])


@pytest.mark.parametrize("make", [Adam, lambda: Momentum(0.9, nesterov=True)])
def test_optimiser_steps_are_the_same_on_any_number_of_threads(make, rng, split_everything):
    start = rng.standard_normal(3 * GRAIN).astype(np.float32)
    finals = []
    for n in (1, 2, 4):
        optimizer, params = make(), start.copy()
        optimizer.pool = Threads(n)
        for step in range(3):
            optimizer.step(params, rng_for(step).standard_normal(params.size).astype(np.float32), 1e-3)
        finals.append(params)
    for params in finals[1:]:
        np.testing.assert_array_equal(params, finals[0])


def rng_for(step):
    return np.random.default_rng(100 + step)


def train_with(threads, X, y):
    net = Network.from_spec(CNN, seed=0, threads=threads)
    history = train(net, X, y, TrainConfig(epochs=2, batch_size=64, validation_size=32, seed=1))
    return net, history


def test_training_is_bit_for_bit_repeatable_for_a_thread_count_and_equally_good_across_counts(rng, split_everything):
    X = rng.random((256, 144), dtype=np.float32)
    y = np.argmax(X.reshape(256, 3, 48).sum(axis=2), axis=1)  # a rule the network can learn
    one_a, history_one = train_with(1, X, y)
    one_b, _ = train_with(1, X, y)
    two_a, history_a = train_with(2, X, y)
    two_b, history_b = train_with(2, X, y)
    # One machine, one thread count: the same bits, every time.
    np.testing.assert_array_equal(one_a.params, one_b.params)
    np.testing.assert_array_equal(two_a.params, two_b.params)
    np.testing.assert_array_equal(two_a.state, two_b.state)
    assert history_a["train_loss"] == history_b["train_loss"]
    # Another count sums some products and batch norm's statistics in another order, so the last bits
    # differ, and training (a chaotic process: each step's rounding feeds the next) amplifies them by an
    # amount that depends on the CPU.  What a user needs is that the counts train equally well: the same
    # losses and accuracy, within margins far above what rounding does (measured here: 1e-7 relative in
    # the training loss, 3e-4 in the validation loss, at most one of 256 labels changed).
    np.testing.assert_allclose(history_a["train_loss"], history_one["train_loss"], rtol=1e-2)
    np.testing.assert_allclose(history_a["val_loss"], history_one["val_loss"], rtol=2e-2)
    assert np.mean(one_a.predict(X) == y) == pytest.approx(np.mean(two_a.predict(X) == y), abs=0.03)


def test_one_gradient_agrees_across_thread_counts_within_float32_rounding(rng, split_everything):
    X, y = rng.random((64, 144), dtype=np.float32), np.arange(64) % 3
    (loss_one, g_one), (loss_two, g_two) = (Network.from_spec(CNN, seed=0, threads=n).gradient(X, y) for n in (1, 2))
    # The longest sums are a convolution's weight gradient: 64 examples x 12 x 12 positions.  Reordering
    # a float32 sum of n terms moves it by at most n * 2**-24 of the sum of their magnitudes (Higham's
    # gamma_n, 5.5e-4 for n = 9216); measured, the whole gradient moves by about 1e-6 of its norm.
    gap = np.linalg.norm(g_two - g_one) / np.linalg.norm(g_one)
    assert gap <= 9216 * 2.0**-24
    assert loss_two == pytest.approx(loss_one, rel=1e-5)


def test_predictions_agree_across_thread_counts(rng, split_everything):
    net = Network.from_spec(CNN, seed=0)
    X = rng.random((300, 144), dtype=np.float32)
    answers = []
    for n in (1, 2, 3):
        net.threads = n
        assert all(layer.pool.n == n for layer in net.layers)
        answers.append(net.predict_proba(X))
    for P in answers[1:]:
        np.testing.assert_allclose(P, answers[0], rtol=1e-5, atol=1e-6)
    assert net.copy().threads == 3


def test_conv_and_batch_norm_chunks_compute_the_same_gradients(rng, split_everything):
    # The same layer on 1 and 2 threads: the same answers up to float64 rounding of split sums.
    for make, shape in ((lambda: Conv2D(6, 3, padding=1), (3, 16, 16)), (lambda: BatchNorm(), (8, 20, 20))):
        outs = []
        for n in (1, 2):
            layer = make().materialize(shape, seed=0)
            layer.pool = Threads(n)
            X = np.random.default_rng(0).standard_normal((40, shape[1], shape[2], shape[0]))
            Y, cache = layer.forward(X, training=True)
            grad = np.zeros_like(layer.flat)
            dX = layer.backward(np.ones_like(Y), cache, layer.views(grad))
            outs.append((Y.copy(), np.array(dX), grad))
        (Y1, dX1, g1), (Y2, dX2, g2) = outs
        np.testing.assert_allclose(Y1, Y2, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(dX1, dX2, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(g1, g2, rtol=1e-10, atol=1e-10)
        assert np.abs(g1).sum() > 0
