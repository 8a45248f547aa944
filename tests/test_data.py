"""Reading IDX and CSV datasets, locating the data directory, splits."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

from nnscratch.data import (
    MNIST_FILES,
    Dataset,
    _file_sha256_gunzipped,
    _find,
    load_dataset,
    read_csv,
    read_idx,
    resolve_data_dir,
    split_indices,
    write_idx,
)
from nnscratch.errors import DataError


def write_tiny_mnist(directory, rng, *, n_train=60, n_test=20, side=4, classes=3, gz=True):
    """Four IDX files in MNIST's names: n images of side×side uint8 pixels with labels in [0, classes)."""
    directory.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, side, side), dtype=np.uint8),
        "train-labels-idx1-ubyte": (np.arange(n_train) % classes).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, side, side), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": (np.arange(n_test) % classes).astype(np.uint8),
    }
    for stem, array in arrays.items():
        write_idx(directory / (stem + suffix), array)
    return arrays


@pytest.mark.parametrize("gz", [True, False])
def test_idx_files_load_scaled_to_unit_range(tmp_path, rng, gz):
    arrays = write_tiny_mnist(tmp_path, rng, gz=gz)
    data = load_dataset(tmp_path)
    assert data.X_train.shape == (60, 16) and data.X_train.dtype == np.float32
    assert data.X_test.shape == (20, 16)
    np.testing.assert_allclose(data.X_train, arrays["train-images-idx3-ubyte"].reshape(60, 16) / 255, rtol=1e-6)
    np.testing.assert_array_equal(data.y_train, arrays["train-labels-idx1-ubyte"])
    assert data.n_features == 16 and data.n_classes == 3
    assert 0.0 <= data.X_train.min() and data.X_train.max() <= 1.0


def test_read_idx_returns_the_declared_shape_and_dtype(tmp_path, rng):
    array = rng.normal(size=(3, 4, 5)).astype(np.float32)
    back = read_idx(write_idx(tmp_path / "a.idx", array))
    assert back.shape == (3, 4, 5)
    np.testing.assert_array_equal(back, array)


def test_csv_with_and_without_header(tmp_path):
    rows = "3,0,255,128\n1,10,20,30\n"
    (tmp_path / "plain.csv").write_text(rows)
    (tmp_path / "header.csv").write_text("label,pixel0,pixel1,pixel2\n" + rows)
    for name in ("plain.csv", "header.csv"):
        X, y = read_csv(tmp_path / name)
        np.testing.assert_array_equal(y, [3, 1])
        np.testing.assert_array_equal(X, [[0, 255, 128], [10, 20, 30]])


def test_csv_dataset_directory(tmp_path):
    (tmp_path / "mnist_train.csv").write_text("label,p0,p1\n0,0,255\n1,255,0\n2,51,102\n")
    (tmp_path / "mnist_test.csv").write_text("1,0,0\n")
    data = load_dataset(tmp_path)
    np.testing.assert_allclose(data.X_train[2], [0.2, 0.4], rtol=1e-6)
    assert data.n_classes == 3 and data.X_test.shape == (1, 2)


