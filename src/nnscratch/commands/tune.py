"""``nnscratch tune``: search an MLP's hyper-parameters with Optuna, on the validation split only."""

from __future__ import annotations

import argparse
import os
import time

from rich.console import Console
from rich.table import Table

from nnscratch.commands.common import (
    add_data_dir,
    add_scheduler,
    add_threads,
    dask_backend,
    epoch_count,
    err,
    load_data,
    out,
    parallel_jobs,
    positive_int,
    terminate_interrupts,
)
from nnscratch.io import check_output_dir
from nnscratch.parallel import ENV_THREADS

jobs = parallel_jobs("trials")


def _range(convert, what: str):
    """An argparse type for ``LOW:HIGH`` (or one value V, meaning V:V) of ``what``."""

    def parse(text: str) -> tuple:
        try:
            parts = tuple(convert(part) for part in text.split(":"))
        except ValueError:
            parts = ()
        if len(parts) == 1:
            parts = parts * 2
        if len(parts) != 2:
            raise argparse.ArgumentTypeError(f"expected LOW:HIGH or one value, {what}, got {text!r}")
        return parts

    return parse


def _names(text: str) -> tuple[str, ...]:
    names = tuple(name.strip().lower() for name in text.split(",") if name.strip())
    if not names:
        raise argparse.ArgumentTypeError(f"expected comma-separated names, got {text!r}")
    return names


def _sizes(text: str) -> tuple[int, ...]:
    try:
        return tuple(positive_int(part) for part in text.split(","))
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}") from None


def register(subparsers: argparse._SubParsersAction) -> None:
    from nnscratch.activations import ACTIVATIONS, STUDY_ACTIVATIONS
    from nnscratch.optimizers import OPTIMIZER_NAMES
    from nnscratch.tune import SearchSpace

    parser = subparsers.add_parser(
        "tune",
        help="search hyper-parameters with Optuna",
        description="Search an MLP's hyper-parameters with Optuna: TPE proposes each trial, which trains the network "
        "as 'nnscratch train' would on the training set for --epochs and is scored by its validation accuracy "
        "(the test set is never used); the median pruner stops hopeless trials after each epoch. Writes "
        "OUTPUT/best.json (train it with 'nnscratch train --config OUTPUT/best.json'), OUTPUT/trials.csv and "
        "plots of the optimisation history and the parameter importances. With --storage sqlite:///tune.db the "
        "study is kept in SQLite: the same command again resumes it, and Ctrl-C keeps every finished trial. "
        "Needs Optuna: pip install 'nnscratch[tune]'.",
    )
    run_group = parser.add_argument_group("the study")
    run_group.add_argument(
        "--trials", type=positive_int, default=20, help="finished trials the study should hold (default: 20)"
    )
    run_group.add_argument("--epochs", type=epoch_count, default=5, help="epochs per trial (default: 5)")
    run_group.add_argument("--seed", type=int, default=0, help="seed of the sampler and of every trial (default: 0)")
    run_group.add_argument("--dtype", choices=["float32", "float64"], default="float32", help="default: float32")
    run_group.add_argument("--no-pruning", action="store_true", help="let every trial run all its epochs")
    run_group.add_argument(
        "--storage",
        metavar="URL",
        help="where Optuna keeps the study, e.g. sqlite:///tune.db (default: in memory, lost at exit)",
    )
    run_group.add_argument(
        "--study-name",
        metavar="NAME",
        default="nnscratch",
        help="the study's name in the storage; the same name resumes it (default: nnscratch)",
    )
    space = parser.add_argument_group("the search space (LOW:HIGH ranges, both included; one value fixes it)")
    space.add_argument(
        "--lr", type=_range(float, "numbers"), metavar="LOW:HIGH", help="learning rate, log scale (default: 1e-4:1e-2)"
    )
    space.add_argument("--depth", type=_range(int, "integers"), metavar="LOW:HIGH", help="hidden layers (default: 1:3)")
    space.add_argument(
        "--width",
        type=_range(int, "integers"),
        metavar="LOW:HIGH",
        help="units of each hidden layer, log scale (default: 16:512)",
    )
    space.add_argument(
        "--activations",
        type=_names,
        metavar="A,B,...",
        help=f"each hidden layer's activation from these (default: {','.join(STUDY_ACTIVATIONS)}; "
        f"known: {', '.join(ACTIVATIONS)})",
    )
    space.add_argument("--dropout", type=_range(float, "numbers"), metavar="LOW:HIGH", help="default: 0:0.5")
    space.add_argument(
        "--l2",
        type=_range(float, "numbers"),
        metavar="LOW:HIGH",
        help="L2 weight decay, log scale; 0 turns it off (default: 1e-6:1e-3)",
    )
    space.add_argument("--batch-sizes", type=_sizes, metavar="B1,B2,...", help="default: 32,64,128,256")
    space.add_argument(
        "--optimizers",
        type=_names,
        metavar="O1,O2,...",
        help=f"from {','.join(OPTIMIZER_NAMES)} (default: {','.join(SearchSpace().optimizers)})",
    )
    where = parser.add_argument_group("where the trials run")
    where.add_argument(
        "--n-jobs",
        type=jobs,
        metavar="N",
        help="trials at a time, in parallel processes (-1: one per core); default: 1, or with "
        "--scheduler one per Dask worker thread",
    )
    add_scheduler(where, what="trials", needs="nnscratch[tune]", here="talks to the storage")
    parser.add_argument("--output", "-o", default="tune", metavar="DIR", help="results directory (default: tune)")
    add_data_dir(parser)
    add_threads(parser)
    parser.set_defaults(run=run)


