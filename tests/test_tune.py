"""Hyper-parameter search: the space, pruning, SQLite studies that resume and survive Ctrl-C, parallel and Dask
trials, the files a search writes, and `nnscratch train --config best.json` training the best trial again."""

from __future__ import annotations

import csv
import json
import re
from dataclasses import asdict

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from nnscratch import tune as tuning
from nnscratch.cli import main
from nnscratch.errors import SpecError
from nnscratch.network import Network
from nnscratch.training import Callback, Trainer
from nnscratch.tune import SearchSpace, TuneSettings, run_trial, trial_run, tune
from tests.test_data import write_tiny_mnist

SMALL = SearchSpace(width=(4, 32), depth=(1, 2), batch_sizes=(32, 64))


@pytest.fixture
def data(tiny_data):
    X, y = tiny_data  # 400 samples of 4 blobs in 12 dimensions: trials take milliseconds
    return X.astype(np.float32), y


def finished(study):
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))


# -- the search space -------------------------------------------------------------------------------


def test_default_space_covers_rate_depth_width_activations_dropout_l2_batch_and_optimiser():
    space = SearchSpace()
    assert space.activations == ("relu", "sigmoid", "tanh", "selu", "softmax")
    assert space.optimizers == ("sgd", "momentum", "nesterov", "adam")
    trial = optuna.trial.FixedTrial(
        {
            "depth": 2,
            "width_1": 128,
            "activation_1": "selu",
            "width_2": 32,
            "activation_2": "softmax",
            "optimizer": "nesterov",
            "lr": 3e-3,
            "batch_size": 64,
            "dropout": 0.25,
            "l2": 1e-5,
        }
    )
    options = space.suggest(trial)
    assert options == {
        "hidden": "128:selu,32:softmax",
        "optimizer": "nesterov",
        "lr": 3e-3,
        "batch-size": 64,
        "dropout": 0.25,
        "l2": 1e-5,
    }


def test_a_narrowed_space_fixes_what_has_one_value():
    space = SearchSpace(
        learning_rate=(1e-3, 1e-3),
        depth=(1, 1),
        activations=("tanh",),
        l2=(0.0, 0.0),
        optimizers=("adam",),
        batch_sizes=(128,),
        dropout=(0.0, 0.0),
    )
    options = space.suggest(optuna.trial.FixedTrial({"width_1": 40}))  # the only parameter left to search
    assert options == {
        "hidden": "40:tanh",
        "optimizer": "adam",
        "lr": 1e-3,
        "batch-size": 128,
        "dropout": 0.0,
        "l2": 0.0,
    }


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("learning_rate", (0.0, 1e-2), "learning rate range"),
        ("learning_rate", (1e-2, 1e-3), "learning rate range"),
        ("depth", (1.5, 2), "depth range must be LOW:HIGH integers"),
        ("dropout", (0.0, 1.0), "dropout range"),
        ("l2", (0.0, 1e-3), "give 0 to turn it off"),
        ("activations", ("relu", "swish"), "activations must be some of"),
        ("optimizers", (), "optimizers must be some of"),
        ("batch_sizes", (0,), "batch sizes must be positive integers"),
        ("depth", (-1, 2), "depth range must be LOW:HIGH integers with 0 <= LOW"),
        ("width", (0, 8), "width range must be LOW:HIGH integers with 1 <= LOW"),
        ("width", (4.0, 8), "width range must be LOW:HIGH integers"),
    ],
)
def test_a_bad_space_is_refused_with_a_reason(field, value, message):
    with pytest.raises(SpecError, match=message):
        SearchSpace(**{field: value})


@pytest.mark.parametrize(
    "field, value",
    [("depth", (0, 0)), ("width", (1, 1)), ("batch_sizes", (1,)), ("l2", (0.0, 0.0)), ("dropout", (0.0, 0.0))],
)
def test_the_edges_of_each_range_are_accepted(field, value):
    assert getattr(SearchSpace(**{field: value}), field) == value  # no hidden layer, one unit, one example ...


