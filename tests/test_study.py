"""The activation study: variants, the summary, caching and resuming, the command and a Dask cluster."""

from __future__ import annotations

import json

import numpy as np
import pytest

import nnscratch.study as study
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


@pytest.fixture
def count_training(monkeypatch):
    """The (variant, seed, learning rate) of every run actually trained, not read from the cache."""
    trained = []
    real = study.run_one
    monkeypatch.setattr(study, "run_one", lambda *args: trained.append(args[:3]) or real(*args))
    return trained


def test_variants_are_the_five_activations_and_the_seed_stack():
    assert VARIANTS == ("relu", "sigmoid", "tanh", "selu", "softmax", "seed")
    assert [s.activation for s in hidden_layers("seed", (32, 32, 64, 64))] == ["relu", "sigmoid", "selu", "tanh"]
    assert [s.activation for s in hidden_layers("tanh", (5, 5))] == ["tanh", "tanh"]
    with pytest.raises(SpecError, match="unknown variant"):
        hidden_layers("swish", (5,))


def test_settings_refuse_a_bad_budget():
    with pytest.raises(SpecError, match="optimiser"):
        StudySettings(optimizer="rmsprop")
    with pytest.raises(SpecError, match="widths"):
        StudySettings(widths=(32, 0))
    with pytest.raises(SpecError, match="learning rate"):
        StudySettings(learning_rates=(1e-3, -1.0))


def test_summary_reports_every_variant(tmp_path, data):
    runs = run_study(SMALL, *data, cache_dir=tmp_path, n_jobs=1)
    assert len(runs) == len(VARIANTS) * 2
    assert [(r["variant"], r["seed"]) for r in runs[:3]] == [("relu", 0), ("relu", 1), ("sigmoid", 0)]
    summary = summarise(runs)
    assert [s["variant"] for s in summary] == list(VARIANTS)
    for s in summary:
        assert 0.0 <= s["test_accuracy_mean"] <= 1.0 and s["seeds"] == 2 and s["diverged"] == 0
        assert len(s["dead"]) == 2 and len(s["grad_norm_last_epoch"]) == 3
    relu = summary[0]
    assert relu["dead"][0] is not None and relu["saturated"][0] is None
    sigmoid = summary[1]
    assert sigmoid["dead"][0] is None and sigmoid["saturated"][0] is not None
    seed = summary[-1]
    assert seed["dead"] == [seed["dead"][0], None] and seed["saturated"][1] is not None  # relu, then sigmoid


def test_diagnostics_are_recorded_after_every_epoch(tmp_path, data):
    (run,) = run_study(SMALL, *data, cache_dir=tmp_path, variants=("tanh",), n_jobs=1)[:1]
    assert len(run["grad_norms"]) == len(run["layer_stats"]) == SMALL.epochs
    assert all(len(norms) == 3 and min(norms) > 0 for norms in run["grad_norms"])
    assert [s["activation"] for s in run["layer_stats"][-1]] == ["tanh", "tanh"]


def test_interrupted_study_resumes_from_the_cache(tmp_path, data, count_training):
    settings = StudySettings(widths=(8,), epochs=1, batch_size=64, seeds=1)
    first = run_study(settings, *data, cache_dir=tmp_path, variants=("relu", "tanh"), n_jobs=1)
    cached = sorted(tmp_path.glob("*.json"))
    assert len(cached) == 2 and len(count_training) == 2
    cached[0].unlink()  # as if the study had been interrupted before this run finished

    count_training.clear()
    again = run_study(settings, *data, cache_dir=tmp_path, variants=("relu", "tanh"), n_jobs=1)
    assert len(count_training) == 1  # only the missing run was trained again
    assert [r["test_accuracy"] for r in again] == [r["test_accuracy"] for r in first]

    count_training.clear()
    changed = StudySettings(widths=(8,), epochs=2, batch_size=64, seeds=1)
    run_study(changed, *data, cache_dir=tmp_path, variants=("relu",), n_jobs=1)
    assert count_training == [("relu", 0, 1e-3)]  # a changed setting is never served from a stale entry

    count_training.clear()
    X_train, y_train, X_test, y_test = data
    run_study(settings, X_train, y_train, X_test[::-1], y_test[::-1], cache_dir=tmp_path, variants=("relu",), n_jobs=1)
    assert count_training == [("relu", 0, 1e-3)]  # nor is a run on other data


