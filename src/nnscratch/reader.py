"""The reader nnscratch ships: a trained convnet, so that ``predict`` and ``serve`` work straight after install.

It is the ``reader`` preset (``cnn-best``'s network and recipe, also taught made-up non-digits), trained by
one command, with its temperature and "not sure" and "not a digit" thresholds fitted on the validation split::

    nnscratch train --preset reader --seed 0 --threads 2 -o src/nnscratch/assets/reader.npz

(the same command gives the same file bit for bit on one machine at one thread count; on another CPU the
last bits of its sums differ).  Its metadata records the recipe and its MNIST test accuracy.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from nnscratch.network import Network

NAME = "reader.npz"  # how the page and the API name it
ZIP_MAGIC = b"PK\x03\x04"  # a model file is a zip archive (.npz); no image format starts so


def reader_path() -> Path:
    """Where the shipped reader's model file lies in the installed package."""
    return Path(str(resources.files("nnscratch") / "assets" / NAME))


def load_reader() -> Network:
    """The shipped reader, a convnet trained on MNIST that also says "not sure" and "not a digit"."""
    return Network.load(reader_path())


def is_model_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a model file rather than an image: a ``.npz`` name, or a zip archive's first bytes."""
    if str(path).lower().endswith(".npz"):
        return True
    try:
        with open(path, "rb") as file:
            return file.read(4) == ZIP_MAGIC
    except OSError:  # missing or unreadable: the image reader says why
        return False


def model_and_images(inputs: list[str]) -> tuple[Network, str, list[str]]:
    """A command's ``[MODEL] IMAGE...`` arguments: (the network, its file, the images).  A first argument
    that is a model file (see :func:`is_model_file`) is the model; otherwise the shipped reader reads them all."""
    if not is_model_file(inputs[0]):
        return load_reader(), str(reader_path()), list(inputs)
    if len(inputs) < 2:
        raise ValueError(f"no images given after the model {inputs[0]}; name the image files to read")
    from nnscratch.images import SIDE  # Pillow: only for the commands that read images

    net = Network.load(inputs[0])
    if net.n_in != SIDE * SIDE:
        raise ValueError(
            f"{inputs[0]} expects {net.n_in} inputs, but images become {SIDE}×{SIDE} = {SIDE * SIDE} pixels; "
            "use a model trained on MNIST"
        )
    return net, inputs[0], inputs[1:]
