"""``nnscratch train``: train a network on MNIST (or any dataset in its form) and save it."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from nnscratch.augment import KINDS as AUGMENTATIONS
from nnscratch.commands.common import (
    MAX_EPOCHS,
    add_data_dir,
    add_network_options,
    add_threads,
    directory,
    epoch_count,
    err,
    load_data,
    network_recipe,
    non_negative_float,
    non_negative_int,
    out,
    percent,
    positive_float,
    positive_int,
    probability,
    share,
    terminate_interrupts,
    unit_interval,
    use_threads,
)
from nnscratch.errors import SpecError, echo
from nnscratch.initializers import INITIALIZERS
from nnscratch.io import check_output_dir, check_writable_file, deferred_signals, remove_stale_temporaries
from nnscratch.network import Network
from nnscratch.optimizers import OPTIMIZER_NAMES
from nnscratch.presets import DEFAULT_PRESET, PRESETS, get_preset
from nnscratch.recipe import ARCHITECTURE, DTYPES, NETWORK_FIELDS, OPTIONS, Recipe
from nnscratch.schedules import SCHEDULES
from nnscratch.spec import parse_hidden
from nnscratch.training import CHECKPOINT_NAME, Callback, EpochRecord, TrainConfig, Trainer, evaluate


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
    group.add_argument(
        "--momentum",
        type=probability,
        default=0.9,
        help="μ of --optimizer momentum or nesterov, refused with the others (default: 0.9)",
    )
    group.add_argument("--schedule", choices=SCHEDULES, help="learning-rate schedule (default: from the preset)")
    group.add_argument("--epochs", type=epoch_count, help=f"default: from the preset; at most {MAX_EPOCHS:,}")
    group.add_argument(
        "--batch-size",
        type=batch_size,
        metavar="N|full",
        default=argparse.SUPPRESS,
        help="mini-batch size, or 'full' for full-batch gradient descent (default: from the preset)",
    )
    group.add_argument(
        "--l2", type=non_negative_float, metavar="λ", help="L2 penalty: adds (λ/2)·Σ‖W‖² to the loss (default: 0)"
    )
    group.add_argument(
        "--l1", type=non_negative_float, metavar="λ", help="L1 penalty: adds λ·Σ|W| to the loss (default: 0)"
    )
    group.add_argument(
        "--weight-decay",
        type=non_negative_float,
        metavar="λ",
        help="decoupled weight decay of --optimizer adamw: each step shrinks the weights by lr·λ (default: 0)",
    )
    group.add_argument(
        "--dropout",
        type=probability,
        metavar="P",
        help="drop each hidden dense unit with probability P while training; alpha-dropout after a SELU layer "
        "(default: from the preset, else 0)",
    )
    group.add_argument(
        "--augment",
        choices=AUGMENTATIONS,
        help="transform every training batch afresh: shift (up to 2 whole pixels), affine (shift, rotation, "
        "scaling, shear), elastic (affine plus an elastic distortion) or pen (elastic, then strokes thickened or "
        "thinned by up to 2 pixels, blurred, or drawn flat as a tablet draws); default: from the preset, else none",
    )
    group.add_argument(
        "--augment-strength",
        type=non_negative_float,
        metavar="S",
        help="scale every augmentation range by S (default: from the preset, else 1; 0 turns it off)",
    )
    group.add_argument(
        "--adversarial",
        choices=("fgsm", "pgd"),
        help="train on attacked images: the second half of every batch is replaced by its FGSM (one step from a "
        "random start) or 7-step PGD attack within --epsilon (default: none)",
    )
    group.add_argument(
        "--epsilon",
        type=unit_interval,
        metavar="E",
        help="the largest change of a pixel in adversarial training, in [0, 1] (such as 0.1 or 0.3)",
    )
    group.add_argument(
        "--ema",
        type=probability,
        metavar="DECAY",
        help="keep an exponential moving average of the weights (decay such as 0.999, updated every step) and "
        "use it for validation, early stopping and the saved model (default: from the preset, else off)",
    )
    group.add_argument(
        "--not-digits",
        type=share,
        metavar="F",
        help="add F times as many made-up non-digits (noise, blobs, dots, lines, scribbles, letters, textures) "
        "as training images, each taught as belonging to no class, so that the model learns to say "
        "'not a digit' (28×28 inputs; default: from the preset, else 0)",
    )
    group.add_argument(
        "--validation-size",
        type=non_negative_int,
        metavar="N",
        help="training images held out for validation (default: 5000, at most 10%% of the training set); they also "
        "calibrate the model when training ends, so 0 trains on every image and saves it uncalibrated",
    )
    group.add_argument(
        "--early-stopping",
        type=positive_int,
        metavar="PATIENCE",
        help="stop after PATIENCE epochs without a better validation loss and keep the best weights",
    )
    group = parser.add_argument_group("checkpoints")
    group.add_argument(
        "--checkpoint-dir",
        type=directory,
        metavar="DIR",
        help="write the whole training state to DIR/checkpoint.npz after every epoch; Ctrl-C or SIGTERM "
        "then stops cleanly and --resume DIR continues exactly where the run stopped",
    )
    group.add_argument(
        "--resume",
        type=directory,
        metavar="DIR",
        help="continue the run checkpointed in DIR with its own network and settings (other network and "
        "training options are ignored)",
    )
    add_data_dir(parser)
    parser.add_argument(
        "--output", "-o", default="model.npz", metavar="PATH", help="where to save (default: model.npz)"
    )
    parser.add_argument(
        "--plots", type=directory, metavar="DIR", help="also write plots of the run and the model (PNG) into DIR"
    )
    parser.add_argument("--quiet", "-q", action="store_true", help="print only the final result")
    add_threads(parser)
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="take options from a JSON file, such as the best.json 'nnscratch tune' writes: an object of option "
        f'names and values, e.g. {{"hidden": "128:relu", "lr": 0.001}}; it may set {", ".join(CONFIG_OPTIONS)}. '
        "Options given on the command line win",
    )
    # --config must tell an option given on the command line (which wins) from its default, so the
    # defaults of the options a config may set are marked; run() resolves them.  (batch_size has no
    # default at all: argparse leaves it out unless it is given.)
    dests = [dest for dest, _ in CONFIG_OPTIONS.values() if dest != "batch_size"]
    parser.set_defaults(run=run, **{dest: _Default(parser.get_default(dest)) for dest in dests})


def _choice(names) -> Any:
    def read(text: str) -> str:
        if text not in names:
            raise argparse.ArgumentTypeError(f"expected one of {', '.join(names)}, got {echo(text)}")
        return text

    return read


def _spec(text: str) -> str:
    """A network spec, checked as --spec is: the grammar, every layer against the shape it meets, and the
    memory it needs (from the shapes alone: no array is made)."""
    Network.check_spec(text)
    return text


def _hidden(text: str) -> str:
    """An MLP's hidden layers, checked as --hidden is."""
    parse_hidden(text)
    return text


