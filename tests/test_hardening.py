"""Corrupted, truncated and lying input files: each is refused quickly, with a clear one-line message.

Data files (IDX, gzip, CSV) raise DataError and model files ModelFileError, naming what is wrong;
a header that lies about sizes costs no more memory than the file really holds; and the command
line turns every case into one line on stderr with exit code 1, never a traceback.
"""

from __future__ import annotations

import gzip
import io
import json
import pathlib
import struct
import subprocess
import sys
import time
import tracemalloc
import zipfile

import numpy as np
import pytest

from nnscratch.cli import main
from nnscratch.data import MAX_CLASSES, load_dataset, read_csv, read_idx, write_idx
from nnscratch.errors import DataError, ModelFileError
from nnscratch.io import HEADER_KEY, load_npz, save_npz
from nnscratch.network import FORMAT_VERSION, Network
from tests.test_data import write_tiny_mnist

DATA = pathlib.Path(__file__).parent / "data"

# A lying header must not cost more than this much memory (the files in these tests are < 1 KiB).
SMALL_PEAK = 16 * 2**20


def idx_header(code: int, dims: tuple[int, ...]) -> bytes:
    """The IDX header: two zero bytes, the dtype code, the number of dimensions, each size as big-endian u32."""
    return bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)


def peak_memory_of(call) -> tuple[BaseException | None, int]:
    """Run ``call()``; return (the exception it raised or None, peak traced allocation in bytes)."""
    tracemalloc.start()
    try:
        call()
        raised = None
    except Exception as exc:
        raised = exc
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return raised, peak


def one_error_line(text: str, command: str) -> str:
    """The single line of ``text``, checked to be ``nnscratch COMMAND: error: ...``."""
    lines = text.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {lines}"
    assert lines[0].startswith(f"nnscratch {command}: error: ") and "Traceback" not in text
    return lines[0]


# -- IDX files ------------------------------------------------------------------------------------

VALID = idx_header(0x08, (3, 4)) + bytes(range(12))


def flip_crc(data: bytes) -> bytes:
    return data[:-8] + bytes([data[-8] ^ 0xFF]) + data[-7:]


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("a.idx", b"", "is empty"),
        ("a.idx", b"\x01\x02\x08\x01" + VALID[4:], "wrong magic number"),
        ("a.idx", b"label,pixel0\n3,255\n", "wrong magic number"),
        ("a.idx", idx_header(0x07, (3,)) + bytes(3), "unknown IDX data type code 0x07"),
        ("a.idx", bytes([0, 0, 0x08, 0]), "declares zero dimensions"),
        ("a.idx", VALID[:10], "truncated inside its header"),
        ("a.idx", VALID[:-5], r"truncated: its header declares \(3, 4\) but only 7 of 12 payload bytes"),
        ("a.idx", VALID + b"\x00", r"more bytes than its header \(3, 4\) declares"),
        ("a.idx", idx_header(0x0E, (2**32 - 1, 2**32 - 1)), "more than nnscratch reads"),
        ("a.idx.gz", VALID, "is named .gz but is not gzip data"),
        ("a.idx.gz", b"", "is named .gz but is not gzip data"),
        ("a.idx.gz", gzip.compress(VALID)[:-12], "is a damaged gzip file"),
        ("a.idx.gz", gzip.compress(VALID)[:12], "is a damaged gzip file"),
        ("a.idx.gz", flip_crc(gzip.compress(VALID)), "is a damaged gzip file"),
        ("a.idx.gz", b"\x1f\x8b" + b"not really gzip at all", "is a damaged gzip file"),
        ("a.idx.gz", gzip.compress(b""), "is empty"),
        ("a.idx.gz", gzip.compress(VALID[:-5]), "truncated: its header declares"),
    ],
    ids=[
        "empty",
        "wrong-magic",
        "csv-text",
        "dtype-code",
        "zero-dims",
        "cut-header",
        "cut-payload",
        "extra-bytes",
        "absurd-size",
        "gz-not-gzip",
        "gz-empty-file",
        "gz-cut-trailer",
        "gz-cut-stream",
        "gz-bad-crc",
        "gz-bad-header",
        "gz-of-nothing",
        "gz-cut-payload",
    ],
)
def test_broken_idx_files_raise_a_data_error_naming_the_problem(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.timeout(10)
@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gzip"])
def test_header_claiming_2_to_the_31_items_fails_fast_without_allocating_them(tmp_path, compress):
    content = idx_header(0x08, (2**31,)) + bytes(92)  # 100 bytes that claim 2 GiB of pixels
    path = tmp_path / ("liar.idx.gz" if compress else "liar.idx")
    path.write_bytes(gzip.compress(content) if compress else content)
    raised, peak = peak_memory_of(lambda: read_idx(path))
    assert isinstance(raised, DataError) and "only 92 of 2147483648 payload bytes" in str(raised)
    assert peak < SMALL_PEAK


def test_reading_a_valid_file_still_returns_its_exact_contents(tmp_path):
    array = np.arange(24, dtype=np.int16).reshape(2, 3, 4) - 7
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "a.idx.gz", array)), array)