def test_the_default_space_is_the_one_the_help_states(capsys):
    space = SearchSpace()
    assert (space.learning_rate, space.depth, space.width) == ((1e-4, 1e-2), (1, 3), (16, 512))
    assert (space.dropout, space.l2, space.batch_sizes) == ((0.0, 0.5), (1e-6, 1e-3), (32, 64, 128, 256))
    assert space.activations == ("relu", "sigmoid", "tanh", "selu", "softmax")
    assert space.optimizers == ("sgd", "momentum", "nesterov", "adam")
    with pytest.raises(SystemExit):
        main(["tune", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    for default in ("1e-4:1e-2", "1:3", "16:512", "0:0.5", "1e-6:1e-3", "32,64,128,256", "sgd,momentum,nesterov,adam"):
        assert f"default: {default}" in shown


def test_widths_learning_rates_and_l2_are_searched_on_a_log_scale_the_rest_evenly():
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
    SearchSpace(depth=(2, 2)).suggest(trial)
    logarithmic = {name for name, d in trial.distributions.items() if getattr(d, "log", False)}
    assert logarithmic == {"width_1", "width_2", "lr", "l2"}
    assert {"dropout", "activation_1", "optimizer", "batch_size"} <= set(trial.distributions) - logarithmic


# -- one trial --------------------------------------------------------------------------------------


def test_a_trial_trains_what_train_would_and_scores_its_last_validation_accuracy(data):
    X, y = data
    options = TuneSettings(epochs=3, seed=4).train_options(
        {"hidden": "16:tanh,8:selu", "optimizer": "adam", "lr": 1e-2, "batch-size": 32, "dropout": 0.1, "l2": 1e-4}
    )
    outcome = run_trial(7, options, 4, X, y, finished=None)
    assert outcome.number == 7 and outcome.state == "complete" and len(outcome.val_accuracy) == 3
    net, config = trial_run(options, 12, 4)
    assert net.spec == "12-16:tanh-8:selu-4:softmax" and config.schedule == "wsd" and config.validation_size is None
    history = Trainer(net, X, y, config).run(Callback())  # the same network, split and seed: the same numbers
    assert history["val_accuracy"] == outcome.val_accuracy and outcome.value == history["val_accuracy"][-1]
    assert outcome.value > 0.9


def _perfect_trials(n: int, epochs: int) -> list[optuna.trial.FrozenTrial]:
    """n finished trials that scored 1.0 after every epoch."""
    return [
        optuna.trial.create_trial(value=1.0, intermediate_values={e: 1.0 for e in range(1, epochs + 1)})
        for _ in range(n)
    ]


def test_a_hopeless_trial_is_pruned_after_its_second_epoch(data):
    X, y = data
    options = TuneSettings(epochs=5).train_options(
        {"hidden": "8:relu", "optimizer": "sgd", "lr": 1e-6, "batch-size": 64, "dropout": 0.0, "l2": 0.0}
    )
    pruned = run_trial(0, options, 4, X, y, finished=_perfect_trials(5, 5))
    assert pruned.state == "pruned" and len(pruned.val_accuracy) == 2  # judged from epoch 2 (epoch 1 is warm-up)
    assert run_trial(0, options, 4, X, y, finished=_perfect_trials(4, 5)).state == "complete"  # 5 needed first
    assert run_trial(0, options, 4, X, y, finished=None).state == "complete"  # pruning off


def test_a_diverging_trial_is_pruned_with_its_reason(data):
    X, y = data
    options = TuneSettings(epochs=3).train_options(
        {"hidden": "8:identity", "optimizer": "sgd", "lr": 1e30, "batch-size": 32, "dropout": 0.0, "l2": 0.0}
    )
    outcome = run_trial(0, options, 4, X, y, finished=[])
    assert outcome.state == "diverged" and "diverged" in outcome.message and outcome.value is None


# -- the study ----------------------------------------------------------------------------------------


def test_tune_finishes_the_number_of_trials_asked_and_best_is_reproducible(data):
    X, y = data
    seen = []
    study = tune(
        X,
        y,
        n_trials=6,
        space=SMALL,
        settings=TuneSettings(epochs=2, seed=1),
        on_trial=lambda outcome, options, done, total: seen.append((done, total, outcome.state)),
    )
    assert len(finished(study)) == 6 == len(study.trials)
    assert [s[:2] for s in seen] == [(i, 6) for i in range(1, 7)]
    best = study.best_trial
    net, config = trial_run(best.user_attrs["options"], 12, 4)
    assert Trainer(net, X, y, config).run(Callback())["val_accuracy"][-1] == best.value
    assert set(best.params) <= {
        "depth",
        "width_1",
        "width_2",
        "activation_1",
        "activation_2",
        "optimizer",
        "lr",
        "batch_size",
        "dropout",
        "l2",
    }


def test_a_sqlite_study_resumes_without_replaying_its_proposals(data, tmp_path):
    X, y = data
    storage = f"sqlite:///{tmp_path / 'tune.db'}"
    settings = TuneSettings(epochs=2)
    first = tune(X, y, n_trials=3, space=SMALL, settings=settings, storage=storage, study_name="s")
    before = [(t.number, t.params, t.value) for t in first.trials]
    again = tune(X, y, n_trials=5, space=SMALL, settings=settings, storage=storage, study_name="s")
    assert len(finished(again)) == 5
    assert [(t.number, t.params, t.value) for t in again.trials[:3]] == before  # kept as they were
    new = [t.params for t in again.trials[3:]]
    assert all(params not in [p for _, p, _ in before] for params in new)  # a resumed sampler proposes anew
    assert len(finished(tune(X, y, n_trials=5, space=SMALL, settings=settings, storage=storage, study_name="s"))) == 5


def test_interrupting_keeps_every_finished_trial(data, tmp_path):
    X, y = data
    storage = f"sqlite:///{tmp_path / 'tune.db'}"

    def stop_after_two(outcome, options, done, total):
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        tune(
            X,
            y,
            n_trials=6,
            space=SMALL,
            settings=TuneSettings(epochs=2),
            storage=storage,
            study_name="s",
            on_trial=stop_after_two,
        )
    kept = optuna.load_study(study_name="s", storage=storage)
    assert len(finished(kept)) == 2
    assert not kept.get_trials(states=(TrialState.RUNNING,))  # nothing is left half-done
    resumed = tune(X, y, n_trials=6, space=SMALL, settings=TuneSettings(epochs=2), storage=storage, study_name="s")
    assert len(finished(resumed)) == 6


def test_resuming_with_other_settings_is_refused(data, tmp_path):
    X, y = data
    storage = f"sqlite:///{tmp_path / 'tune.db'}"
    tune(X, y, n_trials=1, space=SMALL, settings=TuneSettings(epochs=2), storage=storage, study_name="s")
    with pytest.raises(SpecError, match=r"study 's' was run with epochs=2; resume it with the same settings"):
        tune(X, y, n_trials=2, space=SMALL, settings=TuneSettings(epochs=3), storage=storage, study_name="s")
    with pytest.raises(SpecError, match="data="):
        tune(
            X[:300], y[:300], n_trials=2, space=SMALL, settings=TuneSettings(epochs=2), storage=storage, study_name="s"
        )


@pytest.mark.timeout(120)
def test_parallel_processes_finish_exactly_the_trials_asked(data):
    X, y = data
    study = tune(X, y, n_trials=5, space=SMALL, settings=TuneSettings(epochs=2), n_jobs=2)
    assert len(finished(study)) == 5 == len(study.trials)


@pytest.mark.timeout(120)
def test_trials_run_on_a_dask_cluster(data, dask_cluster):
    from dask.distributed import Client, get_task_stream

    X, y = data
    settings = TuneSettings(epochs=2, pruning=False)
    with Client(dask_cluster) as client, get_task_stream(client) as tasks:
        on_dask = tune(X, y, n_trials=3, space=SMALL, settings=settings, backend="dask", n_jobs=1)
    assert tasks.data, "no trial reached the Dask cluster"
    local = tune(X, y, n_trials=3, space=SMALL, settings=settings)
    assert [t.value for t in on_dask.trials] == [t.value for t in local.trials]  # the same proposals, one at a time


# -- the command line ----------------------------------------------------------------------------------


@pytest.fixture
def tiny_dir(tmp_path, rng):
    write_tiny_mnist(tmp_path / "data", rng, n_train=300, n_test=40)
    return tmp_path / "data"


def tune_cli(tiny_dir, out, *extra):
    return ["tune", "--data-dir", str(tiny_dir), "--trials", "4", "--epochs", "2", "--output", str(out), *extra]


def test_tune_command_writes_best_json_trials_and_plots(tiny_dir, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(tune_cli(tiny_dir, out, "--storage", f"sqlite:///{tmp_path / 't.db'}", "--study-name", "x")) == 0
    printed = capsys.readouterr()
    assert "[4/4] trial 3" in printed.err and f"nnscratch train --config {out / 'best.json'}" in printed.out
    assert "study 'x' in sqlite:///" in printed.err and "running until it holds 4 finished trials" in printed.err
    best = json.loads((out / "best.json").read_text())
    assert {"hidden", "optimizer", "lr", "batch-size", "dropout", "l2", "epochs", "schedule", "seed"} <= set(best)
    assert best["epochs"] == 2 and best["tuning"]["study"] == "x"
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert [r["trial"] for r in rows] == ["0", "1", "2", "3"]
    assert max(float(r["val_accuracy"]) for r in rows if r["state"] == "complete") == best["tuning"]["val_accuracy"]
    for plot in ("optimization_history.png", "param_importances.png"):
        assert (out / plot).read_bytes().startswith(b"\x89PNG")


def test_train_config_trains_the_best_trial_again_and_the_command_line_wins(tiny_dir, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(tune_cli(tiny_dir, out)) == 0
    best = json.loads((out / "best.json").read_text())
    model = tmp_path / "best.npz"
    assert main(["train", "--config", str(out / "best.json"), "--data-dir", str(tiny_dir), "-o", str(model)]) == 0
    net = Network.load(model)
    assert net.metadata["history"]["epochs"][-1]["val_accuracy"] == best["tuning"]["val_accuracy"]
    assert net.metadata["config"]["learning_rate"] == best["lr"] and net.metadata["config"]["epochs"] == 2
    given = ["train", "--config", str(out / "best.json"), "--data-dir", str(tiny_dir), "-o", str(model)]
    assert main([*given, "--epochs", "1", "--seed", "0", "--hidden", "5:tanh"]) == 0
    net = Network.load(model)
    assert net.metadata["config"]["epochs"] == 1 and net.spec == "16-5:tanh-3:softmax"
    assert net.metadata["config"]["learning_rate"] == best["lr"]  # the rest still from the file
    # a network given on the command line replaces the file's whole (its hidden layers do not clash with --spec)
    assert main([*given, "--epochs", "1", "--spec", "16-7:relu-3"]) == 0
    assert Network.load(model).spec == "16-7:relu-3:softmax"


def test_best_json_trains_exactly_the_best_trials_settings_float64_included(tiny_dir, tmp_path):
    from nnscratch.data import load_dataset

    # a trial that sets every option the default space can choose, at values no default has, with every
    # setting a trial shares changed too (float64 above all); awkward floats, so no digit may be lost
    chosen = {
        "depth": 2,
        "width_1": 23,
        "activation_1": "selu",
        "width_2": 19,
        "activation_2": "tanh",
        "optimizer": "nesterov",
        "lr": 0.0031234567891234567,
        "batch_size": 64,
        "dropout": 0.123456789012345,
        "l2": 1.2345678901234567e-5,
    }
    settings = TuneSettings(epochs=2, seed=3, dtype="float64", schedule="cosine")
    options = settings.train_options(SearchSpace().suggest(optuna.trial.FixedTrial(chosen)))
    every = {"hidden", "optimizer", "lr", "batch-size", "dropout", "l2", "momentum", "epochs", "schedule", "seed"}
    assert set(options) == every | {"dtype"}  # a new option in the space fails here until this test sets it
    study = optuna.create_study(direction="maximize")
    other = {**options, "hidden": "4:relu", "dtype": "float32", "optimizer": "adam"}
    del other["momentum"]
    for value, trial_options in ((0.4, other), (0.9, options), (0.6, other)):  # the best one in the middle
        study.add_trial(optuna.trial.create_trial(value=value, user_attrs={"options": trial_options}))
    out, model = tmp_path / "out", tmp_path / "best.npz"
    tuning.write_results(study, out)
    assert main(["train", "--config", str(out / "best.json"), "--data-dir", str(tiny_dir), "-o", str(model), "-q"]) == 0

    data = load_dataset(tiny_dir)
    net, config = trial_run(options, data.n_features, data.n_classes)  # what the trial trained
    saved = Network.load(model)
    assert saved.metadata["config"] == asdict(config)
    assert saved.spec == net.spec == "16-23:selu-19:tanh-3:softmax"
    assert saved.dtype == net.dtype == np.float64
    assert (config.optimizer, config.momentum, config.schedule, config.seed) == ("nesterov", 0.9, "cosine", 3)
    assert (config.learning_rate, config.dropout, config.l2) == (chosen["lr"], chosen["dropout"], chosen["l2"])
    # the same initial weights, split and training: the trial's network, bit for bit
    Trainer(net, data.X_train, data.y_train, config).run(Callback())
    np.testing.assert_array_equal(saved.params, net.params)


def test_the_table_of_best_trials_is_ordered_best_first(tiny_dir, tmp_path, monkeypatch, capsys):
    scores = {0: 0.5, 1: 0.9, 2: 0.7, 3: 0.8}  # finished in this order: neither sorted nor reversed

    def scripted(number, options, n_classes, X, y, finished):
        if number == 4:  # pruned after an epoch better than any: not a finished trial, so not in the table
            return tuning.TrialOutcome(number, "pruned", [0.95], 0.1)
        return tuning.TrialOutcome(number, "complete", [scores[number]], 0.1)

    monkeypatch.setattr(tuning, "run_trial", scripted)
    assert main(tune_cli(tiny_dir, tmp_path / "out", "--trials", "5")) == 0
    printed = capsys.readouterr().out
    rows = [re.match(r"\W*(\d+)\W+(\d+\.\d+)%", line) for line in printed.splitlines()]
    table = [(int(m[1]), float(m[2])) for m in rows if m]
    assert table == [(1, 90.0), (3, 80.0), (2, 70.0), (0, 50.0)]
    assert "best 4 of 5 trials" in printed and "best: trial 1, validation accuracy 90.00%" in printed


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"lr": 0.001, "colour": "red"}', "unknown option 'colour'; a config may set preset, spec, hidden"),
        ('{"lr": -1}', "lr: expected a positive number, got '-1'"),
        ('{"optimizer": "rmsprop"}', "optimizer: expected one of sgd, momentum, nesterov, adam"),
        ('{"epochs": [3]}', "epochs must be a number or a string"),
        ("[1, 2]", "must hold a JSON object"),
        ("{lr: 1}", "is not valid JSON"),
    ],
)
def test_a_bad_config_file_is_one_line_and_trains_nothing(tiny_dir, tmp_path, capsys, content, message):
    config = tmp_path / "c.json"
    config.write_text(content)
    model = tmp_path / "m.npz"
    assert main(["train", "--config", str(config), "--data-dir", str(tiny_dir), "-o", str(model)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("nnscratch train: error: ") and message in err and err.count("\n") == 1
    assert not model.exists()


def test_tuning_never_sees_the_test_set(tmp_path, rng):
    """Two data sets with the same training files and different test files give the same trials."""
    write_tiny_mnist(tmp_path / "a", np.random.default_rng(1), n_train=300, n_test=40)
    write_tiny_mnist(tmp_path / "b", np.random.default_rng(1), n_train=300, n_test=40)
    write_tiny_mnist(tmp_path / "other", np.random.default_rng(2), n_train=300, n_test=40)
    for stem in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (tmp_path / "b" / stem).write_bytes((tmp_path / "other" / stem).read_bytes())
    tables = []
    for name in ("a", "b"):
        assert main(tune_cli(tmp_path / name, tmp_path / f"out-{name}")) == 0
        rows = list(csv.DictReader((tmp_path / f"out-{name}" / "trials.csv").open()))
        tables.append([(r["trial"], r["state"], r["val_accuracy"], r["hidden"], r["lr"]) for r in rows])
    assert tables[0] == tables[1]


def test_space_options_narrow_the_search(tiny_dir, tmp_path):
    out = tmp_path / "out"
    args = tune_cli(
        tiny_dir,
        out,
        "--activations",
        "tanh",
        "--optimizers",
        "adam",
        "--depth",
        "2",
        "--batch-sizes",
        "64",
        "--l2",
        "0",
        "--lr",
        "1e-3:1e-2",
    )
    assert main(args) == 0
    for row in csv.DictReader((out / "trials.csv").open()):
        assert row["optimizer"] == "adam" and row["batch-size"] == "64" and float(row["l2"]) == 0.0
        assert [layer.split(":")[1] for layer in row["hidden"].split(",")] == ["tanh", "tanh"]
        assert 1e-3 <= float(row["lr"]) <= 1e-2


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--lr", "1e-2:1e-3"], "learning rate range"),
        (["--activations", "relu,swish"], "activations must be some of"),
        (["--study-name", "s", "--storage", "STORAGE", "--trials", "5"], "study 's' was run with epochs=1"),
        (["--storage", "sqlite:////no/such/dir/t.db"], "cannot open the study storage 'sqlite:////no/such/dir/t.db'"),
    ],
)
def test_tune_command_errors_are_one_line(tiny_dir, tmp_path, capsys, extra, message):
    storage = f"sqlite:///{tmp_path / 't.db'}"
    assert main(tune_cli(tiny_dir, tmp_path / "o", "--epochs", "1", "--study-name", "s", "--storage", storage)) == 0
    capsys.readouterr()
    extra = [storage if e == "STORAGE" else e for e in extra]
    assert main(tune_cli(tiny_dir, tmp_path / "o2", *extra)) == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]  # after "loading data..." where it got that far
    assert last.startswith("nnscratch tune: error: ") and message in last


