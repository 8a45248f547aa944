"""``nnscratch predict [MODEL] IMAGE...``: read handwritten digits from image files."""

from __future__ import annotations

import argparse
import json

import numpy as np

from nnscratch.commands.common import add_threads, err, out, percent, shift_count, use_threads
from nnscratch.images import SIDE, ImageError, load_digit, to_png
from nnscratch.io import atomic_write, check_writable_file
from nnscratch.reader import model_and_images
from nnscratch.tta import answers


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="read handwritten digits from image files",
        usage="nnscratch predict [-h] [--json] [--tta N] [--threads N] [--show-preprocessed OUT.png] "
        "[MODEL] IMAGE [IMAGE ...]",
        description="Predict the digit in each image (PNG, JPEG, GIF, BMP, WebP or TIFF; any size and colour "
        "mode, up to 4 million pixels). Each image "
        "is prepared as MNIST was: grayscale, dark-on-light inverted, cropped to the ink, scaled to fit 20×20 "
        "and centred by its centre of mass in 28×28. Each answer is the digit, its probabilities and a "
        "verdict: 'digit', 'not sure' or 'not a digit' (the model's out-of-distribution score is below the "
        "thresholds fitted when it was trained: the score 99% of its validation digits reach, and the score "
        "95% of made-up non-digits stay under). Without a MODEL, the "
        "reader that ships with nnscratch answers. A file that cannot be read is reported and the others "
        "are still processed; the exit code is 1 if any failed.",
    )
    parser.add_argument(
        "inputs",
        metavar="IMAGE",
        nargs="+",
        help="image files, after an optional MODEL: a model file written by 'nnscratch train' (a .npz; "
        "default: the reader that ships with nnscratch)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document with every result")
    parser.add_argument(
        "--tta",
        type=shift_count,
        default=1,
        metavar="N",
        help="test-time augmentation: answer with the mean of the probabilities over N small shifts of each "
        "image (1 to 9; default 1, a single pass)",
    )
    add_threads(parser)
    parser.add_argument(
        "--show-preprocessed",
        metavar="OUT.png",
        help="write the 28×28 images the network sees to this PNG (several images side by side, in order)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.show_preprocessed is not None:
        check_writable_file(args.show_preprocessed, "--show-preprocessed", example="preprocessed.png")
    net, args.model, args.images = model_and_images(args.inputs)
    use_threads(net, args)
    results, seen = [], []
    for name in args.images:
        try:
            pixels = load_digit(name)
        except ImageError as exc:
            results.append({"file": name, "error": str(exc)})
            if not args.json:
                err.print(f"nnscratch predict: error: {exc}")
            continue
        seen.append(pixels)
        row = pixels.reshape(1, -1)
        if args.tta > 1:
            averaged, said_tta = answers(net, row, args.tta)
            probabilities, verdict = averaged[0].astype(float), said_tta[0]
        else:
            probabilities, verdict = net.predict_proba(row)[0].astype(float), net.verdicts(row)[0]
        top = np.argsort(probabilities)[::-1][:3]
        results.append(
            {
                "file": name,
                "label": int(top[0]),
                "verdict": verdict,
                "top3": [{"label": int(k), "probability": float(probabilities[k])} for k in top],
                "probabilities": probabilities.tolist(),
            }
        )
        if not args.json:
            ranked = ", ".join(f"{k}: {percent(probabilities[k])}" for k in top)
            said = {"digit": f"{top[0]}", "not sure": f"not sure, perhaps {top[0]}"}.get(verdict, verdict)
            out.print(f"{name}: {said}   ({ranked})")
    if args.show_preprocessed and seen:
        strip = np.concatenate([p.reshape(SIDE, SIDE) for p in seen], axis=1)
        atomic_write(args.show_preprocessed, lambda f: f.write(to_png(strip)))
        if not args.json:
            out.print(f"wrote {args.show_preprocessed} ({len(seen)} image{'s' if len(seen) > 1 else ''}, 28×28 each)")
    if args.json:
        print(json.dumps({"model": str(args.model), "results": results}, indent=2))
    return 1 if any("error" in r for r in results) else 0
