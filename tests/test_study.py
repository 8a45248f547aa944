"""The activation study: variants, the summary, caching and resuming, the command and a Dask cluster."""

from __future__ import annotations

import html
import json
import re

import numpy as np
import pytest

import nnscratch.study as study
from nnscratch.cli import main
from nnscratch.errors import SpecError
from nnscratch.layers import ActivationLayer, Dense
from nnscratch.study import (
    VARIANTS,
    RunResult,
    StudySettings,
    run_key,
    run_study,
    summarise,
    variant_activations,
    variant_network,
)
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


CONV = "1x4x4-conv3k3-relu-maxpool2-flatten-6:relu-4:softmax"  # fits the 16-value data below


def test_variants_are_the_five_activations_and_the_seed_stack():
    assert VARIANTS == ("relu", "sigmoid", "tanh", "selu", "softmax", "seed")
    assert variant_activations("seed", 5) == ["relu", "sigmoid", "selu", "tanh", "relu"]
    assert variant_activations("tanh", 2) == ["tanh", "tanh"]
    with pytest.raises(SpecError, match="unknown variant"):
        variant_activations("swish", 1)


def hidden(net):
    """The names of the network's hidden activations, in order."""
    return [
        layer.activation.name
        for layer in net.layers[:-1]
        if isinstance(layer, ActivationLayer | Dense) and layer.activation.name != "identity"
    ]


def test_a_variant_replaces_every_hidden_activation_of_a_spec_and_nothing_else():
    base = "1x8x8-conv4k3-relu-maxpool2-flatten-8-bn-tanh-5:selu-3:softmax"
    net = variant_network(base, "sigmoid", seed=0)
    assert hidden(net) == ["sigmoid", "sigmoid", "sigmoid"]
    assert net.spec == "1x8x8-conv4k3-sigmoid-maxpool2-flatten-8-bn-sigmoid-5:sigmoid-3:softmax"
    assert net.layers[4].activation.name == "identity"  # the linear dense layer before batch norm stays linear
    assert net.layers[-1].activation.name == "identity"  # the output's logits: the loss owns the softmax
    assert hidden(variant_network(base, "seed", seed=0)) == ["relu", "sigmoid", "selu"]
    assert net.layers[0].init == "glorot"  # the convolution now feeds a sigmoid


def test_mlp_variants_are_the_widths_with_the_variants_activations():
    settings = StudySettings(widths=(8, 6))
    assert settings.base_spec(16, 4) == "16-8:relu-6:relu-4:softmax"
    assert variant_network(settings.base_spec(16, 4), "seed", seed=0).spec == "16-8:relu-6:sigmoid-4:softmax"
    assert StudySettings().widths == (32, 32, 64, 64)


def test_settings_refuse_a_bad_budget():
    with pytest.raises(SpecError, match="optimiser"):
        StudySettings(optimizer="rmsprop")
    with pytest.raises(SpecError, match="widths"):
        StudySettings(widths=(32, 0))
    with pytest.raises(SpecError, match="learning rate"):
        StudySettings(learning_rates=(1e-3, -1.0))


def test_settings_refuse_a_spec_that_cannot_be_varied():
    with pytest.raises(SpecError, match="not both"):
        StudySettings(widths=(8,), spec=CONV)
    with pytest.raises(SpecError, match="no hidden activation"):
        StudySettings(spec="1x4x4-conv3k3-maxpool2-flatten-4:softmax")
    with pytest.raises(SpecError, match="unknown layer"):
        StudySettings(spec="1x4x4-conv3k3-swish-4:softmax")
    with pytest.raises(SpecError, match="does not match the data's 784 values"):
        StudySettings(spec=CONV).base_spec(784, 4)
    with pytest.raises(SpecError, match="end the spec in 10:softmax"):
        StudySettings(spec=CONV).base_spec(16, 10)


