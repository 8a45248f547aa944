"""Ready-made callbacks: a progress bar with the epoch's metrics, and learning curves redrawn in place.

Pass one or several to :func:`nnscratch.train` (``callback=[ProgressBar(), LivePlot()]``).  Both are
made for Jupyter and work in a script too: the bar is tqdm's (a widget in a notebook with ipywidgets
installed, text elsewhere), and the plot is a matplotlib Figure that a notebook redraws after every
epoch and a script can save (``plots.save_png(live.figure, "curves.png")``).  Training itself prints
nothing; these are how a user asks it to show its progress.
"""

from __future__ import annotations

import math
from typing import IO, Any

from nnscratch.network import Network
from nnscratch.training import Callback, EpochRecord, History

__all__ = ["LivePlot", "ProgressBar"]


def metrics(record: EpochRecord) -> dict[str, str]:
    """An epoch's figures as short strings, the validation ones when there is a validation split."""
    shown = {"loss": f"{record.train_loss:.4f}", "acc": f"{100 * record.train_accuracy:.2f}%"}
    if math.isfinite(record.val_loss):
        shown |= {"val_loss": f"{record.val_loss:.4f}", "val_acc": f"{100 * record.val_accuracy:.2f}%"}
    return shown


class ProgressBar(Callback):
    """One progress bar per epoch: the batches done and the running mean of the loss, then the epoch's
    loss, accuracy and validation figures once it ends (as Keras's ``fit`` shows them).

    ``file`` is where a text bar is written (default: standard error); ``leave=False`` clears each
    epoch's bar when it ends.  In Jupyter, with ipywidgets installed, the bar is a widget.
    """

    def __init__(self, *, leave: bool = True, file: IO[str] | None = None) -> None:
        self.leave, self.file = leave, file
        self.bar: Any = None
        self.n_epochs = self.n_batches = 0
        self.loss_sum, self.seen = 0.0, 0

    def on_train_begin(self, n_epochs: int, n_batches: int) -> None:
        self.n_epochs, self.n_batches = n_epochs, n_batches

    def on_batch_end(self, epoch: int, batch: int, loss: float) -> None:
        if self.bar is None:
            self._open(epoch)
        self.loss_sum, self.seen = self.loss_sum + loss, self.seen + 1
        self.bar.set_postfix(loss=f"{self.loss_sum / self.seen:.4f}", refresh=False)
        self.bar.update(1)

    def on_epoch_end(self, net: Network, record: EpochRecord) -> None:
        if self.bar is None:  # an epoch of no batches cannot happen, but a bar is cheap to open
            self._open(record.epoch - 1)
        self.bar.set_postfix(metrics(record), refresh=False)
        self.bar.close()
        self.bar = None

    def on_train_end(self, history: History) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def _open(self, epoch: int) -> None:
        from tqdm.auto import tqdm

        width = len(str(self.n_epochs))
        self.bar = tqdm(
            total=self.n_batches,
            desc=f"epoch {epoch + 1:>{width}}/{self.n_epochs}",
            unit="batch",
            leave=self.leave,
            file=self.file,
            mininterval=0.25,
        )
        self.loss_sum, self.seen = 0.0, 0


class LivePlot(Callback):
    """The learning curves (loss, accuracy and error rate; training dashed, validation solid), redrawn
    in place after every ``every`` epochs and at the end.

    In Jupyter the figure is shown once under the cell and updated; anywhere else (a script, a terminal
    IPython) nothing is shown, and ``live.figure`` is the latest figure, ``live.history`` the epochs so far.
    """

    def __init__(self, *, title: str = "Learning curves", every: int = 1) -> None:
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise ValueError(f"every must be a positive number of epochs, got {every!r}")
        self.title, self.every = title, every
        self.history = History()
        self.figure: Any = None
        self.handle: Any = None

    def on_train_begin(self, n_epochs: int, n_batches: int) -> None:
        self.history = History()
        self.handle = None

    def on_epoch_end(self, net: Network, record: EpochRecord) -> None:
        self.history.epochs.append(record)
        if len(self.history) % self.every == 0:
            self._draw()

    def on_train_end(self, history: History) -> None:
        if len(self.history) % self.every != 0 or self.figure is None:
            self._draw()

    def _draw(self) -> None:
        self.figure = self.history.plot(title=self.title)
        shell = _notebook_display()
        if shell is None:
            return
        if self.handle is None:
            self.handle = shell(self.figure, display_id=True)
        else:
            self.handle.update(self.figure)


def _notebook_display() -> Any:
    """IPython's ``display`` when running in a Jupyter kernel (a notebook, JupyterLab, VS Code, Colab), else
    None: a terminal IPython would only print the figure's repr."""
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        return None
    shell = get_ipython()
    return display if shell is not None and "IPKernelApp" in shell.config else None