# -- whole IDX datasets -----------------------------------------------------------------------------


def replace_file(directory: pathlib.Path, stem: str, array: np.ndarray) -> None:
    write_idx(directory / f"{stem}.gz", array)


@pytest.mark.parametrize(
    "stem, array, message",
    [
        ("t10k-labels-idx1-ubyte", np.zeros(19, np.uint8), "test set has 20 images but 19 labels"),
        ("t10k-labels-idx1-ubyte", np.full(20, 5, np.uint8), "test labels go up to 5 but training labels only to 2"),
        ("train-labels-idx1-ubyte", np.full(60, 2**31 - 1, np.int32), f"too large.*below {MAX_CLASSES}"),
        ("train-labels-idx1-ubyte", np.full(60, -1, np.int8), "labels must be non-negative integers"),
        ("train-labels-idx1-ubyte", np.zeros(60, np.float32), "labels must be non-negative integers"),
        ("train-labels-idx1-ubyte", np.zeros((60, 2), np.uint8), "labels must be one-dimensional"),
        ("t10k-images-idx3-ubyte", np.zeros((20, 5, 5), np.uint8), "16 features but test images 25"),
        ("train-images-idx3-ubyte", np.zeros(60, np.uint8), "must have at least 2 dimensions"),
        ("train-images-idx3-ubyte", np.full((60, 4, 4), np.nan, np.float32), "must be finite"),
        ("train-images-idx3-ubyte", np.full((60, 4, 4), 300, np.int16), "must lie in 0..255"),
    ],
    ids=[
        "count-mismatch",
        "test-labels-beyond-training",
        "absurd-label",
        "negative-labels",
        "float-labels",
        "2d-labels",
        "feature-mismatch",
        "labels-as-images",
        "nan-pixels",
        "pixels-over-255",
    ],
)
def test_inconsistent_idx_datasets_are_refused(tmp_path, rng, stem, array, message):
    write_tiny_mnist(tmp_path, rng)  # 60 training and 20 test images of 4×4, labels 0..2
    replace_file(tmp_path, stem, array)
    with pytest.raises(DataError, match=message):
        load_dataset(tmp_path)


# -- CSV files ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content, message",
    [
        (b"label,pixel0,pixel1\n", "has a header but no rows"),
        (b"1,0,255\n2,17", "not a numeric CSV.*number of columns changed"),
        (b"\x00\x00\x08\x03\xff\xfe\x01binary", "not a numeric CSV"),
        (b"1,0,nan\n", "pixel values must be numbers in 0..255"),
        (b"1,0,-3\n", "pixel values must be numbers in 0..255"),
        (b"-1,0,3\n", "labels .* must be non-negative integers"),
        (b"1e9,0,3\n", f"label 1e\\+09 is too large; labels are class numbers below {MAX_CLASSES}"),
        (b"inf,0,3\n", "label inf is too large"),
        (b"1\n2\n", "needs a label column and at least one pixel column"),
    ],
    ids=[
        "header-only",
        "cut-row",
        "binary",
        "nan",
        "negative-pixel",
        "negative-label",
        "huge-label",
        "inf",
        "no-pixels",
    ],
)
def test_broken_csv_files_raise_a_data_error(tmp_path, content, message):
    path = tmp_path / "mnist_train.csv"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        read_csv(path)