def test_csv_errors_are_explained(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("")
    with pytest.raises(DataError, match="empty"):
        read_csv(bad)
    bad.write_text("1,2,x\n")
    with pytest.raises(DataError, match="not a numeric CSV"):
        read_csv(bad)
    bad.write_text("1.5,2,3\n")
    with pytest.raises(DataError, match="labels"):
        read_csv(bad)
    bad.write_text("1,2,300\n")
    with pytest.raises(DataError, match="0..255"):
        read_csv(bad)


def test_missing_directory_and_missing_files_say_what_to_do(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(tmp_path / "nowhere")
    with pytest.raises(DataError, match="missing train-images-idx3-ubyte.*omit --data-dir to download"):
        load_dataset(tmp_path)


def test_environment_variable_points_at_the_data(tmp_path, rng, monkeypatch):
    write_tiny_mnist(tmp_path / "here", rng)
    monkeypatch.setenv("NNSCRATCH_DATA", str(tmp_path / "here"))
    assert resolve_data_dir() == tmp_path / "here"
    assert load_dataset().X_train.shape == (60, 16)
    assert resolve_data_dir(tmp_path) == tmp_path  # an explicit directory wins


def test_count_mismatch_between_images_and_labels(tmp_path, rng):
    write_tiny_mnist(tmp_path, rng)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(59, dtype=np.uint8))
    with pytest.raises(DataError, match="60 images but 59 labels"):
        load_dataset(tmp_path)


def test_split_is_disjoint_complete_and_seeded():
    train, val = split_indices(100, 10, np.random.default_rng(0))
    assert len(val) == 10 and len(train) == 90
    assert sorted(np.concatenate([train, val])) == list(range(100))
    again, _ = split_indices(100, 10, np.random.default_rng(0))
    np.testing.assert_array_equal(train, again)
    with pytest.raises(DataError, match="validation size"):
        split_indices(100, 100, np.random.default_rng(0))


def test_mnist_checksums_are_sha256_hex():
    assert sorted(MNIST_FILES) == sorted(
        ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
    )
    assert all(re.fullmatch("[0-9a-f]{64}", h) for h in MNIST_FILES.values())  # lower-case, as hexdigest() writes
    assert len(set(MNIST_FILES.values())) == 4


def test_mnist_checksums_are_those_of_the_real_files(mnist_dir):
    for stem, sha256 in MNIST_FILES.items():
        assert _file_sha256_gunzipped(_find(mnist_dir, stem)) == sha256, stem


# -- the edges of what the readers take --------------------------------------------------------------


def write_dataset(directory, train_images, train_labels, test_images, test_labels):
    directory.mkdir(parents=True, exist_ok=True)
    for stem, array in (
        ("train-images-idx3-ubyte", train_images),
        ("train-labels-idx1-ubyte", train_labels),
        ("t10k-images-idx3-ubyte", test_images),
        ("t10k-labels-idx1-ubyte", test_labels),
    ):
        write_idx(directory / stem, array)
    return directory


@pytest.mark.parametrize(
    "dtype, code",
    [("uint8", 0x08), ("int8", 0x09), ("int16", 0x0B), ("int32", 0x0C), ("float32", 0x0D), ("float64", 0x0E)],
)
def test_idx_files_carry_the_type_codes_of_the_idx_format(tmp_path, dtype, code):
    path = write_idx(tmp_path / "a.idx", np.zeros((2, 3), dtype=dtype))
    assert path.read_bytes()[:12] == bytes([0, 0, code, 2, 0, 0, 0, 2, 0, 0, 0, 3])
    assert read_idx(path).dtype == np.dtype(dtype).newbyteorder(">")


def test_only_a_zero_zero_magic_is_an_idx_file(tmp_path):
    valid = write_idx(tmp_path / "ok.idx", np.arange(4, dtype=np.uint8)).read_bytes()
    for magic in (b"\x01\x00", b"\x00\x01"):
        (tmp_path / "bad.idx").write_bytes(magic + valid[2:])
        with pytest.raises(DataError, match="wrong magic number"):
            read_idx(tmp_path / "bad.idx")


def test_a_header_may_declare_up_to_4_gib(tmp_path):
    # 2**32 bytes exactly passes the size check (and is then found truncated); one more byte is refused
    for dims, message in (((2**16, 2**16), "truncated"), ((2**16 + 1, 2**16), "more than nnscratch reads")):
        (tmp_path / "a.idx").write_bytes(bytes([0, 0, 0x08, 2]) + np.array(dims, dtype=">u4").tobytes())
        with pytest.raises(DataError, match=message):
            read_idx(tmp_path / "a.idx")


def test_a_file_of_several_chunks_with_a_byte_too_many_is_refused(tmp_path):
    path = write_idx(tmp_path / "big.idx", np.zeros(1_500_000, dtype=np.uint8))  # more than one 1 MiB chunk
    assert read_idx(path).shape == (1_500_000,)
    path.write_bytes(path.read_bytes() + b"\x00")
    with pytest.raises(DataError, match="more bytes than its header"):
        read_idx(path)


def test_a_zero_dimensional_array_cannot_be_written(tmp_path):
    with pytest.raises(ValueError, match="1 to 255 dimensions"):
        write_idx(tmp_path / "a.idx", np.array(5, dtype=np.uint8))


def test_float_and_int16_images_are_scaled_only_when_they_go_above_1(tmp_path):
    labels = np.array([0, 1], dtype=np.uint8)
    unit = np.array([[[0.0, 0.5], [1.0, 0.25]]] * 2, dtype=np.float32)
    data = load_dataset(write_dataset(tmp_path / "unit", unit, labels, unit, labels))
    np.testing.assert_allclose(data.X_train[0], [0.0, 0.5, 1.0, 0.25])  # already in [0, 1]: as they are
    wide = np.array([[[0, 51], [255, 102]]] * 2, dtype=np.int16)
    data = load_dataset(write_dataset(tmp_path / "wide", wide, labels, wide, labels))
    np.testing.assert_allclose(data.X_train[0], [0.0, 0.2, 1.0, 0.4], rtol=1e-6)  # 0..255: divided by 255
    dark = np.array([[[0, 1], [2, 1]]] * 2, dtype=np.int16)  # 0..255 too, however dark: anything above 1
    data = load_dataset(write_dataset(tmp_path / "dark", dark, labels, dark, labels))
    np.testing.assert_allclose(data.X_train[0], [0.0, 1 / 255, 2 / 255, 1 / 255], rtol=1e-6)
    for bad in (np.array([[[-0.5, 0.5]]] * 2, dtype=np.float32), np.array([[[0, 300]]] * 2, dtype=np.int16)):
        with pytest.raises(DataError, match=r"pixel values must lie in 0\.\.255"):
            load_dataset(write_dataset(tmp_path / "bad", bad, labels, bad, labels))


def test_idx_labels_must_be_class_numbers_below_2_to_the_16(tmp_path):
    images = np.zeros((2, 2, 2), dtype=np.uint8)
    top = np.array([0, 2**16 - 1], dtype=np.int32)
    data = load_dataset(write_dataset(tmp_path / "top", images, top, images, np.array([0, 1], dtype=np.int32)))
    assert data.n_classes == 2**16  # the test labels' maximum is lower: the training labels' counts
    for bad, message in (
        ([0, 2**16], "labels-idx1-ubyte: label 65536 is too large"),
        ([-1, 1], "non-negative integers"),
    ):
        labels = np.array(bad, dtype=np.int32)
        with pytest.raises(DataError, match=message):
            load_dataset(write_dataset(tmp_path / "bad", images, labels, images, np.array([0, 1], dtype=np.int32)))


def test_csv_edges_one_pixel_column_pixel_255_and_labels_below_2_to_the_16(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("0,255\n65535,0\n")
    X, y = read_csv(path)
    assert X.dtype == np.uint8 and X.shape == (2, 1) and y.tolist() == [0, 65535]
    path.write_text("0,0.5\n1,1\n")
    assert read_csv(path)[0].dtype == np.float32  # fractional pixels are not rounded to uint8
    for rows, message in (
        ("0,256\n", "0..255"),
        ("1,3\n-1,4\n", "non-negative integers"),
        ("1,3\n65536,4\n", "too large"),
        ("0\n1\n", "label column and at least one pixel column"),
    ):
        path.write_text(rows)
        with pytest.raises(DataError, match=message):
            read_csv(path)


def test_integer_csv_pixels_are_0_to_255_even_when_all_are_0_or_1(tmp_path):
    (tmp_path / "mnist_train.csv").write_text("0,0,1\n1,1,0\n")
    (tmp_path / "mnist_test.csv").write_text("0,1,1\n")
    np.testing.assert_allclose(load_dataset(tmp_path).X_train, [[0.0, 1 / 255], [1 / 255, 0.0]], rtol=1e-6)


def test_a_header_only_csv_is_a_data_error_and_no_warning(tmp_path):
    (tmp_path / "a.csv").write_text("label,pixel0\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(DataError, match="has a header but no rows"):
            read_csv(tmp_path / "a.csv")


def test_a_lone_training_csv_is_no_dataset(tmp_path):
    (tmp_path / "mnist_train.csv").write_text("0,1\n")
    with pytest.raises(DataError, match="no dataset in"):
        load_dataset(tmp_path)


def test_without_download_a_missing_cache_is_returned_as_it_is(tmp_path, monkeypatch):
    monkeypatch.delenv("NNSCRATCH_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("NNSCRATCH_MNIST_MIRRORS", "http://127.0.0.1:9/")  # any download would fail
    directory = resolve_data_dir(download=False)
    assert directory == tmp_path / "cache" / "nnscratch" / "mnist" and not directory.exists()


def test_a_datasets_classes_count_its_test_labels_too():
    X = np.zeros((2, 4), dtype=np.float32)
    assert Dataset(X, np.array([0, 1]), X, np.array([0, 4])).n_classes == 5
    assert Dataset(X, np.array([0, 6]), X, np.array([0, 4])).n_classes == 7


def test_an_empty_test_set_is_refused(tmp_path):
    images, labels = np.zeros((2, 2, 2), dtype=np.uint8), np.array([0, 1], dtype=np.uint8)
    empty = write_dataset(tmp_path, images, labels, np.zeros((0, 2, 2), np.uint8), np.zeros(0, np.uint8))
    with pytest.raises(DataError, match="test set is empty"):
        load_dataset(empty)


def test_a_split_may_hold_out_nothing():
    train, val = split_indices(5, 0, np.random.default_rng(0))
    assert train.tolist() == [0, 1, 2, 3, 4] and val.size == 0


def test_test_labels_beyond_the_training_classes_are_refused_even_among_known_ones(tmp_path):
    images = np.zeros((3, 2, 2), dtype=np.uint8)
    train_labels, test_labels = np.array([0, 1, 2], np.uint8), np.array([0, 5, 1], np.uint8)
    with pytest.raises(DataError, match="test labels go up to 5 but training labels only to 2"):
        load_dataset(write_dataset(tmp_path, images, train_labels, images, test_labels))
