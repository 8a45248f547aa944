"""Files on disk: ``.npz`` archives with a JSON header, written atomically, read without pickles.

A model (or checkpoint) file is a NumPy ``.npz`` archive.  Besides its arrays it holds one entry,
``__header__``, a UTF-8 JSON document stored as a uint8 array, so the whole file loads with
``allow_pickle=False``: a file that smuggles in pickled objects is refused, never executed.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

from nnscratch.errors import ModelFileError

HEADER_KEY = "__header__"
_CHUNK = 1 << 20


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write(f)`` on a temporary file beside ``path``, then rename it over ``path``.

    Readers see either the old file or the complete new one, never half of it; if ``write`` fails
    (or the process is interrupted) the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    if path.parent and not path.parent.exists():
        raise FileNotFoundError(f"directory {str(path.parent)!r} does not exist; create it first")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_npz(path: str | os.PathLike[str], arrays: Mapping[str, np.ndarray], header: Mapping[str, Any]) -> Path:
    """Write ``arrays`` and a JSON ``header`` to ``path`` atomically (uncompressed .npz)."""
    encoded = np.frombuffer(json.dumps(header, sort_keys=True).encode("utf-8"), dtype=np.uint8)
    payload = {HEADER_KEY: encoded, **arrays}
    return atomic_write(path, lambda f: np.savez(f, **payload))


def load_npz(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read (header, arrays) from a file written by :func:`save_npz`; pickles are refused.

    Raises :class:`ModelFileError` with a one-line reason for anything that is not such a file.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file {str(path)!r} not found; train one with 'nnscratch train'")
    if not zipfile.is_zipfile(path):
        raise ModelFileError(f"{path} is not an nnscratch model file (not an .npz archive); check the path")
    try:
        with zipfile.ZipFile(path) as archive:
            arrays = {
                info.filename.removesuffix(".npy"): _read_array(archive, info, path) for info in archive.infolist()
            }
    except (OSError, EOFError, ValueError, RuntimeError, NotImplementedError, zipfile.BadZipFile, zlib.error) as exc:
        raise ModelFileError(f"{path} is not a valid nnscratch model file ({exc})") from None
    if HEADER_KEY not in arrays:
        raise ModelFileError(f"{path} has no nnscratch header; it was not written by nnscratch")
    raw = arrays.pop(HEADER_KEY)
    try:
        header = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise ModelFileError(f"{path} has a corrupted header; re-save or retrain the model") from None
    if not isinstance(header, dict):
        raise ModelFileError(f"{path} has a corrupted header; re-save or retrain the model")
    return header, arrays


def _read_array(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path) -> np.ndarray:
    """One ``.npy`` member of ``archive``, checked before anything is allocated.

    ``np.load`` would allocate whatever shape a member's header declares before reading a byte of it;
    here the declared size must match the member's size, and the data is read in chunks, so memory
    grows only with the bytes really present.  Object arrays (pickles) are refused unread.
    """
    if not info.filename.endswith(".npy"):
        raise ModelFileError(
            f"{path} holds {info.filename!r}, which is not a NumPy array; it was not written by nnscratch"
        )
    with archive.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version not in ((1, 0), (2, 0)):
            raise ModelFileError(
                f"{path}: array {info.filename!r} uses .npy format {version}, which nnscratch does not read"
            )
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran_order, dtype = read_header(f)
        if dtype.hasobject:
            raise ModelFileError(f"{path} contains pickled Python objects, which nnscratch refuses to load for safety")
        nbytes = math.prod(shape) * dtype.itemsize
        if nbytes != info.file_size - f.tell():
            raise ModelFileError(
                f"{path}: array {info.filename!r} declares shape {shape} but holds {info.file_size - f.tell()} "
                f"bytes, not {nbytes}; the file is corrupted"
            )
        payload = bytearray()
        while len(payload) < nbytes:
            chunk = f.read(min(_CHUNK, nbytes - len(payload)))
            if not chunk:
                raise ModelFileError(f"{path}: array {info.filename!r} is truncated; the file is corrupted")
            payload += chunk
    array = np.frombuffer(payload, dtype=dtype)
    return array.reshape(shape[::-1]).T if fortran_order else array.reshape(shape)