def test_ctrl_c_keeps_the_finished_trials_and_writes_them(tiny_dir, tmp_path, monkeypatch, capsys):
    calls = []
    real = tuning.run_trial

    def interrupted_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(tuning, "run_trial", interrupted_third)
    storage = f"sqlite:///{tmp_path / 't.db'}"
    out = tmp_path / "out"
    assert main(tune_cli(tiny_dir, out, "--storage", storage)) == 130
    printed = capsys.readouterr()
    assert f"interrupted; the finished trials are kept in {storage}: run the same command again" in printed.err
    assert json.loads((out / "best.json").read_text())["tuning"]["trials"] == {"complete": 2, "fail": 1}
    monkeypatch.setattr(tuning, "run_trial", real)
    assert main(tune_cli(tiny_dir, out, "--storage", storage)) == 0  # the same command goes on
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert [r["state"] for r in rows].count("complete") + [r["state"] for r in rows].count("pruned") == 4


def test_tune_without_optuna_says_how_to_install_it(tiny_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(__import__("sys").modules, "optuna", None)
    assert main(tune_cli(tiny_dir, tmp_path / "o")) == 1
    assert "pip install 'nnscratch[tune]'" in capsys.readouterr().err


def test_a_finished_trial_keeps_each_epochs_accuracy_and_a_diverged_one_its_reason(data):
    X, y = data
    outcomes = {}
    study = tune(
        X,
        y,
        n_trials=3,
        space=SMALL,
        settings=TuneSettings(epochs=2, pruning=False),
        on_trial=lambda outcome, options, done, total: outcomes.update({outcome.number: outcome}),
    )
    for trial in study.trials:  # the study holds every epoch's validation accuracy, as the pruner needs
        assert trial.intermediate_values == dict(enumerate(outcomes[trial.number].val_accuracy, start=1))
    hopeless = SearchSpace(
        learning_rate=(1e30, 1e30),
        depth=(1, 1),
        width=(8, 8),
        activations=("identity",),
        optimizers=("sgd",),
        batch_sizes=(32,),
        dropout=(0.0, 0.0),
        l2=(0.0, 0.0),
    )
    diverged = tune(X, y, n_trials=2, space=hopeless, settings=TuneSettings(epochs=2))
    assert all("diverged" in t.user_attrs["diverged"] for t in diverged.trials)
    assert [row.state for row in tuning.trial_rows(diverged)] == ["diverged", "diverged"]
    assert [row.state for row in tuning.trial_rows(study)] == ["complete"] * 3


def test_trials_running_when_the_search_is_interrupted_are_marked_so(data, monkeypatch):
    X, y = data
    study = optuna.create_study(direction="maximize")
    original = tuning.run_trial

    def interrupted_in_the_second(number, *args):
        if number == 1:  # Ctrl-C while the second trial trains
            raise KeyboardInterrupt
        return original(number, *args)

    monkeypatch.setattr(tuning, "open_study", lambda **kwargs: study)
    monkeypatch.setattr(tuning, "run_trial", interrupted_in_the_second)
    with pytest.raises(KeyboardInterrupt):
        tune(X, y, n_trials=4, space=SMALL, settings=TuneSettings(epochs=1))
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.FAIL]
    assert study.trials[1].user_attrs["interrupted"] is True and "interrupted" not in study.trials[0].user_attrs