def test_summary_reports_every_variant(tmp_path, data):
    runs = run_study(SMALL, *data, cache_dir=tmp_path, n_jobs=1)
    assert len(runs) == len(VARIANTS) * 2
    assert [(r.variant, r.seed) for r in runs[:3]] == [("relu", 0), ("relu", 1), ("sigmoid", 0)]
    summary = summarise(runs)
    assert [s.variant for s in summary] == list(VARIANTS)
    for s in summary:
        stats = s.statistics
        accuracies = [r.test_accuracy for r in runs if r.variant == s.variant]
        assert stats.test_accuracy_mean == pytest.approx(np.mean(accuracies)) and s.seeds == 2 and s.diverged == 0
        assert stats.test_accuracy_std == pytest.approx(np.std(accuracies, ddof=1))
        assert len(stats.dead) == 2 and len(stats.grad_norm_last_epoch) == 3
        assert s.hidden_layers == (1, 2) and s.fed_by == (0, 1)
        assert s.weight_layers == ("layer 1 (dense 8)", "layer 2 (dense 6)", "layer 3 (output)")
    relu = summary[0].statistics
    assert relu.dead[0] is not None and relu.saturated[0] is None
    sigmoid = summary[1].statistics
    assert sigmoid.dead[0] is None and sigmoid.saturated[0] is not None
    seed = summary[-1]
    assert seed.activations == ("relu", "sigmoid")
    assert seed.statistics.dead[1] is None and seed.statistics.saturated[1] is not None


def _run_with_epochs(seed: int, epochs: int = 3) -> RunResult:
    """A ``seed``-variant run (ReLU, then sigmoid) made by hand, whose every figure changes from epoch to epoch.

    Epoch e (from 0) of seed s: ReLU dead share 0.1(e+1) + 0.02s, sigmoid saturation 0.2(e+1) + 0.02s (of its
    activations) and 0.05(e+1) + 0.02s (of its units), activation means 10e + s and stds 1 + e + s, gradient
    norms 100(e+1) + 10j + s for layer j, losses 1/(e+1) + s/100.
    """
    from nnscratch.study import LayerStats
    from nnscratch.training import EpochRecord, History

    records = [
        EpochRecord(e + 1, 1 / (e + 1) + seed / 100, 0.5, 2 / (e + 1) + seed / 100, 0.5 + e / 10, 1e-3, 1.0)
        for e in range(epochs)
    ]
    stats = tuple(
        (
            LayerStats("relu", 10 * e + seed, 1 + e + seed, 0.1 * (e + 1) + 0.02 * seed, None, None),
            LayerStats(
                "sigmoid",
                10 * e + seed + 0.5,
                2 + e + seed,
                None,
                0.05 * (e + 1) + 0.02 * seed,
                0.2 * (e + 1) + 0.02 * seed,
            ),
        )
        for e in range(epochs)
    )
    return RunResult(
        variant="seed",
        seed=seed,
        learning_rate=1e-3,
        spec="16-8:relu-6:sigmoid-4:softmax",
        input_shape=(16,),
        hidden_layers=(1, 2),
        fed_by=(0, 1),
        weight_layers=("layer 1 (dense 8)", "layer 2 (dense 6)", "layer 3 (output)"),
        history=History(records),
        test_accuracy=0.8 + seed / 10,
        epochs_to_target=None,
        seconds_per_epoch=1.0,
        grad_norms=tuple(tuple(100.0 * (e + 1) + 10 * j + seed for j in range(3)) for e in range(epochs)),
        layer_stats=stats,
    )


def test_the_summary_reports_the_last_epochs_layer_statistics_not_the_first_or_a_mean():
    from nnscratch.report import diagnostics_table, layer_table

    runs = [_run_with_epochs(0), _run_with_epochs(1)]
    (summary,) = summarise(runs)
    stats = summary.statistics
    # after epoch 3 (e = 2), the mean of seeds 0 and 1 (the first epoch's or a mean over epochs differ)
    assert stats.dead[1] is None and stats.dead[0] == pytest.approx(0.31)
    assert stats.saturated[0] is None and stats.saturated[1] == pytest.approx(0.61)
    assert stats.saturated_units[0] is None and stats.saturated_units[1] == pytest.approx(0.16)
    assert stats.activation_mean == pytest.approx((20.5, 21.0))
    assert stats.activation_std == pytest.approx((3.5, 4.5))
    assert stats.grad_norm_first_epoch == pytest.approx((100.5, 110.5, 120.5))
    assert stats.grad_norm_last_epoch == pytest.approx((300.5, 310.5, 320.5))
    assert (stats.train_loss, stats.val_loss) == pytest.approx((1 / 3 + 0.005, 2 / 3 + 0.005))
    # and the tables show those figures
    (row,) = diagnostics_table([summary]).rows
    assert row == ("seed", "31% ·", "· 61%", "20.50 21.00", "3.50 4.50", "100 → 300")
    relu, sigmoid = layer_table([summary]).rows
    assert relu[3:8] == ("20.500", "3.500", "31%", "·", "·") and relu[8:] == ("100", "300")
    assert sigmoid[3:8] == ("21.000", "4.500", "·", "61%", "16%") and sigmoid[8:] == ("110", "310")


