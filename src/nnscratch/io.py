"""Files on disk: ``.npz`` archives with a JSON header, written atomically, read without pickles.

A model (or checkpoint) file is a NumPy ``.npz`` archive.  Besides its arrays it holds one entry,
``__header__``, a UTF-8 JSON document stored as a uint8 array, so the whole file loads with
``allow_pickle=False``: a file that smuggles in pickled objects is refused, never executed.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import secrets
import signal
import stat
import threading
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, ModuleType
from typing import IO, Any

import numpy as np

from nnscratch.errors import ModelFileError, OutputPathError

fcntl: ModuleType | None  # the module, or None where the platform has none
try:
    import fcntl
except ImportError:  # not POSIX: temporaries are not locked, and stale ones are removed unconditionally
    fcntl = None

HEADER_KEY = "__header__"
MAX_HEADER_BYTES = 16 << 20  # a checkpoint's header holds ~210 bytes of history per epoch: 2 MB for 10,000
_CHUNK = 1 << 20
Shape = tuple[int, ...]


# Temporary files are named as tempfile.mkstemp names them: ".NAME." + 8 of these + ".tmp".
_TEMP_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_"
_TEMP_LENGTH = 8
_DEFERRED_SIGNALS: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], object]) -> Path:
    """Call ``write(f)`` on a temporary file beside ``path``, then rename it over ``path``.

    What ``write`` returns (the byte count of ``f.write``, say) is ignored.

    Readers see either the old file or the complete new one, never half of it; if ``write`` fails
    the temporary file is removed and ``path`` is untouched.  SIGINT and SIGTERM wait until the file
    is in place or rolled back (see :func:`deferred_signals`).  ``path`` is written as ``open`` would
    write it: a symbolic link is followed (the link stays a link), an existing file keeps its mode and
    a new one gets the mode the umask allows; a path that exists and is not a regular file (a
    directory, a device such as /dev/full, a FIFO) raises :class:`OutputPathError`.
    """
    target = _output_target(path, repr(os.fspath(path)), example=None)
    with deferred_signals():
        fd, tmp = _create_temporary(target)
        try:
            with os.fdopen(fd, "wb") as f:
                write(f)
                f.flush()
                _keep_mode(f.fileno(), target)
                os.fsync(f.fileno())
                # Renamed while still open: the lock on it (see remove_stale_temporaries) lasts until then.
                os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    return Path(path)


def check_writable_file(path: str | os.PathLike[str], option: str, *, example: str | None = "model.npz") -> Path:
    """``path``, given as ``option``, checked before any work is done: it must name a file (not a
    directory: a trailing slash says directory) in an existing directory we may write in, and if it
    exists (through a symbolic link or not) be a regular file we may write.

    Raises :class:`OutputPathError` (:class:`FileNotFoundError` for a missing directory) with one line
    that names ``option``; ``example`` is the file name the message suggests (None: the name is fixed).
    """
    what = f"{option} {os.fspath(path)!r}"
    target = _output_target(path, what, example=example)
    if not os.access(target.parent, os.W_OK | os.X_OK):
        raise OutputPathError(f"{what}: cannot write in directory {str(target.parent)!r}; choose another {option}")
    if target.exists() and not os.access(target, os.W_OK):
        raise OutputPathError(f"{what}: the file is read-only; choose another {option} or make it writable")
    return Path(path)


def check_output_dir(path: str | os.PathLike[str], option: str, *, files: Iterable[str] = ()) -> Path:
    """``path``, a directory given as ``option``, checked before any work is done: it is a directory
    we may write in, or can be created (its nearest existing parent is a directory we may write in);
    each of ``files`` already in it must be a regular file we may write (see :func:`check_writable_file`).

    Raises :class:`OutputPathError` with one line that names ``option``.
    """
    raw = os.fspath(path)
    if not raw:
        raise OutputPathError(f"{option} is empty; give the name of a directory")
    what = f"{option} {raw!r}"
    directory = Path(raw)
    if os.path.lexists(directory) and not directory.exists():
        raise OutputPathError(f"{what}: is a broken symbolic link; remove it or choose another {option}")
    existing = directory
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        kind = "is" if existing == directory else f"is inside {str(existing)!r}, which is"
        raise OutputPathError(
            f"{what}: {kind} {_kind(existing.stat().st_mode)}, not a directory; choose another {option}"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputPathError(f"{what}: cannot write in directory {str(existing)!r}; choose another {option}")
    if existing == directory:
        for name in files:
            check_writable_file(directory / name, option, example=None)
    return directory


def remove_stale_temporaries(path: str | os.PathLike[str], *, suffix: str = ".tmp") -> list[Path]:
    """Remove the temporary files an interrupted :func:`atomic_write` of ``path`` left behind.

    Only files named exactly as our temporaries are (".NAME.XXXXXXXX" + ``suffix`` beside the file
    ``path`` leads to) are removed, and only those no running write holds: a writer keeps its
    temporary locked until it is renamed into place.  A process killed outright (SIGKILL, a power
    cut) leaves its temporary behind; a run calls this when it starts.  Returns the files removed.
    """
    target = Path(os.path.realpath(path))
    name = re.compile(rf"\.{re.escape(target.name)}\.[{_TEMP_CHARS}]{{{_TEMP_LENGTH}}}{re.escape(suffix)}")
    removed: list[Path] = []
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return removed
    for entry in entries:
        if name.fullmatch(entry.name) and entry.is_file(follow_symlinks=False) and _remove_unless_locked(entry.path):
            removed.append(Path(entry.path))
    return removed


def lock_temporary(fd: int) -> None:
    """Hold an exclusive lock on the open temporary file ``fd`` until it is closed, so that
    :func:`remove_stale_temporaries` in another process leaves it alone."""
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX)


@contextlib.contextmanager
def deferred_signals() -> Iterator[None]:
    """Hold SIGINT and SIGTERM while the block runs, then deliver them to the handlers they had.

    A save cut in half by KeyboardInterrupt can leave a closed zip member half-written or a
    temporary file behind; a deferred signal arrives once the file is in place or rolled back.
    The Python handler is swapped, not the thread's signal mask: the kernel delivers a signal to
    any thread that does not block it, and Python runs the handler in the main thread anyway.
    Only the main thread may set handlers: elsewhere the block runs as it is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    holding = True
    pending: list[int] = []
    previous: dict[int, Callable[[int, FrameType | None], Any] | int] = {}

    def hold(signum: int, frame: Any) -> None:
        if holding:
            pending.append(signum)
        else:  # a signal that arrived while the handlers were being put back
            _deliver(signum, previous[signum], frame)

    try:
        for signum in _DEFERRED_SIGNALS:
            handler = signal.getsignal(signum)
            if handler is None or handler == signal.SIG_IGN:  # set outside Python, or ignored: leave it
                continue
            previous[signum] = handler
            signal.signal(signum, hold)
        yield
    finally:
        holding = False
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in dict.fromkeys(pending):
            signal.raise_signal(signum)