def test_more_seeds_train_only_the_new_runs(tmp_path, data, count_training):
    settings = StudySettings(widths=(8,), epochs=1, batch_size=64, seeds=1)
    run_study(settings, *data, cache_dir=tmp_path, variants=("selu",), n_jobs=1)
    count_training.clear()
    more = StudySettings(widths=(8,), epochs=1, batch_size=64, seeds=2, learning_rates=(1e-3, 1e-2))
    runs = run_study(more, *data, cache_dir=tmp_path, variants=("selu",), n_jobs=1)
    assert len(runs) == 4
    assert sorted(count_training) == [("selu", 0, 1e-2), ("selu", 1, 1e-3), ("selu", 1, 1e-2)]


def test_learning_rate_sweep_keeps_each_variants_best_rate(tmp_path, data):
    settings = StudySettings(widths=(8,), epochs=2, batch_size=32, seeds=1, learning_rates=(1e-6, 3e-2))
    summary = summarise(run_study(settings, *data, cache_dir=tmp_path, variants=("relu", "sigmoid"), n_jobs=1))
    for s in summary:
        assert s["learning_rate"] == 3e-2  # a rate of 1e-6 barely moves the weights in two epochs
        assert set(s["learning_rates_tried"]) == {"1e-06", "0.03"}


def test_a_diverging_run_is_recorded_and_never_chosen(tmp_path, data):
    settings = StudySettings(widths=(8,), epochs=2, batch_size=32, seeds=1, optimizer="sgd", learning_rates=(0.1, 1e30))
    runs = run_study(settings, *data, cache_dir=tmp_path, variants=("relu",), n_jobs=1)
    assert runs[0]["diverged"] is None and "diverged" in runs[1]["diverged"]
    assert runs[1]["test_accuracy"] is None
    (summary,) = summarise(runs)
    assert summary["learning_rate"] == 0.1 and summary["learning_rates_tried"]["1e+30"] == 0.0

    only_bad = StudySettings(widths=(8,), epochs=2, batch_size=32, seeds=1, optimizer="sgd", learning_rates=(1e30,))
    (summary,) = summarise(run_study(only_bad, *data, cache_dir=tmp_path, variants=("relu",), n_jobs=1))
    assert summary["diverged"] == 1 and summary["test_accuracy_mean"] is None


@pytest.fixture(scope="module")
def dask_cluster():
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
    ) as cluster:
        yield cluster


@pytest.mark.timeout(120)
def test_runs_on_a_dask_cluster_through_joblib(tmp_path, data, dask_cluster):
    from dask.distributed import Client, get_task_stream

    settings = StudySettings(widths=(8,), epochs=1, batch_size=64, seeds=1)
    with Client(dask_cluster) as client, get_task_stream(client) as tasks:
        runs = run_study(settings, *data, cache_dir=tmp_path, variants=("relu", "selu"), backend="dask")
    assert tasks.data, "no task reached the Dask cluster"
    local = run_study(settings, *data, cache_dir=tmp_path / "local", variants=("relu", "selu"), n_jobs=1)
    assert [r["test_accuracy"] for r in runs] == [r["test_accuracy"] for r in local]


def _compare(tmp_path, *extra):
    return [
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
        str(tmp_path / "out"),
        *extra,
    ]


@pytest.mark.timeout(120)
def test_compare_command_on_a_dask_scheduler(tmp_path, rng, capsys, dask_cluster):
    from dask.distributed import Client, get_task_stream

    write_tiny_mnist(tmp_path / "d", rng, n_train=200, n_test=50, side=28, classes=10)
    with Client(dask_cluster) as client, get_task_stream(client) as tasks:
        args = _compare(tmp_path, "--variants", "relu,tanh", "--scheduler", dask_cluster.scheduler_address)
        assert main(args) == 0
    assert tasks.data, "no task reached the Dask cluster"
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [v["variant"] for v in results["variants"]] == ["relu", "tanh"]


