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


def thick_zero(side: int = 100) -> np.ndarray:
    """A thick 0 (an elliptic ring) as a boolean mask that covers 39% of a side × side page."""
    y, x = np.mgrid[:side, :side] - (side - 1) / 2
    return ((y / 44) ** 2 + (x / 36) ** 2 <= 1) & ~((y / 24) ** 2 + (x / 14) ** 2 <= 1)


def framed_page(paper: float, ink: float, border: float, *, frame: int = 2) -> tuple[Image.Image, np.ndarray]:
    """The thick 0 in grey level ``ink`` on paper of grey level ``paper`` with a ``frame``-pixel border of
    level ``border`` (0 black, 1 white); returns the image and its gray levels as read back."""
    array = np.where(thick_zero(), ink, paper)
    array[:frame], array[-frame:], array[:, :frame], array[:, -frame:] = border, border, border, border
    image = Image.fromarray(np.round(array * 255).astype(np.uint8))
    return image, np.asarray(image, dtype=np.float64) / 255


@pytest.mark.parametrize("paper", [0.4, 0.5, 0.6])
@pytest.mark.parametrize("ink", [0.0, 0.1, 0.25])
def test_a_dark_digit_on_grey_paper_with_a_light_border_is_read_though_the_page_is_mostly_dark(paper, ink):
    """The border (light) says which is paper, not the page's mean or median (below one half here)."""
    image, gray = framed_page(paper, ink, border=0.9)
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    assert border.mean() > 0.5 and gray.mean() < 0.5  # the case that matters: light frame, dark page overall
    if paper < 0.5:
        assert np.median(gray) < 0.5  # the paper itself darker than one half too
    reference = preprocess(framed_page(1.0, 0.0, border=1.0)[0])  # the same 0 drawn black on white
    # the ink stretched to 1, the paper (and the lighter frame) to 0: the same 28×28 digit
    np.testing.assert_allclose(preprocess(image), reference, atol=1e-6)


@pytest.mark.parametrize("paper", [0.3, 0.45, 0.55])
@pytest.mark.parametrize("ink", [1.0, 0.9])
def test_a_light_digit_on_a_dark_page_with_a_dark_border_is_read_though_the_page_is_mostly_light(paper, ink):
    image, gray = framed_page(paper, ink, border=0.1)
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    assert border.mean() < 0.5 and gray.mean() > 0.5  # dark frame, light page overall
    if paper > 0.5:
        assert np.median(gray) > 0.5
    reference = preprocess(framed_page(1.0, 0.0, border=1.0)[0])
    np.testing.assert_allclose(preprocess(image), reference, atol=1e-6)


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


# -- EXIF orientation, accepted formats, the pixel limit ----------------------------------------------------


def seven_image() -> Image.Image:
    """A dark 7 on light paper: no rotation or mirror image of it looks the same."""
    array = np.full((120, 90), 255, dtype=np.uint8)
    array[15:27, 10:80] = 0  # the bar, at the top
    for row in range(27, 110):
        col = 80 - (row - 27) * 45 // 83  # the stem, down to the left
        array[row, col - 6 : col + 6] = 0
    return Image.fromarray(array)


# EXIF Orientation → how a camera stored the picture it means to be seen upright (the inverse of what the
# tag asks a viewer to do): 3 is turned 180°, 6 is stored turned a quarter anticlockwise and 8 clockwise,
# 2 mirrored left-right.
STORED = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    6: Image.Transpose.ROTATE_90,
    8: Image.Transpose.ROTATE_270,
}


