"""Exceptions raised by nnscratch.

Every message is one line that says what is wrong and what to do about it.  The command line turns
these into a message and a non-zero exit code; library users can catch :class:`NNScratchError`.
"""

from __future__ import annotations


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