# How a --config file's value of each option is read (as on the command line).  Every value is read, and
# so checked, even where the command line overrides it: a bad file is refused whole.
READERS: dict[str, Any] = {
    "preset": _choice(list(PRESETS)),
    "spec": _spec,
    "hidden": _hidden,
    "init": _choice(list(INITIALIZERS)),
    "dtype": _choice(DTYPES),
    "seed": non_negative_int,
    "optimizer": _choice(OPTIMIZER_NAMES),
    "lr": positive_float,
    "momentum": non_negative_float,
    "schedule": _choice(SCHEDULES),
    "epochs": epoch_count,
    "batch-size": batch_size,
    "l2": non_negative_float,
    "l1": non_negative_float,
    "weight-decay": non_negative_float,
    "dropout": probability,
    "augment": _choice(AUGMENTATIONS),
    "augment-strength": non_negative_float,
    "not-digits": share,
    "ema": probability,
    "adversarial": _choice(("none", "fgsm", "pgd")),
    "epsilon": unit_interval,
    "validation-size": non_negative_int,
    "early-stopping": positive_int,
}
# The options a --config file may set: a recipe's (nnscratch.recipe.OPTIONS), by name as on the command
# line -> (argparse dest, how to read a value).
CONFIG_OPTIONS: dict[str, tuple[str, Any]] = {name: (name.replace("-", "_"), READERS[name]) for name in OPTIONS}
CONFIG_NOTE = "tuning"  # the key where 'nnscratch tune' records where the values came from; not an option
MOMENTUM_OPTIMIZERS = ("momentum", "nesterov")  # the optimisers that read --momentum


