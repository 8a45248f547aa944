"""Options and output helpers shared by several sub-commands."""

from __future__ import annotations

import argparse
import math
import sys

from rich.console import Console

from nnscratch.data import ENV_DATA, Dataset, load_dataset

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        help=f"directory with the MNIST IDX files (or mnist_train.csv/mnist_test.csv); default: ${ENV_DATA}, "
        "else a per-user cache that MNIST is downloaded to",
    )


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


positive_int = _number(int, lambda v: v >= 1, "a positive integer")
non_negative_int = _number(int, lambda v: v >= 0, "an integer >= 0")
positive_float = _number(float, lambda v: 0.0 < v < math.inf, "a positive number")
non_negative_float = _number(float, lambda v: 0.0 <= v < math.inf, "a number >= 0")
probability = _number(float, lambda v: 0.0 <= v < 1.0, "a probability in [0, 1)")


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
        "--hidden",
        metavar="SPEC",
        help="hidden layers as UNITS:ACTIVATION[,...], e.g. 128:relu,64:tanh (overrides the preset's); "
        f"activations: {', '.join(ACTIVATIONS)}",
    )
    group.add_argument(
        "--init",
        choices=list(INITIALIZERS),
        help="initialise every layer this way (default: matched to each activation; 'uniform' is the "
        "original notebook's ±0.3 for weights and biases)",
    )
    group.add_argument("--dtype", choices=["float32", "float64"], default="float32", help="default: float32")
    group.add_argument("--seed", type=int, default=0, help="random seed for weights and shuffling (default: 0)")


def network_layers(args: argparse.Namespace, *, default_preset: str = "default"):
    """(preset, hidden LayerSpecs, init) from --preset/--hidden/--init."""
    from nnscratch.network import parse_hidden
    from nnscratch.presets import get_preset

    preset = get_preset(args.preset or default_preset)
    hidden = parse_hidden(args.hidden if args.hidden is not None else preset.hidden)
    return preset, hidden, args.init or preset.init


def build_network(args: argparse.Namespace, n_in: int, n_classes: int, *, default_preset: str = "default"):
    from nnscratch.network import LayerSpec, Network

    _, hidden, init = network_layers(args, default_preset=default_preset)
    layers = [*hidden, LayerSpec(n_classes, "softmax")]
    return Network.from_layers(n_in, layers, seed=args.seed, dtype=args.dtype, init=init)
