"""Exceptions raised by nnscratch.

Every message is one line that says what is wrong and what to do about it.  The command line turns
these into a message and a non-zero exit code; library users can catch :class:`NNScratchError`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import TypeVar

T = TypeVar("T")
ECHO_CHARS = 40  # of a user's text quoted in a message: a token may be any length


class NNScratchError(Exception):
    """Base class of every error nnscratch raises on purpose."""


class SpecError(NNScratchError, ValueError):
    """A network specification, preset or setting is malformed."""


class CapacityError(SpecError):
    """A well-formed network (or batch) that needs more memory than this machine has."""


class DataError(NNScratchError):
    """A data file is missing, truncated, corrupted or inconsistent."""


class DownloadError(DataError):
    """MNIST could not be downloaded or failed its checksum."""


class ModelFileError(NNScratchError):
    """A saved model file is missing, unreadable or does not describe a valid network."""


class OutputPathError(NNScratchError, OSError):
    """A path to write to cannot take the output: empty, a directory, a device, a FIFO, read-only."""


class NonFiniteOutputError(NNScratchError, ArithmeticError):
    """A network's output is NaN or infinite (its weights overflow the arithmetic), so it has no answer."""


class DivergenceError(NNScratchError, ArithmeticError):
    """Training produced a NaN or infinite loss or weight."""

    def __init__(self, message: str, *, epoch: int, batch: int) -> None:
        super().__init__(message)
        self.epoch = epoch
        self.batch = batch


def echo(text: str, limit: int = ECHO_CHARS) -> str:
    """``text`` quoted for an error message, cut to ``limit`` characters and ``…``: a token may be any length."""
    return repr(text if len(text) <= limit else text[:limit] + "…")


def check_name(known: Collection[str], name: object, what: str, *, error: type[Exception] | None = None) -> str:
    """``name`` if it is one of ``known``; else ``error`` (SpecError) "unknown {what} 'x'; choose one of: ...".

    The one place a registry's name is checked: activations, initialisers, optimisers, schedules,
    presets, augmentations, variants and layouts all say it the same way.
    """
    if isinstance(name, str) and name in known:
        return name
    shown = echo(name) if isinstance(name, str) else repr(name)[:ECHO_CHARS]
    raise (error or SpecError)(f"unknown {what} {shown}; choose one of: {', '.join(known)}")


def lookup(registry: Mapping[str, T], name: object, what: str) -> T:
    """``registry[name]``, or the SpecError of :func:`check_name`."""
    return registry[check_name(registry, name, what)]
