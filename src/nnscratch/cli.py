"""The ``nnscratch`` command line.  Each sub-command lives in ``nnscratch.commands.<name>``.

This is the only place that turns library exceptions into one-line messages and exit codes:
0 success, 1 a problem with the data, a model file or the run, 2 a bad command line, 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from nnscratch import __version__
from nnscratch.errors import NNScratchError

# The order commands appear in --help; any other module in nnscratch.commands with a register()
# function is listed after these.
ORDER = ("train", "evaluate", "predict", "serve", "compare", "gradcheck")


def command_names() -> list[str]:
    import pkgutil

    import nnscratch.commands

    found = [m.name for m in pkgutil.iter_modules(nnscratch.commands.__path__) if m.name != "common"]
    return sorted(found, key=lambda name: (ORDER.index(name) if name in ORDER else len(ORDER), name))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nnscratch",
        description="A neural network written from scratch in NumPy that learns to read handwritten digits.",
        epilog="Run 'nnscratch COMMAND --help' for the options of each command.",
    )
    parser.add_argument("--version", action="version", version=f"nnscratch {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in command_names():
        importlib.import_module(f"nnscratch.commands.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        print("nnscratch: interrupted; nothing was saved", file=sys.stderr)
        return 130
    except (NNScratchError, ValueError, OSError) as exc:
        if os.environ.get("NNSCRATCH_DEBUG"):
            raise
        print(f"nnscratch {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except MemoryError as exc:  # what the network's own check could not foresee: a large batch, a busy machine
        if os.environ.get("NNSCRATCH_DEBUG"):
            raise
        detail = _one_line(exc) if str(exc) else "an array did not fit"
        detail = detail[:1].lower() + detail[1:]  # numpy's "Unable to allocate 3.2 TiB for an array ..."
        print(
            f"nnscratch {args.command}: error: out of memory: {detail}; try a smaller network or --batch-size",
            file=sys.stderr,
        )
        return 1
    return 0


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror and exc.filename:
        return f"{exc.filename}: {exc.strerror}"
    return " ".join(str(exc).split()) or type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
