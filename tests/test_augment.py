"""Augmentation: shapes, ranges, determinism, the identity at zero strength, exact shifts, smooth fields."""

from __future__ import annotations

import numpy as np
import pytest

from nnscratch.augment import (
    KINDS,
    AffineDraw,
    Augmentation,
    Augmenter,
    affine_positions,
    augment,
    draw_affine,
    draw_elastic,
    draw_whole_shifts,
    field_step,
    gaussian_matrix,
    sample_bilinear,
    shift_whole_pixels,
    source_positions,
    whole_pixel_limit,
)
from nnscratch.errors import SpecError
from nnscratch.network import Network
from nnscratch.training import Callback, TrainConfig, Trainer, train
from tests.conftest import Interrupted, stop_after_epoch


@pytest.fixture
def digits(rng):
    """Eight 28×28 'digits': a bright blob on a black background, like MNIST."""
    images = np.zeros((8, 28, 28), dtype=np.float32)
    for i in range(8):
        r, c = rng.integers(9, 19, 2)
        images[i, r - 3 : r + 4, c - 2 : c + 3] = rng.uniform(0.5, 1.0)
    return images


@pytest.mark.parametrize("kind", KINDS)
def test_a_batch_keeps_its_shape_range_and_dtype(kind, digits, rng):
    out = augment(digits, Augmentation(kind), rng)
    assert out.shape == digits.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert out is not digits


@pytest.mark.parametrize("kind", ["shift", "affine", "elastic", "pen"])
def test_the_same_seed_gives_the_same_batch_and_another_seed_another(kind, digits):
    a = augment(digits, Augmentation(kind), np.random.default_rng(5))
    b = augment(digits, Augmentation(kind), np.random.default_rng(5))
    c = augment(digits, Augmentation(kind), np.random.default_rng(6))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c) and not np.array_equal(a, digits)


@pytest.mark.parametrize("kind", KINDS)
def test_zero_strength_is_the_identity(kind, digits, rng):
    np.testing.assert_array_equal(augment(digits, Augmentation(kind, strength=0.0), rng), digits)


def test_affine_math_with_nothing_drawn_is_the_identity(digits):
    # The affine path itself (not the zero-strength shortcut) at zero ranges reads every pixel in place.
    still = Augmentation("affine", shift=0.0, rotate=0.0, scale=0.0, shear=0.0)
    rows, cols = source_positions(still, 8, 28, 28, np.random.default_rng(0))
    np.testing.assert_allclose(rows, np.broadcast_to(np.arange(28.0)[:, None], (8, 28, 28)), atol=1e-12)
    np.testing.assert_allclose(sample_bilinear(digits.astype(np.float64), rows, cols), digits, atol=1e-6)


def test_a_shift_moves_the_digit_by_exactly_the_drawn_whole_pixels(digits):
    aug = Augmentation("shift", shift=2.0)
    rng = np.random.default_rng(3)
    out = augment(digits, aug, rng)
    # Redraw the same shifts: the first two draws of the same generator are the rows', then the cols'.
    replay = np.random.default_rng(3)
    ty, tx = replay.integers(-2, 3, 8), replay.integers(-2, 3, 8)
    for i in range(8):
        expected = np.roll(digits[i], (ty[i], tx[i]), axis=(0, 1))  # the blobs are far from the edges
        np.testing.assert_array_equal(out[i], expected)
    assert (ty != 0).any() or (tx != 0).any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_shift_at_the_edge_drops_what_leaves_the_frame_and_reads_zeros_where_it_came_from(dtype):
    full = np.random.default_rng(0).uniform(0.1, 1.0, (50, 6, 5)).astype(dtype)  # ink everywhere, edges too
    rng = np.random.default_rng(4)
    out = shift_whole_pixels(full, 2, rng)
    replay = np.random.default_rng(4)
    ty, tx = replay.integers(-2, 3, 50), replay.integers(-2, 3, 50)
    assert out.dtype == dtype and {int(t) for t in ty} == {-2, -1, 0, 1, 2}
    for i in range(50):
        expected = np.zeros_like(full[i])
        H, W = full[i].shape
        expected[max(ty[i], 0) : H + min(ty[i], 0), max(tx[i], 0) : W + min(tx[i], 0)] = full[i][
            max(-ty[i], 0) : H + min(-ty[i], 0), max(-tx[i], 0) : W + min(-tx[i], 0)
        ]
        np.testing.assert_array_equal(out[i], expected)  # exact: no interpolation, zeros outside


