"""``nnscratch explain [MODEL] IMAGE...``: which strokes each answer rests on, as an attribution map."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from nnscratch.commands.common import add_threads, err, out, use_threads
from nnscratch.explain import METHODS, NOISE, SAMPLES, STEPS
from nnscratch.images import SIDE, ImageError, load_digit
from nnscratch.io import check_output_dir
from nnscratch.reader import model_and_images


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "explain",
        help="show which pixels an answer rests on",
        usage="nnscratch explain [-h] [--method METHOD] [--output DIR] [--json] [MODEL] IMAGE [IMAGE ...]",
        description="For each image (prepared as 'nnscratch predict' prepares it), the digit the network reads "
        "and an attribution map of the logit of that digit to every pixel: gradient (the saliency map), "
        "gradxinput (gradient times input), smoothgrad (the gradient averaged over noisy copies) or integrated "
        "(integrated gradients from a black image; they add up to the logit's change, and the gap is printed). "
        "Writes DIR/<image>-<method>.png: the digit beside its map (red raises the logit, blue lowers it). "
        "Without a MODEL, the reader that ships with nnscratch answers.",
    )
    parser.add_argument(
        "inputs", metavar="IMAGE", nargs="+", help="image files, after an optional MODEL file (default: the reader)"
    )
    parser.add_argument("--method", choices=METHODS, default="integrated", help="default: integrated")
    parser.add_argument(
        "--steps", type=int, default=STEPS, help=f"integrated gradients' points on the path (default {STEPS})"
    )
    parser.add_argument("--samples", type=int, default=SAMPLES, help=f"SmoothGrad's noisy copies (default {SAMPLES})")
    parser.add_argument(
        "--noise", type=float, default=NOISE, help=f"SmoothGrad's noise, a standard deviation (default {NOISE})"
    )
    parser.add_argument(
        "--output", "-o", default="explained", metavar="DIR", help="where the PNGs go (default: explained)"
    )
    parser.add_argument("--json", action="store_true", help="print the labels and attributions as JSON")
    add_threads(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from nnscratch.explain import explain
    from nnscratch.plots import attribution, save_png

    check_output_dir(args.output, "--output")
    Path(args.output).mkdir(parents=True, exist_ok=True)
    net, model, images = model_and_images(args.inputs)
    use_threads(net, args)
    if net.n_in != SIDE * SIDE:
        raise ValueError(
            f"{model} expects {net.n_in} inputs, but images become {SIDE * SIDE} pixels; use a model trained on MNIST"
        )
    results, failed = [], False
    for name in images:
        try:
            pixels = load_digit(name).reshape(1, -1)
        except ImageError as exc:
            failed = True
            results.append({"file": name, "error": str(exc)})
            if not args.json:
                err.print(f"nnscratch explain: error: {exc}")
            continue
        label, verdict = int(net.predict(pixels)[0]), net.verdicts(pixels)[0]
        settings = {"steps": args.steps, "samples": args.samples, "noise": args.noise}
        if args.method == "integrated":
            values, delta = explain(net, pixels, "integrated", return_delta=True, **settings)
            gap = float(delta[0])
        else:
            values, gap = explain(net, pixels, args.method, **settings), None
        path = Path(args.output) / f"{Path(name).stem}-{args.method}.png"
        title = f"{Path(name).name}: read as {label}; {args.method} attributions to its logit"
        save_png(attribution(pixels[0], values[0], title=title, shape=(SIDE, SIDE)), path)
        result = {"file": name, "label": label, "verdict": verdict, "method": args.method, "plot": str(path)}
        if gap is not None:
            result["completeness_gap"] = gap
        results.append({**result, "attribution": np.asarray(values[0], dtype=float).tolist()})
        if not args.json:
            more = f", completeness gap {gap:.2g}" if gap is not None else ""
            said = {"digit": f"{label}", "not sure": f"not sure, perhaps {label}"}.get(
                verdict, f"{verdict}, perhaps {label}"
            )
            out.print(f"{name}: {said}   ({args.method}{more}) → {path}")
    if args.json:
        print(json.dumps({"model": str(model), "results": results}, indent=2))
    return 1 if failed else 0
