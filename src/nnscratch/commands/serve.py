"""``nnscratch serve MODEL``: a web page to draw digits on and watch the network read them."""

from __future__ import annotations

import argparse
from pathlib import Path

from nnscratch.commands.common import err, positive_int
from nnscratch.network import Network


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve a page to draw digits on",
        description="Serve a web page where you draw a digit with the mouse or a finger and see the prediction, "
        "the probability of each class, the 28×28 image the network sees and the activations of every hidden "
        "layer. JSON API: POST /api/predict, GET /api/model. Works offline.",
    )
    parser.add_argument("model", metavar="MODEL", help="a model file written by 'nnscratch train'")
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: 127.0.0.1, reachable from this machine only)",
    )
    parser.add_argument("--port", type=positive_int, default=8000, help="port (default: 8000)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from nnscratch.web import create_app

    net = Network.load(args.model)
    app = create_app(net, model_name=Path(args.model).name)
    err.print(f"serving {args.model} on http://{args.host}:{args.port}/  (Ctrl-C to stop)")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