def test_csv_test_labels_beyond_the_training_classes_are_refused(tmp_path):
    (tmp_path / "mnist_train.csv").write_text("0,0,255\n1,255,0\n")
    (tmp_path / "mnist_test.csv").write_text("7,0,0\n")
    with pytest.raises(DataError, match="test labels go up to 7 but training labels only to 1"):
        load_dataset(tmp_path)


# -- the command line on bad data -------------------------------------------------------------------


def lying_dataset(directory: pathlib.Path, rng) -> None:
    write_tiny_mnist(directory, rng)
    (directory / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_header(0x08, (2**31, 1)) + bytes(92)))


BAD_DATA = {
    "truncated-gzip": (
        lambda d, rng: (write_tiny_mnist(d, rng), truncate(d / "train-images-idx3-ubyte.gz", 30)),
        "damaged gzip",
    ),
    "lying-header": (lying_dataset, "only 92 of 2147483648 payload bytes"),
    "not-gzip": (
        lambda d, rng: (write_tiny_mnist(d, rng), (d / "t10k-labels-idx1-ubyte.gz").write_bytes(b"plain text")),
        "not gzip data",
    ),
    "count-mismatch": (
        lambda d, rng: (write_tiny_mnist(d, rng), replace_file(d, "train-labels-idx1-ubyte", np.zeros(7, np.uint8))),
        "60 images but 7 labels",
    ),
    "labels-out-of-range": (
        lambda d, rng: (write_tiny_mnist(d, rng), replace_file(d, "t10k-labels-idx1-ubyte", np.full(20, 9, np.uint8))),
        "labels are out of range",
    ),
    "empty-csv": (
        lambda d, rng: ((d / "mnist_train.csv").write_text(""), (d / "mnist_test.csv").write_text("")),
        "is empty",
    ),
    "no-dataset": (lambda d, rng: None, "no dataset in"),
}


def truncate(path: pathlib.Path, keep: int) -> None:
    path.write_bytes(path.read_bytes()[:keep])


@pytest.mark.timeout(30)
@pytest.mark.parametrize("case", list(BAD_DATA))
def test_train_on_bad_data_exits_1_with_one_line_and_writes_nothing(tmp_path, rng, capsys, case):
    make, message = BAD_DATA[case]
    data = tmp_path / "data"
    data.mkdir()
    make(data, rng)
    output = tmp_path / "model.npz"
    code = main(["train", "--data-dir", str(data), "--epochs", "1", "-q", "-o", str(output)])
    captured = capsys.readouterr()
    assert code == 1
    assert message in one_error_line(captured.err, "train")
    assert not output.exists() and not list(tmp_path.glob(".model.npz.*"))