def test_a_shift_of_at_most_zero_pixels_is_a_copy(digits):
    out = shift_whole_pixels(digits, 0, np.random.default_rng(0))
    np.testing.assert_array_equal(out, digits)
    assert out is not digits


def one_transform(rotation=0.0, zoom=1.0, shear=0.0, ty=0.0, tx=0.0) -> AffineDraw:
    return AffineDraw(*(np.array([v], dtype=np.float64) for v in (rotation, zoom, shear, ty, tx)))


# On a 27×27 image the centre is the pixel (13, 13); the pixel (10, 13) is 3 rows above it, offset (-3, 0).
# The forward map F = rotate(θ)·shear(h)·scale(s) sends an offset (dy, dx) to F·(dy, dx), then the shift adds
# (ty, tx): rotate(θ) = [[cos θ, -sin θ], [sin θ, cos θ]], shear(h) = [[1, 0], [h, 1]] (the column moves by h
# times the row).  Each case's target is that arithmetic done by hand.
@pytest.mark.parametrize(
    "transform, target",
    [
        (one_transform(ty=2.0, tx=-1.0), (12, 12)),  # moved 2 rows down and 1 column left
        (one_transform(rotation=90.0), (13, 10)),  # (-3, 0) → (0·-3 - 1·0, 1·-3 + 0·0) = (0, -3)
        (one_transform(rotation=-90.0), (13, 16)),  # (-3, 0) → (0, 3)
        (one_transform(rotation=180.0), (16, 13)),  # (-3, 0) → (3, 0)
        (one_transform(zoom=2.0), (7, 13)),  # (-3, 0) → (-6, 0)
        (one_transform(shear=1.0), (10, 10)),  # (-3, 0) → (-3, -3 + 0)
        (one_transform(rotation=90.0, shear=1.0), (16, 10)),  # shear first: (-3, -3), then rotate: (3, -3)
        (one_transform(rotation=90.0, zoom=2.0, ty=-1.0, tx=2.0), (12, 9)),  # (-6, 0) → (0, -6), + (-1, 2)
    ],
)
def test_a_known_shift_and_rotation_go_where_the_formula_says(transform, target):
    image = np.zeros((1, 27, 27), dtype=np.float32)
    image[0, 10, 13] = 1.0
    rows, cols = affine_positions(transform, 27, 27)
    moved = sample_bilinear(image, rows, cols)
    assert moved[0][target] == pytest.approx(1.0, abs=1e-4)  # read exactly from the bright pixel
    assert np.unravel_index(moved[0].argmax(), (27, 27)) == target


def test_affine_source_positions_are_the_inverse_map_of_the_drawn_transforms():
    # source_positions draws with draw_affine; replaying the generator gives the transforms, and every
    # output pixel p must read from F⁻¹ (p - c - t) + c, computed here in float64 from the docstring.
    aug = Augmentation("affine", strength=1.5)
    rows, cols = source_positions(aug, 6, 20, 17, np.random.default_rng(8))
    d = draw_affine(aug, 6, np.random.default_rng(8))
    c = np.array([9.5, 8.0])
    grid = np.stack(np.meshgrid(np.arange(20.0), np.arange(17.0), indexing="ij"), -1)  # (20, 17, 2)
    for i in range(6):
        t = np.radians(d.rotation[i])
        F = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]]) @ np.array([[1, 0], [d.shear[i], 1]])
        F = F * d.zoom[i]
        expected = (grid - c - [d.ty[i], d.tx[i]]) @ np.linalg.inv(F).T + c
        np.testing.assert_allclose(rows[i], expected[..., 0], atol=1e-4)
        np.testing.assert_allclose(cols[i], expected[..., 1], atol=1e-4)


