"""Options and output helpers shared by several sub-commands."""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import sys
from collections.abc import Iterator
from typing import Any

from rich.console import Console

from nnscratch.data import ENV_DATA, Dataset, load_dataset
from nnscratch.errors import SpecError, echo
from nnscratch.parallel import MAX_THREADS
from nnscratch.training import MAX_EPOCHS

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        type=directory,
        metavar="DIR",
        help=f"directory with the MNIST IDX files (or mnist_train.csv/mnist_test.csv); default: ${ENV_DATA}, "
        "else a per-user cache that MNIST is downloaded to",
    )


def add_threads(parser: argparse.ArgumentParser) -> None:
    from nnscratch.parallel import ENV_THREADS, available_cores

    parser.add_argument(
        "--threads",
        type=thread_count,
        metavar="N",
        help=f"threads the network computes with (default: ${ENV_THREADS}, else every core: {available_cores()} "
        "here); results are the same for the same N, and differ between counts only in the last bits",
    )


def use_threads(net, args: argparse.Namespace):
    """``net`` set to compute with --threads, if given; returns it."""
    if getattr(args, "threads", None):
        net.threads = args.threads
    return net


def load_data(args: argparse.Namespace, *, quiet: bool = False) -> Dataset:
    if not quiet:
        err.print("[dim]loading data...[/dim]")
    return load_dataset(args.data_dir)


def _number(convert, accept, expected: str):
    """An argparse type: ``convert`` the text, then require ``accept(value)``; the message names ``expected``."""

    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {echo(text)}") from None
        if not accept(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {echo(text)}")
        return value

    return parse


positive_int = _number(int, lambda v: v >= 1, "a positive integer")
non_negative_int = _number(int, lambda v: v >= 0, "a non-negative integer")
epoch_count = _number(int, lambda v: 1 <= v <= MAX_EPOCHS, f"a positive integer up to {MAX_EPOCHS:,}")
port_number = _number(int, lambda v: 1 <= v <= 65535, "a port number from 1 to 65535")


def bounded_int(text: str, low: int, high: int, why: str) -> int:
    """``text`` as an integer from ``low`` to ``high`` (a bound only known when the option is read), or the
    argparse error that names the range and ``why`` it ends there."""
    return _number(int, lambda v: low <= v <= high, f"an integer from {low} to {high} ({why})")(text)


thread_count = _number(int, lambda v: 1 <= v <= MAX_THREADS, f"a number of threads from 1 to {MAX_THREADS}")
positive_float = _number(float, lambda v: 0.0 < v < math.inf, "a positive number")
non_negative_float = _number(float, lambda v: 0.0 <= v < math.inf, "a number >= 0")
probability = _number(float, lambda v: 0.0 <= v < 1.0, "a probability in [0, 1)")
share = _number(float, lambda v: 0.0 <= v <= 1.0, "a share in [0, 1]")
unit_interval = _number(float, lambda v: 0.0 <= v <= 1.0, "a number in [0, 1]")
shift_count = _number(int, lambda v: 1 <= v <= 9, "a number of shifts from 1 to 9")


def directory(text: str) -> str:
    """An argparse type for a directory option: a path that exists must be a directory (one that doesn't
    may still be created, or be reported by the command that needs it)."""
    if os.path.exists(text) and not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text} is a file, not a directory; give a directory")
    return text


def parallel_jobs(what: str):
    """An argparse type for how many ``what`` ("runs", "trials") run at a time: N >= 1, or -1 for one per core."""
    return _number(int, lambda v: v >= 1 or v == -1, f"a positive number of parallel {what} or -1 (one per core)")


def add_scheduler(group: argparse._ArgumentGroup, *, what: str, needs: str, here: str, implies: str = "") -> None:
    """--scheduler ADDRESS: send the ``what`` to a Dask cluster (see :func:`dask_backend`)."""
    group.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help=f"send the {what} to this Dask scheduler, e.g. tcp://10.0.0.5:8786 ({implies}every worker needs "
        f"{needs} installed; only this machine reads the data and {here})",
    )


@contextlib.contextmanager
def dask_backend(scheduler: str | None) -> Iterator[str | None]:
    """Inside the block, connected to the Dask scheduler at ``scheduler`` and yielding joblib's backend
    name for it, ``"dask"``; with no scheduler, yields None (joblib's own processes, on this machine)."""
    if not scheduler:
        yield None
        return
    try:
        from dask.distributed import Client
    except ImportError:
        raise SpecError("--scheduler needs Dask: pip install 'dask[distributed]'") from None
    with Client(scheduler):
        yield "dask"


@contextlib.contextmanager
def terminate_interrupts() -> Iterator[None]:
    """Inside the block SIGTERM stops the command as Ctrl-C does (KeyboardInterrupt): as cleanly."""
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def percent(value: float) -> str:
    return f"{100 * value:.2f}%"


def is_terminal() -> bool:
    return sys.stderr.isatty()


def add_network_options(parser: argparse.ArgumentParser, *, default_preset: str = "default") -> None:
    from nnscratch.activations import ACTIVATIONS
    from nnscratch.initializers import INITIALIZERS
    from nnscratch.presets import PRESETS
    from nnscratch.spec import GRAMMAR

    group = parser.add_argument_group("network")
    group.add_argument(
        "--preset",
        choices=list(PRESETS),
        default=None,
        help="a named network with its training recipe: "
        + "; ".join(f"{name}: {p.description}" for name, p in PRESETS.items()).replace("%", "%%")
        + f" (default: {default_preset})",
    )
    group.add_argument(
        "--spec",
        metavar="SPEC",
        help="the whole network as a spec, instead of the preset's: tokens joined by '-', the input first "
        f"(784, or CxHxW such as 1x28x28), then layers: {GRAMMAR} (a dense layer), and last the output layer "
        "CLASSES:softmax; e.g. 1x28x28-conv32k3-relu-maxpool2-conv64k3-relu-maxpool2-flatten-dropout0.5-10:softmax",
    )
    group.add_argument(
        "--hidden",
        metavar="LAYERS",
        help="an MLP's hidden layers as UNITS:ACTIVATION[,...], e.g. 128:relu,64:tanh (replaces the preset's); "
        f"activations: {', '.join(ACTIVATIONS)}",
    )
    group.add_argument(
        "--init",
        choices=list(INITIALIZERS),
        help="initialise every layer this way (default: matched to each activation; 'uniform' is the "
        "original notebook's ±0.3 for weights and biases)",
    )
    group.add_argument("--dtype", choices=["float32", "float64"], default="float32", help="default: float32")
    group.add_argument(
        "--seed", type=non_negative_int, default=0, help="random seed for weights and shuffling (default: 0)"
    )


def network_recipe(
    args: argparse.Namespace, training: dict[str, Any] | None = None, *, default_preset: str = "default"
):
    """The :class:`~nnscratch.recipe.Recipe` of --preset/--spec/--hidden/--init/--dtype/--seed, with the
    ``training`` options given (by TrainConfig field; the preset fills the rest); checked whole before any
    data is read: a malformed or contradictory --spec/--hidden, or a network that cannot fit in memory."""
    from nnscratch.recipe import Recipe

    network = {"spec": args.spec, "hidden": args.hidden, "init": args.init, "dtype": args.dtype, "seed": args.seed}
    return Recipe.of({"preset": args.preset or default_preset, **network, **(training or {})})