@pytest.mark.timeout(120)
def test_compare_command_writes_table_results_and_report(tmp_path, rng, capsys):
    write_tiny_mnist(tmp_path / "d", rng, n_train=300, n_test=100, side=28, classes=10)
    out = tmp_path / "out"
    assert main(_compare(tmp_path, "--jobs", "1", "--schedule", "constant", "--lr", "0.002")) == 0
    captured = capsys.readouterr()
    assert "epochs to 97% val" in captured.out and "saturated activations" in captured.out  # not squeezed
    assert "[6/6]" in captured.err  # progress, one line per finished run
    results = json.loads((out / "results.json").read_text())
    assert [v["variant"] for v in results["variants"]] == list(VARIANTS)
    assert results["settings"]["schedule"] == "constant" and results["settings"]["widths"] == [8, 8]
    assert "--schedule constant" in results["command"] and "--lr 0.002" in results["command"]
    assert all(e["learning_rate"] == 0.002 for r in results["runs"] for e in r["history"]["epochs"])
    table = (out / "table.txt").read_text()
    assert all(v in table for v in VARIANTS) and "dead ReLU units" in table
    report = (out / "report.html").read_text()
    plots = sorted((out / "plots").glob("*.png"))
    # overlay, 6 per-variant curves, activations, gradient norms, layer profiles, 6 histograms, 3 of one model
    assert len(plots) == 19
    assert report.count("data:image/png;base64,") == 19
    assert "What the columns mean" in report and "saturated units" in report

    # run again: everything comes from the cache
    assert main(_compare(tmp_path, "--jobs", "1", "--schedule", "constant", "--lr", "0.002")) == 0
    assert capsys.readouterr().err.count("(cached)") == 6


def test_compare_refuses_bad_options_without_writing(tmp_path, rng, capsys):
    write_tiny_mnist(tmp_path / "d", rng)
    assert main(_compare(tmp_path, "--variants", "relu,swish")) == 1
    assert "unknown variant 'swish'" in capsys.readouterr().err
    assert main(_compare(tmp_path, "--backend", "dask")) == 1
    assert "--scheduler" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    with pytest.raises(SystemExit) as stop:
        main(_compare(tmp_path, "--jobs", "0"))
    assert stop.value.code == 2
    (tmp_path / "file").write_text("")
    assert main([*_compare(tmp_path), "--output", str(tmp_path / "file")]) == 1
    assert "not a directory" in capsys.readouterr().err


def test_interrupted_compare_says_the_finished_runs_are_kept(tmp_path, rng, capsys, monkeypatch):
    write_tiny_mnist(tmp_path / "d", rng)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("nnscratch.commands.compare.run_study", interrupted)
    assert main(_compare(tmp_path)) == 130
    assert "run the same command again" in capsys.readouterr().err
    assert not (tmp_path / "out" / "results.json").exists()


def test_unaligned_arrays_are_aligned_before_training(data, monkeypatch):
    # Arrays deserialised on a Dask worker can be unaligned, which makes each batch gather very slow.
    def unaligned(a):
        raw = np.zeros(a.nbytes + 1, dtype=np.uint8)[1:]
        view = raw.view(a.dtype).reshape(a.shape)
        view[...] = a
        assert not view.flags.aligned
        return view

    seen = []
    real = study.train

    def train(net, X, y, *args, **kwargs):
        seen.append(X.flags.aligned)
        return real(net, X, y, *args, **kwargs)

    monkeypatch.setattr(study, "train", train)
    settings = StudySettings(widths=(8,), epochs=1, batch_size=64, seeds=1)
    run = study.run_one("relu", 0, 1e-3, settings, *(unaligned(a) for a in data))
    expected = study.run_one("relu", 0, 1e-3, settings, *data)
    assert seen == [True, True] and run["test_accuracy"] == expected["test_accuracy"]
