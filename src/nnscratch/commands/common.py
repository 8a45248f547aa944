"""Options and output helpers shared by several sub-commands."""

from __future__ import annotations

import argparse
import math
import os
import sys

from rich.console import Console

from nnscratch.data import ENV_DATA, Dataset, load_dataset

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
        type=positive_int,
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
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not accept(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return parse


MAX_EPOCHS = 1_000_000  # some 20 years of the default MLP's epochs: anything larger is a typo

positive_int = _number(int, lambda v: v >= 1, "a positive integer")
non_negative_int = _number(int, lambda v: v >= 0, "a non-negative integer")
epoch_count = _number(int, lambda v: 1 <= v <= MAX_EPOCHS, f"a positive integer up to {MAX_EPOCHS:,}")
port_number = _number(int, lambda v: 1 <= v <= 65535, "a port number from 1 to 65535")
positive_float = _number(float, lambda v: 0.0 < v < math.inf, "a positive number")
non_negative_float = _number(float, lambda v: 0.0 <= v < math.inf, "a number >= 0")
probability = _number(float, lambda v: 0.0 <= v < 1.0, "a probability in [0, 1)")


def directory(text: str) -> str:
    """An argparse type for a directory option: a path that exists must be a directory (one that doesn't
    may still be created, or be reported by the command that needs it)."""
    if os.path.exists(text) and not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text} is a file, not a directory; give a directory")
    return text


def percent(value: float) -> str:
    return f"{100 * value:.2f}%"


def is_terminal() -> bool:
    return sys.stderr.isatty()


def add_network_options(parser: argparse.ArgumentParser, *, default_preset: str = "default") -> None:
    from nnscratch.activations import ACTIVATIONS
    from nnscratch.initializers import INITIALIZERS
    from nnscratch.presets import PRESETS

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
        "(784, or CxHxW such as 1x28x28), then conv{F}k{K}[s{S}][p{P}], maxpool{K}, bn, flatten, dropout{P}, "
        "an activation, or a dense layer UNITS[:ACTIVATION], and last the output layer CLASSES:softmax; e.g. "
        "1x28x28-conv32k3-relu-maxpool2-conv64k3-relu-maxpool2-flatten-dropout0.5-10:softmax",
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


def chosen_preset(args: argparse.Namespace, *, default_preset: str = "default"):
    from nnscratch.presets import get_preset

    return get_preset(args.preset or default_preset)


def check_network_options(args: argparse.Namespace, *, default_preset: str = "default") -> None:
    """Refuse a malformed or contradictory --spec/--hidden before any data is read."""
    from nnscratch.errors import SpecError
    from nnscratch.network import Network
    from nnscratch.spec import parse_hidden

    if args.spec is not None and args.hidden is not None:
        raise SpecError("give either --spec (the whole network) or --hidden (an MLP's hidden layers), not both")
    if args.spec is not None:
        # the grammar, every layer against the shape it meets, and the memory it needs: shapes only, no arrays
        Network.check_spec(args.spec, dtype=getattr(args, "dtype", "float32"))
    if args.hidden is not None:
        parse_hidden(args.hidden)
        if chosen_preset(args, default_preset=default_preset).convolutional:
            raise SpecError(
                f"--hidden replaces an MLP's hidden layers, but the {args.preset} preset is a convnet; "
                "write the whole network with --spec"
            )


def network_spec(args: argparse.Namespace, n_features: int, n_classes: int, *, default_preset: str = "default") -> str:
    """The spec of the network --preset, --spec and --hidden describe, for data of that shape."""
    from nnscratch.spec import parse_hidden

    check_network_options(args, default_preset=default_preset)
    if args.spec is not None:
        return args.spec
    preset = chosen_preset(args, default_preset=default_preset)
    if args.hidden is None:
        return preset.spec(n_features, n_classes)
    middle = "-".join(str(layer) for layer in parse_hidden(args.hidden))
    return preset.spec(n_features, n_classes, layers=middle)


def build_network(args: argparse.Namespace, n_features: int, n_classes: int, *, default_preset: str = "default"):
    """The network of --preset/--spec/--hidden/--init for data of ``n_features`` values and ``n_classes`` classes."""
    from nnscratch.errors import SpecError
    from nnscratch.layers import shape_text
    from nnscratch.network import Network
    from nnscratch.spec import parse_spec

    spec = network_spec(args, n_features, n_classes, default_preset=default_preset)
    init = args.init or chosen_preset(args, default_preset=default_preset).init
    # Checked against the data from the parsed shapes alone, before any array exists.
    input_shape, layers = parse_spec(spec)
    n_in, classes = math.prod(input_shape), layers[-1].units  # type: ignore[attr-defined]
    if n_in != n_features:
        side = math.isqrt(n_features)
        square = f" or 1x{side}x{side}" if side * side == n_features else ""
        raise SpecError(
            f"the network's input {shape_text(input_shape)} ({n_in} values) does not match the data's "
            f"{n_features} values per image; start the spec with {n_features}{square}"
        )
    if classes != n_classes:
        raise SpecError(
            f"the network ends in {classes} classes but the data has {n_classes}; end the spec in {n_classes}:softmax"
        )
    return Network(input_shape, layers, seed=args.seed, dtype=args.dtype, init=init)
