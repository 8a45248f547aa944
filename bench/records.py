"""The records over several seeds: each preset trained as a user would, one ``nnscratch train`` per seed.

    python bench/records.py                                   # cnn-best and mlp-best, seeds 0, 1, 2
    python bench/records.py --presets cnn-best --seeds 0 --runs runs/records

Each run is ``nnscratch train --preset P --seed S --output RUNS/P-sS.npz``; its test accuracy and wall time
are read back from the model file's metadata (what ``nnscratch train`` measured and saved).  A model file
already in ``--runs`` that was trained with that preset and seed is read instead of trained again, so an
interrupted benchmark goes on where it stopped.  The JSON holds every run, and per preset the mean and the
standard deviation of the test accuracy over the seeds beside seed 0's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from nnscratch.network import Network
from train_speed import machine_info  # the same description of the machine as the speed benchmark's


def model_run(path: Path, preset: str, seed: int) -> dict[str, Any] | None:
    """What a model file says of its run, or None if it is not that preset's run with that seed."""
    if not path.exists():
        return None
    metadata = Network.load(path).metadata
    config = metadata.get("config", {})
    if metadata.get("preset") != preset or config.get("seed") != seed:
        return None
    return {
        "preset": preset,
        "seed": seed,
        "test_accuracy": metadata["test_accuracy"],
        "seconds": metadata["seconds"],
        "epochs": config.get("epochs"),
        "model": str(path),
    }


def train(preset: str, seed: int, path: Path, threads: int | None) -> dict[str, Any]:
    """Train one record run with the CLI; returns what its model file says, the command and the process's time."""
    command = ["nnscratch", "train", "--preset", preset, "--seed", str(seed)]
    if threads is not None:
        command += ["--threads", str(threads)]
    started = time.perf_counter()
    subprocess.run([*command, "--output", str(path), "--quiet"], check=True)
    wall = time.perf_counter() - started
    run = model_run(path, preset, seed)
    if run is None:
        raise SystemExit(f"{path} is not the model `{' '.join(command)}` should have written")
    return {**run, "command": " ".join(command), "process_seconds": wall}


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per preset: seed 0's accuracy and time, the mean and standard deviation over the seeds."""
    summary: dict[str, Any] = {}
    for preset in dict.fromkeys(run["preset"] for run in runs):
        mine = [run for run in runs if run["preset"] == preset]
        accuracies = [run["test_accuracy"] for run in mine]
        first = next((run for run in mine if run["seed"] == 0), None)
        summary[preset] = {
            "seeds": [run["seed"] for run in mine],
            "test_accuracy": accuracies,
            "mean": statistics.fmean(accuracies),
            "std": statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0,
            "seed_0": first["test_accuracy"] if first else None,
            "seconds_mean": statistics.fmean(run["seconds"] for run in mine),
        }
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="cnn-best,mlp-best", help="comma-separated (default cnn-best,mlp-best)")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated (default 0,1,2)")
    parser.add_argument("--runs", type=Path, default=Path("runs/records"), help="where the model files go")
    parser.add_argument("--threads", type=int, help="threads per run (default: every core)")
    parser.add_argument("--output", type=Path, help="where to write the JSON (default: print it)")
    args = parser.parse_args(argv)
    args.runs.mkdir(parents=True, exist_ok=True)
    runs = []
    for preset in args.presets.split(","):
        for seed in map(int, args.seeds.split(",")):
            path = args.runs / f"{preset}-s{seed}.npz"
            run = model_run(path, preset, seed) or train(preset, seed, path, args.threads)
            print(f"{preset} seed {seed}: {100 * run['test_accuracy']:.2f}% in {run['seconds']:.0f} s", file=sys.stderr)
            runs.append(run)
    result = {
        "machine": machine_info(),
        "runs": runs,
        "summary": summarise(runs),
    }
    text = json.dumps(result, indent=2)
    if args.output:
        args.output.write_text(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