# The documented ranges at strength 1 (docs/howto/augmentation.md and Augmentation): 12°, 10% zoom, a shear of 0.15,
# 2 pixels.
RANGES = {"rotation": 12.0, "zoom": 0.1, "shear": 0.15, "ty": 2.0, "tx": 2.0}


@pytest.mark.parametrize("kind", ["affine", "elastic"])
@pytest.mark.parametrize("strength", [0.25, 0.5, 1.0, 2.0])
def test_drawn_affine_parameters_fill_their_documented_ranges_times_the_strength(kind, strength):
    aug = TrainConfig(augment=kind, augment_strength=strength).augmentation()  # as --augment-strength makes it
    d = draw_affine(aug, 20_000, np.random.default_rng(int(strength * 100)))
    for name, limit in RANGES.items():
        values = getattr(d, name) - (1.0 if name == "zoom" else 0.0)
        bound = limit * strength
        assert np.abs(values).max() <= bound, name
        # uniform on [-bound, bound]: 20,000 draws come within 1% of both ends (each missed with chance 1e-44)
        assert values.max() > 0.99 * bound and values.min() < -0.99 * bound, name
        assert abs(values.mean()) < 0.02 * bound and np.abs(values).mean() == pytest.approx(bound / 2, rel=0.02), name


@pytest.mark.parametrize("strength, limit", [(0.3, 1), (0.75, 2), (1.0, 2), (1.5, 3)])
def test_whole_pixel_shifts_take_every_value_up_to_the_rounded_limit(strength, limit):
    aug = Augmentation("shift", strength=strength)
    assert whole_pixel_limit(aug) == limit  # round(2 · S)
    ty, tx = draw_whole_shifts(whole_pixel_limit(aug), 2000, np.random.default_rng(0))
    assert set(ty.tolist()) == set(tx.tolist()) == set(range(-limit, limit + 1))
    # and augment moves a single bright pixel by exactly those: every move up to the limit, none beyond
    image = np.zeros((2000, 15, 15), dtype=np.float32)
    image[:, 7, 7] = 1.0
    out = augment(image, aug, np.random.default_rng(1))
    where = np.array(np.unravel_index(out.reshape(2000, -1).argmax(axis=1), (15, 15))) - 7  # (2, m)
    assert out.sum() == 2000 and set(where.ravel().tolist()) == set(range(-limit, limit + 1))


def smooth_fields(fields, sigma):
    """Gaussian-smooth each (H, W) field of fields (m, H, W) pixel by pixel: G_H · field · G_Wᵀ, batched
    (what ``smooth_noise`` draws cell by cell)."""
    _, H, W = fields.shape
    return gaussian_matrix(H, sigma, fields.dtype) @ fields @ gaussian_matrix(W, sigma, fields.dtype).T


def test_elastic_fields_are_smooth():
    rng = np.random.default_rng(0)
    raw = rng.uniform(-1, 1, (4, 28, 28))
    smooth = smooth_fields(raw, sigma=5.0)
    # neighbouring displacements nearly agree after smoothing, not before
    step_raw = np.abs(np.diff(raw, axis=2)).mean()
    step_smooth = np.abs(np.diff(smooth, axis=2)).mean()
    assert step_smooth < 0.05 * step_raw
    corr = np.corrcoef(smooth[:, :, :-1].ravel(), smooth[:, :, 1:].ravel())[0, 1]
    assert corr > 0.95
    G = gaussian_matrix(28, 5.0)
    np.testing.assert_allclose(G.sum(axis=1), 1.0)
    assert G[14, 14] == G[14].max() and G[14, 13] == pytest.approx(G[14, 15])