def _deliver(signum: int, handler: Any, frame: Any) -> None:
    if callable(handler):
        handler(signum, frame)
    elif handler == signal.SIG_DFL:
        signal.signal(signum, signal.SIG_DFL)
        signal.raise_signal(signum)


def _output_target(path: str | os.PathLike[str], what: str, *, example: str | None) -> Path:
    """The file to write for ``path``: symbolic links followed; refused unless it is (or can be) a
    regular file in an existing directory.  ``what`` starts each message."""
    raw = os.fspath(path)
    name_a_file = f"give a file name such as {os.path.join(raw, example)}" if example else "give the path of a file"
    if not raw:
        raise OutputPathError(f"{what}: the path is empty; give a file name such as {example or 'out.npz'}")
    if raw.endswith(("/", os.sep)) or os.path.basename(raw) in (".", ".."):
        raise OutputPathError(f"{what}: names a directory; {name_a_file}")
    target = Path(os.path.realpath(raw))
    if not target.parent.is_dir():
        shown = str(target.parent if os.path.islink(raw) else Path(raw).parent)
        if target.parent.exists():
            raise OutputPathError(f"{what}: {shown!r} is not a directory; choose another path")
        raise FileNotFoundError(f"{what}: directory does not exist: {shown!r}; create it first or choose another path")
    try:
        mode = os.lstat(target).st_mode
    except FileNotFoundError:
        return target
    if stat.S_ISLNK(mode):  # realpath stops at a loop of links
        raise OutputPathError(f"{what}: is a loop of symbolic links; give the path of a file")
    if stat.S_ISDIR(mode):
        instead = name_a_file if example else "remove it or choose another path"
        raise OutputPathError(f"{what}: is a directory; {instead}")
    if not stat.S_ISREG(mode):
        raise OutputPathError(f"{what}: is {_kind(mode)}, not a regular file; give the path of a file")
    return target


