"""``nnscratch evaluate MODEL``: test accuracy and loss, per-class precision/recall, confusion matrix."""

from __future__ import annotations

import argparse
import json

import numpy as np
from rich.table import Table

from nnscratch.calibration import NOT_A_DIGIT, NOT_SURE, Calibration, expected_calibration_error
from nnscratch.commands.common import add_data_dir, add_threads, load_data, out, percent, shift_count, use_threads
from nnscratch.io import check_output_dir
from nnscratch.losses import cross_entropy, softmax
from nnscratch.metrics import accuracy, confusion_matrix, precision_recall
from nnscratch.network import Network


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="measure a saved model on the test set",
        description="Test accuracy and loss of a saved model, its precision and recall per class, "
        "the confusion matrix, and how well its confidence is calibrated: the expected calibration error "
        "(15 equal-width bins) before and after the temperature fitted when it was trained, and the share of "
        "test digits it would answer 'not sure' or 'not a digit'. --plots adds the reliability diagram.",
    )
    parser.add_argument("model", metavar="MODEL", help="a model file written by 'nnscratch train'")
    add_data_dir(parser)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    add_threads(parser)
    parser.add_argument("--plots", metavar="DIR", help="also write plots of the model (PNG) into DIR")
    parser.add_argument(
        "--tta",
        type=shift_count,
        metavar="N",
        help="also report the test accuracy, loss and verdicts with test-time augmentation: the mean of the "
        "probabilities over N small shifts of each image (1 to 9), beside the single-pass figures",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.plots is not None:
        check_output_dir(args.plots, "--plots")
    net = use_threads(Network.load(args.model), args)
    data = load_data(args, quiet=args.json)
    if data.n_features != net.n_in:
        raise ValueError(
            f"the model expects {net.n_in} inputs but the test images have {data.n_features}; "
            "evaluate it on the dataset it was trained on"
        )
    if data.n_classes > net.n_classes:
        raise ValueError(f"the test labels have {data.n_classes} classes but the model only {net.n_classes}")
    Z = net.all_logits(data.X_test)
    calibration = net.calibration or Calibration()
    P = calibration.probabilities(Z)
    verdicts = np.array(calibration.verdicts(Z))
    calibrated = {
        "temperature": calibration.temperature,
        "ece_before": expected_calibration_error(softmax(Z), data.y_test),
        "ece_after": expected_calibration_error(P, data.y_test),
        "not_sure": float(np.mean(verdicts == NOT_SURE)),
        "not_a_digit": float(np.mean(verdicts == NOT_A_DIGIT)),
    }
    predicted = P.argmax(axis=1)
    test_accuracy = accuracy(data.y_test, predicted)
    augmented = None
    if args.tta:
        from nnscratch.tta import answers

        P_tta, verdicts_tta = answers(net, data.X_test, args.tta)
        flags = np.array(verdicts_tta)
        augmented = {
            "shifts": args.tta,
            "test_accuracy": accuracy(data.y_test, P_tta.argmax(axis=1)),
            "test_loss": cross_entropy(P_tta, data.y_test),
            "not_sure": float(np.mean(flags == NOT_SURE)),
            "not_a_digit": float(np.mean(flags == NOT_A_DIGIT)),
        }
    loss = cross_entropy(P, data.y_test)
    C = confusion_matrix(data.y_test, predicted, net.n_classes)
    precision, recall = precision_recall(C)
    if args.plots:
        from nnscratch.plotdata import measure
        from nnscratch.plots import save_evaluation_plots

        made = save_evaluation_plots(measure(net, data.X_test, data.y_test), args.plots)
        if not args.json:
            out.print(f"wrote {len(made)} plots to {args.plots}")
    if args.json:
        result = {
            "model": str(args.model),
            "spec": net.spec,
            "test_accuracy": test_accuracy,
            "test_loss": loss,
            "precision": [None if np.isnan(p) else float(p) for p in precision],
            "recall": [None if np.isnan(r) else float(r) for r in recall],
            "confusion_matrix": C.tolist(),
            "calibration": calibrated,
            **({"tta": augmented} if augmented else {}),
        }
        print(json.dumps(result, indent=2))
        return 0
    out.print(f"model {args.model}: {net.spec}")
    out.print(f"test accuracy {percent(test_accuracy)}  test loss {loss:.4f}  on {data.X_test.shape[0]:,} images")
    if net.calibration is None:
        out.print(f"expected calibration error {percent(calibrated['ece_before'])} (the model has no temperature)")
    else:
        out.print(
            f"expected calibration error {percent(calibrated['ece_before'])} as trained, "
            f"{percent(calibrated['ece_after'])} at temperature {calibration.temperature:.3f}"
        )
    out.print(
        f"answered 'not sure' for {percent(calibrated['not_sure'])} of the test digits and 'not a digit' for "
        f"{percent(calibrated['not_a_digit'])}"
    )
    if augmented:
        out.print(
            f"with test-time augmentation ({augmented['shifts']} shifts): test accuracy "
            f"{percent(augmented['test_accuracy'])}  test loss {augmented['test_loss']:.4f}; 'not sure' "
            f"{percent(augmented['not_sure'])}, 'not a digit' {percent(augmented['not_a_digit'])}"
        )
    out.print()
    per_class = Table(title="per class")
    for name in ("class", "precision", "recall", "support"):
        per_class.add_column(name, justify="right")
    for k in range(net.n_classes):
        per_class.add_row(str(k), _pct(precision[k]), _pct(recall[k]), str(int(C[k].sum())))
    out.print(per_class)
    matrix = Table(title="confusion matrix (rows: true class, columns: predicted)")
    matrix.add_column("", justify="right", style="bold")
    for k in range(net.n_classes):
        matrix.add_column(str(k), justify="right")
    for k in range(net.n_classes):
        matrix.add_row(str(k), *(f"[bold]{v}[/bold]" if j == k else str(v) for j, v in enumerate(C[k])))
    out.print(matrix)
    return 0


def _pct(value: float) -> str:
    return "n/a" if np.isnan(value) else percent(value)
