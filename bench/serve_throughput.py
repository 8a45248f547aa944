"""Throughput of ``nnscratch serve`` measured with ApacheBench (``ab``), on 127.0.0.1 only.

    python bench/serve_throughput.py                       # the default model, 4,000 requests × 50 clients
    python bench/serve_throughput.py MODEL --workers 1 2 --repeat 3 --kind image
    python bench/serve_throughput.py --spec 1x28x28-conv32k3-relu-maxpool2-conv64k3-relu-maxpool2-flatten-10:softmax

For each ``--workers`` count it starts the real server (``nnscratch serve MODEL --workers N``) on a free
local port, warms it up, then runs ``ab -n 4000 -c 50 -p body.json -T application/json URL/api/predict``
``--repeat`` times, every request with the same body: MNIST-like ``pixels``, or a drawn PNG with
``--kind image``.  Without MODEL it saves a model of ``--spec`` to a temporary file, by default the
default model's architecture (the one ``nnscratch train`` makes: 784-256:relu-128:relu-10:softmax);
random weights cost the same to run as trained ones.  ``ab`` comes from Debian's apache2-utils,
installed with apt-get when it is missing and this runs as root.

Each run records errors (refused, cut-off and non-2xx requests), requests/s, the latency percentiles ab
reports, the server's CPU time per request (its processes' user + system time, from /proc) and the load
average before it.  The machine has 2 cores shared with other work: requests/s and latency are only
comparable between runs made at the same quiet time; CPU time per request hardly moves with the load.
Everything goes to bench/results/serve_throughput.json (``--output`` to change).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load_test import free_port, request_bodies  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "serve_throughput.json"


def ensure_ab() -> str:
    """The path of ``ab``, installing apache2-utils with apt-get if it is missing (as .ci/run installs chromium)."""
    found = shutil.which("ab")
    if found:
        return found
    if shutil.which("apt-get") and os.geteuid() == 0:
        print("installing apache2-utils for ab...", file=sys.stderr)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "apache2-utils"], check=True, env=env)
        found = shutil.which("ab")
    if not found:
        sys.exit("serve_throughput: ab is not installed; install it with: sudo apt-get install apache2-utils")
    return found


def default_spec() -> str:
    from nnscratch.presets import get_preset

    return get_preset("default").spec(784, 10)


def random_model(spec: str, directory: Path) -> Path:
    from nnscratch.network import Network

    return Network.from_spec(spec, seed=0).save(directory / "model.npz")


def start_server(model: Path, port: int, workers: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "nnscratch.cli", "serve", str(model), "--port", str(port)]
    if workers > 1:  # so that the script also measures versions of the server without --workers
        command += ["--workers", str(workers)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/model", timeout=1).read()
            return server
        except OSError:
            if server.poll() is not None:
                break
            time.sleep(0.1)
    server.kill()
    raise RuntimeError("the server did not start: " + server.stderr.read().decode(errors="replace"))


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` and of its children (uvicorn's workers), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:  # not Linux, or the process is gone
        return float("nan")
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
    return own + sum(cpu_seconds(int(child)) for child in children)


def run_ab(ab: str, url: str, body: Path, *, requests: int, concurrency: int, workdir: Path, server: int) -> dict:
    """One ab run: errors, requests/s, latency percentiles (ms, from ab's -e table) and the server's
    CPU time per request (which, unlike requests/s, hardly changes when other work shares the cores)."""
    table = workdir / "percentiles.csv"
    command = [ab, "-q", "-n", str(requests), "-c", str(concurrency), "-p", str(body), "-T", "application/json"]
    load = os.getloadavg()[0]
    cpu = cpu_seconds(server)
    done = subprocess.run([*command, "-e", str(table), url], capture_output=True, text=True, timeout=600)
    cpu = cpu_seconds(server) - cpu
    if done.returncode != 0:
        raise RuntimeError(f"ab failed: {done.stderr.strip() or done.stdout.strip()}")
    text = done.stdout

    def number(label: str) -> float:
        match = re.search(rf"^{label}:\s+([\d.]+)", text, re.MULTILINE)
        return float(match.group(1)) if match else 0.0

    breakdown = re.search(r"\(Connect: (\d+), Receive: (\d+), Length: (\d+), Exceptions: (\d+)\)", text)
    counts = map(int, breakdown.groups()) if breakdown else [0] * 4
    failed = dict(zip(("Connect", "Receive", "Length", "Exceptions"), counts, strict=True))
    with table.open() as f:
        percentiles = {int(row[0]): float(row[1]) for row in list(csv.reader(f))[1:]}
    return {
        "load_average_before": load,
        "complete": int(number("Complete requests")),
        # ab also counts as failed an answer whose length differs from the first one's ("Length"), which
        # is no error here: a batched forward pass may change the last digits of the probabilities.
        "errors": requests
        - int(number("Complete requests"))
        + int(failed["Connect"] + failed["Receive"] + failed["Exceptions"] + number("Non-2xx responses")),
        "requests_per_second": number("Requests per second"),
        "p50_ms": percentiles[50],
        "p90_ms": percentiles[90],
        "p99_ms": percentiles[99],
        "max_ms": percentiles[100],
        "server_cpu_ms_per_request": 1000 * cpu / max(1, int(number("Complete requests"))),
    }


def measure(
    model: Path, *, workers: int, kind: str, requests: int, concurrency: int, repeat: int, ab: str, workdir: Path
) -> dict:
    body = workdir / "body.json"
    body.write_text(json.dumps(request_bodies(kind, 1)[0]))
    port = free_port()
    url = f"http://127.0.0.1:{port}/api/predict"
    server = start_server(model, port, workers)
    try:
        options = {"concurrency": concurrency, "workdir": workdir, "server": server.pid}
        run_ab(ab, url, body, requests=min(requests, 500), **options)  # warm-up
        runs = [run_ab(ab, url, body, requests=requests, **options) for _ in range(repeat)]
    finally:
        server.terminate()
        server.wait(timeout=10)
    return {
        "workers": workers,
        "runs": runs,
        "median_requests_per_second": statistics.median(r["requests_per_second"] for r in runs),
        "median_p99_ms": statistics.median(r["p99_ms"] for r in runs),
        "median_server_cpu_ms_per_request": statistics.median(r["server_cpu_ms_per_request"] for r in runs),
        "errors": sum(r["errors"] for r in runs),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Throughput of nnscratch serve with ab, on 127.0.0.1.")
    parser.add_argument("model", nargs="?", help="a model file (default: --spec with random weights)")
    parser.add_argument("--spec", default=default_spec(), help="the architecture without MODEL (default: the default)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts to measure (1 2)")
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3, help="measured ab runs per worker count (default 3)")
    parser.add_argument("--kind", choices=["pixels", "image"], default="pixels", help="request body (default pixels)")
    parser.add_argument("--output", default=str(RESULTS), help="where to write the results as JSON")
    args = parser.parse_args(argv)
    ab = ensure_ab()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        model = Path(args.model) if args.model else random_model(args.spec, workdir)
        results = []
        for workers in args.workers:
            result = measure(
                model,
                workers=workers,
                kind=args.kind,
                requests=args.requests,
                concurrency=args.concurrency,
                repeat=args.repeat,
                ab=ab,
                workdir=workdir,
            )
            results.append(result)
            print(
                f"--workers {workers}: {result['errors']} errors; "
                + "; ".join(
                    f"{r['requests_per_second']:.0f} req/s, p50 {r['p50_ms']:.0f} ms, p99 {r['p99_ms']:.0f} ms, "
                    f"{r['server_cpu_ms_per_request']:.2f} CPU ms/req (load {r['load_average_before']:.1f})"
                    for r in result["runs"]
                )
            )
    report = {
        "command": " ".join(["python bench/serve_throughput.py", *(argv if argv is not None else sys.argv[1:])]),
        "model": args.model or f"{args.spec}, random weights",
        "kind": args.kind,
        "requests": args.requests,
        "concurrency": args.concurrency,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "ab": subprocess.run([ab, "-V"], capture_output=True, text=True).stdout.splitlines()[0],
        "results": results,
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(report, indent=2) + "\n")
    return 1 if any(r["errors"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
