"""Turning any picture of a digit into what the network expects: 28×28 pixels in [0, 1], as MNIST was made.

MNIST's digits were size-normalised to fit a 20×20 box (keeping their aspect ratio, anti-aliased) and then
placed in a 28×28 image so that their centre of mass sits at the centre.  ``preprocess`` does the same:

1. grayscale, with any transparency composited onto white paper;
2. ink = bright strokes on dark: a picture whose border is light (dark-on-light) is inverted;
3. the background level (the median) is subtracted and the ink stretched to [0, 1];
4. crop to the ink's bounding box;
5. scale to fit 20×20 keeping the aspect ratio (Lanczos, anti-aliased);
6. place in 28×28 with the centre of mass at the centre.

Before step 1 a camera's EXIF orientation is applied, so that a phone photo saved sideways is read upright.

Images are opened with Pillow, in the formats of ``FORMATS`` only (no other decoder, such as Ghostscript for
PostScript, ever sees the bytes), with a limit on their pixel count read from the header, so that a huge
image is refused before it is decoded; a JPEG photo over the limit is decoded at a half, quarter or eighth
of its size instead, which libjpeg does for less than the full decode.
"""

from __future__ import annotations

import io
import os
import struct
import warnings
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import ExifTags, Image, ImageOps, ImageSequence, JpegImagePlugin, UnidentifiedImageError

from nnscratch.errors import NNScratchError

SIDE = 28
BOX = 20
# A digit needs a few thousand pixels; a 12-megapixel phone photo is decoded at half size.  The limit keeps
# one image to ~0.1 s and ~100 MB of the server's prediction thread (40 million pixels took 1 s and 1.4 GB).
MAX_PIXELS = 4_000_000
FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF")  # Pillow's names of the formats accepted
FORMATS_TEXT = "PNG, JPEG, GIF, BMP, WebP or TIFF"
INK_THRESHOLD = 0.05  # after stretching, pixels below this are background for the bounding box
MIN_CONTRAST = 0.1  # ink must stand this far above the background, else the picture is blank


class ImageError(NNScratchError):
    """An image file cannot be read, is too large, or holds no digit."""


BLANK = "no digit found: the image is blank (draw or photograph a digit on plain paper)"