@dataclass(frozen=True)
class _Default:
    """An option's default, marked as such: a value given on the command line never is."""

    value: Any


def apply_config(args: argparse.Namespace) -> None:
    """Fill every option not given on the command line from ``--config FILE``, else from its default.

    Refuses (SpecError) a momentum given on the command line or in the file for an optimiser that ignores it.
    """
    config = read_config(args.config) if args.config else {}

    def given(dest: str) -> bool:
        current = getattr(args, dest, None)
        return current is not None and not isinstance(current, _Default)

    momentum_given = given("momentum")
    if any(given(dest) for dest in ARCHITECTURE):
        config = {dest: value for dest, value in config.items() if dest not in ARCHITECTURE}
    for dest, _ in CONFIG_OPTIONS.values():
        current = getattr(args, dest, None)
        if given(dest):
            continue  # given on the command line: it wins
        if dest in config:
            setattr(args, dest, config[dest])
        elif isinstance(current, _Default):
            setattr(args, dest, current.value)
    if args.resume:
        return
    # A μ set on purpose is refused with an optimiser that would ignore it (the default μ is never refused).
    # The config's μ goes with the config's optimiser, if it names one, even where the command line's wins.
    optimizer = args.optimizer or get_preset(args.preset or DEFAULT_PRESET).training.get(
        "optimizer", TrainConfig.optimizer
    )
    for where, used_by, set_here in (
        ("--momentum", optimizer, momentum_given),
        (f"{args.config}: momentum", config.get("optimizer", optimizer), "momentum" in config),
    ):
        if set_here and used_by not in MOMENTUM_OPTIMIZERS:
            raise SpecError(
                f"{where} applies only to --optimizer momentum or nesterov, and {used_by} would ignore it; "
                "drop it or choose one of those"
            )


