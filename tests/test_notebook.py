"""What a notebook shows: a network's layer table, a history's table and curves, the ready-made callbacks."""

from __future__ import annotations

import io

import numpy as np
import pytest
from matplotlib.figure import Figure

import nnscratch
from nnscratch import callbacks
from nnscratch.callbacks import LivePlot, ProgressBar
from nnscratch.tables import TableData
from nnscratch.training import Callback, EpochRecord, History, as_callback

CNN = "1x28x28-conv8k3-bn-relu-maxpool2-flatten-dropout0.3-32-relu-10:softmax"


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return rng.random((240, 784), dtype=np.float32), rng.integers(0, 10, 240)


def record(epoch: int, val: bool = True) -> EpochRecord:
    nan = float("nan")
    return EpochRecord(epoch, 1.0 / epoch, 0.5, 0.9 / epoch if val else nan, 0.6 if val else nan, 1e-3, 0.5)


# -- the network's layer table --------------------------------------------------------------------


def test_summary_lists_every_layer_with_its_shape_and_parameters():
    net = nnscratch.Network.from_spec(CNN, seed=0)
    table = net.summary()
    assert table.title == net.spec
    assert table.headers == ("layer", "kind", "output shape", "parameters")
    assert table.rows[0] == ("input", "", "1x28x28", "")
    assert len(table.rows) == 1 + len(net.layers)
    assert table.rows[1] == ("1  conv8k3", "Conv2D", "8x26x26", f"{8 * 9 + 8:,}")
    assert table.rows[2] == ("2  bn", "BatchNorm", "8x26x26", "16")
    assert table.rows[4][1:3] == ("MaxPool2D", "8x13x13")
    assert table.rows[-1] == (f"{len(net.layers)}  10:softmax", "Dense", "10", f"{32 * 10 + 10:,}")
    counts = sum(int(row[3].replace(",", "")) for row in table.rows[1:])
    assert counts == net.n_params  # the rows add up to the total
    assert f"{net.n_params:,} trainable parameters" in table.notes[0]
    assert "16 running statistics (batch norm)" in table.notes[0]  # batch norm's mean and variance of 8 channels


def test_an_mlp_summary_has_no_running_statistics():
    net = nnscratch.Network.from_spec("784-32:relu-10:softmax", seed=0)
    assert [row[2] for row in net.summary().rows] == ["784", "32", "10"]
    assert "running statistics" not in net.summary().notes[0]


def test_a_network_displays_as_an_html_table_and_its_repr_stays_one_line():
    net = nnscratch.Network.from_spec(CNN, seed=0)
    page = net._repr_html_()
    assert page.startswith("<table><caption") and f">{net.spec}</caption>" in page
    assert page.count("<tr>") == 1 + 1 + len(net.layers)  # the header, the input, one per layer
    assert "Conv2D" in page and "8x26x26" in page
    assert "\n" not in repr(net)


def test_a_summary_prints_as_aligned_text():
    text = str(nnscratch.Network.from_spec("784-32:relu-10:softmax", seed=0).summary())
    lines = text.splitlines()
    assert lines[0] == "784-32:relu-10:softmax"
    assert set(lines[2]) <= {"-", " "}
    assert len({len(line) for line in lines[1:6] if line.strip()}) <= 2  # padded columns (the rule may be longer)
    assert lines[-1].startswith("25,450 trainable parameters")


def test_a_table_escapes_its_cells_in_html():
    table = TableData("a <b>", ("x", "y"), [("<script>", "&")], ("1 < 2",))
    page = table._repr_html_()
    assert "<script>" not in page and "&lt;script&gt;" in page and "&amp;" in page and "1 &lt; 2" in page


# -- the history ------------------------------------------------------------------------------------


def test_a_history_table_has_a_row_per_epoch_and_drops_validation_columns_without_it():
    history = History([record(e) for e in (1, 2, 3)])
    table = history.table()
    assert table.headers == ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds")
    assert [row[0] for row in table.rows] == ["1", "2", "3"]
    assert table.rows[1][1] == "0.5000" and table.rows[1][4] == "60.00%"
    assert table.notes[0] == "3 epochs in 1.5 s"
    bare = History([record(e, val=False) for e in (1, 2)]).table()
    assert "val_loss" not in bare.headers and len(bare.rows[0]) == len(bare.headers)


def test_a_long_history_is_cut_in_its_display_and_whole_in_its_table():
    history = History([record(e) for e in range(1, 91)], best_epoch=80, stopped_early=True)
    assert len(history.table().rows) == 90
    cut = history.table(max_rows=20)
    assert len(cut.rows) == 21 and cut.rows[6][0] == "…"
    assert cut.rows[0][0] == "1" and cut.rows[-1][0] == "90"
    assert "best validation loss at epoch 80, stopped early" in cut.notes
    assert history._repr_html_().count("<tr>") == 22