def _kind(mode: int) -> str:
    kinds = [
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISREG, "a file"),
    ]
    return next((name for test, name in kinds if test(mode)), "a special file")


def _create_temporary(target: Path) -> tuple[int, Path]:
    """A new, locked temporary file beside ``target``, named as mkstemp would name it.

    Opened with mode 0o666 rather than mkstemp's 0o600, so the kernel applies the umask (and any
    default ACL) as it would to ``open(target, "wb")``.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    flags |= getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        letters = "".join(secrets.choice(_TEMP_CHARS) for _ in range(_TEMP_LENGTH))
        tmp = target.parent / f".{target.name}.{letters}.tmp"
        try:
            fd = os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue
        lock_temporary(fd)
        try:  # a stale-file sweep may have removed it between open and lock: then take another name
            if os.path.samestat(os.fstat(fd), os.stat(tmp, follow_symlinks=False)):
                return fd, tmp
        except FileNotFoundError:
            pass
        os.close(fd)
    raise FileExistsError(f"no free temporary file name beside {target}; remove the .{target.name}.*.tmp files")


def _keep_mode(fd: int, target: Path) -> None:
    """Give the temporary file ``fd`` the mode (and, where allowed, the owner) of the file it replaces."""
    try:
        old = os.stat(target)
    except FileNotFoundError:
        return
    os.fchmod(fd, stat.S_IMODE(old.st_mode))
    new = os.fstat(fd)
    if (new.st_uid, new.st_gid) != (old.st_uid, old.st_gid):
        with contextlib.suppress(OSError):
            os.fchown(fd, old.st_uid, old.st_gid)


def _remove_unless_locked(path: str) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return False
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # a running write holds it
                return False
        try:
            os.unlink(path)
        except OSError:
            return False
        return True
    finally:
        os.close(fd)


def save_npz(path: str | os.PathLike[str], arrays: Mapping[str, np.ndarray], header: Mapping[str, Any]) -> Path:
    """Write ``arrays`` and a JSON ``header`` to ``path`` atomically (uncompressed .npz)."""
    encoded = np.frombuffer(json.dumps(header, sort_keys=True).encode("utf-8"), dtype=np.uint8)
    payload = {HEADER_KEY: encoded, **arrays}
    # allow_pickle=True is np.savez's default, named so that no key of ``payload`` can be taken for it
    return atomic_write(path, lambda f: np.savez(f, allow_pickle=True, **payload))


@dataclass(frozen=True)
class Expected:
    """The arrays a file's header implies, name → shape.  A member not named is refused, or with
    ``skip_others`` left unread (format-1 model files may hold arrays nnscratch never reads)."""

    shapes: Mapping[str, Shape]
    skip_others: bool = False


def load_npz(
    path: str | os.PathLike[str], expect: Callable[[dict[str, Any]], Expected] | None = None
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read (header, arrays) from a file written by :func:`save_npz`; pickles are refused.

    ``expect(header)`` gives the arrays such a header implies, with their shapes (a network's layout,
    say), or raises :class:`ModelFileError`.  The header is read first (at most MAX_HEADER_BYTES);
    then each array's shape is read from its .npy header, a few bytes, and an array the header does
    not imply, or of another shape, is refused before its data is inflated.  A deflated member of
    zeros shrinks about 1000-fold, so without this a 2.4 MB file could make every reader allocate
    2.5 GB; with it, a file costs memory in proportion to the arrays its header declares.

    Raises :class:`ModelFileError` with a one-line reason for anything that is not such a file.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file {str(path)!r} not found; train one with 'nnscratch train'")
    if not zipfile.is_zipfile(path):
        raise ModelFileError(f"{path} is not an nnscratch model file (not an .npz archive); check the path")
    try:
        with zipfile.ZipFile(path) as archive:
            members = {}
            for info in archive.infolist():
                if not info.filename.endswith(".npy"):
                    raise ModelFileError(
                        f"{path} holds {info.filename!r}, which is not a NumPy array; it was not written by nnscratch"
                    )
                members[info.filename.removesuffix(".npy")] = info
            if HEADER_KEY not in members:
                raise ModelFileError(f"{path} has no nnscratch header; it was not written by nnscratch")
            header = _read_header(archive, members.pop(HEADER_KEY), path)
            expected = None if expect is None else expect(header)
            arrays = {}
            for name, info in members.items():
                if expected is None:
                    arrays[name] = _read_array(archive, info, path)
                elif name in expected.shapes:
                    arrays[name] = _read_array(archive, info, path, shape=expected.shapes[name])
                elif not expected.skip_others:
                    raise ModelFileError(
                        f"{path} holds an array {name!r} that its header does not describe; the file is corrupted"
                    )
    except ModelFileError:
        raise
    except (OSError, EOFError, ValueError, RuntimeError, NotImplementedError, zipfile.BadZipFile, zlib.error) as exc:
        raise ModelFileError(f"{path} is not a valid nnscratch model file ({exc})") from None
    return header, arrays


def _read_header(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path) -> dict[str, Any]:
    """The JSON header member, refused unread when it declares more than MAX_HEADER_BYTES."""
    raw = _read_array(archive, info, path, limit=MAX_HEADER_BYTES)
    try:
        header = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise ModelFileError(f"{path} has a corrupted header; re-save or retrain the model") from None
    if not isinstance(header, dict):
        raise ModelFileError(f"{path} has a corrupted header; re-save or retrain the model")
    return header


def _read_array(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path, *, shape: Shape | None = None, limit: int | None = None
) -> np.ndarray:
    """One ``.npy`` member of ``archive``, checked before anything is allocated or inflated.

    ``np.load`` would allocate whatever shape a member's header declares before reading a byte of it;
    here the declared size must match the member's size, the declared shape must be ``shape`` (if
    given) and the size at most ``limit`` bytes (if given), and only then is the data read, in
    chunks, so memory grows only with the bytes really present.  Object arrays (pickles) are refused
    unread.
    """
    name = info.filename.removesuffix(".npy")
    with archive.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version not in ((1, 0), (2, 0)):
            raise ModelFileError(
                f"{path}: array {info.filename!r} uses .npy format {version}, which nnscratch does not read"
            )
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        declared, fortran_order, dtype = read_header(f)
        if dtype.hasobject:
            raise ModelFileError(f"{path} contains pickled Python objects, which nnscratch refuses to load for safety")
        nbytes = math.prod(declared) * dtype.itemsize
        if nbytes != info.file_size - f.tell():
            raise ModelFileError(
                f"{path}: array {info.filename!r} declares shape {declared} but holds {info.file_size - f.tell()} "
                f"bytes, not {nbytes}; the file is corrupted"
            )
        if shape is not None and declared != tuple(shape):
            raise ModelFileError(
                f"{path}: array {name} has shape {declared} but the architecture needs {tuple(shape)}; "
                "the file is corrupted"
            )
        if limit is not None and nbytes > limit:
            raise ModelFileError(
                f"{path}: {name} is {nbytes:,} bytes, more than the {limit:,} nnscratch reads; the file is corrupted"
            )
        payload = bytearray()
        while len(payload) < nbytes:
            chunk = f.read(min(_CHUNK, nbytes - len(payload)))
            if not chunk:
                raise ModelFileError(f"{path}: array {info.filename!r} is truncated; the file is corrupted")
            payload += chunk
    array = np.frombuffer(payload, dtype=dtype)
    return array.reshape(declared[::-1]).T if fortran_order else array.reshape(declared)
