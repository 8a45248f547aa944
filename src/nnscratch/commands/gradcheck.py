"""``nnscratch gradcheck``: analytic against numeric gradients for every layer of a network."""

from __future__ import annotations

import argparse

import numpy as np
from rich.table import Table

from nnscratch.commands.common import (
    add_network_options,
    add_threads,
    network_recipe,
    non_negative_float,
    out,
    positive_int,
    use_threads,
)
from nnscratch.gradcheck import DEFAULT_TOLERANCE, check_gradients
from nnscratch.network import Network

# Below this many parameters every one is checked by default; above it, a sample per array.
CHECK_ALL_UP_TO = 100_000
SAMPLE = 1000


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "gradcheck",
        help="check every layer's gradient against finite differences",
        description="Compare the back-propagated gradient of every trainable array of every layer (W and b of "
        "dense and convolutional layers, γ and β of batch norm) with central finite differences in float64, on "
        "random inputs, and report the relative error per array. Dropout layers draw the same masks for every "
        "evaluation, so they are checked too. Exits with 1 if any array fails.",
    )
    add_network_options(parser, default_preset="seed")
    parser.set_defaults(dtype="float64")
    parser.add_argument(
        "--inputs", type=positive_int, default=784, help="input size of a preset or --hidden network (default: 784)"
    )
    parser.add_argument(
        "--classes", type=positive_int, default=10, help="classes of a preset or --hidden network (default: 10)"
    )
    parser.add_argument("--samples", type=positive_int, default=8, help="batch size of the check (default: 8)")
    parser.add_argument("--l2", type=non_negative_float, default=0.0, help="include an L2 term λ (default: 0)")
    parser.add_argument(
        "--max-entries",
        type=positive_int,
        metavar="N",
        help=f"perturb at most N random entries per array (default: all when the network has at most "
        f"{CHECK_ALL_UP_TO:,} parameters, else {SAMPLE})",
    )
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE, help="pass below this relative error")
    add_threads(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    recipe = network_recipe(args, default_preset="seed")
    if args.spec is not None:  # the spec says its own input and classes
        net = Network.from_spec(args.spec, seed=args.seed, dtype=args.dtype, init=args.init)
    else:
        net = recipe.network(args.inputs, args.classes)
    use_threads(net, args)
    net.footprint.check_batch(args.samples, smaller="fewer --samples")  # before the inputs: they may not fit
    rng = np.random.default_rng(args.seed)
    X = rng.random((args.samples, net.n_in))
    y = rng.integers(0, net.n_classes, args.samples)
    max_entries = args.max_entries
    if max_entries is None and net.n_params > CHECK_ALL_UP_TO:
        max_entries = SAMPLE
    results = check_gradients(net, X, y, l2=args.l2, max_entries=max_entries, tolerance=args.tolerance, seed=args.seed)
    table = Table(title=f"gradient check of {net.spec} ({net.dtype.name}, {args.samples} samples)")
    for name in ("layer", "kind", "param", "shape", "checked", "relative error", "result"):
        table.add_column(name, justify="right" if name in ("layer", "checked", "relative error") else "left")
    for r in results:
        verdict = "[green]pass[/green]" if r.passed else "[red]FAIL[/red]"
        if r.passed and r.relative_error > r.tolerance:
            verdict = "[green]pass[/green] (≈ 0)"
        layer = net.layers[r.layer]
        kind = layer.token if r.layer < len(net.layers) - 1 else f"{layer.token.split(':')[0]}:output"
        shape = "×".join(map(str, r.shape))
        table.add_row(str(r.layer + 1), kind, r.name, shape, f"{r.checked:,}", f"{r.relative_error:.2e}", verdict)
    out.print(table)
    failed = [r for r in results if not r.passed]
    if failed:
        out.print(f"[red]{len(failed)} of {len(results)} gradient arrays FAILED[/red] (tolerance {args.tolerance:g})")
        return 1
    out.print(f"all {len(results)} gradient arrays pass (relative error < {args.tolerance:g})")
    return 0
