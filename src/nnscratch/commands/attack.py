"""``nnscratch attack [MODEL]``: the test accuracy under adversarial attack, at each ε, beside the clean one."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from rich.table import Table

from nnscratch.attack import MAX_STEPS, METHODS, PGD_STEPS, attack, check_epsilon
from nnscratch.commands.common import add_data_dir, add_threads, load_data, out, percent, positive_int, use_threads
from nnscratch.io import check_output_dir
from nnscratch.metrics import accuracy
from nnscratch.network import Network


def epsilons(text: str) -> list[float]:
    """An argparse type: a comma-separated list of ε, each in [0, 1]."""
    values = []
    for part in text.split(","):
        try:
            values.append(check_epsilon(float(part)))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected numbers in [0, 1] separated by commas, such as 0.05,0.1,0.2; got {part.strip()[:40]!r}"
            ) from None
    return values


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "attack",
        help="measure the test accuracy under adversarial attack",
        description="Attack every test image with FGSM (one step of ε times the sign of the loss's input "
        "gradient) or PGD (N projected steps within ε of the image), and report the accuracy at each ε beside "
        "the clean accuracy. Every pixel moves by at most ε and stays in [0, 1]. Without a MODEL, the reader "
        "that ships with nnscratch is attacked.",
    )
    parser.add_argument("model", metavar="MODEL", nargs="?", help="a model file (default: the shipped reader)")
    parser.add_argument(
        "--epsilon", type=epsilons, default=[0.05, 0.1, 0.2], metavar="E[,E...]", help="default: 0.05,0.1,0.2"
    )
    parser.add_argument("--method", choices=METHODS, default="fgsm", help="default: fgsm")
    parser.add_argument(
        "--steps",
        type=positive_int,
        default=PGD_STEPS,
        help=f"PGD's steps, each of 2.5·ε/steps (default {PGD_STEPS}, at most {MAX_STEPS:,})",
    )
    parser.add_argument(
        "--images", type=positive_int, metavar="N", help="attack the first N test images (default: all)"
    )
    add_data_dir(parser)
    parser.add_argument("--plots", metavar="DIR", help="write a grid of attacked digits with their new labels to DIR")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    add_threads(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from nnscratch.reader import load_reader, reader_path

    if args.plots is not None:
        check_output_dir(args.plots, "--plots")
        Path(args.plots).mkdir(parents=True, exist_ok=True)
    if args.steps > MAX_STEPS:
        raise ValueError(f"--steps must be at most {MAX_STEPS:,}, got {args.steps}")
    net = Network.load(args.model) if args.model else load_reader()
    use_threads(net, args)
    data = load_data(args, quiet=args.json)
    if data.n_features != net.n_in:
        raise ValueError(f"the model expects {net.n_in} inputs but the test images have {data.n_features}")
    X, y = data.X_test[: args.images], data.y_test[: args.images]
    clean = accuracy(y, net.predict(X))
    rows, attacked = [], None
    for epsilon in args.epsilon:
        started = time.perf_counter()
        attacked = attack(net, X, y, epsilon, args.method, steps=args.steps)
        rows.append(
            {
                "epsilon": epsilon,
                "accuracy": accuracy(y, net.predict(attacked)),
                "seconds": time.perf_counter() - started,
            }
        )
    made = None
    if args.plots and attacked is not None:
        from nnscratch.plots import attacked_digits

        made = attacked_digits(
            X[:16],
            attacked[:16],
            y[:16],
            net.predict(attacked[:16]),
            Path(args.plots) / "attacked.png",
            title=f"{args.method.upper()} at ε = {args.epsilon[-1]:g}: the digits and what the network reads now",
        )
    model = args.model or str(reader_path())
    if args.json:
        print(
            json.dumps(
                {
                    "model": model,
                    "method": args.method,
                    "steps": args.steps if args.method == "pgd" else 1,
                    "images": len(y),
                    "clean_accuracy": clean,
                    "attacked": rows,
                },
                indent=2,
            )
        )
        return 0
    steps = f" ({args.steps} steps)" if args.method == "pgd" else ""
    table = Table(title=f"{args.method.upper()}{steps} on {len(y):,} test images of {model}")
    for name in ("ε", "accuracy", "seconds"):
        table.add_column(name, justify="right")
    table.add_row("0 (clean)", percent(clean), "")
    for row in rows:
        table.add_row(f"{row['epsilon']:g}", percent(row["accuracy"]), f"{row['seconds']:.1f}")
    out.print(table)
    if made:
        out.print(f"wrote {made}")
    return 0
