"""``nnscratch compare``: the activation study, with a table, results.json and a report with plots."""

from __future__ import annotations

import argparse
import base64
import html
import json
import time
from pathlib import Path

import numpy as np
from rich.table import Table

from nnscratch.commands.common import add_data_dir, err, load_data, out, positive_float, positive_int
from nnscratch.io import atomic_write
from nnscratch.study import VARIANTS, StudySettings, run_study, summarise


def float_list(text: str) -> tuple[float, ...]:
    try:
        return tuple(positive_float(t) for t in text.split(","))
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive numbers, got {text!r}") from None


def int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(positive_int(t) for t in text.split(","))
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}") from None


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="compare the activations on one architecture",
        description="Train one architecture with each hidden activation (relu, sigmoid, tanh, selu, softmax) and "
        "the original mixed stack (seed), on the same budget and several seeds, and report accuracy, losses, "
        "speed and the diagnostics that explain the differences (dead ReLU units, saturated sigmoid/tanh units, "
        "gradient norms, activation statistics). Finished runs are cached in OUTPUT/cache, so an interrupted "
        "study resumes where it stopped.",
    )
    parser.add_argument(
        "--widths", type=int_list, default=(32, 32, 64, 64), help="hidden widths (default: 32,32,64,64)"
    )
    parser.add_argument("--epochs", type=positive_int, default=10, help="epochs per run (default: 10)")
    parser.add_argument("--seeds", type=positive_int, default=3, help="seeds per variant (default: 3)")
    parser.add_argument("--optimizer", default="adam", choices=["sgd", "momentum", "nesterov", "adam"])
    parser.add_argument(
        "--schedule",
        default="wsd",
        choices=["constant", "step", "cosine", "wsd"],
        help="learning-rate schedule (default: wsd)",
    )
    parser.add_argument("--lr", type=positive_float, default=1e-3, help="learning rate (default: 1e-3)")
    parser.add_argument(
        "--lrs",
        type=float_list,
        metavar="RATES",
        help="learning-rate sweep, e.g. 1e-3,3e-3,1e-2: each variant is reported at its best rate",
    )
    parser.add_argument("--batch-size", type=positive_int, default=128, help="default: 128")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"subset of {','.join(VARIANTS)}")
    parser.add_argument("--jobs", type=int, default=-1, help="parallel runs (default: -1, one per core)")
    parser.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run on a Dask cluster (joblib's dask backend) at this scheduler address, e.g. tcp://10.0.0.5:8786",
    )
    parser.add_argument("--output", "-o", default="compare", metavar="DIR", help="results directory (default: compare)")
    add_data_dir(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    variants = tuple(v.strip() for v in args.variants.split(",") if v.strip())
    settings = StudySettings(
        widths=args.widths,
        epochs=args.epochs,
        optimizer=args.optimizer,
        batch_size=args.batch_size,
        seeds=args.seeds,
        learning_rates=args.lrs or (args.lr,),
    )
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    data = load_data(args)
    runs_total = len(variants) * settings.seeds * len(settings.learning_rates)
    err.print(
        f"{runs_total} runs ({len(variants)} variants × {settings.seeds} seeds × "
        f"{len(settings.learning_rates)} learning rates), {settings.epochs} epochs each; cache: {output / 'cache'}"
    )
    started = time.perf_counter()
    kwargs = dict(cache_dir=output / "cache", variants=variants, n_jobs=args.jobs)
    if args.scheduler:
        from dask.distributed import Client

        with Client(args.scheduler):
            runs = run_study(settings, data.X_train, data.y_train, data.X_test, data.y_test, backend="dask", **kwargs)
    else:
        runs = run_study(settings, data.X_train, data.y_train, data.X_test, data.y_test, **kwargs)
    summary = summarise(runs)
    table = summary_table(summary)
    out.print(table, width=max(out.width, 160))
    write_results(output, settings, summary, runs)
    write_report(output, settings, summary, runs, data.X_test, data.y_test)
    out.print(
        f"wrote {output / 'results.json'}, {output / 'table.txt'} and {output / 'report.html'} "
        f"in {time.perf_counter() - started:.0f}s"
    )
    return 0


def _pct(x) -> str:
    return "—" if x is None else f"{100 * x:.0f}%"


def summary_table(summary: list[dict]) -> Table:
    table = Table(title="activation study (mean over seeds, at each variant's best learning rate)")
    for name in (
        "variant",
        "lr",
        "test accuracy",
        "train loss",
        "val loss",
        "epochs to 97% val",
        "s/epoch",
        "dead ReLU units",
        "saturated activations",
        "‖dW₁‖ epoch 1 → last",
        "activation std per layer",
    ):
        table.add_column(name, justify="left" if name == "variant" else "right")
    for s in summary:
        reached = ", ".join("never" if e is None else str(e) for e in s["epochs_to_97"])
        dead = [d for d in s["dead"] if d is not None]
        saturated = [d for d in s["saturated"] if d is not None]
        table.add_row(
            s["variant"],
            f"{s['learning_rate']:g}",
            f"{100 * s['test_accuracy_mean']:.2f} ± {100 * s['test_accuracy_std']:.2f}%",
            f"{s['train_loss']:.4f}",
            f"{s['val_loss']:.4f}",
            reached,
            f"{s['seconds_per_epoch']:.2f}",
            _pct(max(dead)) if dead else "—",
            _pct(max(saturated)) if saturated else "—",
            f"{s['grad_norm_first_epoch'][0]:.3g} → {s['grad_norm_last_epoch'][0]:.3g}",
            " ".join(f"{v:.2f}" for v in s["activation_std"]),
        )
    return table


def write_results(output: Path, settings: StudySettings, summary: list[dict], runs: list[dict]) -> None:
    from rich.console import Console

    slim_runs = [{k: v for k, v in r.items() if k not in ("model", "histograms")} for r in runs]
    document = {"settings": settings.__dict__, "variants": summary, "runs": slim_runs}
    atomic_write(output / "results.json", lambda f: f.write(json.dumps(document, indent=1).encode()))
    console = Console(record=True, width=200, file=open("/dev/null", "w"))  # noqa: SIM115 - render only
    console.print(summary_table(summary))
    atomic_write(output / "table.txt", lambda f: f.write(console.export_text().encode()))


def write_report(output: Path, settings: StudySettings, summary: list[dict], runs: list[dict], X_test, y_test) -> None:
    from nnscratch import plots
    from nnscratch.metrics import confusion_matrix

    images = output / "plots"
    images.mkdir(exist_ok=True)
    first = {r["variant"]: r for r in runs if r["seed"] == 0 and r["learning_rate"] == _best(summary, r["variant"])}
    variants = [s["variant"] for s in summary]
    made = [
        (
            "Learning curves of every variant (seed 0)",
            plots.learning_curves(
                {v: first[v]["history"] for v in variants},
                images / "learning_curves_overlay.png",
                title="Learning curves, all variants (seed 0)",
            ),
        ),
    ]
    for v in variants:
        group = {
            f"seed {r['seed']}": r["history"]
            for r in runs
            if r["variant"] == v and r["learning_rate"] == _best(summary, v)
        }
        made.append(
            (
                f"Learning curves: {v}, every seed",
                plots.learning_curves(group, images / f"learning_curves_{v}.png", title=f"Learning curves: {v}"),
            )
        )
    activations = sorted(
        {a for v in variants for a in ([v] if v != "seed" else ["relu", "sigmoid", "selu", "tanh"])},
        key=["relu", "sigmoid", "tanh", "selu", "softmax"].index,
    )
    made.append(
        ("Each activation and its derivative", plots.activation_functions(activations, images / "activations.png"))
    )
    made.append(
        (
            "Gradient norm per layer per epoch (seed 0)",
            plots.gradient_norms({v: first[v]["grad_norms"] for v in variants}, images / "gradient_norms.png"),
        )
    )
    for v in variants:
        made.append(
            (
                f"Activation histograms: {v} (seed 0, after training)",
                plots.activation_histograms(
                    first[v]["histograms"], images / f"histograms_{v}.png", title=f"Activation histograms: {v}"
                ),
            )
        )
    shown = "seed" if "seed" in first else variants[0]
    model = first[shown]["model"]
    predicted, confidence = np.asarray(model["predicted"]), np.asarray(model["confidence"])
    P = np.zeros((len(predicted), int(max(predicted.max(), y_test.max())) + 1))
    P[np.arange(len(predicted)), predicted] = confidence
    made.append(
        (
            f"Confusion matrix: {shown} (seed 0)",
            plots.confusion(
                confusion_matrix(y_test, predicted, P.shape[1]),
                images / "confusion_matrix.png",
                title=f"Confusion matrix: {shown}",
            ),
        )
    )
    made.append(
        (
            f"Most confidently wrong test digits: {shown} (seed 0)",
            plots.confident_mistakes(X_test, y_test, P, images / "confident_mistakes.png"),
        )
    )
    made.append(
        (
            f"First-layer weights: {shown} (seed 0)",
            plots.first_layer_weights(np.asarray(model["first_layer"]), images / "first_layer_weights.png"),
        )
    )

    from rich.console import Console

    console = Console(record=True, width=200, file=open("/dev/null", "w"))  # noqa: SIM115 - render only
    console.print(summary_table(summary))
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>nnscratch activation study</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:1200px;margin:2rem auto;padding:0 1rem;color:#1e293b}"
        "pre{background:#f1f5f9;padding:1rem;overflow-x:auto;font-size:12px}"
        "img{max-width:100%;border:1px solid #e2e8f0}"
        "h2{margin-top:2.5rem}</style></head><body>",
        "<h1>nnscratch activation study</h1>",
        f"<p>Settings: {html.escape(json.dumps(settings.__dict__))}</p>",
        f"<pre>{html.escape(console.export_text())}</pre>",
    ]
    for title, path in made:
        encoded = base64.b64encode(path.read_bytes()).decode()
        parts.append(
            f"<h2>{html.escape(title)}</h2><img alt='{html.escape(title)}' src='data:image/png;base64,{encoded}'>"
        )
    parts.append("</body></html>")
    atomic_write(output / "report.html", lambda f: f.write("".join(parts).encode()))


def _best(summary: list[dict], variant: str) -> float:
    return next(s["learning_rate"] for s in summary if s["variant"] == variant)
