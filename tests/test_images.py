"""Image preprocessing: any picture of a digit becomes 28×28 pixels in [0, 1], prepared as MNIST was."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from nnscratch.images import ImageError, load_digit, open_image, preprocess, to_png
from tests.conftest import bomb_png


def digit_image(height=120, width=80, *, dark_on_light=True, mode="L"):
    """A thick vertical bar with a foot: ink on a plain background."""
    ink, paper = (0, 255) if dark_on_light else (255, 0)
    array = np.full((height, width), paper, dtype=np.uint8)
    array[height // 6 : -height // 6, width // 2 - 5 : width // 2 + 5] = ink
    array[-height // 6 - 8 : -height // 6, width // 4 : 3 * width // 4] = ink
    return Image.fromarray(array).convert(mode)


def centre_of_mass(pixels):
    grid = pixels.reshape(28, 28)
    total = grid.sum()
    return (grid.sum(axis=1) @ np.arange(28)) / total, (grid.sum(axis=0) @ np.arange(28)) / total


def test_dark_on_light_is_inverted_to_bright_ink_on_black():
    light = preprocess(digit_image(dark_on_light=True))
    dark = preprocess(digit_image(dark_on_light=False))
    np.testing.assert_allclose(light, dark, atol=1e-6)
    grid = light.reshape(28, 28)
    assert grid[0].max() == 0 and grid[:, 0].max() == 0  # background is 0
    assert grid.max() == pytest.approx(1.0, abs=0.02)  # strokes are 1


def test_digit_fits_a_20_pixel_box_centred_by_mass():
    pixels = preprocess(digit_image(300, 100)).reshape(28, 28)
    rows = np.flatnonzero(pixels.max(axis=1) > 0.05)
    cols = np.flatnonzero(pixels.max(axis=0) > 0.05)
    assert rows[-1] - rows[0] + 1 == pytest.approx(20, abs=1)  # the long side fills the box
    assert cols[-1] - cols[0] + 1 < 12  # the aspect ratio is kept: a tall digit stays narrow
    cy, cx = centre_of_mass(pixels)
    assert abs(cy - 14) <= 0.5 and abs(cx - 14) <= 0.5


def test_off_centre_digit_is_moved_to_the_centre():
    canvas = np.full((200, 200), 255, dtype=np.uint8)
    canvas[10:60, 150:160] = 0  # a short stroke in the top-right corner
    cy, cx = centre_of_mass(preprocess(Image.fromarray(canvas)))
    assert abs(cy - 14) <= 0.5 and abs(cx - 14) <= 0.5


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "P", "1", "LA", "CMYK", "I", "I;16", "F"])
def test_every_mode_gives_the_same_digit(mode):
    reference = preprocess(digit_image())
    image = digit_image(mode="L")
    if mode in ("I", "I;16", "F"):
        image = Image.fromarray(np.asarray(image).astype({"I": np.int32, "I;16": np.uint16, "F": np.float32}[mode]) * 3)
    else:
        image = image.convert(mode)
    np.testing.assert_allclose(preprocess(image), reference, atol=0.02)


def test_transparent_background_counts_as_paper():
    rgba = np.zeros((100, 100, 4), dtype=np.uint8)  # fully transparent black
    rgba[20:80, 45:55] = (0, 0, 0, 255)  # an opaque black stroke
    pixels = preprocess(Image.fromarray(rgba, mode="RGBA")).reshape(28, 28)
    assert pixels[0].max() == 0 and pixels.max() > 0.9


def test_blank_image_is_reported_not_guessed():
    with pytest.raises(ImageError, match="blank"):
        preprocess(Image.new("L", (50, 50), 255))
    with pytest.raises(ImageError, match="blank"):
        preprocess(Image.new("RGB", (50, 50), (30, 30, 30)))


@pytest.mark.parametrize(
    "content, message",
    [(b"", "empty"), (b"this is not an image", "not an image"), ("truncated", "damaged or truncated")],
)
def test_bad_bytes_are_refused(content, message):
    if content == "truncated":
        content = to_png(np.random.default_rng(0).random(784))[:60]
    with pytest.raises(ImageError, match=message):
        open_image(content)


def test_decompression_bomb_is_refused_before_decoding():
    bomb = bomb_png()
    assert len(bomb) < 200  # a tiny file claiming 2.5 billion pixels
    with pytest.raises(ImageError, match="too large"):
        open_image(bomb)
    with pytest.raises(ImageError, match="too large"):
        open_image(bomb_png(8_000, 8_000))  # 64 million: over the limit though Pillow would still open it


def test_png_round_trip_of_preprocessed_pixels():
    pixels = preprocess(digit_image())
    back = np.asarray(Image.open(io.BytesIO(to_png(pixels))), dtype=np.float64) / 255
    np.testing.assert_allclose(back.reshape(-1), pixels, atol=1 / 255)


def test_mnist_digits_survive_the_round_trip_through_png(mnist):
    """Test digits saved as PNG and read back through preprocessing look as they did to the network."""
    from nnscratch.network import Network
    from nnscratch.training import TrainConfig, train

    net = Network.from_spec("784-128:relu-10:softmax", seed=0)
    train(net, mnist.X_train, mnist.y_train, TrainConfig(epochs=3))
    n = 300
    direct = net.predict(mnist.X_test[:n])
    via_png = net.predict(np.stack([load_digit(to_png(x)) for x in mnist.X_test[:n]]))
    assert np.mean(direct == via_png) >= 0.99


MODES = ["L", "RGB", "RGBA", "P", "1", "LA", "I", "I;16", "F"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    width=st.integers(1, 200),
    height=st.integers(1, 200),
    mode=st.sampled_from(MODES),
    seed=st.integers(0, 2**32 - 1),
    density=st.floats(0.0, 1.0),
)
def test_any_image_becomes_a_valid_28x28_array_or_a_clear_error(width, height, mode, seed, density):
    rng = np.random.default_rng(seed)
    array = (rng.random((height, width)) < density).astype(np.uint8) * 255
    image = Image.fromarray(array)
    if mode in ("I", "I;16", "F"):
        image = Image.fromarray(array.astype({"I": np.int32, "I;16": np.uint16, "F": np.float32}[mode]))
    else:
        image = image.convert(mode)
    try:
        pixels = preprocess(image)
    except ImageError as exc:
        assert "blank" in str(exc)
        return
    assert pixels.shape == (784,) and pixels.dtype == np.float32
    assert np.all(np.isfinite(pixels)) and pixels.min() >= 0.0 and pixels.max() <= 1.0
    assert pixels.max() > 0
