"""A bounded load test of ``nnscratch serve``: N requests from C concurrent clients, on 127.0.0.1 only.

    python bench/load_test.py MODEL                   # 2,000 requests, 50 concurrent clients
    python bench/load_test.py MODEL --requests 500 --concurrency 20 --kind image

Starts the real server (uvicorn) in a subprocess on a free local port, sends POST /api/predict requests
(MNIST-like pixels, or a drawn PNG with --kind image), and reports errors and latency percentiles.  The
loop is bounded by the request count and by --timeout seconds; it always stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request_bodies(kind: str, n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    if kind == "pixels":
        return [
            {"pixels": np.clip(rng.random(784) * (rng.random(784) < 0.2), 0, 1).round(3).tolist()} for _ in range(n)
        ]
    from nnscratch.images import to_png

    bodies = []
    for _ in range(min(n, 32)):
        canvas = np.zeros((280, 280))
        left = 130 + int(rng.integers(-20, 20))
        canvas[60:220, left : left + 20] = 1.0  # a "1" at a random place
        bodies.append({"image": "data:image/png;base64," + base64.b64encode(to_png(canvas)).decode()})
    return [bodies[i % len(bodies)] for i in range(n)]


async def hammer(url: str, bodies: list[dict], concurrency: int, timeout: float) -> tuple[list[float], list[str]]:
    latencies: list[float] = []
    errors: list[str] = []
    queue = list(reversed(bodies))
    deadline = time.monotonic() + timeout

    async def client(session: httpx.AsyncClient) -> None:
        while queue and time.monotonic() < deadline:
            body = queue.pop()
            start = time.perf_counter()
            try:
                response = await session.post(url + "/api/predict", json=body)
                if response.status_code != 200 or "label" not in response.json():
                    errors.append(f"HTTP {response.status_code}")
            except httpx.HTTPError as exc:
                errors.append(type(exc).__name__)
            latencies.append(time.perf_counter() - start)

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(timeout=30, limits=limits) as session:
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
    return latencies, errors


def run(model: str, *, requests: int, concurrency: int, kind: str, timeout: float) -> dict:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "nnscratch.cli", "serve", model, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        for _ in range(200):
            try:
                httpx.get(url + "/api/model", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.05)
        else:
            raise RuntimeError("the server did not start: " + (server.stderr.read().decode() if server.stderr else ""))
        bodies = request_bodies(kind, requests)
        start = time.perf_counter()
        latencies, errors = asyncio.run(hammer(url, bodies, concurrency, timeout))
        wall = time.perf_counter() - start
    finally:
        server.terminate()
        server.wait(timeout=10)
    ordered = sorted(latencies)
    return {
        "requests": len(latencies),
        "concurrency": concurrency,
        "kind": kind,
        "errors": len(errors),
        "error_kinds": sorted(set(errors)),
        "seconds": wall,
        "requests_per_second": len(latencies) / wall,
        "p50_ms": 1000 * statistics.median(ordered),
        "p99_ms": 1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
        "max_ms": 1000 * ordered[-1],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Bounded load test of nnscratch serve on 127.0.0.1.")
    parser.add_argument("model", help="a model file written by 'nnscratch train'")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--kind", choices=["pixels", "image"], default="pixels", help="request body (default pixels)")
    parser.add_argument("--timeout", type=float, default=300, help="stop after this many seconds whatever happens")
    parser.add_argument("--output", help="also write the results as JSON here")
    args = parser.parse_args(argv)
    result = run(args.model, requests=args.requests, concurrency=args.concurrency, kind=args.kind, timeout=args.timeout)
    print(
        f"{result['requests']} requests ({result['kind']}), {result['concurrency']} concurrent: "
        f"{result['errors']} errors, {result['requests_per_second']:.0f} req/s, "
        f"p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms, max {result['max_ms']:.1f} ms"
    )
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(result, indent=2))
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