def search_space(args: argparse.Namespace):
    from nnscratch.tune import SearchSpace

    given = {
        "learning_rate": args.lr,
        "depth": args.depth,
        "width": args.width,
        "activations": args.activations,
        "dropout": args.dropout,
        "l2": args.l2,
        "batch_sizes": args.batch_sizes,
        "optimizers": args.optimizers,
    }
    return SearchSpace(**{key: value for key, value in given.items() if value is not None})


def run(args: argparse.Namespace) -> int:
    from nnscratch.tune import TuneSettings, require_optuna, trial_rows, write_results

    optuna = require_optuna()
    if args.threads:  # through the environment, so that trials in worker processes compute with it too
        os.environ[ENV_THREADS] = str(args.threads)
    space = search_space(args)  # names a bad range before any data is read
    settings = TuneSettings(epochs=args.epochs, seed=args.seed, dtype=args.dtype, pruning=not args.no_pruning)
    files = ("best.json", "trials.csv", "optimization_history.png", "param_importances.png")
    output = check_output_dir(args.output, "--output", files=files)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # this command reports each trial itself
    data = load_data(args)
    where = args.storage or "memory"
    err.print(
        f"study {args.study_name!r} in {where}: running until it holds {args.trials} finished trials, "
        f"{settings.epochs} epoch{'s' if settings.epochs != 1 else ''} each"
    )
    started = time.perf_counter()

    def report(outcome, options, done, total) -> None:
        history = " ".join(f"{100 * v:.1f}" for v in outcome.val_accuracy)
        ending = {"complete": "", "pruned": " pruned", "diverged": " diverged"}[outcome.state]
        err.print(
            f"[{done}/{total}] trial {outcome.number}{ending}: val% {history or '-'} ({outcome.seconds:.1f}s)  "
            f"{options['hidden'] or 'no hidden layer'}  {options['optimizer']} lr {options['lr']:.2g} "
            f"batch {options['batch-size']} dropout {options['dropout']:.2f} l2 {options['l2']:.2g}"
        )

    study, interrupted = None, False
    try:
        with terminate_interrupts():
            study = _tune(args, data, space, settings, report)
    except KeyboardInterrupt:
        interrupted = True
        kept = (
            f"are kept in {args.storage}: run the same command again to continue"
            if args.storage
            else ("are lost with the in-memory study (use --storage sqlite:///tune.db to keep them)")
        )
        err.print(f"interrupted; the finished trials {kept}")
    if study is None:
        if not args.storage:
            return 130
        study = optuna.load_study(study_name=args.study_name, storage=args.storage)
    rows = trial_rows(study)
    if any(row.state == "complete" for row in rows):
        _print_table(rows)
        written = write_results(study, output)
        best = study.best_trial
        out.print(
            f"best: trial {best.number}, validation accuracy {100 * best.value:.2f}% "
            f"({time.perf_counter() - started:.0f}s)"
        )
        out.print(f"wrote {', '.join(str(p) for p in written)}")
        out.print(f"train it: nnscratch train --config {output / 'best.json'}")
    else:
        err.print("no trial has finished yet: nothing to write")
    return 130 if interrupted else 0


def _tune(args, data, space, settings, report):
    from nnscratch.tune import tune

    common = dict(
        n_trials=args.trials,
        space=space,
        settings=settings,
        n_classes=data.n_classes,  # the number of classes only, as train builds its output layer
        storage=args.storage,
        study_name=args.study_name,
        n_jobs=args.n_jobs or (-1 if args.scheduler else 1),
        on_trial=report,
    )
    with dask_backend(args.scheduler) as backend:
        return tune(data.X_train, data.y_train, backend=backend, **common)


def _print_table(rows, top: int = 10) -> None:
    done = sorted((r for r in rows if r.state == "complete"), key=lambda r: -r.val_accuracy)[:top]
    table = Table(title=f"best {len(done)} of {len(rows)} trials", title_justify="left")
    for column in ("trial", "val acc", "hidden", "optimizer", "lr", "batch", "dropout", "l2", "s"):
        table.add_column(column, justify="left" if column in ("hidden", "optimizer") else "right")
    for r in done:
        o = r.options
        table.add_row(
            str(r.trial),
            f"{100 * r.val_accuracy:.2f}%",
            o.get("hidden") or "-",
            o.get("optimizer", ""),
            f"{o.get('lr', 0):.2g}",
            str(o.get("batch-size", "")),
            f"{o.get('dropout', 0):.2f}",
            f"{o.get('l2', 0):.2g}",
            f"{r.seconds or 0:.1f}",
        )
    (out if out.is_terminal else Console(highlight=False, width=200)).print(table)