def test_the_library_without_optuna_says_how_to_install_it(data, monkeypatch):
    from nnscratch.errors import NNScratchError

    for name in ("optuna", "optuna.trial"):  # as if never installed (this module has imported both)
        monkeypatch.setitem(__import__("sys").modules, name, None)
    with pytest.raises(NNScratchError, match=r"tuning needs Optuna: pip install 'nnscratch\[tune\]'"):
        tune(*data, n_trials=1)


def test_the_history_plot_shows_each_trial_and_the_best_so_far():
    rows = [
        tuning.TrialRow(0, "complete", 0.5, 2, 1.0),
        tuning.TrialRow(1, "pruned", 0.3, 1, 0.5),
        tuning.TrialRow(2, "complete", 0.7, 2, 1.0),
        tuning.TrialRow(3, "complete", 0.6, 2, 1.0),
        tuning.TrialRow(4, "failed", None, None, None),
    ]
    fig = tuning.history_figure(rows)
    ax = fig.axes[0]
    complete, pruned = ax.collections
    np.testing.assert_array_equal(complete.get_offsets(), [[0, 0.5], [2, 0.7], [3, 0.6]])
    np.testing.assert_array_equal(pruned.get_offsets(), [[1, 0.3]])
    np.testing.assert_array_equal(ax.lines[0].get_xydata(), [[0, 0.5], [2, 0.7], [3, 0.7]])  # the best so far
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["complete trial", "pruned trial", "best so far"]
    assert (ax.get_title(), ax.get_xlabel(), ax.get_ylabel()) == (
        "optimisation history",
        "trial",
        "validation accuracy",
    )
    assert ax.xaxis.get_gridlines()[0].get_visible() and ax.yaxis.get_gridlines()[0].get_visible()


