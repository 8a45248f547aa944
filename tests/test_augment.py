"""Augmentation: shapes, ranges, determinism, the identity at zero strength, exact shifts, smooth fields."""

from __future__ import annotations

import numpy as np
import pytest

from nnscratch.augment import (
    KINDS,
    Augmentation,
    Augmenter,
    augment,
    gaussian_matrix,
    sample_bilinear,
    shift_whole_pixels,
    smooth_fields,
    source_positions,
)
from nnscratch.errors import SpecError


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


@pytest.mark.parametrize("kind", ["shift", "affine", "elastic"])
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


def test_a_known_shift_and_rotation_go_where_the_formula_says():
    image = np.zeros((1, 28, 28))
    image[0, 10, 14] = 1.0  # one bright pixel 3.5 rows above the centre (13.5, 13.5)
    rows, cols = np.meshgrid(np.arange(28.0), np.arange(28.0), indexing="ij")
    # reading every output pixel from 2 rows up moves the image 2 rows down
    moved = sample_bilinear(image, (rows - 2)[None], cols[None])
    assert moved[0, 12, 14] == 1.0 and moved.sum() == pytest.approx(1.0)


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


def test_elastic_distortion_moves_pixels_by_about_alpha_times_the_smoothed_field(digits):
    loose = augment(
        digits, Augmentation("elastic", rotate=0, scale=0, shear=0, shift=0, alpha=34), np.random.default_rng(1)
    )
    gentle = augment(
        digits, Augmentation("elastic", rotate=0, scale=0, shear=0, shift=0, alpha=2), np.random.default_rng(1)
    )
    assert np.abs(gentle - digits).mean() < np.abs(loose - digits).mean()


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
