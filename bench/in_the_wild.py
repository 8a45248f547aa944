"""How a reader does outside MNIST's test set: calibration, "not a digit", and digits by other writers.

    python bench/in_the_wild.py                      # the shipped reader
    python bench/in_the_wild.py --model model.npz    # any model trained on MNIST

Three measurements, each on data the model never trained on:

* **Calibration** on MNIST's 10,000 test digits: the expected calibration error (15 equal-width bins) of the
  softmax as trained and at the model's temperature.
* **Not a digit**: how well each out-of-distribution score separates MNIST's test digits from
  Fashion-MNIST's 10,000 test images (area under the ROC curve), and the share of each set given each
  verdict: MNIST's test digits, Fashion-MNIST's test images, and 300 each of made-up noise, dots, lines,
  scribbles, blobs, letters and textures drawn from a seed stream that neither training nor calibration
  draws from.  Fashion-MNIST comes from Debian's ``dataset-fashion-mnist`` package (its IDX files in
  /usr/share/datasets/fashion-mnist; ``--fashion-dir`` to read them elsewhere); it is skipped if absent.
* **Other writers**: scikit-learn's copy of the UCI handwritten digits (1,797 digits written by 43 people,
  scanned at 32×32 and reduced to 8×8 with 17 gray levels), each saved as a PNG of dark ink on white paper
  and read by ``nnscratch predict`` as a user would, in one call: its accuracy beside MNIST's.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from nnscratch import nondigits
from nnscratch.calibration import (
    NOT_A_DIGIT,
    NOT_SURE,
    SCORES,
    Calibration,
    auroc,
    expected_calibration_error,
    ood_score,
)
from nnscratch.data import load_dataset, read_idx
from nnscratch.losses import softmax
from nnscratch.network import Network
from nnscratch.reader import reader_path

FASHION = Path("/usr/share/datasets/fashion-mnist")
MEASURE_STREAM = 7003  # made-up non-digits to measure with: neither training (7001) nor calibration (7002) draws these
PER_KIND = 300


def fashion_test_images(directory: Path) -> np.ndarray | None:
    """Fashion-MNIST's test images (10000, 784) in [0, 1], or None when the files are not there."""
    path = directory / "t10k-images-idx3-ubyte.gz"
    if not path.exists():
        return None
    return read_idx(path).reshape(-1, 784).astype(np.float32) / 255.0


def verdict_shares(calibration: Calibration, Z: np.ndarray) -> dict[str, float]:
    verdicts = np.array(calibration.verdicts(Z))
    return {
        "not_sure": float(np.mean(verdicts == NOT_SURE)),
        "not_a_digit": float(np.mean(verdicts == NOT_A_DIGIT)),
        "flagged": float(np.mean(verdicts != "digit")),
    }


def other_writers(model: str | None, workdir: Path) -> dict:
    """scikit-learn's 8×8 digits written as PNGs and read by ``nnscratch predict`` in one call."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    paths = []
    for i, image in enumerate(digits.images):
        path = workdir / f"digit{i:04d}.png"
        Image.fromarray((255 - image * (255 / 16)).round().astype(np.uint8)).save(path)  # dark ink, white paper
        paths.append(str(path))
    command = [sys.executable, "-m", "nnscratch.cli", "predict", *([model] if model else []), *paths, "--json"]
    answer = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
    results = answer["results"]
    labels = np.array([r["label"] for r in results])
    verdicts = np.array([r["verdict"] for r in results])
    right = labels == digits.target
    return {
        "set": "scikit-learn load_digits (UCI optical recognition of handwritten digits, 8×8, 43 writers)",
        "images": len(paths),
        "accuracy": float(right.mean()),
        "accuracy_where_digit": float(right[verdicts == "digit"].mean()) if np.any(verdicts == "digit") else None,
        "not_sure": float(np.mean(verdicts == NOT_SURE)),
        "not_a_digit": float(np.mean(verdicts == NOT_A_DIGIT)),
    }


def measure(model: str | None, data_dir: str | None, fashion_dir: Path, writers: bool) -> dict:
    net = Network.load(model) if model else Network.load(reader_path())
    calibration = net.calibration or Calibration()
    data = load_dataset(data_dir)
    Z = net.all_logits(data.X_test)
    T = calibration.temperature
    result: dict = {
        "model": model or "the shipped reader",
        "spec": net.spec,
        "test_accuracy": float(np.mean(Z.argmax(axis=1) == data.y_test)),
        "calibration": {
            "temperature": T,
            "ece_before": expected_calibration_error(softmax(Z), data.y_test),
            "ece_after": expected_calibration_error(softmax(Z / T), data.y_test),
        },
        "verdicts": {"mnist_test": verdict_shares(calibration, Z)},
    }
    fashion = fashion_test_images(fashion_dir)
    if fashion is None:
        result["fashion"] = {"skipped": f"no Fashion-MNIST in {fashion_dir} (apt-get install dataset-fashion-mnist)"}
    else:
        Zf = net.all_logits(fashion)
        result["fashion"] = {
            "auroc": {kind: auroc(ood_score(Z, T, kind), ood_score(Zf, T, kind)) for kind in SCORES},
            "score": calibration.score,
        }
        result["verdicts"]["fashion_test"] = verdict_shares(calibration, Zf)
    rng = np.random.default_rng([MEASURE_STREAM])
    for kind in nondigits.KINDS:
        made_up = nondigits.make(PER_KIND, rng, kinds=(kind,))
        result["verdicts"][kind] = verdict_shares(calibration, net.all_logits(made_up))
    if writers:
        with tempfile.TemporaryDirectory() as tmp:
            result["other_writers"] = other_writers(model, Path(tmp))
    return result


def report(result: dict) -> None:
    c = result["calibration"]
    print(f"{result['model']}: {result['spec']}, MNIST test accuracy {100 * result['test_accuracy']:.2f}%")
    before, after = 100 * c["ece_before"], 100 * c["ece_after"]
    print(f"ECE {before:.2f}% as trained, {after:.2f}% at temperature {c['temperature']:.3f}")
    if "auroc" in result["fashion"]:
        scores = ", ".join(f"{kind} {value:.4f}" for kind, value in result["fashion"]["auroc"].items())
        print(f"AUROC MNIST test vs Fashion-MNIST test: {scores} (the model uses {result['fashion']['score']})")
    else:
        print(result["fashion"]["skipped"])
    for name, shares in result["verdicts"].items():
        print(
            f"  {name:<12} not sure {100 * shares['not_sure']:5.1f}%   not a digit {100 * shares['not_a_digit']:5.1f}%"
            f"   flagged {100 * shares['flagged']:5.1f}%"
        )
    if "other_writers" in result:
        w = result["other_writers"]
        print(
            f"other writers ({w['images']:,} digits): {100 * w['accuracy']:.2f}% read right through nnscratch predict; "
            f"not sure {100 * w['not_sure']:.1f}%, not a digit {100 * w['not_a_digit']:.1f}%"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a model file (default: the shipped reader)")
    parser.add_argument("--data-dir", help="MNIST directory (default: $NNSCRATCH_DATA, else the cache)")
    parser.add_argument(
        "--fashion-dir", type=Path, default=FASHION, help=f"Fashion-MNIST's IDX files (default: {FASHION})"
    )
    parser.add_argument("--no-writers", action="store_true", help="skip the other writers' digits")
    parser.add_argument("--output", default="bench/results/in_the_wild.json", help="where to write the JSON")
    args = parser.parse_args(argv)
    result = measure(args.model, args.data_dir, args.fashion_dir, not args.no_writers)
    result["date"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    report(result)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
