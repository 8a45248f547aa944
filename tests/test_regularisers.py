"""L1, decoupled weight decay (AdamW), alpha-dropout for SELU, and augmentation inside training."""

from __future__ import annotations

import numpy as np
import pytest

from nnscratch.errors import SpecError
from nnscratch.gradcheck import check_gradients, check_layer
from nnscratch.layers import AlphaDropout
from nnscratch.layers.dropout import SELU_SATURATION, alpha_dropout_mask
from nnscratch.network import Network
from nnscratch.optimizers import Adam, AdamW
from nnscratch.training import Callback, TrainConfig, Trainer, resume, train
from tests.conftest import Interrupted, stop_after_epoch


def test_l1_adds_lambda_times_the_absolute_weights_and_sign_to_the_gradient(rng):
    net = Network.from_spec("6-5:tanh-3", seed=0, dtype="float64")
    X, y = rng.random((4, 6)), np.array([0, 2, 1, 2])
    plain, plain_grads = net.loss_and_grads(X, y)
    loss, grads = net.loss_and_grads(X, y, l1=0.3)
    weights = sum(np.abs(layer.W).sum() for layer in net.layers)
    assert loss == pytest.approx(plain + 0.3 * weights)
    for layer, (dW, db), (dW0, db0) in zip(net.layers, grads, plain_grads, strict=True):
        np.testing.assert_allclose(dW, dW0 + 0.3 * np.sign(layer.W))
        np.testing.assert_allclose(db, db0)  # biases are not penalised


def test_l1_and_l2_together_pass_the_gradient_check(rng):
    net = Network.from_spec("1x6x6-conv3k3-relu-flatten-7-bn-tanh-3", seed=0, dtype="float64")
    results = check_gradients(net, rng.random((5, 36)), rng.integers(0, 3, 5), l1=0.01, l2=0.02)
    assert all(r.passed for r in results), results


def test_adamw_shrinks_the_weights_before_the_adam_step_and_leaves_biases_alone(rng):
    params = rng.standard_normal(10).astype(np.float64)
    grad = rng.standard_normal(10)
    adam, adamw = Adam(), AdamW(0.5, decayed=[(0, 6)])
    a, w = params.copy(), params.copy()
    adam.step(a, grad.copy(), 0.1)
    adamw.step(w, grad.copy(), 0.1)
    # PyTorch's AdamW: θ ← θ (1 - η λ), then the Adam update (which does not depend on θ)
    np.testing.assert_allclose(w[:6], a[:6] - 0.1 * 0.5 * params[:6])
    np.testing.assert_allclose(w[6:], a[6:])


def test_adamw_matches_pytorch_where_installed(rng):
    torch = pytest.importorskip("torch")
    start = rng.standard_normal(8)
    grads = [rng.standard_normal(8) for _ in range(5)]
    theta = torch.tensor(start.copy(), requires_grad=True)
    reference = torch.optim.AdamW([theta], lr=0.01, weight_decay=0.1)
    ours, params = AdamW(0.1, decayed=[(0, 8)]), start.copy()
    for g in grads:
        theta.grad = torch.tensor(g)
        reference.step()
        ours.step(params, g.copy(), 0.01)
    np.testing.assert_allclose(params, theta.detach().numpy(), rtol=1e-6, atol=1e-9)


def test_weight_decay_is_adamws_and_settings_are_checked():
    with pytest.raises(SpecError, match="weight decay is AdamW's"):
        TrainConfig(optimizer="adam", weight_decay=0.01)
    with pytest.raises(SpecError, match="l1 must be a number >= 0"):
        TrainConfig(l1=-1.0)
    with pytest.raises(SpecError, match="unknown augmentation 'blur'"):
        TrainConfig(augment="blur")
    assert TrainConfig(optimizer="adamw", weight_decay=0.01).weight_decay == 0.01


