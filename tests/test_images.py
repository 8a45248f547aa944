"""Image preprocessing: any picture of a digit becomes 28×28 pixels in [0, 1], prepared as MNIST was."""

from __future__ import annotations

import io
import subprocess
import sys
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from nnscratch.images import (
    MAX_PIXELS,
    ImageError,
    fit_and_centre,
    format_of,
    grayscale,
    ink,
    load_digit,
    open_image,
    preprocess,
    to_png,
)
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


# -- boundaries, pinned exactly (each test names what it tells apart) --------------------------------------------


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_bytes(width: int, height: int) -> bytes:
    """A grayscale JPEG of ``width`` × ``height`` pixels: a dark bar on white (cheap to encode, even at 70 MP)."""
    array = np.full((height, width), 255, dtype=np.uint8)
    array[height // 4 : 3 * height // 4, width // 2 - width // 20 : width // 2 + width // 20 + 1] = 0
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=50)
    return buffer.getvalue()


def test_an_empty_file_and_a_one_byte_file(tmp_path):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ImageError) as info:
        open_image(empty)
    assert str(info.value) == f"{empty}: the file is empty"
    # One byte is not empty: it is read, and no format's signature fits it.  A newline is the first byte of a
    # PCX file; DIB's signature test raises on anything shorter than four bytes (it is skipped, not fatal).
    one = tmp_path / "one.png"
    one.write_bytes(b"\n")
    assert format_of(one) is None and format_of(b"\n") is None
    for source, name in ((one, str(one)), (b"\n", "image")):
        with pytest.raises(ImageError) as info:
            open_image(source)
        assert str(info.value) == f"{name}: not an image in a format read here (PNG, JPEG, GIF, BMP, WebP or TIFF)"


def test_the_pixel_limit_is_inclusive_and_read_from_the_header():
    assert MAX_PIXELS == 4_000_000
    for width, height in ((2_000, 2_000), (4_000, 1_000)):  # exactly at the limit: decoded
        page = np.full((height, width), 255, dtype=np.uint8)
        page[100:900, 1_000:1_100] = 0
        image = open_image(png_bytes(page))
        assert image.size == (width, height)
        np.testing.assert_array_equal(np.asarray(image), page)
    # one pixel over (97,561 × 41 = 4,000,001): refused from the header alone (the data is a few bytes)
    with pytest.raises(ImageError) as info:
        open_image(bomb_png(97_561, 41))
    assert str(info.value) == "image: 97,561×41 pixels is too large (limit 4,000,000 pixels); scale it down first"


def test_pillows_decompression_bomb_warning_is_turned_into_a_refusal_and_never_escapes():
    """100 million pixels: over Pillow's warning level (89 million), under its error level (179 million)."""
    assert Image.MAX_IMAGE_PIXELS < 100_000_000 < 2 * Image.MAX_IMAGE_PIXELS
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ImageError) as info:
            open_image(bomb_png(10_000, 10_000))
    assert str(info.value) == "image: the image is too large to decode safely; scale it down first"
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]


@pytest.mark.parametrize(
    "width, height, decoded",
    [
        (2_000, 2_000, (2_000, 2_000)),  # exactly 4,000,000 pixels: within the limit, decoded in full
        (2_000, 2_001, (1_000, 1_001)),  # one row more: half size, libjpeg rounding up
        (4_000, 4_000, (2_000, 2_000)),  # half size is exactly 4,000,000 pixels: half it is
        # half size rounded up is 404 × 9,901 = 4,000,004 pixels (unrounded, 3,999,802): a quarter
        (808, 19_801, (202, 4_951)),
        (19_801, 808, (4_951, 202)),
        # a quarter is 2,051 × 2,050 = 4.2 million (a fifth would fit): an eighth, rounded up
        (8_201, 8_199, (1_026, 1_025)),
    ],
)
def test_a_jpeg_over_the_limit_is_decoded_at_the_largest_scale_within_it(width, height, decoded):
    image = open_image(jpeg_bytes(width, height))
    assert image.size == decoded
    assert np.asarray(image).shape == (decoded[1], decoded[0])  # and that is what was decoded


def test_format_of_shows_each_signature_test_the_16_bytes_pillow_shows_it(tmp_path, monkeypatch):
    seen = []

    def spy(prefix):
        seen.append(bytes(prefix))
        return False

    Image.init()
    monkeypatch.setitem(Image.OPEN, "SPY", (None, spy))
    monkeypatch.setattr(Image, "ID", [*Image.ID, "SPY"])
    data = bytes(range(40))
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    with pytest.raises(Image.UnidentifiedImageError):
        Image.open(io.BytesIO(data))
    assert format_of(data) is None and format_of(path) is None
    assert seen == [data[:16]] * 3