def sideways(image: Image.Image, orientation: int, fmt: str = "PNG") -> bytes:
    """``image`` stored as a camera stores it, with the EXIF Orientation tag that turns it upright."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    image.transpose(STORED[orientation]).save(buffer, format=fmt, exif=exif.tobytes())
    return buffer.getvalue()


@pytest.mark.parametrize("orientation", sorted(STORED))
def test_a_photo_saved_sideways_is_read_upright_as_its_exif_says(orientation):
    upright = preprocess(seven_image())
    stored = sideways(seven_image(), orientation)
    np.testing.assert_allclose(load_digit(stored), upright, atol=1e-6)
    ignored = preprocess(seven_image().transpose(STORED[orientation]))  # what was read before the tag was applied
    assert np.abs(ignored - upright).max() > 0.5
    # preprocess applies the tag to an image opened by anyone, too
    np.testing.assert_allclose(preprocess(Image.open(io.BytesIO(stored))), upright, atol=1e-6)


def test_a_jpeg_photo_saved_sideways_is_read_upright():
    stored = sideways(seven_image().convert("RGB"), 6, fmt="JPEG")
    # The reference turns the decoded pixels by hand, a quarter clockwise, as orientation 6 asks: JPEG's
    # loss is then the same on both sides.
    as_stored = Image.fromarray(np.asarray(Image.open(io.BytesIO(stored))))  # the pixels, without the tag
    np.testing.assert_allclose(load_digit(stored), preprocess(as_stored.transpose(Image.Transpose.ROTATE_270)))
    assert np.abs(load_digit(stored) - preprocess(as_stored)).max() > 0.5


ACCEPTED = {"PNG": {}, "JPEG": {"quality": 95}, "GIF": {}, "BMP": {}, "WEBP": {"lossless": True}, "TIFF": {}}


@pytest.mark.parametrize("fmt", sorted(ACCEPTED))
def test_each_accepted_format_is_read(fmt, tmp_path):
    image = seven_image().convert("RGB")
    path = tmp_path / f"seven.{fmt.lower()}"
    image.save(path, format=fmt, **ACCEPTED[fmt])
    tolerance = 0.06 if fmt == "JPEG" else 1e-6
    np.testing.assert_allclose(load_digit(path), preprocess(image), atol=tolerance)
    np.testing.assert_allclose(load_digit(path.read_bytes()), preprocess(image), atol=tolerance)


@pytest.mark.parametrize("fmt", ["EPS", "PPM", "ICO", "PCX"])
def test_other_formats_are_refused_without_being_parsed(fmt, tmp_path, monkeypatch):
    from PIL import EpsImagePlugin, IcoImagePlugin, PcxImagePlugin, PpmImagePlugin

    path = tmp_path / f"seven.{fmt.lower()}"
    seven_image().save(path, format=fmt)
    plugins = (EpsImagePlugin.EpsImageFile, PpmImagePlugin.PpmImageFile, IcoImagePlugin.IcoImageFile)
    for plugin in (*plugins, PcxImagePlugin.PcxImageFile):  # their parsers (and Ghostscript) must never run
        monkeypatch.setattr(plugin, "_open", lambda self: pytest.fail("a refused format was parsed"))
    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", lambda *a, **k: pytest.fail("Ghostscript ran"))
    expected = f"{fmt} images are not accepted; send PNG, JPEG, GIF, BMP, WebP or TIFF"
    for source in (path, path.read_bytes()):
        with pytest.raises(ImageError) as info:
            load_digit(source)
        assert str(info.value).endswith(expected) and "\n" not in str(info.value)


def wide_png() -> bytes:
    """A real 40,000×1,000 PNG of a stroke on white: some 40 kB that decode to 40 million pixels."""
    array = np.full((1_000, 40_000), 255, dtype=np.uint8)
    array[300:700, 1_000:1_100] = 0
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def test_an_image_over_the_pixel_limit_is_refused_from_its_header_before_decoding():
    import time
    import tracemalloc

    from nnscratch.images import MAX_PIXELS

    data = wide_png()
    assert len(data) < 100_000 and MAX_PIXELS == 4_000_000
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(ImageError) as info:
            load_digit(data)
        seconds = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(info.value) == "image: 40,000×1,000 pixels is too large (limit 4,000,000 pixels); scale it down first"
    # Decoding alone would take 40 MB (and the float arrays 320 MB each); refusing takes well under a megabyte.
    assert peak < 2_000_000 and seconds < 0.5


def test_a_phone_photo_over_the_limit_is_decoded_at_half_size():
    photo = np.full((3_000, 4_000), 255, dtype=np.uint8)  # 12 megapixels
    photo[500:2_500, 1_900:2_100] = 0
    buffer = io.BytesIO()
    Image.fromarray(photo).convert("RGB").save(buffer, format="JPEG", quality=90)
    image = open_image(buffer.getvalue())
    assert image.size == (2_000, 1_500)  # libjpeg's 1/2 scale: 3 million pixels, within the limit
    reference = preprocess(Image.fromarray(photo))
    assert np.abs(preprocess(image) - reference).max() < 0.1
