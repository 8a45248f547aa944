"""``nnscratch export``: write a saved model as an ONNX graph that outputs softmax probabilities."""

from __future__ import annotations

import argparse

from nnscratch.commands.common import out
from nnscratch.io import check_writable_file


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export a model to ONNX",
        description="Write MODEL as an ONNX graph (opset 17, float32) for onnxruntime and other runtimes. "
        "The graph's input 'input' takes what predict takes: an MLP flat rows float32[N,784]; a convnet "
        "channels-first images float32[N,C,H,W] (--input-layout nchw, the default) or flat rows float32[N,C*H*W] "
        "in channels-first order (--input-layout flat). Its output 'probabilities' is float32[N,classes], "
        "each row summing to 1. Batch norm is exported in its inference form; dropout is left out. "
        "Needs the onnx package: pip install 'nnscratch[onnx]'.",
    )
    parser.add_argument("model", metavar="MODEL.npz", help="a model saved by 'nnscratch train'")
    parser.add_argument("output", metavar="OUT.onnx", help="where to write the ONNX model")
    parser.add_argument(
        "--input-layout",
        choices=("nchw", "flat"),
        help="for a network on images: nchw (N,C,H,W images, the default) or flat (N,C*H*W rows); "
        "an MLP always takes flat rows",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from nnscratch.export import OPSET, describe_io, export_onnx, require_onnx
    from nnscratch.network import Network

    output = check_writable_file(args.output, "OUT.onnx", example="model.onnx")
    require_onnx()  # says how to install onnx before the model is read
    net = Network.load(args.model)
    path, model = export_onnx(net, output, input_layout=args.input_layout)
    out.print(f"wrote {path}: {net.spec}, {describe_io(model)} (ONNX opset {OPSET}, {len(model.graph.node)} nodes)")
    return 0