def test_format_of_loads_pillows_plugins_itself():
    """In a fresh process Pillow knows only the formats imported so far (JPEG here), not yet EPS."""
    code = (
        "import sys; from PIL import Image; from nnscratch.images import format_of; "
        "assert 'EPS' not in Image.ID, Image.ID; print(format_of(sys.stdin.buffer.read()))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], input=b"%!PS-Adobe-3.0 EPSF-3.0\n", capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().strip() == "EPS"


def two_frames() -> tuple[Image.Image, Image.Image]:
    """A 7 and the same 7 upside down: frames of an animation that read as different digits."""
    first = seven_image()
    return first, first.transpose(Image.Transpose.ROTATE_180)


@pytest.mark.parametrize(
    "fmt, options",
    [("GIF", {"duration": 100, "loop": 0}), ("TIFF", {}), ("PNG", {"duration": 100}), ("WEBP", {"lossless": True})],
)
def test_the_first_frame_of_an_animation_or_a_multi_page_file_is_read(fmt, options):
    first, second = two_frames()
    buffer = io.BytesIO()
    first.save(buffer, format=fmt, save_all=True, append_images=[second], **options)
    assert Image.open(io.BytesIO(buffer.getvalue())).n_frames == 2
    pixels = load_digit(buffer.getvalue())
    np.testing.assert_allclose(pixels, preprocess(first), atol=1e-6)
    assert np.abs(pixels - preprocess(second)).max() > 0.5


def test_grayscale_values_of_each_kind_of_pixel():
    """1 is white; transparency is composited onto white paper; integer and float images are stretched to [0, 1]."""
    rgba = Image.fromarray(
        np.array([[(0, 0, 0, 255), (255, 255, 255, 255), (0, 0, 0, 0), (0, 0, 0, 51), (51, 51, 51, 153)]], np.uint8),
        mode="RGBA",
    )
    np.testing.assert_allclose(grayscale(rgba), [[0.0, 1.0, 1.0, 0.8, 0.2 * 0.6 + 0.4]], rtol=0, atol=1e-12)
    levels = np.array([[0, 51, 102, 255]], dtype=np.uint8)
    np.testing.assert_array_equal(grayscale(Image.fromarray(levels)), levels / 255)
    # a palette image with a transparent entry: that entry is paper, whatever its colour
    palette = Image.new("P", (3, 1))
    palette.putpalette([0, 0, 0, 0, 0, 0, 255, 255, 255])
    palette.putdata([0, 1, 2])
    palette.info["transparency"] = 0
    np.testing.assert_array_equal(grayscale(palette), [[1.0, 0.0, 1.0]])
    # 32-bit integers: from their own minimum to their own maximum
    wide = Image.fromarray(np.array([[1_000, 1_051, 1_255]], dtype=np.int32))
    np.testing.assert_array_equal(grayscale(wide), np.array([[0, 51, 255]]) / 255)
    # 32-bit floats: stretched in double precision
    floats = grayscale(Image.fromarray(np.array([[0.0, 1.0, 3.0]], dtype=np.float32)))
    assert floats.dtype == np.float64
    np.testing.assert_array_equal(floats, [[0.0, 1 / 3, 1.0]])


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_a_float_image_holding_infinity_or_nan_is_refused_clearly(bad):
    array = np.zeros((40, 40), dtype=np.float32)
    array[10:30, 18:22] = 1.0
    array[5, 5] = bad
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="TIFF")
    with pytest.raises(ImageError) as info:
        load_digit(buffer.getvalue())
    assert str(info.value) == "image: the image holds pixel values that are not numbers (NaN or infinity)"


def test_a_border_exactly_half_light_is_not_inverted():
    gray = np.zeros((6, 6))
    gray[0], gray[:3, 0], gray[:3, -1] = 1.0, 1.0, 1.0  # the border: 12 of its 24 pixels white
    gray[3, 2:4] = 1.0
    assert np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]]).mean() == 0.5
    np.testing.assert_array_equal(ink(gray), gray)  # read as light ink on a dark page, as it is
    lighter = gray.copy()
    lighter[3, 0] = 1.0  # 13 of 24: mostly light, so dark ink on light paper; inverted there is none
    assert ink(lighter) is None


def test_a_dark_on_light_picture_gives_exactly_the_ink_of_its_negative():
    gray = np.random.default_rng(0).random((20, 20))
    gray[0], gray[-1], gray[:, 0], gray[:, -1] = 0.9, 0.9, 0.9, 0.9
    np.testing.assert_array_equal(ink(gray), ink(1.0 - gray))


