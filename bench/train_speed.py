"""Training speed of nnscratch beside PyTorch, scikit-learn and the GEMM bound, on full MNIST.

    python bench/train_speed.py                        # seconds per epoch, ratios, peak memory
    python bench/train_speed.py --networks keras,cnn   # the convnets only
    python bench/train_speed.py --time-to-accuracy     # also: wall seconds to 97%, 98%, 98.5% (fast preset)
    python bench/train_speed.py --time-to-accuracy --tta-preset cnn,cnn-best,mlp-best   # ... to 99%, 99.3%, 99.5%
    python bench/train_speed.py --augmentation-cost    # what augmenting every batch adds to an epoch
    python bench/train_speed.py --threads 1,2          # each at 1 and 2 threads, and the speedup over 1
    python bench/train_speed.py --quick                # a short smoke run

Every run trains on the 60,000 training images, float32, mini-batches of 128, Adam with lr 1e-3, and
reports the median over the measured epochs (after warm-up epochs that are not counted).  Peers that are
not installed are reported as skipped.  See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import textwrap
import time
import timeit
from pathlib import Path

import numpy as np

import nnscratch
from nnscratch.layers import ActivationLayer, BatchNorm, Conv2D, Dense, Dropout, Flatten, MaxPool2D
from nnscratch.parallel import available_cores
from nnscratch.presets import PRESETS

NETWORKS = {
    "seed": "784-32:relu-32:sigmoid-64:selu-64:tanh-10:softmax",
    "wide": "784-512:relu-512:relu-10:softmax",
    # the Keras example convnet (keras.io/examples/vision/mnist_convnet)
    "keras": "1x28x28-conv32k3-relu-maxpool2-conv64k3-relu-maxpool2-flatten-dropout0.5-10:softmax",
    "cnn": PRESETS["cnn"].spec(784, 10),
}
DEFAULT_NETWORKS = "seed,wide,keras,cnn"
BATCH = 128
LR = 1e-3


# -- the contenders ----------------------------------------------------------------------------


def nnscratch_epochs(spec: str, X: np.ndarray, y: np.ndarray, epochs: int, threads: int | None = None) -> list[float]:
    """Seconds of each epoch of nnscratch training (the loop's own per-epoch clock) on ``threads`` threads."""
    net = nnscratch.Network.from_spec(spec, seed=0, threads=threads)
    config = nnscratch.TrainConfig(epochs=epochs, batch_size=BATCH, learning_rate=LR, validation_size=0, seed=0)
    history = nnscratch.train(net, X, y, config)
    return [record.seconds for record in history.epochs]


def command_line_epochs(spec: str, epochs: int, threads: int, data_dir: str | None) -> list[float]:
    """Seconds of each epoch of ``nnscratch train`` on the same network and recipe (Adam at 1e-3, batches
    of 128, no validation split), in a process of its own, progress reporting included (to a pipe, as
    in a script): each epoch's seconds from the saved model's history."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "model.npz"
        command = [sys.executable, "-m", "nnscratch.cli", "train", "--spec", spec, "--optimizer", "adam"]
        command += ["--lr", str(LR), "--schedule", "constant", "--batch-size", str(BATCH), "--validation-size", "0"]
        command += ["--epochs", str(epochs), "--threads", str(threads), "--seed", "0", "-o", str(model)]
        if data_dir:
            command += ["--data-dir", data_dir]
        subprocess.run(command, check=True, capture_output=True)
        history = nnscratch.Network.load(model).metadata["history"]
    return [record["seconds"] for record in history["epochs"]]


def torch_model(spec: str):
    """The same stack of layers as ``torch.nn.Sequential`` (channels-first, PyTorch's own layout)."""
    import torch

    nn = torch.nn
    activations = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "selu": nn.SELU, "tanh": nn.Tanh, "identity": nn.Identity}
    net = nnscratch.Network.from_spec(spec)
    modules = []
    for layer in net.layers:
        n_in = layer.input_shape
        if isinstance(layer, Conv2D):
            modules.append(nn.Conv2d(n_in[0], layer.filters, layer.kernel, layer.stride, layer.padding))
        elif isinstance(layer, MaxPool2D):
            modules.append(nn.MaxPool2d(layer.size))
        elif isinstance(layer, BatchNorm):
            modules.append(nn.BatchNorm2d(n_in[0]) if len(n_in) == 3 else nn.BatchNorm1d(n_in[0]))
        elif isinstance(layer, Dropout):
            modules.append(nn.Dropout(layer.rate))
        elif isinstance(layer, Flatten):
            modules.append(nn.Flatten())
        elif isinstance(layer, ActivationLayer):
            modules.append(activations[layer.activation.name]())
        elif isinstance(layer, Dense):
            modules.append(nn.Linear(n_in[0], layer.units))
            modules.append(activations[layer.activation.name]())  # the output's identity: cross_entropy has softmax
    return nn.Sequential(*modules), net.input_shape


def torch_epochs(spec: str, X: np.ndarray, y: np.ndarray, epochs: int, threads: int | None = None) -> list[float]:
    """Seconds of each epoch of the same network in PyTorch: nn.Sequential + optim.Adam, a plain loop,
    on ``torch.set_num_threads(threads)`` (default: every core)."""
    import torch

    torch.set_num_threads(threads or available_cores())
    torch.manual_seed(0)
    model, input_shape = torch_model(spec)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    X_t, y_t = torch.from_numpy(X).reshape(-1, *input_shape), torch.from_numpy(y.astype(np.int64))
    generator = torch.Generator().manual_seed(0)
    seconds = []
    model.train()
    for _ in range(epochs):
        start = time.perf_counter()
        order = torch.randperm(X_t.shape[0], generator=generator)
        for i in range(0, X_t.shape[0], BATCH):
            idx = order[i : i + BATCH]
            optimizer.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(model(X_t[idx]), y_t[idx])
            loss.backward()
            optimizer.step()
        seconds.append(time.perf_counter() - start)
    return seconds


def sklearn_epochs(spec: str, X: np.ndarray, y: np.ndarray, epochs: int, threads: int | None = None) -> list[float]:
    """Seconds of each epoch of scikit-learn's MLPClassifier: the same widths, all ReLU (its closest shape)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    net = nnscratch.Network.from_spec(spec)
    widths = tuple(layer.units for layer in net.layers[:-1])
    clf = MLPClassifier(
        widths, activation="relu", solver="adam", batch_size=BATCH, learning_rate_init=LR, random_state=0
    )
    from threadpoolctl import threadpool_limits

    classes = np.unique(y)
    seconds = []
    with warnings.catch_warnings(), threadpool_limits(limits=threads or available_cores(), user_api="blas"):
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(epochs):
            start = time.perf_counter()
            clf.partial_fit(X, y, classes=classes)  # one pass over the data in mini-batches
            seconds.append(time.perf_counter() - start)
    return seconds


PEERS = {"pytorch": ("torch", torch_epochs), "scikit-learn": ("sklearn", sklearn_epochs)}
MLP_ONLY = {"scikit-learn"}  # scikit-learn has no convolutional networks


# -- the floor ---------------------------------------------------------------------------------


def gemm_bound(spec: str, n: int, *, repeat: int = 20, threads: int | None = None) -> dict:
    """Seconds one epoch's matrix products alone take with numpy.matmul, on exactly those shapes.

    Per batch of m, for every dense layer: forward X W (m×n_in by n_in×n_out), backward Xᵀ dZ (dW) and
    dZ Wᵀ (dX, but not for the first layer).  For every convolution, the same three products of its
    im2col form: the columns (m·Ho·Wo × k·k·C) by the filters (k·k·C × F), their transpose by dY,
    and dY by the filters' transpose.  Each product is timed (best of ``repeat`` batches of calls) on
    float32 arrays in the layouts the engine uses, with the BLAS library on ``threads`` threads (default:
    every core): the floor no im2col NumPy implementation can beat.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads or available_cores(), user_api="blas"):
        return _gemm_bound(spec, n, repeat)