@pytest.mark.timeout(60)
def test_train_on_a_lying_file_in_a_real_process_prints_one_line(tmp_path, rng):
    lying_dataset(tmp_path, rng)
    done = subprocess.run(
        [sys.executable, "-m", "nnscratch.cli", "train", "--data-dir", str(tmp_path), "--epochs", "1"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if "loading data" not in line]
    assert len(errors) == 1 and "only 92 of 2147483648 payload bytes" in errors[0]
    assert "Traceback" not in done.stderr and not (tmp_path / "model.npz").exists()


# -- model files ----------------------------------------------------------------------------------


@pytest.fixture
def model(tmp_path) -> pathlib.Path:
    """A model file of today's format (2)."""
    net = Network.from_spec("4-3:relu-2:softmax", seed=0)
    net.metadata = {"test_accuracy": 0.5}
    return net.save(tmp_path / "model.npz")


@pytest.fixture
def model_v1(tmp_path) -> pathlib.Path:
    """A model file of format 1, as nnscratch 0.1.0 wrote it (tests/data), copied to be damaged."""
    path = tmp_path / "model_v1.npz"
    path.write_bytes((DATA / "format1_uniform64.npz").read_bytes())
    return path


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def write_members(path: pathlib.Path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def members_of(path: pathlib.Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def edit_header(path: pathlib.Path, change) -> None:
    header, arrays = load_npz(path)
    change(header)
    save_npz(path, arrays, header)


def edit_arrays(path: pathlib.Path, change) -> None:
    header, arrays = load_npz(path)
    change(arrays)
    save_npz(path, arrays, header)


def header_bytes(header: object) -> bytes:
    return npy_bytes(np.frombuffer(json.dumps(header).encode(), dtype=np.uint8))


class Tripwire:
    """Unpickling this creates the file ``marker``: proof that a pickle was executed."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def set_layer(header: dict, **fields) -> None:
    header["layers"][0].update(fields)


def lying_npy(path: pathlib.Path) -> None:
    members = members_of(path)
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f8", "fortran_order": False, "shape": (2**31,)})
    members["0.W.npy"] = buffer.getvalue() + bytes(48)  # claims 16 GiB, holds 48 bytes
    write_members(path, members)


BAD_MODELS = {
    "garbage": (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200)), "not an .npz archive"),
    "empty": (lambda p: p.write_bytes(b""), "not an .npz archive"),
    "truncated": (lambda p: truncate(p, p.stat().st_size // 2), "not an .npz archive"),
    "a-bare-pickle": (lambda p: p.write_bytes(b"\x80\x04\x95" + bytes(40)), "not an .npz archive"),
    "missing-array": (lambda p: edit_arrays(p, lambda a: a.pop("1.W")), "is missing the array 1.W"),
    "wrong-shape": (lambda p: edit_arrays(p, lambda a: a.update({"0.W": a["0.W"].T})), r"array 0.W has shape \(3, 4\)"),
    "unknown-activation": (
        lambda p: edit_header(p, lambda h: set_layer(h, activation="swish")),
        "unknown activation 'swish'",
    ),
    "newer-version": (
        lambda p: edit_header(p, lambda h: h.update(version=FORMAT_VERSION + 1)),
        "newer than this nnscratch understands",
    ),
    "version-zero": (lambda p: edit_header(p, lambda h: h.update(version=0)), "unknown model format version 0"),
    "unknown-layer-kind": (lambda p: edit_header(p, lambda h: set_layer(h, kind="lstm")), "unknown layer kind 'lstm'"),
    "layer-not-a-dict": (lambda p: edit_header(p, lambda h: h["layers"].insert(0, 3)), "unknown layer kind 3"),
    "conv-on-flat-input": (
        lambda p: edit_header(p, lambda h: h["layers"].insert(0, {"kind": "conv2d", "filters": 2, "kernel": 3})),
        "'conv2k3' cannot take the 4 input it meets",
    ),
    "bad-layer-argument": (lambda p: edit_header(p, lambda h: set_layer(h, colour="red")), "incomplete header"),
    "other-format": (lambda p: edit_header(p, lambda h: h.update(format="keras")), "is not an nnscratch model file"),
    "header-not-json": (
        lambda p: write_members(
            p, {**members_of(p), f"{HEADER_KEY}.npy": npy_bytes(np.frombuffer(b"{oops", np.uint8))}
        ),
        "has a corrupted header",
    ),
    "header-a-list": (
        lambda p: write_members(p, {**members_of(p), f"{HEADER_KEY}.npy": header_bytes([1, 2, 3])}),
        "has a corrupted header",
    ),
    "header-nested-too-deep": (
        lambda p: write_members(
            p, {**members_of(p), f"{HEADER_KEY}.npy": npy_bytes(np.frombuffer(b"[" * 100_000, np.uint8))}
        ),
        "has a corrupted header",
    ),
    "header-missing": (
        lambda p: write_members(p, {k: v for k, v in members_of(p).items() if not k.startswith(HEADER_KEY)}),
        "has no nnscratch header",
    ),
    "header-not-npy": (
        lambda p: write_members(p, {**members_of(p), f"{HEADER_KEY}.npy": b'{"format": "nnscratch-model"}'}),
        "not a valid nnscratch model file",
    ),
    "member-not-npy": (
        lambda p: write_members(p, {**members_of(p), "notes.txt": b"hello"}),
        "holds 'notes.txt', which is not a NumPy array",
    ),
    "metadata-not-a-mapping": (
        lambda p: edit_header(p, lambda h: h.update(metadata=[1, 2])),
        "metadata is not a mapping",
    ),
    "input-infinite": (lambda p: edit_header(p, lambda h: h.update(input_shape=[float("inf")])), "incomplete header"),
    "input-negative": (lambda p: edit_header(p, lambda h: h.update(input_shape=[-4])), "positive sizes"),
    "input-empty": (lambda p: edit_header(p, lambda h: h.update(input_shape=[])), "of positive sizes"),
    "no-layers": (lambda p: edit_header(p, lambda h: h.update(layers=[])), "needs at least an output layer"),
    "layers-not-a-list": (lambda p: edit_header(p, lambda h: h.update(layers=7)), "has an incomplete header"),
    "units-not-a-number": (lambda p: edit_header(p, lambda h: set_layer(h, units="many")), "positive number of units"),
    "non-finite-weights": (
        lambda p: edit_arrays(p, lambda a: a.update({"0.b": np.full(3, np.inf, np.float32)})),
        "non-finite or non-float",
    ),
    "integer-weights": (
        lambda p: edit_arrays(p, lambda a: a.update({"0.W": np.zeros((4, 3), np.int64)})),
        "non-finite or non-float",
    ),
    "lying-npy-header": (lying_npy, r"declares shape \(2147483648,\) but holds 48 bytes"),
    "lying-architecture": (
        lambda p: edit_header(p, lambda h: h.update(input_shape=[10**6])),
        r"array 0.W has shape \(4, 3\) but the architecture needs \(1000000, 3\)",
    ),
}

# Files of format 1 (dense layers; arrays W0, b0, ...; the input size as n_in) keep being checked as before.
BAD_V1_MODELS = {
    "missing-array": (lambda p: edit_arrays(p, lambda a: a.pop("W1")), "is missing the array 1.W"),
    "wrong-shape": (lambda p: edit_arrays(p, lambda a: a.update(W0=a["W0"].T)), r"array W0 has shape \(7, 12\)"),
    "unknown-activation": (lambda p: edit_header(p, lambda h: set_layer(h, activation="swish")), "unknown activation"),
    "n-in-infinite": (lambda p: edit_header(p, lambda h: h.update(n_in=float("inf"))), "has an incomplete header"),
    "n-in-negative": (lambda p: edit_header(p, lambda h: h.update(n_in=-4)), "of positive sizes"),
    "no-layers": (lambda p: edit_header(p, lambda h: h.update(layers=[])), "needs at least an output layer"),
    "units-not-a-number": (lambda p: edit_header(p, lambda h: set_layer(h, units="many")), "incomplete header"),
    "non-finite-weights": (
        lambda p: edit_arrays(p, lambda a: a.update(b0=np.full(7, np.inf))),
        "non-finite or non-float",
    ),
    "lying-architecture": (
        lambda p: edit_header(p, lambda h: h.update(n_in=10**6)),
        r"array W0 has shape \(12, 7\) but the architecture needs \(1000000, 7\)",
    ),
    "unaffordable-architecture": (
        lambda p: edit_header(p, lambda h: h.update(n_in=10**12)),
        r"sizes up to 2,147,483,647",
    ),
}


@pytest.mark.timeout(10)
@pytest.mark.parametrize("case", list(BAD_MODELS))
def test_broken_model_files_raise_a_model_file_error_without_big_allocations(model, case):
    damage, message = BAD_MODELS[case]
    damage(model)
    raised, peak = peak_memory_of(lambda: Network.load(model))
    assert isinstance(raised, ModelFileError), f"{case}: {raised!r}"
    assert pytest.raises(ModelFileError, Network.load, model).match(message)
    assert "\n" not in str(raised)
    assert peak < SMALL_PEAK


@pytest.mark.timeout(10)
@pytest.mark.parametrize("case", list(BAD_V1_MODELS))
def test_broken_format_1_files_are_refused_as_before(model_v1, case):
    Network.load(model_v1)  # intact, it loads
    damage, message = BAD_V1_MODELS[case]
    damage(model_v1)
    raised, peak = peak_memory_of(lambda: Network.load(model_v1))
    assert isinstance(raised, ModelFileError), f"{case}: {raised!r}"
    assert pytest.raises(ModelFileError, Network.load, model_v1).match(message)
    assert "\n" not in str(raised) and peak < SMALL_PEAK


def test_pickled_objects_are_refused_and_never_executed(model, tmp_path):
    marker = tmp_path / "pickle-was-executed"
    header, arrays = load_npz(model)
    arrays["0.W"] = np.array([Tripwire(marker)], dtype=object)
    np.savez(model, **{HEADER_KEY: np.frombuffer(json.dumps(header).encode(), np.uint8)}, **arrays)
    with pytest.raises(ModelFileError, match="contains pickled Python objects, which nnscratch refuses"):
        Network.load(model)
    assert not marker.exists()
    pickle_check = np.load(model, allow_pickle=True)["0.W"]  # the trap is real: numpy would run it
    assert marker.exists() and pickle_check.dtype == object


def test_every_truncation_of_a_model_file_is_refused(model):
    content = model.read_bytes()
    for keep in range(0, len(content), 7):
        model.write_bytes(content[:keep])
        with pytest.raises(ModelFileError):
            Network.load(model)


def test_every_flipped_byte_is_refused_or_harmless(model):
    original = Network.load(model)
    content = model.read_bytes()
    for offset in range(len(content)):
        damaged = bytearray(content)
        damaged[offset] ^= 0xFF
        model.write_bytes(bytes(damaged))
        try:
            net = Network.load(model)
        except ModelFileError:
            continue
        # only bytes nobody reads (zip timestamps, padding) may change without an error
        assert net.spec == original.spec, offset
        np.testing.assert_array_equal(net.params, original.params)
        assert net.metadata == original.metadata


@pytest.mark.timeout(30)
@pytest.mark.parametrize("case", ["garbage", "empty", "unknown-activation", "newer-version", "lying-npy-header"])
def test_evaluate_on_a_bad_model_exits_1_with_one_line(model, tmp_path, capsys, case):
    damage, message = BAD_MODELS[case]
    damage(model)
    assert main(["evaluate", str(model), "--data-dir", str(tmp_path)]) == 1
    assert message.replace("\\", "") in one_error_line(capsys.readouterr().err, "evaluate")


@pytest.mark.timeout(60)
def test_evaluate_on_a_pickle_in_a_real_process_prints_one_line(model, tmp_path):
    header, arrays = load_npz(model)
    arrays["1.b"] = np.array([{"a": 1}, None], dtype=object)
    np.savez(model, **{HEADER_KEY: np.frombuffer(json.dumps(header).encode(), np.uint8)}, **arrays)
    done = subprocess.run(
        [sys.executable, "-m", "nnscratch.cli", "evaluate", str(model), "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "refuses to load for safety" in one_error_line(done.stderr, "evaluate")


# -- zip bombs: shapes checked against the header's architecture before anything is inflated ---------

BOMB_BYTES = 200 * 2**20  # deflated, 200 MiB of zeros take ~200 kB of file


def add_bomb(path: pathlib.Path, name: str, n_bytes: int = BOMB_BYTES, descr: str = "<f4") -> None:
    """Put member ``name``.npy into the archive at ``path`` (replacing it): ``n_bytes`` of zeros that
    honestly declare their shape, deflated about 1000:1 as ZIP_DEFLATED does."""
    members = members_of(path)
    members.pop(f"{name}.npy", None)
    npy_header = io.BytesIO()
    itemsize = np.dtype(descr).itemsize
    np.lib.format.write_array_header_1_0(
        npy_header, {"descr": descr, "fortran_order": False, "shape": (n_bytes // itemsize,)}
    )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for member, data in members.items():
            archive.writestr(member, data)
        with archive.open(f"{name}.npy", "w", force_zip64=True) as f:
            f.write(npy_header.getvalue())
            zeros = bytes(4 * 2**20)
            for _ in range(n_bytes // len(zeros)):
                f.write(zeros)


BOMBS = {  # member, its dtype, the refusal
    "weights-of-another-shape": ("0.W", "<f4", r"array 0.W has shape \(52428800,\) but the architecture needs"),
    "an-array-the-header-does-not-describe": ("extra", "<f4", "holds an array 'extra' that its header does not"),
    "a-header-of-200-mb": (HEADER_KEY, "|u1", "__header__ is 209,715,200 bytes, more than the 16,777,216"),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", list(BOMBS))
def test_a_deflated_member_is_refused_from_its_npy_header_before_it_is_inflated(model, case):
    name, descr, message = BOMBS[case]
    add_bomb(model, name, descr=descr)
    assert model.stat().st_size < BOMB_BYTES / 500  # the file is small; inflated, its member is 200 MiB
    started = time.perf_counter()
    raised, peak = peak_memory_of(lambda: Network.load(model))
    seconds = time.perf_counter() - started
    assert isinstance(raised, ModelFileError), f"{case}: {raised!r}"
    assert pytest.raises(ModelFileError, Network.load, model).match(message)
    assert "\n" not in str(raised)
    # Inflating the member would allocate 200 MiB and take a good fraction of a second; reading its
    # .npy header costs a few kB and milliseconds (the bound leaves room for a loaded machine).
    assert peak < 2 * 2**20, f"{case}: {peak:,} bytes"
    assert seconds < 0.5, f"{case}: {seconds:.2f} s"


def test_an_extra_array_in_a_format_1_file_still_loads_and_is_never_inflated(model_v1):
    add_bomb(model_v1, "notes")  # format 1 files may hold arrays nnscratch never wrote: they load, unread
    raised, peak = peak_memory_of(lambda: Network.load(model_v1))
    assert raised is None and peak < 2 * 2**20, (raised, peak)
    np.testing.assert_array_equal(Network.load(model_v1).params, Network.load(DATA / "format1_uniform64.npz").params)


def test_format_1_files_still_load_exactly_after_their_shapes_are_checked_first():
    for stem in ("format1_mixed", "format1_uniform64"):
        net = Network.load(DATA / f"{stem}.npz")
        expected = np.load(DATA / f"{stem}_proba.npy")
        np.testing.assert_array_equal(net.predict_proba(np.load(DATA / "format1_inputs.npy")), expected)


# -- values that give NaN answers are refused at load --------------------------------------------------


@pytest.fixture
def bn_model(tmp_path) -> pathlib.Path:
    """A model file with batch norm and dropout: 0 dense, 1 bn, 2 relu, 3 dropout, 4 the output."""
    net = Network.from_spec("4-3-bn-relu-dropout0.5-2:softmax", seed=0)
    net.state[:] = [0.1, 0.2, 0.3, 1.0, 2.0, 3.0]  # running means, then running variances
    return net.save(tmp_path / "bn.npz")


def set_config(index: int, **fields):
    return lambda p: edit_header(p, lambda h: h["layers"][index].update(fields))


NAN_MAKERS = {
    "negative-running-variance": (
        lambda p: edit_arrays(p, lambda a: a.update({"1.running_var": np.array([1.0, -0.5, 1.0], np.float32)})),
        "layer 1's running variance in the state is negative",
    ),
    "eps-negative": (set_config(1, eps=-1e-5), "batch norm's eps must be a finite number > 0, got -1e-05"),
    "eps-zero": (set_config(1, eps=0.0), "batch norm's eps must be a finite number > 0, got 0.0"),
    "eps-nan": (set_config(1, eps=float("nan")), "batch norm's eps must be a finite number > 0, got nan"),
    "eps-infinite": (set_config(1, eps=float("inf")), "batch norm's eps must be a finite number > 0, got inf"),
    "eps-a-string": (set_config(1, eps="1e-5"), "batch norm's eps must be a finite number > 0, got '1e-5'"),
    "bn-momentum-5": (set_config(1, momentum=5.0), r"batch norm's momentum must be a number in \[0, 1\], got 5.0"),
    "dropout-rate-nan": (set_config(3, rate=float("nan")), "a dropout rate must be a probability in"),
    "nan-gamma": (
        lambda p: edit_arrays(p, lambda a: a.update({"1.gamma": np.array([1.0, np.nan, 1.0], np.float32)})),
        "array 1.gamma holds non-finite or non-float values",
    ),
    "float64-beyond-float32": (
        lambda p: edit_arrays(p, lambda a: a.update({"0.W": np.full((4, 3), 1e300)})),
        "the parameters hold non-finite values .NaN, infinity, or beyond float32's range.",
    ),
}


@pytest.mark.parametrize("case", list(NAN_MAKERS))
def test_a_model_whose_values_make_nan_answers_is_refused_at_load_naming_the_problem(bn_model, case):
    Network.load(bn_model)  # intact, it loads
    damage, message = NAN_MAKERS[case]
    damage(bn_model)
    raised = pytest.raises(ModelFileError, Network.load, bn_model)
    assert raised.match(message) and "\n" not in str(raised.value)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", ["negative-running-variance", "eps-nan", "float64-beyond-float32"])
@pytest.mark.parametrize("command", ["evaluate", "predict", "export"])
def test_commands_on_a_model_that_would_answer_nan_exit_1_with_one_line(bn_model, tmp_path, capsys, case, command):
    damage, message = NAN_MAKERS[case]
    damage(bn_model)
    refusal = pytest.raises(ModelFileError, Network.load, bn_model)
    assert refusal.match(message)
    args = {
        "evaluate": ["--data-dir", str(tmp_path)],
        "predict": [str(tmp_path / "digit.png")],
        "export": [str(tmp_path / "model.onnx")],
    }[command]
    assert main([command, str(bn_model), *args]) == 1
    assert one_error_line(capsys.readouterr().err, command) == f"nnscratch {command}: error: {refusal.value}"
    assert not (tmp_path / "model.onnx").exists()


# -- finite weights that overflow: no NaN is ever reported as a probability ---------------------------


@pytest.fixture
def overflowing_model(tmp_path) -> pathlib.Path:
    """A 784-input model whose weights are finite (3e38) but whose float32 logits overflow."""
    net = Network.from_spec("784-8:relu-10:softmax", seed=0)
    net.params[:] = 3e38
    return net.save(tmp_path / "huge.npz")


def test_a_network_whose_logits_overflow_raises_instead_of_answering_nan(overflowing_model):
    from nnscratch.errors import NNScratchError, NonFiniteOutputError

    net = Network.load(overflowing_model)  # every value is finite: the file itself is well formed
    X = np.full((3, 784), 0.5)
    for answer in (net.predict_proba, net.predict):
        raised = pytest.raises(NonFiniteOutputError, answer, X)
        assert raised.match(f"{overflowing_model} produced non-finite probabilities: its weights are too large")
        assert raised.match("retrain it") and isinstance(raised.value, NNScratchError)
    net.params[:] = 0.01  # the same network with sensible weights answers
    assert np.all(np.isfinite(net.predict_proba(X)))


def test_non_finite_inputs_are_named_as_such_not_blamed_on_the_weights():
    net = Network.from_spec("4-3:relu-2:softmax", seed=0)
    with pytest.raises(ValueError, match="X holds NaN or infinite values"):
        net.predict_proba(np.array([[0.0, np.nan, 0.0, 0.0]]))


@pytest.mark.timeout(60)
def test_evaluate_and_predict_on_an_overflowing_model_exit_1_with_one_line(overflowing_model, tmp_path, rng, capsys):
    from tests.test_predict_cli import digit_image

    write_tiny_mnist(tmp_path / "data", rng, n_train=20, n_test=10, side=28, classes=10)
    digit_image().save(tmp_path / "digit.png")
    for command, args in (
        ("evaluate", ["--data-dir", str(tmp_path / "data"), "--json"]),  # --json: no "loading data..."
        ("predict", [str(tmp_path / "digit.png")]),
    ):
        assert main([command, str(overflowing_model), *args]) == 1
        captured = capsys.readouterr()
        assert "produced non-finite probabilities" in one_error_line(captured.err, command)
        assert "nan" not in captured.out.lower()


def test_export_of_an_overflowing_model_exits_1_with_one_line_and_writes_nothing(overflowing_model, tmp_path, capsys):
    pytest.importorskip("onnx")
    assert main(["export", str(overflowing_model), str(tmp_path / "huge.onnx")]) == 1
    err = capsys.readouterr().err
    assert one_error_line(err, "export").endswith("retrain it")
    assert "produced non-finite probabilities" in err
    assert not (tmp_path / "huge.onnx").exists()