def read_config(path: str) -> dict[str, Any]:
    """The options in the JSON file ``path``, by argparse dest, each read as its command-line option is."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(
            f"--config {path} is not UTF-8 text (byte {exc.start} is 0x{exc.object[exc.start]:02x}); "
            "save it as UTF-8 JSON"
        ) from None
    except OSError as exc:
        raise SpecError(f"cannot read --config {path}: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(f"{path} is not valid JSON ({exc.msg}, line {exc.lineno}); fix the file") from None
    except RecursionError:
        raise SpecError(f"{path} nests its JSON too deeply to be a config; fix the file") from None
    if not isinstance(data, dict):
        raise SpecError(f'{path} must hold a JSON object of option names and values, such as {{"lr": 0.001}}')
    values = {}
    for key, value in data.items():
        name = str(key).replace("_", "-")
        if name == CONFIG_NOTE or value is None:
            continue
        if name not in CONFIG_OPTIONS:
            raise SpecError(f"{path}: unknown option {echo(str(key))}; a config may set {', '.join(CONFIG_OPTIONS)}")
        dest, read = CONFIG_OPTIONS[name]
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise SpecError(f"{path}: {key} must be a number or a string, got {echo(json.dumps(value))}")
        try:
            values[dest] = read(str(value))
        except (argparse.ArgumentTypeError, ValueError) as exc:
            raise SpecError(f"{path}: {key}: {exc}") from None
    return values


def make_recipe(args: argparse.Namespace) -> Recipe:
    """The recipe of the options given on the command line or in --config (after ``apply_config``), the
    preset filling the rest; refuses a network or setting that cannot work before any data is read."""
    training = {}
    for name, field in OPTIONS.items():
        dest = CONFIG_OPTIONS[name][0]
        if field in NETWORK_FIELDS or field == "seed" or not hasattr(args, dest):
            continue  # the network's options, or --batch-size not given (argparse leaves it out)
        value = getattr(args, dest)
        if value is not None or field == "batch_size":  # a batch size of None is the full batch
            training[field] = value
    return network_recipe(args, training)


class ProgressCallback(Callback):
    """A progress bar over the batches of each epoch and one line per finished epoch."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress
        self.task: TaskID | None = None

    def on_train_begin(self, n_epochs: int, n_batches: int) -> None:
        self.n_epochs, self.n_batches = n_epochs, n_batches
        self.every = max(1, n_batches // 50)
        if self.progress:
            self.task = self.progress.add_task("epoch 1", total=n_batches)

    def on_batch_end(self, epoch: int, batch: int, loss: float) -> None:
        # Drawing is the progress thread's job; telling it the count every ~2% of an epoch is plenty.
        if self.progress and self.task is not None and (batch % self.every == 0 or batch + 1 == self.n_batches):
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
    apply_config(args)
    output = _check_outputs(args)  # before any work: a model trained for nothing is the worst outcome
    remove_stale_temporaries(output)
    recipe = None if args.resume else make_recipe(args)
    started = time.perf_counter()
    data = load_data(args, quiet=args.quiet)
    checkpoint_dir = args.resume or args.checkpoint_dir
    trainer: Trainer | None = None
    saved: Path | None = None  # the model file, once written
    with terminate_interrupts():
        try:
            with _progress(args.quiet) as progress:
                callback = ProgressCallback(progress) if not args.quiet else None
                if args.resume:
                    trainer = Trainer.from_checkpoint(args.resume, data.X_train, data.y_train)
                    net, config = use_threads(trainer.net, args), trainer.config
                    _describe(args, net, config, data, resumed_at=trainer.state.epoch)
                else:
                    assert recipe is not None
                    net, config = use_threads(recipe.network(data.n_features, data.n_classes), args), recipe.config
                    _describe(args, net, config, data)
                    trainer = Trainer(net, data.X_train, data.y_train, config, checkpoint_dir=checkpoint_dir)
                batch = config.batch_size or len(trainer.train_idx)  # None: the full batch
                net.footprint.check_batch(batch, smaller="a smaller --batch-size")
                history = trainer.run(callback or Callback())
            test_loss, test_acc = evaluate(net, data.X_test, data.y_test)
            wall = time.perf_counter() - started
            net.metadata = {
                "config": asdict(config),
                "history": history.to_dict(),
                "test_accuracy": test_acc,
                "test_loss": test_loss,
                "data": data.source,
                "seconds": wall,
                "preset": net.metadata.get("preset") or (recipe.preset if recipe else DEFAULT_PRESET),
            }
            with deferred_signals():  # a Ctrl-C during the save arrives once `saved` names the file
                saved = net.save(output)
            stopped = f" (early stop, best epoch {history.best_epoch})" if history.stopped_early else ""
            out.print(
                f"test accuracy {percent(test_acc)}  test loss {test_loss:.4f}  "
                f"({len(history)} epochs{stopped}, {history.seconds:.1f}s training, {wall:.1f}s in all)"
            )
            out.print(f"saved {output}")
            if history.calibration:
                out.print(calibration_line(history.calibration))
            if args.plots:
                from nnscratch.plotdata import measure
                from nnscratch.plots import save_training_plots

                made = save_training_plots(measure(net, data.X_test, data.y_test), history, args.plots)
                augmentation = config.augmentation()
                if augmentation.active:
                    from nnscratch.plotdata import augmented_variants
                    from nnscratch.plots import augmented_examples, save_png
                    from nnscratch.training import image_side

                    side = image_side(net)
                    originals, variants = augmented_variants(data.X_train, side, augmentation, seed=args.seed)
                    title = f"{augmentation.kind} augmentation at strength {augmentation.strength:g}: "
                    title += "training images, each varied"
                    path = Path(args.plots) / "augmented_examples.png"
                    made.append(save_png(augmented_examples(originals, variants, title=title), path))
                out.print(f"wrote {len(made)} plots to {args.plots}")
        except KeyboardInterrupt:
            if saved is not None:  # stopped while testing or plotting: the model is safe
                unfinished = ", but not every plot was written" if args.plots else ""
                err.print(f"interrupted; the trained model was saved to {saved}{unfinished}")
            elif trainer is not None and trainer.saved_epoch is not None:
                err.print(
                    f"interrupted; the checkpoint of epoch {trainer.saved_epoch} is in {checkpoint_dir}: "
                    f"continue with 'nnscratch train --resume {checkpoint_dir}'"
                )
            else:
                err.print("interrupted; nothing was saved (use --checkpoint-dir DIR to make runs resumable)")
            return 130
    return 0


def calibration_line(report: dict) -> str:
    """What calibrating on the validation split found, in one line."""
    line = (
        f"calibrated on the validation split: temperature {report['temperature']:.3f}, expected calibration "
        f"error {percent(report['ece_before'])} → {percent(report['ece_after'])}"
    )
    if "score" in report:
        line += (
            f"; {report['score']} score (AUROC {report['auroc'][report['score']]:.3f} against made-up non-digits): "
            f"'not sure' below {report['not_sure_below']:.4g} ({percent(report['validation_not_sure'])} of the "
            f"validation digits), 'not a digit' below {report['not_a_digit_below']:.4g} "
            f"({percent(report['validation_not_a_digit'])} of them, {percent(report['outside_not_a_digit'])} of "
            "the non-digits)"
        )
    return line


def _check_outputs(args: argparse.Namespace) -> Path:
    """--output, --checkpoint-dir (or --resume) and --plots, each checked as a place we can write to."""
    output = check_writable_file(args.output, "--output", example="model.npz")
    directories = {"--resume": args.resume, "--checkpoint-dir": args.checkpoint_dir, "--plots": args.plots}
    for option, value in directories.items():
        if value is not None:
            check_output_dir(value, option)
    checkpoint_dir, option = (args.resume, "--resume") if args.resume else (args.checkpoint_dir, "--checkpoint-dir")
    if checkpoint_dir and os.path.isdir(checkpoint_dir):
        check_writable_file(Path(checkpoint_dir) / CHECKPOINT_NAME, option, example=None)
    return output


def _progress(quiet: bool):
    if quiet:
        return contextlib.nullcontext(None)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    return Progress(*columns, console=err, transient=True, refresh_per_second=4)


def _describe(args, net: Network, config: TrainConfig, data, *, resumed_at: int | None = None) -> None:
    if args.quiet:
        return
    batch = "full" if config.batch_size is None else config.batch_size
    n_train = data.X_train.shape[0] - config.validation_count(data.X_train.shape[0])
    resumed = f", resuming after epoch {resumed_at}" if resumed_at is not None else ""
    extras = [
        f"{name} {value:g}"
        for name, value in (
            ("l2", config.l2),
            ("l1", config.l1),
            ("weight decay", config.weight_decay),
            ("dropout", config.dropout),
        )
        if value
    ]
    augmentation = config.augmentation()
    if augmentation.active:
        extras.append(f"{augmentation.kind} augmentation ×{augmentation.strength:g}")
    if config.not_digits:
        extras.append(f"made-up non-digits ×{config.not_digits:g}")
    if config.ema:
        extras.append(f"weights averaged (decay {config.ema:g})")
    if config.adversarial != "none":
        extras.append(f"{config.adversarial} adversarial training at ε {config.epsilon:g}")
    more = "".join(f", {extra}" for extra in extras)
    out.print(
        f"network {net.spec} ({net.n_params:,} parameters, {net.dtype.name}, {net.threads} threads)\n"
        f"training {config.epochs} epochs, {config.optimizer} lr {config.learning_rate:g} "
        f"({config.schedule}), batch {batch}{more}, on {n_train:,} images{resumed}"
    )