def test_diagnostics_are_recorded_after_every_epoch(tmp_path, data):
    (run,) = run_study(SMALL, *data, cache_dir=tmp_path, variants=("tanh",), n_jobs=1)[:1]
    assert len(run.grad_norms) == len(run.layer_stats) == SMALL.epochs
    assert all(len(norms) == 3 and min(norms) > 0 for norms in run.grad_norms)
    assert [s.activation for s in run.layer_stats[-1]] == ["tanh", "tanh"]
    assert run.model.predicted.shape == (100,) and run.model.first_layer_weights.shape == (16, 8)


def test_a_cached_run_reads_back_as_it_was_written(tmp_path, data):
    (run,) = run_study(SMALL, *data, cache_dir=tmp_path, variants=("relu",), n_jobs=1)[:1]
    (path,) = [p for p in tmp_path.glob("*.json") if json.loads(p.read_text())["seed"] == 0]
    again = RunResult.from_dict(json.loads(path.read_text()))
    assert json.dumps(again.to_dict()) == json.dumps(run.to_dict())
    np.testing.assert_array_equal(again.model.first_layer_weights, run.model.first_layer_weights)
    assert again.histograms == run.histograms and again.layer_stats == run.layer_stats


def test_a_convnet_study_measures_every_hidden_activation(tmp_path, data):
    settings = StudySettings(spec=CONV, epochs=1, batch_size=64, seeds=1)
    runs = run_study(settings, *data, cache_dir=tmp_path, variants=("tanh", "seed"), n_jobs=1)
    tanh, seed = runs
    assert tanh.spec == "1x4x4-conv3k3-tanh-maxpool2-flatten-6:tanh-4:softmax"
    assert seed.spec == "1x4x4-conv3k3-relu-maxpool2-flatten-6:sigmoid-4:softmax"
    assert tanh.hidden_layers == (2, 5) and tanh.fed_by == (0, 1)
    assert tanh.weight_layers == ("layer 1 (conv3k3)", "layer 5 (dense 6)", "layer 6 (output)")
    assert [s.activation for s in seed.layer_stats[-1]] == ["relu", "sigmoid"]
    assert len(tanh.grad_norms[-1]) == 3 and tanh.model.filters.shape == (3, 3, 1, 3)
    assert tanh.model.first_layer_weights is None
    (summary,) = summarise(runs[:1])
    assert summary.activations == ("tanh", "tanh") and len(summary.statistics.activation_mean) == 2


def test_the_spec_is_part_of_the_cache_key(tmp_path, data, count_training):
    for spec in (CONV, CONV, CONV.replace("6:relu", "5:relu")):
        run_study(StudySettings(spec=spec, epochs=1, seeds=1), *data, cache_dir=tmp_path, variants=("relu",), n_jobs=1)
    assert len(count_training) == 2  # the same spec again came from the cache; another spec did not
    mlp = StudySettings(widths=(8,))
    other = StudySettings(spec=CONV.replace("conv3k3", "conv2k3"))
    keys = {run_key("relu", 0, 1e-3, s, "data") for s in (mlp, StudySettings(spec=CONV), other)}
    assert len(keys) == 3