def test_contrast_of_exactly_min_contrast_is_ink_and_just_below_is_blank():
    page = np.zeros((5, 5))
    page[2, 2] = 0.1  # MIN_CONTRAST above the background
    expected = np.zeros((5, 5))
    expected[2, 2] = 1.0
    np.testing.assert_array_equal(ink(page), expected)
    page[2, 2] = np.nextafter(0.1, 0.0)
    assert ink(page) is None


def placed(crop: np.ndarray, top: int, left: int) -> np.ndarray:
    out = np.zeros((28, 28), dtype=np.float32)
    out[top : top + crop.shape[0], left : left + crop.shape[1]] = crop
    return out


def test_ink_exactly_at_the_threshold_is_left_out_of_the_bounding_box():
    strokes = np.zeros((30, 30))
    strokes[5:25, 5:25] = 1.0  # a 20 × 20 square: kept at its size (no resampling), so exact
    strokes[2, 15] = strokes[15, 2] = 0.05  # INK_THRESHOLD itself: background, outside the box
    np.testing.assert_array_equal(fit_and_centre(strokes), placed(np.ones((20, 20)), 4, 4))


@pytest.mark.parametrize("vertical", [True, False])
def test_a_one_pixel_line_stays_one_pixel_thin(vertical):
    page = np.zeros((30, 30), dtype=np.uint8)
    page[5:25, 12] = 255  # 20 long: no resampling, so exact
    line = np.ones((20, 1), dtype=np.float32)
    expected = placed(line, 4, 14)  # the middle (9.5) rounds to even: row 4; the column on column 14
    if not vertical:
        page, expected = page.T, expected.T
    np.testing.assert_array_equal(preprocess(Image.fromarray(page)).reshape(28, 28), expected)


# A T (a bar 4 pixels thick over a 1-pixel stem) in a 20 × 20 box, turned k quarter turns anticlockwise.  Its mass
# sits near the bar, so centring it by mass would push the box out of the frame: it is kept inside, against the
# edge opposite the bar.
@pytest.mark.parametrize("turns, top, left", [(0, 8, 5), (1, 4, 8), (2, 0, 4), (3, 5, 0)])
def test_a_lopsided_digit_is_kept_inside_the_frame(turns, top, left):
    crop = np.zeros((20, 20), dtype=np.float32)
    crop[:4] = 1.0
    crop[4:, 9] = 1.0
    crop = np.rot90(crop, turns)
    page = np.zeros((24, 24), dtype=np.uint8)
    page[2:22, 2:22] = crop * 255
    np.testing.assert_array_equal(preprocess(Image.fromarray(page)).reshape(28, 28), placed(crop, top, left))


def test_a_faint_sparse_digit_is_still_centred_by_mass():
    """Two dots far apart shrink to a box holding less than one pixel's worth of ink: it is still placed by its
    centre of mass (near the brighter dot, top left), so pushed as far down and right as the frame allows."""
    page = np.zeros((200, 200), dtype=np.uint8)
    page[10, 10], page[190, 190] = 255, 77
    grid = preprocess(Image.fromarray(page)).reshape(28, 28)
    assert grid[:8].max() == 0 and grid[:, :8].max() == 0  # the 20 × 20 box at rows and columns 8 to 27
    assert grid[8:10, 8:10].max() == grid.max() > 0  # the bright dot, in its top-left corner
    assert 0 < grid.sum() < 1


def test_the_centre_of_mass_is_computed_in_double_precision():
    """A column of 20 equal pixels has its middle at 9.5, which rounds to row 4; make the top one heavier by
    2**-24 (a float32 sum of the column cannot hold it) and the middle is above 9.5: the column goes to row 5."""
    strokes = np.zeros((22, 3))
    strokes[1:21, 1] = 0.5
    expected = placed(strokes[1:21, 1:2].astype(np.float32), 4, 14)
    np.testing.assert_array_equal(fit_and_centre(strokes), expected)
    strokes[1, 1] = 0.5 + 2**-24
    expected = placed(strokes[1:21, 1:2].astype(np.float32), 5, 14)
    np.testing.assert_array_equal(fit_and_centre(strokes), expected)


def png_levels(pixels) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(to_png(pixels))), dtype=np.int64)


def test_to_png_clips_and_takes_the_nearest_of_the_256_levels():
    from fractions import Fraction

    assert png_levels(np.array([[-0.5, 0.0, 1.0, 1.5]])).tolist() == [[0, 0, 255, 255]]
    # float32 pixels (what preprocess gives) near each midpoint between two levels: the nearer level, exactly
    halves = ((np.arange(255) + 0.5) / 255).astype(np.float32)
    nearest = [round(Fraction(float(x)) * 255) for x in halves]
    assert png_levels(halves.reshape(1, -1)).reshape(-1).tolist() == nearest