def test_history_plot_returns_a_figure_of_three_panels():
    fig = History([record(e) for e in (1, 2, 3)]).plot(title="run")
    assert isinstance(fig, Figure)
    assert [ax.get_title() for ax in fig.axes] == ["Cross-entropy loss", "Accuracy", "Error rate (lower is better)"]
    assert len(fig.axes[0].get_lines()) == 2  # training and validation


# -- callbacks --------------------------------------------------------------------------------------


class Recorder(Callback):
    def __init__(self, name: str, calls: list[str]) -> None:
        self.name, self.calls = name, calls

    def on_train_begin(self, n_epochs, n_batches):
        self.calls.append(f"{self.name} begin {n_epochs} {n_batches}")

    def on_epoch_end(self, net, record):
        self.calls.append(f"{self.name} epoch {record.epoch}")

    def on_train_end(self, history):
        self.calls.append(f"{self.name} end {len(history)}")


def test_a_list_of_callbacks_is_called_in_order_and_told_when_training_ends(data):
    X, y = data
    calls: list[str] = []
    net = nnscratch.Network.from_spec("784-8:relu-10:softmax", seed=0)
    config = nnscratch.TrainConfig(epochs=2, batch_size=64, validation_size=40)
    nnscratch.train(net, X, y, config, callback=[Recorder("a", calls), Recorder("b", calls)])
    assert calls == [
        "a begin 2 4",
        "b begin 2 4",
        "a epoch 1",
        "b epoch 1",
        "a epoch 2",
        "b epoch 2",
        "a end 2",
        "b end 2",
    ]


@pytest.mark.parametrize("given", [print, "progress", [Callback(), print]])
def test_something_that_is_not_a_callback_is_refused(given):
    with pytest.raises(TypeError, match="callback"):
        as_callback(given)


def test_the_progress_bar_shows_each_epoch_with_its_metrics(data):
    X, y = data
    out = io.StringIO()
    net = nnscratch.Network.from_spec("784-8:relu-10:softmax", seed=0)
    config = nnscratch.TrainConfig(epochs=3, batch_size=50, validation_size=40)
    history = nnscratch.train(net, X, y, config, callback=ProgressBar(file=out))
    text = out.getvalue()
    for epoch in (1, 2, 3):
        assert f"epoch {epoch}/3" in text
    last = text.rstrip().split("\r")[-1]
    assert "4/4" in last  # 200 training images in batches of 50
    final = history.epochs[-1]
    assert f"loss={final.train_loss:.4f}" in last and f"val_acc={100 * final.val_accuracy:.2f}%" in last


def test_the_live_plot_draws_once_and_then_updates_in_place(data, monkeypatch):
    X, y = data
    shown: list[tuple[str, Figure]] = []

    class Handle:
        def update(self, fig):
            shown.append(("update", fig))

    def display(fig, display_id):
        assert display_id is True
        shown.append(("display", fig))
        return Handle()

    monkeypatch.setattr(callbacks, "_notebook_display", lambda: display)
    live = LivePlot(title="live")
    net = nnscratch.Network.from_spec("784-8:relu-10:softmax", seed=0)
    nnscratch.train(net, X, y, nnscratch.TrainConfig(epochs=3, batch_size=64, validation_size=40), callback=live)
    assert [kind for kind, _ in shown] == ["display", "update", "update"]
    assert all(isinstance(fig, Figure) for _, fig in shown)
    assert len(live.history) == 3 and live.figure is shown[-1][1]
    assert live.figure.get_suptitle() == "live"


def test_the_live_plot_shows_only_in_a_jupyter_kernel(monkeypatch):
    IPython = pytest.importorskip("IPython")

    class Shell:
        def __init__(self, config: dict) -> None:
            self.config = config

    for shell, shown in (
        (None, False),  # a script
        (Shell({"TerminalInteractiveShell": {}}), False),  # a terminal IPython: it would only print the repr
        (Shell({"IPKernelApp": {"connection_file": "kernel.json"}}), True),  # a Jupyter kernel
    ):
        monkeypatch.setattr(IPython, "get_ipython", lambda shell=shell: shell)
        assert (callbacks._notebook_display() is IPython.display.display) is shown


def test_the_live_plot_outside_a_notebook_keeps_the_figure_and_shows_nothing(data, capsys):
    X, y = data
    live = LivePlot(every=2)
    net = nnscratch.Network.from_spec("784-8:relu-10:softmax", seed=0)
    nnscratch.train(net, X, y, nnscratch.TrainConfig(epochs=3, batch_size=64, validation_size=40), callback=live)
    assert isinstance(live.figure, Figure) and len(live.history) == 3  # drawn at epoch 2 and again at the end
    assert capsys.readouterr() == ("", "")


@pytest.mark.parametrize("every", [0, -1, 1.5, True])
def test_the_live_plot_refuses_a_bad_interval(every):
    with pytest.raises(ValueError, match="every must be a positive number of epochs"):
        LivePlot(every=every)
