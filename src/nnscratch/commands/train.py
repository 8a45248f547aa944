"""``nnscratch train``: train a network on MNIST (or any dataset in its form) and save it."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from nnscratch.commands.common import (
    add_data_dir,
    add_network_options,
    build_network,
    err,
    load_data,
    network_layers,
    non_negative_float,
    non_negative_int,
    out,
    percent,
    positive_float,
    positive_int,
)
from nnscratch.network import Network
from nnscratch.optimizers import OPTIMIZER_NAMES
from nnscratch.schedules import SCHEDULES
from nnscratch.training import Callback, EpochRecord, TrainConfig, evaluate, train


def batch_size(text: str) -> int | None:
    if text.strip().lower() == "full":
        return None
    return positive_int(text)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a network on MNIST and save it",
        description="Train a network on MNIST (downloaded on first use) and save it to model.npz. "
        "Options not given come from the preset.",
    )
    add_network_options(parser)
    group = parser.add_argument_group("training")
    group.add_argument("--optimizer", choices=OPTIMIZER_NAMES, help="default: from the preset (adam)")
    group.add_argument("--lr", type=positive_float, metavar="RATE", help="learning rate (default: from the preset)")
    group.add_argument("--momentum", type=non_negative_float, default=0.9, help="for momentum/nesterov (default: 0.9)")
    group.add_argument("--schedule", choices=SCHEDULES, help="learning-rate schedule (default: from the preset)")
    group.add_argument("--epochs", type=positive_int, help="default: from the preset")
    group.add_argument(
        "--batch-size", type=batch_size, metavar="N|full", default=argparse.SUPPRESS,
        help="mini-batch size, or 'full' for full-batch gradient descent (default: from the preset)",
    )
    group.add_argument("--l2", type=non_negative_float, default=0.0, help="L2 weight decay λ (default: 0)")
    group.add_argument(
        "--validation-size", type=non_negative_int, metavar="N",
        help="training images held out for validation (default: 5000, at most 10%% of the training set)",
    )
    group.add_argument(
        "--early-stopping", type=positive_int, metavar="PATIENCE",
        help="stop after PATIENCE epochs without a better validation loss and keep the best weights",
    )
    add_data_dir(parser)
    parser.add_argument("--output", "-o", default="model.npz", metavar="PATH", help="where to save (default: model.npz)")
    parser.add_argument("--quiet", "-q", action="store_true", help="print only the final result")
    parser.set_defaults(run=run)


def make_config(args: argparse.Namespace) -> TrainConfig:
    preset, _, _ = network_layers(args)
    recipe = dict(preset.training)
    given = {
        "optimizer": args.optimizer,
        "learning_rate": args.lr,
        "schedule": args.schedule,
        "epochs": args.epochs,
    }
    recipe.update({key: value for key, value in given.items() if value is not None})
    if hasattr(args, "batch_size"):
        recipe["batch_size"] = args.batch_size
    return TrainConfig(
        **recipe,
        momentum=args.momentum,
        l2=args.l2,
        validation_size=args.validation_size,
        early_stopping=args.early_stopping,
        seed=args.seed,
    )


class ProgressCallback(Callback):
    """A progress bar over the batches of each epoch and one line per finished epoch."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress
        self.task = None

    def on_train_begin(self, n_epochs: int, n_batches: int) -> None:
        self.n_epochs, self.n_batches = n_epochs, n_batches
        if self.progress:
            self.task = self.progress.add_task("epoch 1", total=n_batches)

    def on_batch_end(self, epoch: int, batch: int, loss: float) -> None:
        if self.progress and self.task is not None and (batch % 20 == 0 or batch + 1 == self.n_batches):
            self.progress.update(self.task, completed=batch + 1, description=f"epoch {epoch + 1}/{self.n_epochs}")

    def on_epoch_end(self, net: Network, record: EpochRecord) -> None:
        line = (
            f"epoch {record.epoch:>3}/{self.n_epochs}  loss {record.train_loss:.4f}  "
            f"acc {percent(record.train_accuracy)}"
        )
        if record.val_loss == record.val_loss:  # not NaN: there is a validation set
            line += f"  val_loss {record.val_loss:.4f}  val_acc {percent(record.val_accuracy)}"
        line += f"  {record.seconds:.2f}s"
        if self.progress:
            self.progress.console.print(line)
            if self.task is not None:
                self.progress.reset(self.task)
        else:
            out.print(line)


def run(args: argparse.Namespace) -> int:
    config = make_config(args)
    output = Path(args.output)
    if not output.parent.is_dir():
        raise FileNotFoundError(2, "directory does not exist; create it or choose another --output", str(output.parent))
    started = time.perf_counter()
    data = load_data(args, quiet=args.quiet)
    net = build_network(args, data.n_features, data.n_classes)
    if not args.quiet:
        batch = "full" if config.batch_size is None else config.batch_size
        out.print(
            f"network {net.spec} ({net.n_params:,} parameters, {net.dtype.name})\n"
            f"training {config.epochs} epochs, {config.optimizer} lr {config.learning_rate:g} "
            f"({config.schedule}), batch {batch}, on "
            f"{data.X_train.shape[0] - config.validation_count(data.X_train.shape[0]):,} images"
        )
    if args.quiet:
        history = train(net, data.X_train, data.y_train, config)
    else:
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, console=err, transient=True) as progress:
            history = train(net, data.X_train, data.y_train, config, callback=ProgressCallback(progress))
    test_loss, test_acc = evaluate(net, data.X_test, data.y_test)
    wall = time.perf_counter() - started
    net.metadata = {
        "config": {**config.__dict__},
        "history": history.to_dict(),
        "test_accuracy": test_acc,
        "test_loss": test_loss,
        "data": data.source,
        "seconds": wall,
        "preset": args.preset or "default",
    }
    net.save(output)
    stopped = f" (early stop, best epoch {history.best_epoch})" if history.stopped_early else ""
    out.print(
        f"test accuracy {percent(test_acc)}  test loss {test_loss:.4f}  "
        f"({len(history)} epochs{stopped}, {history.seconds:.1f}s training, {wall:.1f}s in all)"
    )
    out.print(f"saved {output}")
    return 0