def test_the_importance_plot_has_a_bar_per_parameter_the_most_important_on_top():
    fig = tuning.importances_figure({"lr": 0.6, "width_1": 0.3, "dropout": 0.1})
    fig.canvas.draw()  # the categorical tick labels are set when the figure is drawn
    ax = fig.axes[0]
    assert [bar.get_width() for bar in ax.patches] == [0.1, 0.3, 0.6]
    assert [label.get_text() for label in ax.get_yticklabels()] == ["dropout", "width_1", "lr"]  # top: the last
    assert (ax.get_title(), ax.get_xlabel()) == (
        "hyper-parameter importances",
        "importance for the validation accuracy",
    )
    assert ax.xaxis.get_gridlines()[0].get_visible() and not ax.yaxis.get_gridlines()[0].get_visible()
    heights = [tuning.importances_figure(dict.fromkeys("abcdefgh"[:n], 0.1)).get_size_inches()[1] for n in (1, 5)]
    assert heights == pytest.approx([1.6, 3.2])  # 0.4 inch a bar, and room for the title and the axis


def test_the_space_options_are_read_as_ranges_and_lists():
    from nnscratch.cli import build_parser

    args = build_parser().parse_args(["tune", "--depth", "1:2", "--width", "8", "--lr", "1e-3:1e-2", "--l2", "0"])
    assert (args.depth, args.width, args.lr, args.l2) == ((1, 2), (8, 8), (1e-3, 1e-2), (0.0, 0.0))
    args = build_parser().parse_args(["tune", "--batch-sizes", "16,32", "--activations", "ReLU, tanh"])
    assert (args.batch_sizes, args.activations) == ((16, 32), ("relu", "tanh"))
    for bad in (["--depth", "1.5:2"], ["--width", "a:b"], ["--batch-sizes", "0,8"], ["--lr", "1:2:3"]):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["tune", *bad])
