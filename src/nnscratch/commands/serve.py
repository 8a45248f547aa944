"""``nnscratch serve MODEL [MODEL...]``: a web page to draw digits on and watch the networks read them."""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import socket
from pathlib import Path

from nnscratch.commands.common import add_threads, bounded_int, err, port_number, terminate_interrupts
from nnscratch.parallel import available_cores
from nnscratch.reader import reader_path

WORKERS_PER_CORE = 4  # each worker is a process holding every model: beyond a few per core they only compete


def worker_count(text: str) -> int:
    """An argparse type for --workers: 1 to WORKERS_PER_CORE processes per core of this machine."""
    most = WORKERS_PER_CORE * available_cores()
    return bounded_int(text, 1, most, f"{WORKERS_PER_CORE} per core on this machine's {available_cores()}")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve a page to draw digits on",
        description="Serve a web page where you draw a digit with the mouse or a finger and see what each model "
        "reads, side by side: the prediction, the probability of each class, the 28×28 image the network sees, "
        "the activations of every hidden dense layer and every feature map of a convnet's convolution and "
        "pooling layers. JSON API: POST /api/predict, GET /api/models, GET /api/model. Works offline.",
    )
    parser.add_argument(
        "models",
        nargs="*",
        metavar="MODEL",
        help="model files written by 'nnscratch train'; each is named by its file name, the first is the default "
        "(none: the reader that ships with nnscratch, reader.npz)",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: 127.0.0.1, reachable from this machine only)",
    )
    parser.add_argument("--port", type=port_number, default=8000, help="port, 1 to 65535 (default: 8000)")
    parser.add_argument(
        "--workers",
        type=worker_count,
        default=1,
        help=f"server processes sharing the port, at most {WORKERS_PER_CORE} per core, each loading every model "
        "(default: 1). One process answered "
        "some 2,300 requests/s for the default model on 2 cores, two some 4,200: more processes help only "
        "with cores to spare (bench/README.md)",
    )
    add_threads(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from nnscratch.parallel import ENV_THREADS

    if args.threads:  # through the environment, so that worker processes compute with it too
        os.environ[ENV_THREADS] = str(args.threads)

    from nnscratch.web.app import MODELS_VARIABLE, create_app
    from nnscratch.web.served import load_models

    if not args.models:
        args.models = [str(reader_path())]
    models = load_models(args.models)  # every file is read here first, so a bad one is a one-line error
    names = ", ".join(model.name for model in models)
    sock = listen_socket(args.host, args.port)  # a port in use is a one-line error too, not uvicorn's log
    err.print(f"serving {names} on http://{args.host}:{args.port}/  (Ctrl-C to stop)")
    if args.workers == 1:
        config = uvicorn.Config(create_app(models), host=args.host, port=args.port, log_level="warning")
        server = uvicorn.Server(config)
        # Ctrl-C and SIGTERM are how a server is asked to stop: uvicorn shuts down cleanly, then raises
        # the signal again, which terminate_interrupts turns into KeyboardInterrupt; the exit is 0.
        with sock, terminate_interrupts(), contextlib.suppress(KeyboardInterrupt):
            server.run(sockets=[sock])
        return 0 if server.started else 1
    # Worker processes each build their own app from the model paths (uvicorn needs a factory to import).
    # uvicorn's supervisor binds the port itself (how it takes a socket differs between its versions), so
    # the probe is closed first; a program taking the port in between meets uvicorn's own message.
    sock.close()
    os.environ[MODELS_VARIABLE] = json.dumps([str(Path(path).resolve()) for path in args.models])
    with terminate_interrupts(), contextlib.suppress(KeyboardInterrupt):
        uvicorn.run(
            "nnscratch.web.app:app_from_environment",
            factory=True,
            workers=args.workers,
            host=args.host,
            port=args.port,
            log_level="warning",
        )
    return 0


def listen_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host``:``port`` as uvicorn binds one; OSError with a one-line message if it cannot be."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: a port in TIME_WAIT is free
    try:
        sock.bind((host, port))
    except socket.gaierror as exc:
        sock.close()
        raise OSError(
            f"cannot resolve --host {host!r} ({exc.strerror}); give an address such as 127.0.0.1 or 0.0.0.0"
        ) from None
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise OSError(f"port {port} on {host} is already in use; choose another with --port") from None
        if exc.errno == errno.EACCES:
            raise OSError(f"no permission to listen on port {port}; choose one from 1024 up with --port") from None
        raise OSError(f"cannot listen on {host} port {port} ({exc.strerror}); choose another --host") from None
    return sock