def reference_field(noise: np.ndarray, H: int, W: int, sigma: float) -> np.ndarray:
    """The smoothed field (H, W) from one value per cell of d×d pixels, written as the plain Gaussian sum:
    Σ_cells noise_c · g(p - centre_c) / Σ_pixels g(p - q), g(r) = exp(-|r|²/2σ²), in float64."""
    d = field_step(sigma)
    centres = np.stack(
        np.meshgrid(np.arange(0, H, d) + (d - 1) / 2, np.arange(0, W, d) + (d - 1) / 2, indexing="ij"), -1
    )
    pixels = np.stack(np.meshgrid(np.arange(H), np.arange(W), indexing="ij"), -1).astype(float)

    def g(a, b):  # (H, W, 1, 1, 2) against (h, w, 2) → (H, W, h, w)
        return np.exp(-(((a[:, :, None, None] - b[None, None]) ** 2).sum(-1)) / (2 * sigma**2))

    return np.einsum("yxij,ij->yx", g(pixels, centres), noise.astype(float)) / g(pixels, pixels).sum(axis=(2, 3))


@pytest.mark.parametrize("strength", [0.5, 1.0])
def test_elastic_distortion_moves_pixels_by_alpha_times_the_smoothed_field(strength):
    # Bilinear sampling of a ramp is exact, so augmenting the ramps y/27 and x/27 with the same draws reads
    # back each pixel's source position: the elastic displacement is that minus the pixel itself.
    m, n, sigma = 4, 28, 5.0
    aug = Augmentation("elastic", strength=strength, rotate=0, scale=0, shear=0, shift=0)
    ramp_rows = np.broadcast_to(np.arange(n, dtype=np.float32)[:, None] / (n - 1), (m, n, n)).copy()
    ramp_cols = ramp_rows.transpose(0, 2, 1).copy()
    rows = augment(ramp_rows, aug, np.random.default_rng(9)) * (n - 1)
    cols = augment(ramp_cols, aug, np.random.default_rng(9)) * (n - 1)
    # The noise the code draws: after the affine draws, one uniform value per cell for every field, rows'
    # fields first, scaled to [-d, d] (a cell stands for the sum of its d pixels along each axis: see smooth_noise).
    replay = np.random.default_rng(9)
    draw_affine(aug, m, replay)
    d = field_step(sigma)
    noise = replay.random((2 * m, n // d, n // d), dtype=np.float32) * (2.0 * d) - d
    grid = np.arange(n, dtype=float)
    moved = 0
    for i in range(m):
        dy = 34.0 * strength * reference_field(noise[i], n, n, sigma)
        dx = 34.0 * strength * reference_field(noise[m + i], n, n, sigma)
        u, v = grid[:, None] + dy, grid[None, :] + dx
        inside = (u > 0.01) & (u < n - 1.01) & (v > 0.01) & (v < n - 1.01)  # outside, the frame reads 0
        assert inside.mean() > 0.5
        np.testing.assert_allclose(rows[i][inside], u[inside], atol=2e-3)
        np.testing.assert_allclose(cols[i][inside], v[inside], atol=2e-3)
        moved += np.abs(dy).mean() + np.abs(dx).mean()
    assert moved / (2 * m) > 0.5 * strength  # the pixels really moved: about α·S/30 on average


def test_elastic_displacement_grows_in_proportion_to_the_strength():
    # Uniform noise on [-1, 1] (variance 1/3) smoothed by weights w has standard deviation sqrt(Σw²/3); for
    # a Gaussian of σ = 5 around the centre of a 28×28 image, times α = 34, that is about 1.1 pixels, and the
    # mean |displacement| of a normal value is sqrt(2/π) times its standard deviation: 34·S·0.026.
    w = np.outer(*[gaussian_matrix(28, 5.0)[14]] * 2)
    expected = 34.0 * np.sqrt(2 / np.pi) * np.sqrt((w**2).sum() / 3)
    for strength in [0.25, 0.5, 1.0, 2.0]:
        aug = TrainConfig(augment="elastic", augment_strength=strength).augmentation()
        fields = draw_elastic(aug, 400, 28, 28, np.random.default_rng(int(strength * 100)))
        assert fields.shape == (2, 400, 28, 28) and fields.dtype == np.float32
        centre = np.abs(fields[:, :, 10:18, 10:18]).mean()  # away from the border, where the Gaussian is cut
        assert centre == pytest.approx(expected * strength, rel=0.1)
        # and source_positions adds exactly these fields to the affine map's positions
        rng = np.random.default_rng(3)
        rows, cols = source_positions(aug, 5, 28, 28, rng)
        replay = np.random.default_rng(3)
        base_rows, base_cols = (a.copy() for a in affine_positions(draw_affine(aug, 5, replay), 28, 28))
        field = draw_elastic(aug, 5, 28, 28, replay)
        np.testing.assert_allclose(rows - base_rows, field[0], atol=1e-4)
        np.testing.assert_allclose(cols - base_cols, field[1], atol=1e-4)
        assert rng.random() == replay.random()  # the caller's generator moved past both draws: the next batch differs


# -- inside training: each epoch draws anew, and a resumed run draws what the whole run would have --------


@pytest.fixture
def blobs():
    """48 flat 8×8 images, a bright 2×2 block off-centre on a faint background, 3 classes."""
    rng = np.random.default_rng(7)
    X = rng.random((48, 8, 8), dtype=np.float32) * 0.2
    y = np.arange(48) % 3
    for i in range(48):
        r, c = rng.integers(2, 5, 2)
        X[i, r : r + 2, c : c + 2] = 1.0
    return X.reshape(48, 64), y


def spy_on_batches(net: Network, monkeypatch) -> list[tuple[np.ndarray, np.ndarray]]:
    """Record (a copy of) every batch ``net`` trains on, with its labels."""
    seen: list[tuple[np.ndarray, np.ndarray]] = []
    original = net.loss_and_flat_grad

    def spy(xb, yb, grad, **kwargs):
        seen.append((xb.copy(), yb.copy()))
        return original(xb, yb, grad, **kwargs)

    monkeypatch.setattr(net, "loss_and_flat_grad", spy)
    return seen


@pytest.mark.parametrize("kind", ["shift", "affine", "elastic"])
def test_each_epoch_draws_new_transforms_for_the_same_images(kind, blobs, monkeypatch):
    X, y = blobs
    net = Network.from_spec("1x8x8-flatten-12:relu-3", seed=0)
    seen = spy_on_batches(net, monkeypatch)
    # shuffle=False: both epochs take the same images in the same batches, so only the draws can differ
    config = TrainConfig(epochs=2, batch_size=16, validation_size=0, augment=kind, shuffle=False, seed=0)
    train(net, X, y, config)
    assert len(seen) == 6
    repeated = 0
    for b in range(3):
        (first, y1), (second, y2) = seen[b], seen[3 + b]
        np.testing.assert_array_equal(y1, y2)  # the same images
        raw = X[16 * b : 16 * (b + 1)]
        assert not np.array_equal(first, raw) and not np.array_equal(second, raw)
        repeated += sum(np.array_equal(first[i], second[i]) for i in range(16))
    # a whole-pixel shift repeats by chance (1 in 25 at the same move); a continuous transform never does
    assert repeated <= (6 if kind == "shift" else 0)


def test_a_resumed_run_trains_on_the_same_augmented_batches_as_the_uninterrupted_run(blobs, monkeypatch, tmp_path):
    X, y = blobs
    config = TrainConfig(epochs=2, batch_size=16, validation_size=8, augment="elastic", augment_strength=0.5, seed=3)
    whole = Network.from_spec("1x8x8-flatten-12:relu-3", seed=0)
    whole_batches = spy_on_batches(whole, monkeypatch)
    train(whole, X, y, config)

    first = Network.from_spec("1x8x8-flatten-12:relu-3", seed=0)
    first_batches = spy_on_batches(first, monkeypatch)
    with pytest.raises(Interrupted):
        train(first, X, y, config, checkpoint_dir=tmp_path, callback=stop_after_epoch(1))
    trainer = Trainer.from_checkpoint(tmp_path, X, y)
    resumed_batches = spy_on_batches(trainer.net, monkeypatch)
    trainer.run(Callback())
    assert len(whole_batches) == 6 and len(first_batches) == len(resumed_batches) == 3
    for (a, ya), (b, yb) in zip(whole_batches, first_batches + resumed_batches, strict=True):
        np.testing.assert_array_equal(ya, yb)
        np.testing.assert_array_equal(a, b)  # bit for bit: the checkpoint carried the augmentation's generator
    np.testing.assert_array_equal(trainer.net.params, whole.params)


def test_settings_are_checked():
    with pytest.raises(SpecError, match="unknown augmentation 'blur'"):
        Augmentation("blur")
    with pytest.raises(SpecError, match="strength must be a number >= 0"):
        Augmentation("affine", strength=-1.0)
    with pytest.raises(ValueError, match=r"images must be \(m, H, W\)"):
        augment(np.zeros((3, 784)), Augmentation("affine"), np.random.default_rng(0))


@pytest.mark.parametrize("group", [1, 2, 3])
def test_the_background_thread_yields_every_batch_in_order_from_flat_rows(digits, group):
    X = digits.reshape(8, -1)
    y = np.arange(8)
    augmenter = Augmenter(Augmentation("affine"), (28, 28), np.random.default_rng(0))
    batches = augmenter.batches(lambda b: (X[2 * b : 2 * b + 2], y[2 * b : 2 * b + 2]), 4, group=group)
    # a batch stays valid until two more groups are made (its array is then reused): keep copies
    got = [(xb.copy(), yb) for xb, yb in batches]
    assert [list(yb) for _, yb in got] == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert all(xb.shape == (2, 784) for xb, _ in got)
    # the same draws as augmenting each group of batches as one array, in order, on this thread
    rng = np.random.default_rng(0)
    expected = np.concatenate(
        [
            augment(X[2 * b : 2 * b + 2 * group].reshape(-1, 28, 28), Augmentation("affine"), rng)
            for b in range(0, 4, group)
        ]
    ).reshape(8, 784)
    np.testing.assert_array_equal(np.concatenate([xb for xb, _ in got]), expected)


def test_an_error_while_preparing_a_batch_reaches_the_training_loop(digits):
    augmenter = Augmenter(Augmentation("affine"), (28, 28), np.random.default_rng(0))

    def broken(b):
        if b == 2:
            raise RuntimeError("the data went away")
        return digits[:2].reshape(2, -1), np.arange(2)

    batches = augmenter.batches(broken, 4, group=1)
    next(batches), next(batches)
    with pytest.raises(RuntimeError, match="the data went away"):
        next(batches)
    with pytest.raises(RuntimeError, match="the data went away"):  # in groups, at the first batch of its group
        list(augmenter.batches(broken, 4))


def test_a_loop_that_stops_early_ends_the_background_thread_at_once(rng):
    import threading
    import time

    X, y = rng.random((40 * 16, 784), dtype=np.float32), np.arange(40 * 16) % 10
    augmenter = Augmenter(Augmentation("shift"), (28, 28), rng)
    batches = augmenter.batches(lambda b: (X[b * 16 : (b + 1) * 16], y[b * 16 : (b + 1) * 16]), 40)
    next(batches)
    time.sleep(0.3)  # the producer fills its queue and waits to put the next group
    started = time.perf_counter()
    batches.close()  # training stopped: a divergence, Ctrl-C, early stopping
    assert time.perf_counter() - started < 5.0
    assert not [t for t in threading.enumerate() if t.name == "nnscratch-augment" and t.is_alive()]


# -- the pen: other strokes than MNIST's scanned ink -------------------------------------------------------


def pen_looks(images, look, amount, **settings):
    """``pen`` with every image given ``look`` at amount t = ``amount`` (a generator that draws just that)."""
    from nnscratch.augment import PEN_LOOKS, pen

    class Drawn:
        def integers(self, n, size):
            return np.full(size, PEN_LOOKS.index(look))

        def random(self, size):
            return np.full(size, amount)

    out = images.copy()
    pen(out, Augmentation("pen", **settings), Drawn())
    return out


def test_the_pen_thickens_and_thins_strokes_by_a_whole_pixel_at_t_times_the_width(digits):
    from nnscratch.augment import neighbourhood

    # width 2 at strength 0.5: t = 1 is one whole 3×3 step, t = 0.5 half-way to it
    thick = pen_looks(digits, "thicker", 0.999999, strength=0.5)
    np.testing.assert_allclose(thick, neighbourhood(digits, np.maximum), atol=1e-5)
    half = pen_looks(digits, "thicker", 0.5, strength=0.5)
    np.testing.assert_allclose(half, 0.5 * (digits + neighbourhood(digits, np.maximum)), atol=1e-6)
    thin = pen_looks(digits, "thinner", 0.999999, strength=0.5)
    np.testing.assert_allclose(thin, neighbourhood(digits, np.minimum), atol=1e-5)
    assert thick.sum() > digits.sum() > thin.sum()
    two = pen_looks(digits, "thicker", 0.999999, strength=1.0)  # width 2: two whole steps
    np.testing.assert_allclose(two, neighbourhood(neighbourhood(digits, np.maximum), np.maximum), atol=1e-5)


def test_a_3x3_neighbourhood_reads_zero_beyond_the_border():
    from nnscratch.augment import neighbourhood

    image = np.zeros((1, 4, 4), np.float32)
    image[0, 0, 0] = 1.0
    grown = neighbourhood(image, np.maximum)[0]
    assert grown[:2, :2].tolist() == [[1, 1], [1, 1]] and grown.sum() == 4
    assert neighbourhood(np.ones((1, 3, 3), np.float32), np.minimum)[0].tolist() == [[0, 0, 0], [0, 1, 0], [0, 0, 0]]


def test_the_pen_blurs_with_a_gaussian_of_up_to_its_width_and_draws_flat_strokes(digits):
    from nnscratch.augment import FLAT_INK, gaussian_matrices

    soft = pen_looks(digits, "blurred", 0.5, strength=0.5)  # σ = 0.3 + 0.5 · 2 · 0.5
    G = gaussian_matrices(28, np.array([0.8]), np.float32)[0]
    np.testing.assert_allclose(soft, G @ digits @ G.T, atol=1e-6)
    assert soft.max() < digits.max() and soft.sum() == pytest.approx(digits.sum(), rel=1e-3)  # spread, kept
    flat = pen_looks(digits * 0.5 + 0.1 * (digits > 0), "flat", 0.3)
    assert set(np.unique(flat)) <= {0.0, 1.0}
    np.testing.assert_array_equal(flat, (digits * 0.5 + 0.1 * (digits > 0)) > FLAT_INK)
    np.testing.assert_array_equal(pen_looks(digits, "as is", 0.9), digits)


def test_the_pen_gives_each_look_about_a_fifth_of_the_images(rng):
    from nnscratch.augment import PEN_LOOKS

    images = np.zeros((2000, 8, 8), np.float32)
    images[:, 3:5, 3:5] = 0.6
    out = augment(images, Augmentation("pen", strength=0.5), rng)
    flat = np.all(np.isin(out, (0.0, 1.0)), axis=(1, 2)) & (out.max(axis=(1, 2)) == 1.0)
    assert len(PEN_LOOKS) == 5 and 0.15 < flat.mean() < 0.25
