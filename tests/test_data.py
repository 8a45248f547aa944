"""Reading IDX and CSV datasets, locating the data directory, splits."""

from __future__ import annotations

import numpy as np
import pytest

from nnscratch.data import (
    MNIST_FILES,
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
    assert len(MNIST_FILES) == 4 and all(len(h) == 64 and int(h, 16) >= 0 for h in MNIST_FILES.values())
