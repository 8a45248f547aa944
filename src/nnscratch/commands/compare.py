"""``nnscratch compare``: the activation study, with tables, results.json and a report with plots."""

from __future__ import annotations

import argparse
import time

from rich.console import Console

from nnscratch.commands.common import (
    add_data_dir,
    add_scheduler,
    dask_backend,
    epoch_count,
    err,
    load_data,
    out,
    parallel_jobs,
    positive_float,
    positive_int,
    thread_count,
)
from nnscratch.errors import SpecError
from nnscratch.io import check_output_dir
from nnscratch.optimizers import OPTIMIZER_NAMES
from nnscratch.schedules import SCHEDULES
from nnscratch.study import VARIANTS, RunResult, StudySettings, check_variants, run_study, summarise


def _list_of(convert, expected: str):
    def parse(text: str) -> tuple:
        try:
            return tuple(convert(t) for t in text.split(","))
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {expected}, got {text!r}") from None

    return parse


jobs = parallel_jobs("runs")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="compare the activations on one architecture",
        description="Train one architecture (an MLP, or any network given by --spec) with each hidden activation "
        "(relu, sigmoid, tanh, selu, softmax) and the original mixed stack (seed: relu, sigmoid, selu, tanh), "
        "on the same budget and several seeds. "
        "Reports accuracy, losses, speed and the diagnostics that explain the differences (dead ReLU units, "
        "saturated sigmoid/tanh activations, gradient norms, activation statistics) as a table, "
        "OUTPUT/results.json and OUTPUT/report.html with every plot. Finished runs are cached in OUTPUT/cache, "
        "so an interrupted study resumes where it stopped.",
    )
    architecture = parser.add_argument_group("the architecture every variant shares (one of)")
    architecture.add_argument(
        "--widths",
        type=_list_of(positive_int, "positive integers"),
        metavar="W1,W2,...",
        help="an MLP's hidden-layer widths; input size and classes come from the data "
        "(default: 32,32,64,64, the seed network's)",
    )
    architecture.add_argument(
        "--spec",
        metavar="SPEC",
        help="a whole network instead, e.g. 1x28x28-conv8k3-relu-maxpool2-flatten-32:relu-10:softmax: every "
        "hidden activation in it (activation layers and dense layers' activations, not the output) is "
        "replaced by the variant's, and seed cycles relu, sigmoid, selu, tanh over them in order",
    )
    budget = parser.add_argument_group("the budget every run shares")
    budget.add_argument("--epochs", type=epoch_count, default=10, help="epochs per run (default: 10)")
    budget.add_argument("--optimizer", default="adam", choices=OPTIMIZER_NAMES, help="default: adam")
    budget.add_argument("--schedule", default="wsd", choices=SCHEDULES, help="learning-rate schedule (default: wsd)")
    budget.add_argument("--lr", type=positive_float, default=1e-3, metavar="RATE", help="learning rate (default: 1e-3)")
    budget.add_argument(
        "--lrs",
        type=_list_of(positive_float, "positive numbers"),
        metavar="R1,R2,...",
        help="a learning-rate sweep instead of --lr, e.g. 1e-3,3e-3,1e-2: every variant is trained at every "
        "rate and reported at the one with its best mean validation accuracy",
    )
    budget.add_argument("--batch-size", type=positive_int, default=128, help="default: 128")
    budget.add_argument("--seeds", type=positive_int, default=3, help="seeds per variant (default: 3)")
    parser.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        metavar="V1,V2,...",
        help=f"which variants to run (default: all of {','.join(VARIANTS)})",
    )
    where = parser.add_argument_group("where the runs go")
    where.add_argument("--jobs", type=jobs, default=-1, metavar="N", help="runs at a time (default: -1, one per core)")
    where.add_argument(
        "--backend",
        choices=("loky", "dask"),
        default=None,
        help="joblib backend: loky (local processes, the default) or dask (a Dask cluster; needs --scheduler)",
    )
    add_scheduler(where, what="runs", needs="nnscratch", here="writes OUTPUT", implies="implies --backend dask; ")
    parser.add_argument("--output", "-o", default="compare", metavar="DIR", help="results directory (default: compare)")
    add_data_dir(parser)
    where.add_argument(
        "--threads",
        type=thread_count,
        metavar="N",
        help="threads each run computes with (default: the cores shared out between the runs at a time)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from nnscratch.report import (
        command_line,
        make_plots,
        tables,
        write_report,
        write_results,
        write_table_text,
    )
    from nnscratch.tables import rich_table

    variants = tuple(dict.fromkeys(v.strip() for v in args.variants.split(",") if v.strip()))
    if not variants:
        raise SpecError(f"no variant given; choose from {','.join(VARIANTS)}")
    check_variants(variants)  # names a bad variant before any data is read
    if args.spec is not None and args.widths is not None:
        raise SpecError("give either --spec (the whole network) or --widths (an MLP's hidden widths), not both")
    settings = StudySettings(
        widths=args.widths,
        spec=args.spec,
        epochs=args.epochs,
        optimizer=args.optimizer,
        schedule=args.schedule,
        batch_size=args.batch_size,
        seeds=args.seeds,
        learning_rates=args.lrs or (args.lr,),
    )
    backend = "dask" if args.scheduler else args.backend
    if backend == "dask" and not args.scheduler:
        raise SpecError("--backend dask needs --scheduler ADDRESS, the address of a running Dask scheduler")
    output = check_output_dir(args.output, "--output", files=("results.json", "table.txt", "report.html"))
    for inside in ("cache", "plots"):  # hours of runs must not end on a file in the way
        check_output_dir(output / inside, "--output")
    data = load_data(args)
    command = command_line(settings, variants)
    total = len(variants) * settings.seeds * len(settings.learning_rates)
    err.print(
        f"{total} runs ({len(variants)} variants × {settings.seeds} seeds × {len(settings.learning_rates)} "
        f"learning rates), {settings.epochs} epochs each; finished runs are cached in {output / 'cache'}"
    )
    started = time.perf_counter()

    def report_progress(run: RunResult, cached: bool, done: int, total: int) -> None:
        outcome = "diverged" if run.diverged or run.test_accuracy is None else f"test {100 * run.test_accuracy:.2f}%"
        if cached:
            source = "cached"
        elif run.seconds_per_epoch is None:
            source = "no finished epoch"
        else:
            source = f"{run.seconds_per_epoch:.2f} s/epoch"
        err.print(f"[{done}/{total}] {run.variant} seed {run.seed} lr {run.learning_rate:g}: {outcome} ({source})")

    study = dict(
        cache_dir=output / "cache", variants=variants, n_jobs=args.jobs, on_result=report_progress, threads=args.threads
    )
    arrays = (data.X_train, data.y_train, data.X_test, data.y_test)
    try:
        with dask_backend(args.scheduler) as dask:
            runs = run_study(settings, *arrays, backend=dask or backend, **study)
    except KeyboardInterrupt:
        err.print(
            f"interrupted; the finished runs are cached in {output / 'cache'}: "
            "run the same command again to continue where it stopped"
        )
        return 130
    summary = summarise(runs)
    console = out if out.is_terminal else Console(highlight=False, width=200)  # piped: wide, not squeezed
    for table in tables(summary):
        console.print(rich_table(table))
    write_results(output, settings, summary, runs, command)
    write_table_text(output, summary)
    made = make_plots(output / "plots", summary, runs, data.X_test, data.y_test)
    write_report(output, settings, summary, made, command)
    out.print(
        f"wrote {output / 'results.json'}, {output / 'table.txt'}, {output / 'report.html'} and "
        f"{len(made)} plots in {output / 'plots'} ({time.perf_counter() - started:.0f}s)"
    )
    return 0