def _gemm_bound(spec: str, n: int, repeat: int) -> dict:
    net = nnscratch.Network.from_spec(spec)
    rng = np.random.default_rng(0)
    per_batch, flops, first = 0.0, 0, True
    for layer in net.layers:
        if isinstance(layer, Dense):
            rows, a, b = BATCH, layer.n_in, layer.units
        elif isinstance(layer, Conv2D):
            _, Ho, Wo = layer.output_shape
            rows, a, b = BATCH * Ho * Wo, layer.n_columns, layer.filters
        else:
            continue
        X = rng.random((rows, a), dtype=np.float32)
        W = rng.random((a, b), dtype=np.float32)
        dZ = rng.random((rows, b), dtype=np.float32)
        products = [lambda X=X, W=W: X @ W, lambda X=X, dZ=dZ: X.T @ dZ]
        if not first:
            products.append(lambda dZ=dZ, W=W: dZ @ W.T)
        first = False
        for product in products:
            number = max(1, min(50, int(2e8 // (rows * a * b))))
            per_batch += min(timeit.repeat(product, number=number, repeat=repeat)) / number
            flops += 2 * rows * a * b
    batches = n / BATCH
    seconds = per_batch * batches
    return {
        "seconds_per_epoch": seconds,
        "gflop_per_epoch": flops * batches / 1e9,
        "gflops": flops * batches / seconds / 1e9,
    }


# -- memory and time to accuracy, each in a fresh process ---------------------------------------

# VmHWM is this process's own peak resident memory; ru_maxrss would carry over the parent's peak
# across fork and exec on Linux.
MEMORY_SCRIPT = """
import sys, nnscratch
data = nnscratch.load_dataset(sys.argv[1] or None)
for spec in sys.argv[2:]:
    net = nnscratch.Network.from_spec(spec, seed=0)
    nnscratch.train(net, data.X_train, data.y_train, nnscratch.TrainConfig(epochs=1))
status = open("/proc/self/status").read().split("VmHWM:")[1]
print(int(status.split()[0]) / 1024)
"""

TTA_SCRIPT = """
import json, sys, time
start = time.perf_counter()
import numpy as np, nnscratch
from nnscratch.parallel import available_cores
from nnscratch.presets import PRESETS
data = nnscratch.load_dataset(sys.argv[1] or None)
preset = PRESETS[sys.argv[2]]
recipe = {**preset.training, **json.loads(sys.argv[3])}
net = preset.network(data.n_features, data.n_classes, seed=0)
thresholds = [float(t) for t in sys.argv[4].split(",")]
reached, curve = {}, []

class Watch(nnscratch.Callback):
    def on_epoch_end(self, net, record):
        accuracy = float(np.mean(net.predict(data.X_test) == data.y_test))
        now = time.perf_counter() - start
        curve.append({"epoch": record.epoch, "test_accuracy": accuracy, "wall_seconds": now})
        for t in thresholds:
            if accuracy >= t and str(t) not in reached:
                reached[str(t)] = {"wall_seconds": now, "epoch": record.epoch}

nnscratch.train(net, data.X_train, data.y_train, nnscratch.TrainConfig(**recipe), callback=Watch())
print(json.dumps({"reached": reached, "curve": curve, "recipe": recipe, "spec": net.spec}))
"""


def peak_memory_mb(data_dir: str | None, specs: list[str]) -> float:
    """Peak resident memory of a fresh process that loads MNIST and trains each of ``specs`` for one epoch."""
    done = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT, data_dir or "", *specs], capture_output=True, text=True, check=True
    )
    return float(done.stdout.strip().splitlines()[-1])


def thresholds_for(preset: str) -> list[float]:
    """The accuracies whose time is reported: higher for the convnets and the records."""
    high = PRESETS[preset].convolutional or preset.endswith("-best")
    return [0.99, 0.993, 0.995] if high else [0.97, 0.98, 0.985]


AUGMENTATION_SCRIPT = """
import json, sys, nnscratch
from nnscratch.presets import PRESETS
data = nnscratch.load_dataset(sys.argv[1] or None)
preset, kinds, epochs = PRESETS[sys.argv[2]], sys.argv[3].split(","), int(sys.argv[4])
seconds = {}
for kind in kinds:
    net = preset.network(data.n_features, data.n_classes, seed=0)
    recipe = {**preset.training, "epochs": epochs, "augment": kind, "augment_strength": 0.5, "validation_size": 0}
    history = nnscratch.train(net, data.X_train, data.y_train, nnscratch.TrainConfig(**recipe))
    seconds[kind] = [r.seconds for r in history.epochs]
print(json.dumps(seconds))
"""


def augmentation_cost(data_dir: str | None, preset: str, epochs: int = 3) -> dict:
    """Seconds per epoch of a preset's network without augmentation and with each kind (strength 0.5),
    in a fresh process, and what each adds to an epoch."""
    kinds = ["none", "shift", "affine", "elastic"]
    done = subprocess.run(
        [sys.executable, "-c", AUGMENTATION_SCRIPT, data_dir or "", preset, ",".join(kinds), str(epochs)],
        capture_output=True,
        text=True,
        check=True,
    )
    seconds = json.loads(done.stdout.strip().splitlines()[-1])
    median = {kind: statistics.median(values) for kind, values in seconds.items()}
    return {
        "epochs": seconds,
        "median_seconds_per_epoch": median,
        "added": {kind: median[kind] / median["none"] - 1 for kind in kinds[1:]},
    }


def time_to_accuracy(data_dir: str | None, preset: str, overrides: dict, thresholds: list[float]) -> dict:
    args = [sys.executable, "-c", TTA_SCRIPT, data_dir or "", preset, json.dumps(overrides)]
    done = subprocess.run(args + [",".join(map(str, thresholds))], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- the run -----------------------------------------------------------------------------------


def is_convnet(spec: str) -> bool:
    return len(nnscratch.Network.from_spec(spec).input_shape) == 3


def measure(fn, spec: str, X, y, *, warmup: int, epochs: int, threads: int) -> dict:
    seconds = fn(spec, X, y, warmup + epochs, threads)[warmup:]
    return {"median_seconds_per_epoch": statistics.median(seconds), "epochs": seconds}


def measure_network(spec: str, X, y, args: argparse.Namespace, threads: int) -> dict:
    """Every contender on one network at one thread count, the GEMM bound and the ratios."""
    entry = {
        "nnscratch": measure(nnscratch_epochs, spec, X, y, warmup=args.warmup, epochs=args.epochs, threads=threads)
    }
    seconds = command_line_epochs(spec, args.warmup + args.epochs, threads, args.data_dir)[args.warmup :]
    entry["nnscratch train"] = {"median_seconds_per_epoch": statistics.median(seconds), "epochs": seconds}
    for peer, (module, fn) in PEERS.items():
        if is_convnet(spec) and peer in MLP_ONLY:
            entry[peer] = {"skipped": f"{peer} has no convolutional networks"}
            continue
        try:
            __import__(module)
        except ImportError:
            entry[peer] = {"skipped": f"{module} is not installed"}
            continue
        entry[peer] = measure(fn, spec, X, y, warmup=args.warmup, epochs=args.epochs, threads=threads)
    entry["gemm_bound"] = gemm_bound(spec, X.shape[0], repeat=3 if args.quick else 20, threads=threads)
    ours = entry["nnscratch"]["median_seconds_per_epoch"]
    entry["ratios"] = {
        f"nnscratch/{peer}": ours / entry[peer]["median_seconds_per_epoch"]
        for peer in PEERS
        if "median_seconds_per_epoch" in entry[peer]
    }
    entry["ratios"]["nnscratch/gemm_bound"] = ours / entry["gemm_bound"]["seconds_per_epoch"]
    if "median_seconds_per_epoch" in entry.get("pytorch", {}):
        command = entry["nnscratch train"]["median_seconds_per_epoch"]
        entry["ratios"]["nnscratch train/pytorch"] = command / entry["pytorch"]["median_seconds_per_epoch"]
    return entry


def profile_epoch(spec: str, X: np.ndarray, y: np.ndarray, threads: int, *, batches: int | None = None) -> dict:
    """Where one training epoch of ``spec`` goes, layer by layer: each layer's forward and backward, the
    loss, the optimiser's step and the rest of the loop (batch gathering, accuracy, bookkeeping).

    Every layer's ``forward`` and ``backward`` (and the optimiser's ``step``, the loss) are wrapped in a
    clock, so each figure is wall time on the network's threads; the whole is the loop's own epoch clock.
    ``batches`` cuts the epoch to that many batches (a shorter run, the same shares).
    """
    import time

    import nnscratch.network as network_module
    from nnscratch.training import Trainer

    net = nnscratch.Network.from_spec(spec, seed=0, threads=threads)
    m = X.shape[0] if batches is None else min(X.shape[0], batches * BATCH)
    config = nnscratch.TrainConfig(epochs=2, batch_size=BATCH, learning_rate=LR, validation_size=0, seed=0)
    trainer = Trainer(net, X[:m], y[:m], config)
    clocks: dict[str, float] = {}

    def clocked(fn, name):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                clocks[name] = clocks.get(name, 0.0) + time.perf_counter() - start

        return wrapper

    names = []
    for i, layer in enumerate(net.stack().layers):
        name = f"{i + 1:2d} {layer.token}"
        names.append(name)
        layer.forward = clocked(layer.forward, (name, "forward"))  # type: ignore[method-assign]
        layer.backward = clocked(layer.backward, (name, "backward"))  # type: ignore[method-assign]
    optimizer = trainer.state.optimizer
    optimizer.step = clocked(optimizer.step, ("optimiser step", "update"))  # type: ignore[method-assign]
    loss = network_module.softmax_cross_entropy
    network_module.softmax_cross_entropy = clocked(loss, ("loss (softmax cross-entropy)", "forward"))
    try:
        trainer.run_more(1)  # a warm-up epoch: buffers allocated, caches warm
        clocks.clear()
        history = trainer.run_more(1)
    finally:
        network_module.softmax_cross_entropy = loss
    total = history.epochs[-1].seconds
    rows = [
        {"part": name, "forward": clocks.get((name, "forward"), 0.0), "backward": clocks.get((name, "backward"), 0.0)}
        for name in names
    ]
    rows.append(
        {
            "part": "loss (softmax cross-entropy)",
            "forward": clocks.get(("loss (softmax cross-entropy)", "forward"), 0.0),
            "backward": 0.0,
        }
    )
    rows.append({"part": "optimiser step", "forward": clocks.get(("optimiser step", "update"), 0.0), "backward": 0.0})
    rows.append(
        {
            "part": "the rest of the loop",
            "forward": total - sum(r["forward"] + r["backward"] for r in rows),
            "backward": 0.0,
        }
    )
    return {"spec": spec, "threads": threads, "batches": -(-m // BATCH), "epoch_seconds": total, "rows": rows}


def report_profile(profiles: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for profile in profiles:
        total = profile["epoch_seconds"]
        table = Table(
            title=f"one epoch of {profile['spec']} ({profile['batches']} batches of {BATCH}, "
            f"{profile['threads']} threads): {total:.2f} s",
            title_justify="left",
        )
        for column in ("layer", "forward s", "backward s", "share"):
            table.add_column(column, justify="left" if column == "layer" else "right")
        for row in profile["rows"]:
            both = row["forward"] + row["backward"]
            table.add_row(
                row["part"],
                f"{row['forward']:.3f}",
                f"{row['backward']:.3f}" if row["backward"] else "",
                f"{100 * both / total:.1f}%",
            )
        console.print(table)


def run(args: argparse.Namespace) -> dict:
    data = nnscratch.load_dataset(args.data_dir)
    X, y = data.X_train, data.y_train
    results: dict = {
        "machine": machine_info(),
        "settings": {
            "batch_size": BATCH,
            "learning_rate": LR,
            "optimizer": "adam",
            "dtype": "float32",
            "train_images": int(X.shape[0]),
            "warmup_epochs": args.warmup,
            "measured_epochs": args.epochs,
            "threads": args.threads,
        },
    }
    networks = {}
    for key in args.networks:
        spec = NETWORKS[key]
        by_threads = {str(t): measure_network(spec, X, y, args, t) for t in args.threads}
        entry: dict = {"spec": spec, "threads": by_threads}
        if 1 in args.threads and len(args.threads) > 1:
            entry["speedup_over_1_thread"] = {
                str(t): {
                    who: by_threads["1"][who]["median_seconds_per_epoch"]
                    / by_threads[str(t)][who]["median_seconds_per_epoch"]
                    for who in ("nnscratch", *PEERS)
                    if "median_seconds_per_epoch" in by_threads[str(t)].get(who, {})
                }
                for t in args.threads
                if t != 1
            }
        networks[key] = entry
    results["networks"] = networks
    # one fresh process per kind of network: the MLPs together, each convnet on its own
    mlps = [NETWORKS[k] for k in args.networks if not is_convnet(NETWORKS[k])]
    results["peak_memory_mb"] = {
        **({"mlps": peak_memory_mb(args.data_dir, mlps)} if mlps else {}),
        **{k: peak_memory_mb(args.data_dir, [NETWORKS[k]]) for k in args.networks if is_convnet(NETWORKS[k])},
    }
    if args.time_to_accuracy:
        overrides = {"epochs": args.tta_max_epochs} if args.tta_max_epochs else {}
        results["time_to_accuracy"] = {
            preset: time_to_accuracy(args.data_dir, preset, overrides, thresholds_for(preset))
            for preset in args.tta_preset
        }
    if args.augmentation_cost:
        results["augmentation_cost"] = {preset: augmentation_cost(args.data_dir, preset) for preset in ("fast", "cnn")}
    return results


def machine_info() -> dict:
    info = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "nnscratch": nnscratch.__version__,
    }
    try:
        info["blas"] = np.show_config(mode="dicts")["Build Dependencies"]["blas"]["name"]
    except Exception:  # noqa: BLE001 - only informative
        info["blas"] = "unknown"
    for module in ("torch", "sklearn"):
        try:
            info[module] = __import__(module).__version__
        except ImportError:
            info[module] = None
    return info


def report(results: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title="seconds per epoch on full MNIST (median; float32, batch 128, Adam)")
    for column in (
        "network",
        "threads",
        "nnscratch",
        "nnscratch train",
        "PyTorch",
        "scikit-learn",
        "GEMM bound",
        "vs PyTorch",
        "train vs PyTorch",
        "vs sklearn",
        "vs bound",
    ):
        table.add_column(column, justify="right" if column != "network" else "left")
    for key, entry in results["networks"].items():
        for threads, row in entry["threads"].items():

            def cell(peer, row=row):
                seconds = row.get(peer, {}).get("median_seconds_per_epoch")
                return "—" if seconds is None else f"{seconds:.3f}"

            ratios = row["ratios"]
            table.add_row(
                key,
                threads,
                cell("nnscratch"),
                cell("nnscratch train"),
                cell("pytorch"),
                cell("scikit-learn"),
                f"{row['gemm_bound']['seconds_per_epoch']:.3f}",
                f"{ratios['nnscratch/pytorch']:.2f}×" if "nnscratch/pytorch" in ratios else "—",
                f"{ratios['nnscratch train/pytorch']:.2f}×" if "nnscratch train/pytorch" in ratios else "—",
                f"{ratios['nnscratch/scikit-learn']:.2f}×" if "nnscratch/scikit-learn" in ratios else "—",
                f"{ratios['nnscratch/gemm_bound']:.2f}×",
            )
    console.print(table)
    for key, entry in results["networks"].items():
        for threads, speedups in entry.get("speedup_over_1_thread", {}).items():
            gains = ", ".join(f"{who} {gain:.2f}×" for who, gain in speedups.items())
            console.print(f"{key}: speedup from 1 to {threads} threads: {gains}")
    peaks = ", ".join(f"{name} {mb:.0f} MB" for name, mb in results["peak_memory_mb"].items())
    console.print(f"peak memory of an nnscratch training run on full MNIST (one epoch, fresh process): {peaks}")
    for preset, tta in results.get("time_to_accuracy", {}).items():
        reached = ", ".join(
            f"{float(t) * 100:g}% after {v['wall_seconds']:.1f} s (epoch {v['epoch']})"
            for t, v in tta["reached"].items()
        )
        final = tta["curve"][-1] if tta["curve"] else None
        end = f"; it ends at {100 * final['test_accuracy']:.2f}% after {final['wall_seconds']:.0f} s" if final else ""
        console.print(
            f"time to accuracy, preset {preset} (wall, data loading included): {reached or 'none reached'}{end}"
        )
    for preset, cost in results.get("augmentation_cost", {}).items():
        added = ", ".join(f"{kind} +{100 * share:.0f}%" for kind, share in cost["added"].items())
        console.print(
            f"augmentation, {preset} preset's network: {cost['median_seconds_per_epoch']['none']:.2f} s per epoch "
            f"without; {added}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=textwrap.dedent(__doc__ or "").strip().splitlines()[0])
    parser.add_argument("--data-dir", help="MNIST directory (default: $NNSCRATCH_DATA, else the cache)")
    parser.add_argument("--epochs", type=int, default=5, help="measured epochs per contender (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="warm-up epochs, not counted (default 1)")
    parser.add_argument(
        "--networks", default=DEFAULT_NETWORKS, help=f"comma-separated, from {', '.join(NETWORKS)} (default: all)"
    )
    parser.add_argument("--output", default="bench/results/train_speed.json", help="where to write the JSON")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 1 measured epoch, seed network only")
    parser.add_argument(
        "--threads",
        default=str(available_cores()),
        help="comma-separated thread counts to measure every contender at, e.g. 1,2 (default: every core)",
    )
    parser.add_argument(
        "--time-to-accuracy",
        action="store_true",
        help="also measure the wall time to 97/98/98.5%% test accuracy (99/99.3/99.5%% for the cnn preset)",
    )
    parser.add_argument(
        "--tta-preset",
        default="fast",
        help=f"comma-separated presets of the time-to-accuracy runs, from {', '.join(PRESETS)} (default fast)",
    )
    parser.add_argument(
        "--augmentation-cost",
        action="store_true",
        help="also measure what each augmentation adds to an epoch of the fast and cnn presets' networks",
    )
    parser.add_argument("--tta-max-epochs", type=int, help="override the preset's number of epochs")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="instead of the comparison: where one epoch of each network goes, layer by layer (forward, "
        "backward), the loss, the optimiser and the rest of the loop",
    )
    parser.add_argument(
        "--profile-batches", type=int, metavar="N", help="with --profile: profile N batches instead of a whole epoch"
    )
    args = parser.parse_args(argv)
    args.networks = [n.strip() for n in args.networks.split(",") if n.strip()]
    args.tta_preset = [p.strip() for p in args.tta_preset.split(",") if p.strip()]
    unknown_presets = [p for p in args.tta_preset if p not in PRESETS]
    if unknown_presets:
        parser.error(f"unknown preset {unknown_presets[0]!r}; choose from {', '.join(PRESETS)}")
    try:
        args.threads = sorted({int(t) for t in args.threads.split(",") if t.strip()})
    except ValueError:
        parser.error(f"--threads takes positive integers such as 1,2, got {args.threads!r}")
    if not args.threads or min(args.threads) < 1:
        parser.error(f"--threads takes positive integers such as 1,2, got {args.threads!r}")
    if args.quick:
        args.epochs, args.warmup, args.networks = 1, 0, ["seed"]
    unknown = [n for n in args.networks if n not in NETWORKS]
    if unknown:
        parser.error(f"unknown network {unknown[0]!r}; choose from {', '.join(NETWORKS)}")
    if args.profile:
        data = nnscratch.load_dataset(args.data_dir)
        profiles = [
            profile_epoch(NETWORKS[key], data.X_train, data.y_train, threads, batches=args.profile_batches)
            for key in args.networks
            for threads in args.threads
        ]
        report_profile(profiles)
        results = {"machine": machine_info(), "profile": profiles}
    else:
        results = run(args)
        report(results)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2))
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
