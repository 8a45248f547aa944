"""Data: IDX and CSV readers, the MNIST download (SHA-256 verified, cached), splits and batches.

Images come back as float arrays (m, n_features) scaled to [0, 1], labels as (m,) integer arrays.

Where the data is read from, in order: an explicit ``data_dir``; else the directory in the environment
variable ``NNSCRATCH_DATA``; else a per-user cache directory, into which the four MNIST files are
downloaded from the standard mirrors when missing.

A directory holds either the four IDX files (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each raw or ``.gz``), or two CSV files
(``mnist_train.csv`` and ``mnist_test.csv``, or ``train.csv`` and ``test.csv``) with rows
``label,pixel0,...,pixelN`` and an optional header line.  Any dataset in that form works: the input
size and the number of classes are read from the files.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import warnings
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from nnscratch.errors import DataError, DownloadError
from nnscratch.io import lock_temporary, remove_stale_temporaries

ENV_DATA = "NNSCRATCH_DATA"
ENV_MIRRORS = "NNSCRATCH_MNIST_MIRRORS"

MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

# SHA-256 of the *uncompressed* files: mirrors may recompress, the content is what must match.
MNIST_FILES = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

IDX_DTYPES: dict[int, np.dtype[Any]] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
IDX_CODES = {dtype.newbyteorder(">") if dtype.itemsize > 1 else dtype: code for code, dtype in IDX_DTYPES.items()}

# No IDX file nnscratch reads may declare more than this many bytes: a lying header cannot make it
# allocate more, and the payload is read in chunks, so memory grows only with the bytes really present.
MAX_IDX_BYTES = 2**32
# Labels are class indices, and the output layer gets one unit per class: a corrupted label such as
# 2**31 - 1 would otherwise ask for a network of billions of weights.
MAX_CLASSES = 2**16
_CHUNK = 1 << 20
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass
class Dataset:
    """Training and test sets: X (m, n_features) floats in [0, 1], y (m,) integer labels."""

    X_train: npt.NDArray[np.floating]
    y_train: npt.NDArray[np.intp]
    X_test: npt.NDArray[np.floating]
    y_test: npt.NDArray[np.intp]
    source: str = ""

    @property
    def n_features(self) -> int:
        return int(self.X_train.shape[1])

    @property
    def n_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_test.max())) + 1


# -- IDX ----------------------------------------------------------------------------------------


def _open(path: Path):
    """Open ``path`` for binary reading, through gzip when its first bytes say it is gzip."""
    with open(path, "rb") as f:
        magic = f.read(2)
    if magic == _GZIP_MAGIC:
        return gzip.open(path, "rb")
    if path.suffix == ".gz":
        raise DataError(f"{path} is named .gz but is not gzip data; download it again")
    return open(path, "rb")


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (raw or gzip) into an array of the shape and dtype its header declares.

    Checks the magic number, the dtype code, that the payload holds exactly the declared number of
    items, and that the gzip stream is intact.  Raises :class:`DataError` naming the problem.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} not found")
    try:
        with _open(path) as f:
            head = f.read(4)
            if len(head) == 0:
                raise DataError(f"{path} is empty; download it again")
            if len(head) < 4 or head[0] != 0 or head[1] != 0:
                raise DataError(f"{path} is not an IDX file (wrong magic number); check the file")
            code, ndim = head[2], head[3]
            if code not in IDX_DTYPES:
                raise DataError(f"{path} has unknown IDX data type code 0x{code:02x}; the file is corrupted")
            if ndim == 0:
                raise DataError(f"{path} declares zero dimensions; the file is corrupted")
            raw_dims = f.read(4 * ndim)
            if len(raw_dims) < 4 * ndim:
                raise DataError(f"{path} is truncated inside its header; download it again")
            dims = tuple(int(d) for d in np.frombuffer(raw_dims, dtype=">u4"))
            dtype = IDX_DTYPES[code]
            nbytes = math.prod(dims) * dtype.itemsize
            if nbytes > MAX_IDX_BYTES:
                raise DataError(f"{path} declares {dims} items, more than nnscratch reads; the header is corrupted")
            # The buffer grows with the bytes actually read, never to the size the header claims, so a
            # file that declares 2**31 items but holds 100 bytes costs 100 bytes, not 2 GiB.
            payload = bytearray()
            while len(payload) < nbytes:
                chunk = f.read(min(_CHUNK, nbytes - len(payload)))
                if not chunk:
                    break
                payload += chunk
            filled = len(payload)
            if filled < nbytes:
                raise DataError(
                    f"{path} is truncated: its header declares {dims} but only {filled} of {nbytes} "
                    "payload bytes are present; download it again"
                )
            if f.read(1):
                raise DataError(f"{path} has more bytes than its header {dims} declares; the file is corrupted")
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DataError(f"{path} is a damaged gzip file ({exc}); download it again") from None
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    return np.frombuffer(payload, dtype=dtype).reshape(dims)


def write_idx(path: str | os.PathLike[str], array: npt.ArrayLike, *, compress: bool | None = None) -> Path:
    """Write ``array`` as an IDX file (gzip when ``compress`` or the name ends in .gz)."""
    array = np.asarray(array)
    dtype = array.dtype.newbyteorder(">") if array.dtype.itemsize > 1 else array.dtype
    if dtype not in IDX_CODES:
        raise ValueError(f"IDX cannot store dtype {array.dtype}; use uint8, int8, int16, int32, float32 or float64")
    if array.ndim == 0 or array.ndim > 255:
        raise ValueError("IDX stores arrays of 1 to 255 dimensions")
    path = Path(path)
    compress = path.suffix == ".gz" if compress is None else compress
    header = bytes([0, 0, IDX_CODES[dtype], array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    payload = header + np.ascontiguousarray(array, dtype=dtype).tobytes()
    path.write_bytes(gzip.compress(payload, mtime=0) if compress else payload)
    return path


# -- CSV ----------------------------------------------------------------------------------------


def read_csv(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """Read ``label,pixel0,...,pixelN`` rows (optional header) into (X uint8 (m, N+1-1), y (m,))."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} not found")
    with open(path, encoding="utf-8", errors="replace") as f:
        first = f.readline()
    if not first.strip():
        raise DataError(f"{path} is empty; expected rows of label,pixel0,pixel1,...")
    try:
        float(first.split(",")[0])
        has_header = False
    except ValueError:
        has_header = True
    try:
        with warnings.catch_warnings():  # "input contained no data": reported below as a DataError instead
            warnings.simplefilter("ignore", UserWarning)
            table = np.loadtxt(path, delimiter=",", skiprows=int(has_header), dtype=np.float64, ndmin=2)
    except ValueError as exc:
        raise DataError(f"{path} is not a numeric CSV of label,pixel0,pixel1,... rows ({exc})") from None
    if table.shape[0] == 0:
        raise DataError(f"{path} has a header but no rows")
    if table.shape[1] < 2:
        raise DataError(f"{path} needs a label column and at least one pixel column")
    labels, pixels = table[:, 0], table[:, 1:]
    if np.any(labels != np.round(labels)) or labels.min() < 0:
        raise DataError(f"{path}: labels (first column) must be non-negative integers")
    if labels.max() >= MAX_CLASSES:
        raise DataError(f"{path}: label {labels.max():g} is too large; labels are class numbers below {MAX_CLASSES}")
    if not np.all(np.isfinite(pixels)) or pixels.min() < 0 or pixels.max() > 255:
        raise DataError(f"{path}: pixel values must be numbers in 0..255")
    return pixels.astype(np.uint8 if np.all(pixels == np.round(pixels)) else np.float32), labels.astype(np.intp)


