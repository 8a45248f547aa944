"""Proven gradients: every activation, the seed stack, softmax as a hidden activation, with L2."""

from __future__ import annotations

import numpy as np
import pytest

from nnscratch.activations import ACTIVATIONS, Tanh
from nnscratch.gradcheck import check_gradients, relative_error
from nnscratch.network import Network


def data(rng, n_in, k, m=6):
    return rng.random((m, n_in)), rng.integers(0, k, m)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_each_activation_alone_passes(name, rng):
    net = Network.from_spec(f"10-7:{name}-4:softmax", seed=0, dtype="float64")
    results = check_gradients(net, *data(rng, 10, 4))
    assert len(results) == 4 and all(r.checked == np.prod(r.shape) for r in results)
    assert all(r.passed for r in results), results


def test_seed_stack_passes_for_every_parameter(rng):
    net = Network.from_spec("784-32:relu-32:sigmoid-64:selu-64:tanh-10:softmax", seed=0, dtype="float64")
    results = check_gradients(net, *data(rng, 784, 10, m=4))
    assert sum(r.checked for r in results) == net.n_params
    assert max(r.relative_error for r in results) < 1e-6


def test_softmax_as_a_hidden_activation_passes_with_l2(rng):
    net = Network.from_spec("12-8:softmax-6:tanh-5:softmax-3:softmax", seed=0, dtype="float64")
    results = check_gradients(net, *data(rng, 12, 3), l2=0.05)
    assert all(r.passed for r in results), results


def test_a_wrong_derivative_is_caught(rng, monkeypatch):
    # tanh with the derivative 1 - a instead of 1 - a²: gradcheck must fail on the layers below it.
    monkeypatch.setattr(Tanh, "backward", lambda self, z, a, da: da * (1.0 - a))
    net = Network.from_spec("10-7:tanh-4:softmax", seed=0, dtype="float64")
    results = check_gradients(net, *data(rng, 10, 4))
    assert not results[0].passed and results[-1].passed  # the output layer's own gradient is unaffected


def test_sampling_checks_only_the_requested_entries(rng):
    net = Network.from_spec("50-20:relu-3:softmax", seed=0, dtype="float64")
    results = check_gradients(net, *data(rng, 50, 3), max_entries=25)
    assert [r.checked for r in results] == [25, 20, 25, 3]
    assert all(r.passed for r in results)


def test_relative_error_is_zero_for_equal_and_two_for_opposite():
    a = np.array([1.0, -2.0])
    assert relative_error(a, a) == 0.0 and relative_error(np.zeros(2), np.zeros(2)) == 0.0
    assert relative_error(a, -a) == pytest.approx(1.0)


def test_matches_pytorch_autograd_where_installed(rng):
    torch = pytest.importorskip("torch")
    net = Network.from_spec("20-16:relu-12:sigmoid-10:selu-8:tanh-6:softmax-4:softmax", seed=0, dtype="float64")
    X, y = data(rng, 20, 4, m=9)
    loss, grads = net.loss_and_grads(X, y, l2=0.01)
    params = [
        (torch.tensor(layer.W, requires_grad=True), torch.tensor(layer.b, requires_grad=True)) for layer in net.layers
    ]
    acts = [torch.relu, torch.sigmoid, torch.selu, torch.tanh, lambda z: torch.softmax(z, dim=1)]
    A = torch.tensor(X)
    for (W, b), act in zip(params[:-1], acts, strict=True):
        A = act(A @ W + b)
    Z = A @ params[-1][0] + params[-1][1]
    t_loss = torch.nn.functional.cross_entropy(Z, torch.tensor(y)) + 0.005 * sum((W**2).sum() for W, _ in params)
    t_loss.backward()
    assert loss == pytest.approx(t_loss.item(), rel=1e-12)
    for (dW, db), (W, b) in zip(grads, params, strict=True):
        np.testing.assert_allclose(dW, W.grad.numpy(), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(db, b.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_the_dropout_training_step_passes(rng):
    net = Network.from_spec("12-9:relu-7:selu-3:softmax", seed=0, dtype="float64")
    results = check_gradients(net, *data(rng, 12, 3), dropout=0.3, seed=5)
    assert all(r.passed for r in results), results
