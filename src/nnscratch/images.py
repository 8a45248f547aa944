"""Turning any picture of a digit into what the network expects: 28×28 pixels in [0, 1], as MNIST was made.

MNIST's digits were size-normalised to fit a 20×20 box (keeping their aspect ratio, anti-aliased) and then
placed in a 28×28 image so that their centre of mass sits at the centre.  ``preprocess`` does the same:

1. grayscale, with any transparency composited onto white paper;
2. ink = bright strokes on dark: a picture whose border is light (dark-on-light) is inverted;
3. the background level (the median) is subtracted and the ink stretched to [0, 1];
4. crop to the ink's bounding box;
5. scale to fit 20×20 keeping the aspect ratio (Lanczos, anti-aliased);
6. place in 28×28 with the centre of mass at the centre.

Images are opened with Pillow, with a limit on their pixel count so that a decompression bomb is refused
before it is decoded.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageSequence, UnidentifiedImageError

from nnscratch.errors import NNScratchError

SIDE = 28
BOX = 20
MAX_PIXELS = 40_000_000  # larger than any photo of a digit needs; 50,000 × 50,000 is refused
INK_THRESHOLD = 0.05  # after stretching, pixels below this are background for the bounding box
MIN_CONTRAST = 0.1  # ink must stand this far above the background, else the picture is blank


class ImageError(NNScratchError):
    """An image file cannot be read, is too large, or holds no digit."""


BLANK = "no digit found: the image is blank (draw or photograph a digit on plain paper)"


def open_image(source: str | os.PathLike[str] | bytes) -> Image.Image:
    """Open and fully decode an image (the first frame of an animation) from a path or bytes.

    Raises :class:`ImageError` for a missing, empty, truncated, unrecognised or oversized file.
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
            image = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise ImageError(
                    f"{name}: {width}×{height} pixels is too large (limit {MAX_PIXELS:,}); scale it down first"
                )
            image = next(iter(ImageSequence.Iterator(image)))
            image.load()
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"{name}: the image is too large to decode safely; scale it down first") from None
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image Pillow can read (PNG, JPEG, BMP, GIF, ...)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(f"{name}: the image is damaged or truncated ({exc})") from None
    return image


def grayscale(image: Image.Image) -> npt.NDArray[np.float64]:
    """The image as an (h, w) float array in [0, 1], 1 being white; transparency becomes white paper."""
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        values = np.asarray(image, dtype=np.float64)
        low, high = float(values.min()), float(values.max())
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
    """Any image → (784,) float32 in [0, 1], as MNIST digits are.  Raises ImageError if blank."""
    strokes = ink(grayscale(image))
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