def open_image(source: str | os.PathLike[str] | bytes) -> Image.Image:
    """Open and fully decode an image (the first frame of an animation) from a path or bytes.

    Raises :class:`ImageError` for a missing, empty, truncated, unrecognised or oversized file, or one in a
    format outside ``FORMATS``.
    """
    name = "image" if isinstance(source, bytes) else str(source)
    if not isinstance(source, bytes):
        path = Path(source)
        if not path.is_file():
            raise ImageError(f"{name}: file not found")
        if path.stat().st_size == 0:
            raise ImageError(f"{name}: the file is empty")
    elif not source:
        raise ImageError("the image is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image: Image.Image = Image.open(
                io.BytesIO(source) if isinstance(source, bytes) else source, formats=FORMATS
            )
            width, height = image.size  # from the header: nothing is decoded before load()
            if width * height > MAX_PIXELS and isinstance(image, JpegImagePlugin.JpegImageFile):
                reduce_jpeg(image)
            if image.size[0] * image.size[1] > MAX_PIXELS:
                raise ImageError(
                    f"{name}: {width:,}×{height:,} pixels is too large (limit {MAX_PIXELS:,} pixels); "
                    "scale it down first"
                )
            image = next(iter(ImageSequence.Iterator(image)))
            image.load()
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"{name}: the image is too large to decode safely; scale it down first") from None
    except UnidentifiedImageError:
        found = format_of(source)
        if found is None or found in FORMATS:  # an accepted format's signature, but Pillow cannot parse it
            raise ImageError(f"{name}: not an image in a format read here ({FORMATS_TEXT})") from None
        raise ImageError(f"{name}: {found} images are not accepted; send {FORMATS_TEXT}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(f"{name}: the image is damaged or truncated ({exc})") from None
    return image


def reduce_jpeg(image: JpegImagePlugin.JpegImageFile) -> None:
    """Have libjpeg decode ``image`` at the largest of 1/2, 1/4, 1/8 of its size within MAX_PIXELS, if any."""
    width, height = image.size
    for scale in (2, 4, 8):
        if -(-width // scale) * -(-height // scale) <= MAX_PIXELS:  # the sizes libjpeg gives: rounded up
            image.draft(None, (max(1, width // scale), max(1, height // scale)))
            return


def format_of(source: str | os.PathLike[str] | bytes) -> str | None:
    """The format Pillow would take the image for, from the signature in its first 16 bytes alone.

    Only each format's signature test runs, never its parser: this names a refused format in a message.
    """
    if isinstance(source, bytes):
        head = source[:16]
    else:
        with open(source, "rb") as file:
            head = file.read(16)
    Image.init()
    for name in Image.ID:
        accept = Image.OPEN[name][1]
        try:
            if accept is not None and accept(head):
                return name
        except (SyntaxError, IndexError, TypeError, ValueError, struct.error):
            continue
    return None


def upright(image: Image.Image) -> Image.Image:
    """The image turned as its EXIF Orientation tag says it is meant to be seen (a phone photo saved sideways)."""
    try:
        orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
    except (OSError, SyntaxError, ValueError, struct.error):  # unreadable EXIF: the pixels are still good
        return image
    return image if orientation == 1 else ImageOps.exif_transpose(image)


def grayscale(image: Image.Image) -> npt.NDArray[np.float64]:
    """The image as an (h, w) float array in [0, 1], 1 being white; transparency becomes white paper."""
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        values = np.asarray(image, dtype=np.float64)
        low, high = float(values.min()), float(values.max())  # NaN if any pixel is NaN
        if not np.isfinite([low, high]).all():  # a float TIFF can hold NaN or infinity: they have no gray level
            raise ImageError("the image holds pixel values that are not numbers (NaN or infinity)")
        return (values - low) / (high - low) if high > low else np.ones_like(values)
    if "A" in image.getbands():
        alpha = np.asarray(image.getchannel("A"), dtype=np.float64) / 255.0
        gray = np.asarray(image.convert("RGB").convert("L"), dtype=np.float64) / 255.0
        return gray * alpha + (1.0 - alpha)
    return np.asarray(image.convert("L"), dtype=np.float64) / 255.0


def ink(gray: npt.NDArray[np.float64]) -> npt.NDArray[np.float64] | None:
    """Bright-on-dark ink in [0, 1] from a grayscale picture, or None when it is blank.

    The picture is inverted when its border is mostly light (a dark digit on light paper).
    """
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    strokes = 1.0 - gray if border.mean() > 0.5 else gray
    background = float(np.median(strokes))
    contrast = float(strokes.max()) - background
    if contrast < MIN_CONTRAST:
        return None
    return np.clip((strokes - background) / contrast, 0.0, 1.0)


def fit_and_centre(strokes: npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
    """Crop to the ink, scale to fit 20×20 keeping the aspect ratio, centre by mass in 28×28."""
    rows = np.flatnonzero((strokes > INK_THRESHOLD).any(axis=1))
    cols = np.flatnonzero((strokes > INK_THRESHOLD).any(axis=0))
    crop = strokes[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    h, w = crop.shape
    scale = BOX / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    box = Image.fromarray(crop.astype(np.float32)).resize(size, Image.Resampling.LANCZOS)
    box_array = np.clip(np.asarray(box, dtype=np.float64), 0.0, 1.0)
    out = np.zeros((SIDE, SIDE), dtype=np.float32)
    total = box_array.sum()
    bh, bw = box_array.shape
    if total > 0:
        cy = float((box_array.sum(axis=1) * np.arange(bh)).sum() / total)
        cx = float((box_array.sum(axis=0) * np.arange(bw)).sum() / total)
    else:
        cy, cx = (bh - 1) / 2, (bw - 1) / 2
    # Top-left corner that puts the centre of mass on pixel (14, 14), where MNIST's digits have theirs
    # (measured: 13.98, 14.01 on average over the test set), kept inside the 28×28 frame.
    top = int(np.clip(round(SIDE / 2 - cy), 0, SIDE - bh))
    left = int(np.clip(round(SIDE / 2 - cx), 0, SIDE - bw))
    out[top : top + bh, left : left + bw] = box_array
    return out


def preprocess(image: Image.Image) -> npt.NDArray[np.float32]:
    """Any image, turned upright as its EXIF says → (784,) float32 in [0, 1], as MNIST digits are.

    Raises ImageError if blank.
    """
    strokes = ink(grayscale(upright(image)))
    if strokes is None:
        raise ImageError(BLANK)
    return fit_and_centre(strokes).reshape(-1)


def load_digit(source: str | os.PathLike[str] | bytes) -> npt.NDArray[np.float32]:
    """Open an image file (or bytes) and preprocess it: (784,) float32 in [0, 1]."""
    image = open_image(source)
    try:
        return preprocess(image)
    except ImageError as exc:
        name = "image" if isinstance(source, bytes) else str(source)
        raise ImageError(f"{name}: {exc}") from None


def to_png(pixels: npt.ArrayLike) -> bytes:
    """(784,) or (28, 28) pixels in [0, 1], or a strip (28, 28k), as 8-bit grayscale PNG bytes."""
    array = np.asarray(pixels, dtype=np.float64)
    if array.ndim == 1:
        array = array.reshape(SIDE, SIDE)
    buffer = io.BytesIO()
    Image.fromarray(np.round(np.clip(array, 0, 1) * 255).astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()