def test_interrupted_study_resumes_from_the_cache(tmp_path, data, count_training):
    settings = StudySettings(widths=(8,), epochs=1, batch_size=64, seeds=1)
    first = run_study(settings, *data, cache_dir=tmp_path, variants=("relu", "tanh"), n_jobs=1)
    cached = sorted(tmp_path.glob("*.json"))
    assert len(cached) == 2 and len(count_training) == 2
    cached[0].unlink()  # as if the study had been interrupted before this run finished

    count_training.clear()
    again = run_study(settings, *data, cache_dir=tmp_path, variants=("relu", "tanh"), n_jobs=1)
    assert len(count_training) == 1  # only the missing run was trained again
    assert [r.test_accuracy for r in again] == [r.test_accuracy for r in first]

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
        assert s.learning_rate == 3e-2  # a rate of 1e-6 barely moves the weights in two epochs
        assert set(s.learning_rates_tried) == {"1e-06", "0.03"}
    from nnscratch.report import sweep_table

    table = sweep_table(summary)  # two rates tried: the sweep's table, every rate a column, the best marked
    assert table is not None and table.headers == ("variant", "lr 1e-06", "lr 0.03")
    for s, row in zip(summary, table.rows, strict=True):
        tried = s.learning_rates_tried
        assert row == (s.variant, f"{100 * tried['1e-06']:.2f}%", f"{100 * tried['0.03']:.2f}% *")
    one_rate = StudySettings(widths=(8,), epochs=2, batch_size=32, seeds=1, learning_rates=(3e-2,))
    assert sweep_table(summarise(run_study(one_rate, *data, cache_dir=tmp_path, variants=("relu",), n_jobs=1))) is None


def test_a_diverging_run_is_recorded_and_never_chosen(tmp_path, data):
    settings = StudySettings(widths=(8,), epochs=2, batch_size=32, seeds=1, optimizer="sgd", learning_rates=(0.1, 1e30))
    runs = run_study(settings, *data, cache_dir=tmp_path, variants=("relu",), n_jobs=1)
    assert runs[0].diverged is None and "diverged" in runs[1].diverged
    assert runs[1].test_accuracy is None and runs[1].model is None
    (summary,) = summarise(runs)
    assert summary.learning_rate == 0.1 and summary.learning_rates_tried["1e+30"] == 0.0

    only_bad = StudySettings(widths=(8,), epochs=2, batch_size=32, seeds=1, optimizer="sgd", learning_rates=(1e30,))
    (summary,) = summarise(run_study(only_bad, *data, cache_dir=tmp_path, variants=("relu",), n_jobs=1))
    assert summary.diverged == 1 and summary.statistics is None
    from nnscratch.report import diagnostics_table, results_table

    # the tables say so, and show no figure for it
    assert results_table([summary]).rows == [("relu", "1e+30", "diverged (1 of 1)", "—", "—", "never", "—")]
    assert diagnostics_table([summary]).rows == [("relu", "—", "—", "—", "—", "—")]


@pytest.mark.timeout(120)
def test_runs_on_a_dask_cluster_through_joblib(tmp_path, data, dask_cluster):
    from dask.distributed import Client, get_task_stream

    settings = StudySettings(widths=(8,), epochs=1, batch_size=64, seeds=1)
    with Client(dask_cluster) as client, get_task_stream(client) as tasks:
        runs = run_study(settings, *data, cache_dir=tmp_path, variants=("relu", "selu"), backend="dask")
    assert tasks.data, "no task reached the Dask cluster"
    local = run_study(settings, *data, cache_dir=tmp_path / "local", variants=("relu", "selu"), n_jobs=1)
    assert [r.test_accuracy for r in runs] == [r.test_accuracy for r in local]