def test_alpha_dropout_keeps_selus_mean_and_variance(rng):
    A = rng.standard_normal((4000, 300))
    factor, shift = alpha_dropout_mask(A.shape, 0.2, rng, np.dtype("float64"))
    Y = A * factor + shift
    assert abs(Y.mean()) < 0.01 and abs(Y.var() - 1.0) < 0.01
    dropped = factor == 0
    assert dropped.mean() == pytest.approx(0.2, abs=0.01)
    a = ((1 - 0.2) * (1 + 0.2 * SELU_SATURATION**2)) ** -0.5
    np.testing.assert_allclose(Y[dropped], a * SELU_SATURATION - a * 0.2 * SELU_SATURATION)


def test_alpha_dropout_layer_gradient_and_prediction(rng):
    layer = AlphaDropout(0.3).materialize((3, 4, 4))
    assert all(r.passed for r in check_layer(layer, rng.standard_normal((5, 4, 4, 3))))
    X = rng.standard_normal((5, 4, 4, 3))
    assert layer.forward(X, training=False)[0] is X
    assert Network.from_spec("10-8:selu-alphadropout0.1-3").spec == "10-8:selu-alphadropout0.1-3:softmax"


def test_dropout_on_a_selu_network_is_alpha_dropout(rng):
    net = Network.from_spec("10-200:selu-3", seed=0, dtype="float64")
    X = rng.standard_normal((400, 10))
    _, caches = net.forward(X, training=True, rng=np.random.default_rng(0), dropout=0.25)
    assert isinstance(caches.stack.layers[1], AlphaDropout)  # the network put it after layer 0
    values = np.unique(caches.values[1])
    a = ((1 - 0.25) * (1 + 0.25 * SELU_SATURATION**2)) ** -0.5
    np.testing.assert_allclose(values, [0.0, a])
    results = check_gradients(net, X[:6], rng.integers(0, 3, 6), dropout=0.25, max_entries=60)
    assert all(r.passed for r in results)


# -- augmentation inside training -------------------------------------------------------------------


@pytest.fixture
def images(rng):
    X = rng.random((96, 64), dtype=np.float32) * 0.2
    y = np.arange(96) % 3
    X[np.arange(96), 20 + 9 * y] = 1.0  # one bright pixel per class, away from the edges
    return X, y


def test_training_with_augmentation_resumes_bit_for_bit(tmp_path, images):
    X, y = images
    config = TrainConfig(epochs=3, batch_size=16, validation_size=16, augment="elastic", seed=4)
    whole = Network.from_spec("1x8x8-flatten-12:relu-3", seed=0)
    train(whole, X, y, config)

    with pytest.raises(Interrupted):
        train(
            Network.from_spec("1x8x8-flatten-12:relu-3", seed=0),
            X,
            y,
            config,
            checkpoint_dir=tmp_path,
            callback=stop_after_epoch(1),
        )
    resumed, _ = resume(tmp_path, X, y)
    np.testing.assert_array_equal(resumed.params, whole.params)


def test_augmentation_changes_the_training_batches_but_never_the_validation_images(images, monkeypatch):
    X, y = images
    seen = []
    net = Network.from_spec("64-12:relu-3", seed=0)
    original = net.loss_and_flat_grad

    def spy(xb, yb, grad, **kwargs):
        seen.append(xb.copy())
        return original(xb, yb, grad, **kwargs)

    monkeypatch.setattr(net, "loss_and_flat_grad", spy)
    trainer = Trainer(net, X, y, TrainConfig(epochs=1, batch_size=80, validation_size=16, augment="shift"))
    X_val = trainer.X_val.copy()
    trainer.run(Callback())
    np.testing.assert_array_equal(trainer.X_val, X_val)
    (batch,) = seen
    assert batch.shape == (80, 64) and not any(np.array_equal(batch, X[i : i + 80]) for i in range(17))
    # a whole-pixel shift keeps every value: the batch holds the same values as some 80 training rows
    assert np.isin(batch[batch > 0.5], [1.0]).all()


def test_augmentation_needs_single_channel_square_images():
    with pytest.raises(SpecError, match="augmentation transforms single-channel images"):
        Trainer(Network.from_spec("10-3", seed=0), np.zeros((20, 10)), np.zeros(20, int), TrainConfig(augment="affine"))
