"""The activation study: variants, the summary, caching and resuming, the command and a Dask cluster."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nnscratch.cli import main
from nnscratch.errors import SpecError
from nnscratch.study import VARIANTS, StudySettings, hidden_layers, run_study, summarise
from tests.test_data import write_tiny_mnist

SMALL = StudySettings(widths=(8, 6), epochs=2, batch_size=32, seeds=2)


@pytest.fixture
def data(rng):
    X = rng.random((400, 16)).astype(np.float32)
    y = (X[:, :4].argmax(axis=1)).astype(np.intp)
    return X[:300], y[:300], X[300:], y[300:]


def test_variants_are_the_five_activations_and_the_seed_stack():
    assert VARIANTS == ("relu", "sigmoid", "tanh", "selu", "softmax", "seed")
    assert [s.activation for s in hidden_layers("seed", (32, 32, 64, 64))] == ["relu", "sigmoid", "selu", "tanh"]
    assert [s.activation for s in hidden_layers("tanh", (5, 5))] == ["tanh", "tanh"]
    with pytest.raises(SpecError, match="unknown variant"):
        hidden_layers("swish", (5,))


def test_summary_reports_every_variant(tmp_path, data):
    runs = run_study(SMALL, *data, cache_dir=tmp_path, n_jobs=1)
    assert len(runs) == len(VARIANTS) * 2
    summary = summarise(runs)
    assert [s["variant"] for s in summary] == list(VARIANTS)
    for s in summary:
        assert 0.0 <= s["test_accuracy_mean"] <= 1.0 and s["seeds"] == 2
        assert len(s["dead"]) == 2 and len(s["grad_norm_last_epoch"]) == 3
    relu = summary[0]
    assert relu["dead"][0] is not None and relu["saturated"][0] is None
    sigmoid = summary[1]
    assert sigmoid["dead"][0] is None and sigmoid["saturated"][0] is not None


def test_interrupted_study_resumes_from_the_cache(tmp_path, data, monkeypatch):
    settings = StudySettings(widths=(8,), epochs=1, batch_size=64, seeds=1)
    first = run_study(settings, *data, cache_dir=tmp_path, variants=("relu", "tanh"), n_jobs=1)
    cached = sorted(tmp_path.glob("*.json"))
    assert len(cached) == 2
    cached[0].unlink()  # as if the study had been interrupted before this run finished

    import nnscratch.study as study

    trained = []
    real = study.run_one
    monkeypatch.setattr(study, "run_one", lambda *args: trained.append(args[0]) or real(*args))
    again = run_study(settings, *data, cache_dir=tmp_path, variants=("relu", "tanh"), n_jobs=1)
    assert len(trained) == 1  # only the missing run was trained again
    assert [r["test_accuracy"] for r in again] == [r["test_accuracy"] for r in first]

    trained.clear()
    run_study(
        StudySettings(widths=(8,), epochs=2, batch_size=64, seeds=1),
        *data,
        cache_dir=tmp_path,
        variants=("relu",),
        n_jobs=1,
    )
    assert trained == ["relu"]  # a changed setting is never served from a stale cache entry


def test_learning_rate_sweep_keeps_each_variants_best_rate(tmp_path, data):
    settings = StudySettings(widths=(8,), epochs=2, batch_size=32, seeds=1, learning_rates=(1e-6, 3e-2))
    summary = summarise(run_study(settings, *data, cache_dir=tmp_path, variants=("relu", "sigmoid"), n_jobs=1))
    for s in summary:
        assert s["learning_rate"] == 3e-2  # a rate of 1e-6 barely moves the weights in two epochs
        assert set(s["learning_rates_tried"]) == {"1e-06", "0.03"}


@pytest.mark.timeout(180)
def test_runs_on_a_dask_cluster_through_joblib(tmp_path, data):
    distributed = pytest.importorskip("dask.distributed")
    settings = StudySettings(widths=(8,), epochs=1, batch_size=64, seeds=1)
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
    ) as cluster:
        with distributed.Client(cluster):
            runs = run_study(settings, *data, cache_dir=tmp_path, variants=("relu", "selu"), backend="dask")
    local = run_study(settings, *data, cache_dir=tmp_path / "local", variants=("relu", "selu"), n_jobs=1)
    assert [r["test_accuracy"] for r in runs] == [r["test_accuracy"] for r in local]


@pytest.mark.timeout(300)
def test_compare_command_writes_table_results_and_report(tmp_path, rng, capsys):
    write_tiny_mnist(tmp_path / "d", rng, n_train=300, n_test=100, side=28, classes=10)
    out = tmp_path / "out"
    args = [
        "compare",
        "--data-dir",
        str(tmp_path / "d"),
        "--epochs",
        "1",
        "--seeds",
        "1",
        "--widths",
        "8,8",
        "--output",
        str(out),
        "--jobs",
        "1",
    ]
    assert main(args) == 0
    assert "activation study" in capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert [v["variant"] for v in results["variants"]] == list(VARIANTS)
    assert "seed" in (out / "table.txt").read_text()
    report = (out / "report.html").read_text()
    assert report.count("data:image/png;base64,") == 1 + 6 + 1 + 1 + 6 + 3
    assert len(list((out / "plots").glob("*.png"))) == 18


def test_compare_refuses_a_bad_variant(tmp_path, rng, capsys):
    write_tiny_mnist(tmp_path / "d", rng)
    assert (
        main(["compare", "--data-dir", str(tmp_path / "d"), "--variants", "relu,swish", "-o", str(tmp_path / "o")]) == 1
    )
    assert "unknown variant 'swish'" in capsys.readouterr().err
