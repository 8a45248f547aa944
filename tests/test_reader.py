"""The reader nnscratch ships: small, documented, as accurate as its metadata says, and it knows a shoe
from a digit (Fashion-MNIST from Debian's dataset-fashion-mnist package, as CI installs it)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from nnscratch.calibration import auroc, ood_score
from nnscratch.reader import load_reader, reader_path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import in_the_wild  # noqa: E402


@pytest.fixture(scope="module")
def reader():
    return load_reader()


def test_the_shipped_reader_is_small_and_records_its_recipe(reader):
    assert reader_path().stat().st_size <= 2_000_000
    meta = reader.metadata
    assert meta["preset"] == "reader" and meta["config"]["seed"] == 0 and meta["config"]["not_digits"] == 0.2
    assert meta["config"]["augment"] == "pen" and len(meta["history"]["epochs"]) == meta["config"]["epochs"]
    assert meta["test_accuracy"] >= 0.995
    calibration = reader.calibration
    assert calibration is not None and calibration.not_a_digit_below <= calibration.not_sure_below
    assert meta["history"]["calibration"]["temperature"] == calibration.temperature


@pytest.mark.mnist
def test_the_shipped_reader_reads_mnist_as_its_metadata_says(reader, mnist):
    predicted = reader.predict(mnist.X_test)
    # Recorded on another machine: float32 sums in another order can flip a digit whose top two logits are
    # within rounding of each other, a handful of the 10,000 at most.
    assert abs(np.mean(predicted == mnist.y_test) - reader.metadata["test_accuracy"]) <= 0.0005
    verdicts = np.array(reader.verdicts(mnist.X_test))
    assert np.mean(verdicts != "digit") <= 0.015  # about 1% of MNIST's test digits flagged


@pytest.mark.mnist
def test_the_shipped_reader_tells_fashion_mnist_from_digits(reader, mnist):
    fashion = in_the_wild.fashion_test_images(in_the_wild.FASHION)
    if fashion is None:
        pytest.skip("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist; CI installs it)")
    T, score = reader.calibration.temperature, reader.calibration.score
    Z_digits, Z_fashion = reader.all_logits(mnist.X_test), reader.all_logits(fashion)
    assert auroc(ood_score(Z_digits, T, score), ood_score(Z_fashion, T, score)) >= 0.98
    assert np.mean(np.array(reader.verdicts(fashion)) != "digit") >= 0.9


@pytest.mark.parametrize("kind", ["noise", "dots", "lines", "scribbles"])
def test_the_shipped_reader_flags_made_up_non_digits_it_never_saw(reader, kind):
    from nnscratch import nondigits

    unseen = nondigits.make(200, np.random.default_rng([in_the_wild.MEASURE_STREAM]), kinds=(kind,))
    assert np.mean(np.array(reader.verdicts(unseen)) != "digit") >= 0.9


@pytest.mark.timeout(120)
def test_the_bench_measures_a_model_on_digits_non_digits_and_other_writers(tmp_path, rng, monkeypatch, capsys):
    import json

    import sklearn.datasets

    from nnscratch.calibration import Calibration
    from nnscratch.network import Network
    from tests.test_data import write_tiny_mnist

    write_tiny_mnist(tmp_path / "mnist", rng, n_train=30, n_test=40, side=28, classes=10)
    write_tiny_mnist(tmp_path / "fashion", rng, n_train=10, n_test=25, side=28, classes=10)
    net = Network.from_spec("784-8:relu-10:softmax", seed=0)
    net.calibration = Calibration(temperature=1.5, score="energy", not_sure_below=1e9, not_a_digit_below=1e9)
    model = str(net.save(tmp_path / "m.npz"))
    digits = sklearn.datasets.load_digits()
    few = type(digits)(images=digits.images[:12], target=digits.target[:12])
    monkeypatch.setattr(sklearn.datasets, "load_digits", lambda: few)
    monkeypatch.setattr(in_the_wild, "PER_KIND", 5)
    out = tmp_path / "r.json"
    args = ["--model", model, "--data-dir", str(tmp_path / "mnist"), "--fashion-dir", str(tmp_path / "fashion")]
    assert in_the_wild.main([*args, "--output", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["calibration"]["temperature"] == 1.5 and set(result["fashion"]["auroc"]) == {"probability", "energy"}
    assert result["verdicts"]["fashion_test"]["not_a_digit"] == 1.0  # thresholds nothing reaches
    assert set(result["verdicts"]) == {"mnist_test", "fashion_test", *__import__("nnscratch").nondigits.KINDS}
    writers = result["other_writers"]
    assert writers["images"] == 12 and writers["not_a_digit"] == 1.0 and 0 <= writers["accuracy"] <= 1
    assert "other writers (12 digits)" in capsys.readouterr().out
    assert (
        in_the_wild.main([*args[:4], "--fashion-dir", str(tmp_path / "none"), "--no-writers", "--output", str(out)])
        == 0
    )
    result = json.loads(out.read_text())
    assert "skipped" in result["fashion"] and "other_writers" not in result