def _compare(tmp_path, *extra, architecture=("--widths", "8,8")):
    return [
        "compare",
        "--data-dir",
        str(tmp_path / "d"),
        "--epochs",
        "1",
        "--seeds",
        "1",
        *architecture,
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
def test_compare_command_writes_table_results_and_report(tmp_path, rng, capsys, monkeypatch):
    write_tiny_mnist(tmp_path / "d", rng, n_train=300, n_test=100, side=28, classes=10)
    out = tmp_path / "out"
    assert main(_compare(tmp_path, "--jobs", "1", "--schedule", "constant", "--lr", "0.002")) == 0
    captured = capsys.readouterr()
    assert "epochs to 97% val" in captured.out and "saturated activations" in captured.out  # not squeezed
    assert "[6/6]" in captured.err  # progress, one line per finished run
    assert f"wrote {out / 'results.json'}, {out / 'table.txt'}, {out / 'report.html'} and 19 plots" in captured.out
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
    headings = [html.unescape(h) for h in re.findall(r"<h2>(.*?)</h2>", report)]
    assert headings == [
        "Results",
        "What the columns mean",
        "Learning curves of every variant (seed 0)",
        *(f"Learning curves: {v}, every seed" for v in VARIANTS),
        "Each activation and its derivative",
        "Gradient norm per layer per epoch (seed 0)",
        "Per-layer activation statistics and gradient norms after the last epoch (mean over seeds)",
        *(f"Activation histograms: {v} (seed 0, after training)" for v in VARIANTS),
        "Confusion matrix: seed (seed 0)",
        "Most confidently wrong test digits: seed (seed 0)",
        "First-layer weights: seed (seed 0)",
    ]

    # run again into the same directory: every run comes from the cache, and the plots (drawn from the same
    # runs, 14 s) are stood in for by the arguments they were given, saved as files of a few bytes
    import nnscratch.plots

    drawn = {}

    def stand_in(*args, **kwargs):
        return tuple(a.copy() if isinstance(a, np.ndarray) else a for a in args)  # as drawn

    def save_png(fig, path):
        drawn[path.name] = fig
        path.write_bytes(b"png")
        return path

    for name in ("learning_curves", "activation_functions", "gradient_norms", "layer_profiles", "confusion"):
        monkeypatch.setattr(nnscratch.plots, name, stand_in)
    for name in ("activation_histograms", "confident_mistakes", "first_layer_weights", "conv_filters"):
        monkeypatch.setattr(nnscratch.plots, name, stand_in)
    monkeypatch.setattr(nnscratch.plots, "save_png", save_png)
    assert main(_compare(tmp_path, "--jobs", "1", "--schedule", "constant", "--lr", "0.002")) == 0
    assert capsys.readouterr().err.count("(cached)") == 6
    assert (out / "report.html").read_text().count("data:image/png;base64,cG5n") == 19  # b"png", 19 times
    _, y, P = drawn["confident_mistakes.png"]  # each test digit's top class with its probability, filled in
    assert P.shape[0] == len(y) and (P.max(axis=1) > 0).all()


@pytest.mark.timeout(120)
def test_compare_varies_the_hidden_activations_of_a_convnet_spec(tmp_path, rng, capsys):
    write_tiny_mnist(tmp_path / "d", rng, n_train=80, n_test=30, side=8, classes=3)
    spec = "1x8x8-conv4k3-relu-maxpool2-flatten-8:relu-3:softmax"
    args = _compare(tmp_path, "--jobs", "1", "--variants", "seed", architecture=("--spec", spec))
    assert main(args) == 0
    out = tmp_path / "out"
    results = json.loads((out / "results.json").read_text())
    assert results["settings"]["spec"] == spec and results["settings"]["widths"] is None
    assert f"--spec {spec}" in results["command"]
    assert [r["spec"] for r in results["runs"]] == ["1x8x8-conv4k3-relu-maxpool2-flatten-8:sigmoid-3:softmax"]
    assert [v["activations"] for v in results["variants"]] == [["relu", "sigmoid"]]
    plots = {p.name for p in (out / "plots").glob("*.png")}
    assert "first_layer_filters.png" in plots and "first_layer_weights.png" not in plots
    assert {"histograms_seed.png", "layer_profiles.png", "gradient_norms.png", "confident_mistakes.png"} <= plots
    report = (out / "report.html").read_text()
    assert report.count("data:image/png;base64,") == len(plots) and f"<code>{spec}</code>" in report


@pytest.mark.parametrize(
    "architecture, message",
    [
        (("--spec", "1x8x8-conv4k3-relu-flatten-3:softmax", "--widths", "8"), "either --spec"),
        (("--spec", "1x8x8-conv4k3-maxpool2-flatten-3:softmax"), "no hidden activation"),
        (("--spec", "1x4x4-conv4k3-relu-flatten-3:softmax"), "does not match the data's 64 values"),
    ],
)
def test_compare_refuses_a_spec_it_cannot_use(tmp_path, rng, capsys, architecture, message):
    write_tiny_mnist(tmp_path / "d", rng, side=8)
    assert main(_compare(tmp_path, architecture=architecture)) == 1
    err = capsys.readouterr().err
    assert message in err.strip().splitlines()[-1] and "Traceback" not in err
    assert not (tmp_path / "out" / "results.json").exists()


def test_compare_refuses_bad_options_without_writing(tmp_path, rng, capsys):
    write_tiny_mnist(tmp_path / "d", rng)
    assert main(_compare(tmp_path, "--variants", "relu,swish")) == 1
    assert "unknown variant 'swish'" in capsys.readouterr().err
    # named before any data is read: with no data at all, the variant is still what is wrong
    assert main([*_compare(tmp_path, "--variants", "relu,swish"), "--data-dir", str(tmp_path / "nowhere")]) == 1
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
    assert seen == [True, True] and run.test_accuracy == expected.test_accuracy


def test_epochs_to_target_is_the_first_epoch_whose_validation_accuracy_reaches_it(data, monkeypatch):
    settings = StudySettings(widths=(8,), epochs=4, batch_size=64, seeds=1)
    monkeypatch.setattr(study, "TARGET", 0.0)  # every epoch reaches it: the first one counts
    assert study.run_one("relu", 0, 1e-2, settings, *data).epochs_to_target == 1
    monkeypatch.setattr(study, "TARGET", 1.01)  # none does
    assert study.run_one("relu", 0, 1e-2, settings, *data).epochs_to_target is None
    run = study.run_one("relu", 0, 1e-2, settings, *data)
    val = run.history["val_accuracy"]
    monkeypatch.setattr(study, "TARGET", val[2])  # reached in the third epoch at the latest
    expected = next(i + 1 for i, acc in enumerate(val) if acc >= val[2])
    assert study.run_one("relu", 0, 1e-2, settings, *data).epochs_to_target == expected


def test_the_command_line_a_study_records_reproduces_its_settings():
    import shlex

    from nnscratch.cli import build_parser
    from nnscratch.report import command_line

    settings = StudySettings(
        widths=(8, 4), epochs=3, optimizer="sgd", schedule="cosine", batch_size=32, seeds=2, learning_rates=(1e-3, 3e-3)
    )
    line = command_line(settings, ("relu", "tanh"))
    args = build_parser().parse_args(shlex.split(line)[1:])
    assert (args.widths, args.epochs, args.optimizer, args.schedule) == ((8, 4), 3, "sgd", "cosine")
    assert (args.batch_size, args.seeds, args.lrs, args.variants) == (32, 2, (1e-3, 3e-3), "relu,tanh")
    assert "--variants" not in command_line(settings, VARIANTS)  # every variant: the default
    args = build_parser().parse_args(shlex.split(command_line(StudySettings(spec=CONV), VARIANTS))[1:])
    assert (args.spec, args.widths, args.lr, args.lrs) == (CONV, None, 1e-3, None)


def test_a_summary_lists_each_seeds_epochs_to_target_in_seed_order():
    from dataclasses import replace

    runs = [replace(_run_with_epochs(1), epochs_to_target=5), replace(_run_with_epochs(0), epochs_to_target=2)]
    (summary,) = summarise(runs)  # finished in the other order
    assert summary.epochs_to_target == (2, 5)


def test_runs_side_by_side_share_the_cores_and_a_clusters_use_their_own(monkeypatch):
    monkeypatch.setattr(study, "available_cores", lambda: 4)
    share = study.threads_per_run
    assert [share(None, None, jobs, 8) for jobs in (-1, 1, 2, 3, 4)] == [1, 4, 2, 1, 1]
    assert share(None, "loky", 2, 1) == 4  # one run left: it takes every core
    assert share(None, "threading", -1, 2) == share(None, "multiprocessing", -1, 2) == 2
    assert share(None, "dask", 2, 8) is None  # each worker's own default
    assert share(3, None, 2, 8) == 3 and share(None, None, 2, 0) is None


def test_a_study_takes_its_cache_directory_as_a_string_too(tmp_path, data):
    settings = StudySettings(widths=(8,), epochs=1, batch_size=64, seeds=1)
    (run,) = run_study(settings, *data, cache_dir=str(tmp_path / "cache"), variants=("relu",), n_jobs=1)
    assert run.variant == "relu" and len(list((tmp_path / "cache").glob("*.json"))) == 1
