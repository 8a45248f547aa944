"""``nnscratch attack [MODEL...]``: the test accuracy under adversarial attack, at each ε, beside the clean one."""

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
    parser.add_argument(
        "models",
        metavar="MODEL",
        nargs="*",
        help="model files, each attacked the same way, side by side (a robustness study: one activation "
        "against another, an MLP against a convnet, with and without --adversarial training); default: the "
        "shipped reader",
    )
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
    parser.add_argument(
        "--plots",
        metavar="DIR",
        help="write to DIR a grid of the first model's attacked digits with their new labels (attacked.png) and "
        "every model's accuracy against ε (robustness.png)",
    )
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
    paths = args.models or [str(reader_path())]
    nets = [use_threads(Network.load(path) if args.models else load_reader(), args) for path in paths]
    data = load_data(args, quiet=args.json)
    for path, net in zip(paths, nets, strict=True):
        if data.n_features != net.n_in:
            raise ValueError(f"{path} expects {net.n_in} inputs but the test images have {data.n_features}")
    X, y = data.X_test[: args.images], data.y_test[: args.images]
    results, first_attacked = [], None
    for path, net in zip(paths, nets, strict=True):
        rows = []
        for epsilon in args.epsilon:
            started = time.perf_counter()
            attacked = attack(net, X, y, epsilon, args.method, steps=args.steps)
            seconds = time.perf_counter() - started
            rows.append({"epsilon": epsilon, "accuracy": accuracy(y, net.predict(attacked)), "seconds": seconds})
            if net is nets[0]:
                first_attacked = attacked  # the first model's digits at the last ε are the ones drawn
        results.append({"model": path, "clean_accuracy": accuracy(y, net.predict(X)), "attacked": rows})
    steps = args.steps if args.method == "pgd" else 1
    made = []
    if args.plots:
        from nnscratch.plots import attacked_digits, robustness, save_png

        assert first_attacked is not None
        title = (
            f"{args.method.upper()} at ε = {args.epsilon[-1]:g}: the digits and what {Path(paths[0]).name} reads now"
        )
        drawn = attacked_digits(X[:16], first_attacked[:16], y[:16], nets[0].predict(first_attacked[:16]), title=title)
        made.append(save_png(drawn, Path(args.plots) / "attacked.png"))
        made.append(save_png(robustness(results, method=args.method, steps=steps), Path(args.plots) / "robustness.png"))
    if args.json:
        summary = {"method": args.method, "steps": steps, "images": len(y), "models": results}
        print(json.dumps(summary, indent=2))
        return 0
    label = f" ({args.steps} steps)" if args.method == "pgd" else ""
    table = Table(title=f"test accuracy under {args.method.upper()}{label}, {len(y):,} test images")
    table.add_column("model")
    table.add_column("clean", justify="right")
    for epsilon in args.epsilon:
        table.add_column(f"ε = {epsilon:g}", justify="right")
    for result in results:
        cells = [percent(row["accuracy"]) for row in result["attacked"]]
        table.add_row(Path(result["model"]).name, percent(result["clean_accuracy"]), *cells)
    out.print(table)
    for path in made:
        out.print(f"wrote {path}")
    return 0