# -- directories, download ------------------------------------------------------------------------


def default_cache_dir() -> Path:
    """The per-user directory MNIST is downloaded to (e.g. ~/.cache/nnscratch/mnist on Linux)."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("nnscratch")) / "mnist"


def _find(directory: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem, stem.replace("-idx", ".idx") + ".gz", stem.replace("-idx", ".idx")):
        if (directory / name).is_file():
            return directory / name
    return None


def _csv_pair(directory: Path) -> tuple[Path, Path] | None:
    for train, test in (("mnist_train.csv", "mnist_test.csv"), ("train.csv", "test.csv")):
        if (directory / train).is_file() and (directory / test).is_file():
            return directory / train, directory / test
    return None


def _file_sha256_gunzipped(path: Path) -> str:
    digest = hashlib.sha256()
    with _open(path) as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def download_mnist(
    directory: str | os.PathLike[str],
    *,
    mirrors: Sequence[str] | None = None,
    files: dict[str, str] | None = None,
    log: Callable[[str], None] | None = None,
    timeout: float = 30.0,
) -> Path:
    """Download the MNIST files missing from ``directory``, verifying each one's SHA-256.

    Each file is fetched to a temporary name, checked against the SHA-256 of its uncompressed content
    and only then renamed into place, so an interrupted or corrupted download leaves nothing behind.
    Mirrors are tried in order (``NNSCRATCH_MNIST_MIRRORS``, comma-separated, overrides the list).
    """
    directory = Path(directory)
    files = MNIST_FILES if files is None else files
    if mirrors is None:
        env = os.environ.get(ENV_MIRRORS, "")
        mirrors = [m.strip() for m in env.split(",") if m.strip()] or list(MIRRORS)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"cannot create the data directory {directory}: {exc.strerror}") from None
    for stem, sha256 in files.items():
        if _find(directory, stem):
            continue
        target = directory / f"{stem}.gz"
        remove_stale_temporaries(directory / stem, suffix=".part")  # left by a download killed outright
        errors = []
        for mirror in mirrors:
            url = mirror.rstrip("/") + f"/{stem}.gz"
            if log:
                log(f"downloading {url}")
            fd, tmp_name = tempfile.mkstemp(prefix=f".{stem}.", suffix=".part", dir=directory)
            tmp = Path(tmp_name)
            held = os.dup(fd)  # locked until the part is renamed or removed: another download's sweep skips it
            lock_temporary(held)
            try:
                with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
                    shutil.copyfileobj(response, out, _CHUNK)
                actual = _file_sha256_gunzipped(tmp)
                if actual != sha256:
                    raise DataError(f"SHA-256 mismatch (got {actual[:12]}..., expected {sha256[:12]}...)")
                os.replace(tmp, target)
                break
            except (OSError, urllib.error.URLError, DataError, EOFError, zlib.error, ValueError) as exc:
                errors.append(f"{url}: {exc}")
            finally:
                tmp.unlink(missing_ok=True)
                os.close(held)
        else:
            raise DownloadError(
                f"could not download {stem}.gz ({errors[-1] if errors else 'no mirror'}); on an offline "
                f"machine copy the four MNIST .gz files into {directory} or pass --data-dir DIR"
            )
    return directory


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None, *, download: bool = True) -> Path:
    """The directory to read data from: ``data_dir``, else ``$NNSCRATCH_DATA``, else the cache.

    Only the cache directory is ever downloaded into; an explicit directory must hold the files.
    """
    if data_dir is None and os.environ.get(ENV_DATA):
        data_dir = os.environ[ENV_DATA]
    if data_dir is not None:
        directory = Path(data_dir).expanduser()
        if not directory.is_dir():
            raise DataError(f"data directory {str(directory)!r} does not exist; check --data-dir or ${ENV_DATA}")
        return directory
    directory = default_cache_dir()
    if download and not all(_find(directory, stem) for stem in MNIST_FILES):
        download_mnist(directory)
    return directory


def _scale(images: np.ndarray, dtype: npt.DTypeLike) -> np.ndarray:
    """Images (m, ...) as (m, n_features) floats in [0, 1].

    uint8 pixels (and any pixels above 1) are taken as 0..255 and divided by 255.
    """
    X = images.reshape(images.shape[0], -1).astype(dtype)
    if X.size and not np.all(np.isfinite(X)):
        raise DataError("image values must be finite numbers")
    if images.dtype == np.uint8 or (X.size and X.max() > 1.0):
        X *= 1.0 / 255.0
    if X.size and (X.min() < 0.0 or X.max() > 1.0):
        raise DataError("pixel values must lie in 0..255 (or 0..1)")
    return X


def _labels(labels: np.ndarray, source: str) -> np.ndarray:
    if labels.ndim != 1:
        raise DataError(f"{source}: labels must be one-dimensional, got shape {labels.shape}")
    if labels.size and (not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0):
        raise DataError(f"{source}: labels must be non-negative integers")
    if labels.size and labels.max() >= MAX_CLASSES:
        raise DataError(f"{source}: label {labels.max()} is too large; labels are class numbers below {MAX_CLASSES}")
    return labels.astype(np.intp)


def _pair(images: np.ndarray, labels: np.ndarray, what: str, dtype: npt.DTypeLike) -> tuple[np.ndarray, np.ndarray]:
    if images.ndim < 2:
        raise DataError(f"{what} images must have at least 2 dimensions, got shape {images.shape}")
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"{what} set has {images.shape[0]} images but {labels.shape[0]} labels; the files do not belong together"
        )
    if images.shape[0] == 0:
        raise DataError(f"{what} set is empty")
    return _scale(images, dtype), _labels(labels, what)


def load_dataset(
    data_dir: str | os.PathLike[str] | None = None, *, dtype: npt.DTypeLike = np.float32, download: bool = True
) -> Dataset:
    """Load a train/test dataset (MNIST by default) as float images in [0, 1] and integer labels.

    See the module docstring for where the data is looked for and which file names are read.
    """
    directory = resolve_data_dir(data_dir, download=download)
    csvs = _csv_pair(directory)
    stems = list(MNIST_FILES)
    found = [_find(directory, stem) for stem in stems]
    present = [path for path in found if path is not None]
    if len(present) == len(found):
        tr_img, tr_lab, te_img, te_lab = (read_idx(p) for p in present)
        X_train, y_train = _pair(tr_img, _labels(tr_lab, str(present[1])), "training", dtype)
        X_test, y_test = _pair(te_img, _labels(te_lab, str(present[3])), "test", dtype)
    elif csvs:
        (tr_X, tr_y), (te_X, te_y) = read_csv(csvs[0]), read_csv(csvs[1])
        X_train, y_train = _pair(tr_X, tr_y, "training", dtype)
        X_test, y_test = _pair(te_X, te_y, "test", dtype)
    else:
        missing = ", ".join(stem for stem, path in zip(stems, found, strict=True) if path is None)
        raise DataError(
            f"no dataset in {directory}: missing {missing} (raw or .gz), and no mnist_train.csv/mnist_test.csv; "
            "omit --data-dir to download MNIST"
        )
    if X_train.shape[1] != X_test.shape[1]:
        raise DataError(
            f"training images have {X_train.shape[1]} features but test images {X_test.shape[1]}; "
            "the files do not belong together"
        )
    if y_test.max() > y_train.max():
        raise DataError(
            f"test labels go up to {y_test.max()} but training labels only to {y_train.max()}; labels are out of range"
        )
    return Dataset(X_train, y_train, X_test, y_test, source=str(directory))


# -- splits and batches ---------------------------------------------------------------------------


def split_indices(n: int, n_val: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A random split of range(n) into (train, validation) index arrays, validation of size ``n_val``."""
    if not 0 <= n_val < n:
        raise DataError(f"validation size must be in [0, {n}), got {n_val}; lower --validation-size")
    order = rng.permutation(n)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def data_fingerprint(*arrays: npt.NDArray) -> str:
    """A short hash of the data (shapes, every label, a sample of the pixels), to key the cache by."""
    h = hashlib.sha256()
    for a in arrays:
        h.update(f"{a.shape}{a.dtype}".encode())
        step = max(1, len(a) // 500) if a.ndim > 1 else 1
        h.update(np.ascontiguousarray(a[::step]).tobytes())
    return h.hexdigest()[:16]
