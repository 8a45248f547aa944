"""Made-up images that are not digits, for a reader to learn what "not a digit" looks like.

A network trained on digits alone has only digits to answer with: shown a scribble it names one, often
sure of it.  *Outlier exposure* (Hendrycks, Mazeika and Dietterich, 2019) also trains it on inputs from
outside its classes, with the uniform distribution as their target, so that its answer on such inputs
spreads over the classes and its confidence (or its energy) drops.  These inputs are drawn here, from a
seeded generator, never taken from a dataset: the sets that measure how well the reader tells digits from
other things (Fashion-MNIST, noise) stay unseen.

Kinds, each drawn as bright ink on a dark 28×28 frame with values in [0, 1]:

* ``noise``: uniform, sparse or blurred speckle over the whole frame
* ``blobs``: one to four filled ellipses and triangles
* ``dots``: one to five round dots
* ``lines``: one straight stroke never near vertical (that is a 1), or three to five strokes
* ``scribbles``: a long, winding pen track that crosses itself
* ``letters``: capital and small letters unlike any digit, from Pillow's own font
* ``textures``: stripes, checks and gradients filling the frame

Most kinds are drawn on a larger canvas and then prepared the way ``nnscratch predict`` prepares a photo
(cropped to the ink, fitted into 20×20, centred by mass: ``nnscratch.images.fit_and_centre``), so they
look like what a user's non-digit becomes; noise and textures fill the frame, as images that were
never a drawing do.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from nnscratch.images import SIDE, fit_and_centre

CANVAS = 64
LETTERS = "AEFHKMNRWXaefkmnrwx#&@%"  # none reads as a digit (no O, I, l, S, Z, B, G, g, q, b, T, y, h, ...)

Drawing = npt.NDArray[np.float32]


def _canvas() -> tuple[Image.Image, ImageDraw.ImageDraw]:
    image = Image.new("L", (CANVAS, CANVAS), 0)
    return image, ImageDraw.Draw(image)


def _fitted(image: Image.Image) -> Drawing:
    strokes = np.asarray(image, dtype=np.float64) / 255.0
    if strokes.max() <= 0.05:  # nothing drawn: a dark frame
        return np.zeros((SIDE, SIDE), np.float32)
    return fit_and_centre(strokes)


def _point(rng: np.random.Generator, margin: int = 6) -> tuple[float, float]:
    return tuple(rng.uniform(margin, CANVAS - margin, 2))  # type: ignore[return-value]


def noise(rng: np.random.Generator) -> Drawing:
    field = rng.random((SIDE, SIDE))
    style = rng.integers(3)
    if style == 1:  # sparse speckle
        field = field * (rng.random((SIDE, SIDE)) < rng.uniform(0.05, 0.4))
    elif style == 2:  # blurred clouds
        image = Image.fromarray((field * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(rng.uniform(1, 3)))
        field = np.asarray(image, np.float64) / 255.0
        field = (field - field.min()) / max(field.max() - field.min(), 1e-6)
    return (field * rng.uniform(0.5, 1.0)).astype(np.float32)


def blobs(rng: np.random.Generator) -> Drawing:
    image, draw = _canvas()
    for _ in range(rng.integers(1, 5)):
        (x, y), (w, h) = _point(rng), rng.uniform(6, 30, 2)
        shade = int(rng.integers(128, 256))
        if rng.random() < 0.7:
            draw.ellipse([x - w / 2, y - h / 2, x + w / 2, y + h / 2], fill=shade)
        else:
            draw.polygon([_point(rng, 2) for _ in range(3)], fill=shade)
    return _fitted(image)


def dots(rng: np.random.Generator) -> Drawing:
    image, draw = _canvas()
    for _ in range(rng.integers(1, 6)):
        (x, y), r = _point(rng), rng.uniform(2, 6)
        draw.ellipse([x - r, y - r, x + r, y + r], fill=255)
    return _fitted(image)


def lines(rng: np.random.Generator) -> Drawing:
    image, draw = _canvas()
    count = 1 if rng.random() < 0.4 else int(rng.integers(3, 6))  # two strokes too often make a 4, 7 or L
    for _ in range(count):
        angle = rng.uniform(0, math.pi)
        if count == 1:  # a lone stroke within 30° of vertical is a 1
            angle = rng.uniform(-math.pi / 3, math.pi / 3)  # measured from the horizontal
        (x, y), half = _point(rng, 16), rng.uniform(10, 28)
        dx, dy = half * math.cos(angle), half * math.sin(angle)
        draw.line([x - dx, y - dy, x + dx, y + dy], fill=255, width=int(rng.integers(3, 8)))
    return _fitted(image)


def scribbles(rng: np.random.Generator) -> Drawing:
    image, draw = _canvas()
    (x, y), heading = _point(rng, 12), rng.uniform(0, 2 * math.pi)
    track = [(x, y)]
    for _ in range(rng.integers(100, 220)):
        heading += rng.normal(0, 0.6)
        x = float(np.clip(x + 2.5 * math.cos(heading), 4, CANVAS - 4))
        y = float(np.clip(y + 2.5 * math.sin(heading), 4, CANVAS - 4))
        track.append((x, y))
    draw.line(track, fill=255, width=int(rng.integers(2, 6)), joint="curve")
    return _fitted(image)


_FONTS: dict[int, ImageFont.FreeTypeFont | ImageFont.ImageFont] = {}


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    if size not in _FONTS:
        _FONTS[size] = ImageFont.load_default(size=size)
    return _FONTS[size]


def letters(rng: np.random.Generator) -> Drawing:
    image, draw = _canvas()
    letter = LETTERS[int(rng.integers(len(LETTERS)))]
    draw.text((CANVAS / 2, CANVAS / 2), letter, fill=255, font=_font(int(rng.integers(36, 52))), anchor="mm")
    image = image.rotate(rng.uniform(-20, 20), resample=Image.Resampling.BILINEAR)
    if rng.random() < 0.5:
        image = image.filter(ImageFilter.MaxFilter(3))  # a bolder pen
    return _fitted(image)


def textures(rng: np.random.Generator) -> Drawing:
    rows, cols = np.mgrid[0:SIDE, 0:SIDE].astype(np.float64)
    angle, period = rng.uniform(0, math.pi), rng.uniform(3, 10)
    along = rows * math.cos(angle) + cols * math.sin(angle)
    style = rng.integers(3)
    if style == 0:  # stripes
        field = 0.5 + 0.5 * np.sin(2 * math.pi * along / period)
    elif style == 1:  # checks
        field = ((rows // (period / 2) + cols // (period / 2)) % 2).astype(np.float64)
    else:  # a gradient
        field = (along - along.min()) / (along.max() - along.min())
    return (field * rng.uniform(0.5, 1.0)).astype(np.float32)


KINDS: dict[str, Callable[[np.random.Generator], Drawing]] = {
    "noise": noise,
    "blobs": blobs,
    "dots": dots,
    "lines": lines,
    "scribbles": scribbles,
    "letters": letters,
    "textures": textures,
}


def make(
    n: int, seed: int | np.random.Generator | None = 0, *, kinds: tuple[str, ...] | None = None
) -> npt.NDArray[np.float32]:
    """``n`` made-up non-digits (n, 784), float32 in [0, 1], the kinds taken in turn; the same for the same seed."""
    rng = np.random.default_rng(seed)
    names = kinds or tuple(KINDS)
    for name in names:
        if name not in KINDS:
            raise ValueError(f"unknown kind of non-digit {name!r}; choose from {', '.join(KINDS)}")
    out = np.empty((n, SIDE * SIDE), np.float32)
    for i in range(n):
        out[i] = KINDS[names[i % len(names)]](rng).reshape(-1)
    return out
