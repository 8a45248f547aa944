"""Writing files safely: atomic replacement, modes, symbolic links, special files, the early path
checks the commands make, signals during a save, and the temporaries an interrupted save leaves."""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import signal
import stat
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

from nnscratch.data import download_mnist
from nnscratch.errors import NNScratchError, OutputPathError
from nnscratch.io import (
    atomic_write,
    check_output_dir,
    check_writable_file,
    load_npz,
    remove_stale_temporaries,
    save_npz,
)


@pytest.fixture
def umask():
    """Set the process umask for one test; the old one comes back afterwards."""
    old = os.umask(0o022)
    yield os.umask
    os.umask(old)


def listing(directory):
    return sorted(p.name for p in directory.iterdir())


# -- what a write leaves on disk ----------------------------------------------------------------------


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_a_new_file_gets_the_mode_the_umask_allows(tmp_path, umask, mask, mode):
    umask(mask)
    atomic_write(tmp_path / "new.bin", lambda f: f.write(b"data"))
    assert stat.S_IMODE((tmp_path / "new.bin").stat().st_mode) == mode  # 0o666 & ~mask, as open() gives


def test_an_existing_file_keeps_its_mode(tmp_path, umask):
    umask(0o077)
    path = tmp_path / "old.bin"
    path.write_bytes(b"old")
    path.chmod(0o654)
    atomic_write(path, lambda f: f.write(b"new"))
    assert path.read_bytes() == b"new" and stat.S_IMODE(path.stat().st_mode) == 0o654


def test_a_symbolic_link_is_written_through_and_stays_a_link(tmp_path):
    (tmp_path / "real").mkdir()
    link = tmp_path / "model.npz"
    link.symlink_to("real/target.npz")  # relative, and dangling until the first save, as numpy.save allows
    save_npz(link, {"w": np.arange(3.0)}, {"n": 1})
    save_npz(link, {"w": np.arange(4.0)}, {"n": 2})
    assert link.is_symlink() and os.readlink(link) == "real/target.npz"
    header, arrays = load_npz(tmp_path / "real" / "target.npz")
    assert header == {"n": 2} and arrays["w"].tolist() == [0.0, 1.0, 2.0, 3.0]
    assert listing(tmp_path) == ["model.npz", "real"] and listing(tmp_path / "real") == ["target.npz"]


def test_a_fifo_or_a_directory_is_refused_and_left_as_it_was(tmp_path):
    # (A device such as /dev/full is refused the same way, by its file type; the test uses a FIFO so
    # that the code before this fix could not replace a real device node of the machine running it.)
    fifo, directory = tmp_path / "pipe", tmp_path / "folder"
    os.mkfifo(fifo)
    directory.mkdir()
    for path, kind in ((fifo, "is a FIFO (named pipe), not a regular file"), (directory, "is a directory")):
        with pytest.raises(OutputPathError, match=re.escape(kind)) as info:
            atomic_write(path, lambda f: f.write(b"x"))
        assert isinstance(info.value, OSError) and isinstance(info.value, NNScratchError)
        assert "\n" not in str(info.value)
    assert stat.S_ISFIFO(fifo.lstat().st_mode) and directory.is_dir() and listing(directory) == []
    assert listing(tmp_path) == ["folder", "pipe"]  # no temporary file left either


@pytest.mark.parametrize("path", ["", "out/", "."])
def test_a_path_naming_no_file_is_refused(tmp_path, monkeypatch, path):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(OutputPathError):
        atomic_write(path, lambda f: f.write(b"x"))
    assert listing(tmp_path) == []


# -- the early checks every command makes ---------------------------------------------------------------


@pytest.fixture
def places(tmp_path, monkeypatch):
    """A working directory with a folder ``runs``, a file ``notes.txt`` and a FIFO ``pipe``."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    (tmp_path / "notes.txt").write_text("notes")
    os.mkfifo(tmp_path / "pipe")
    return tmp_path


@pytest.mark.parametrize(
    "path, message",
    [
        ("runs", "--output 'runs': is a directory; give a file name such as runs/model.npz"),
        ("runs/", "--output 'runs/': names a directory; give a file name such as runs/model.npz"),
        ("new/", "--output 'new/': names a directory; give a file name such as new/model.npz"),
        ("", "--output '': the path is empty; give a file name such as model.npz"),
        ("pipe", "--output 'pipe': is a FIFO (named pipe), not a regular file"),
        ("notes.txt/m.npz", "--output 'notes.txt/m.npz': 'notes.txt' is not a directory"),
    ],
)
def test_check_writable_file_names_the_option_and_what_to_do(places, path, message):
    with pytest.raises(OutputPathError) as info:
        check_writable_file(path, "--output")
    assert str(info.value).startswith(message)
    assert sorted(os.listdir(places)) == ["notes.txt", "pipe", "runs"]


def test_check_writable_file_accepts_new_and_existing_files_and_links(places):
    (places / "link.npz").symlink_to("runs/model.npz")
    for path in ("model.npz", "notes.txt", "runs/model.npz", "link.npz"):
        assert check_writable_file(path, "--output") == type(places)(path)
    with pytest.raises(FileNotFoundError, match="directory does not exist: 'missing'; create it first"):
        check_writable_file("missing/model.npz", "--output")


@pytest.mark.parametrize(
    "path, message",
    [
        ("", "--plots is empty; give the name of a directory"),
        ("notes.txt", "--plots 'notes.txt': is a file, not a directory"),
        ("notes.txt/plots", "--plots 'notes.txt/plots': is inside 'notes.txt', which is a file, not a directory"),
        ("pipe", "--plots 'pipe': is a FIFO (named pipe), not a directory"),
    ],
)
def test_check_output_dir_names_the_option_and_what_to_do(places, path, message):
    with pytest.raises(OutputPathError) as info:
        check_output_dir(path, "--plots")
    assert str(info.value).startswith(message)


def test_check_output_dir_accepts_existing_and_creatable_directories_and_checks_their_files(places):
    assert check_output_dir("runs", "--output", files=["results.json"]) == places.__class__("runs")
    assert check_output_dir("runs/a/b", "--output") == places.__class__("runs/a/b")  # created later
    (places / "runs" / "results.json").mkdir()
    with pytest.raises(OutputPathError, match="--output 'runs/results.json': is a directory"):
        check_output_dir("runs", "--output", files=["results.json"])


# -- signals during a save ------------------------------------------------------------------------------


@pytest.fixture
def sigterm_recorder(tmp_path):
    """A SIGTERM handler that records what the directory held when it ran, then raises
    KeyboardInterrupt, as ``nnscratch train`` does; the old handler comes back afterwards."""
    seen = []

    def handler(signum, frame):
        seen.append({p.name: p.read_bytes() for p in tmp_path.iterdir()})
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    yield seen
    signal.signal(signal.SIGTERM, previous)


def test_sigterm_during_a_save_is_delivered_once_the_file_is_complete(tmp_path, sigterm_recorder):
    handler = signal.getsignal(signal.SIGTERM)

    def write(f):
        f.write(b"first half, ")
        os.kill(os.getpid(), signal.SIGTERM)
        f.write(b"second half")

    with pytest.raises(KeyboardInterrupt):
        atomic_write(tmp_path / "out.bin", write)
    assert sigterm_recorder == [{"out.bin": b"first half, second half"}]  # delivered once, after the rename
    assert listing(tmp_path) == ["out.bin"]
    assert signal.getsignal(signal.SIGTERM) is handler


def test_sigterm_during_a_failed_save_is_delivered_after_the_rollback(tmp_path, sigterm_recorder):
    (tmp_path / "out.bin").write_bytes(b"the old file")

    def write(f):
        f.write(b"partial")
        os.kill(os.getpid(), signal.SIGTERM)
        raise ValueError("the writer failed")

    with pytest.raises(KeyboardInterrupt) as info:
        atomic_write(tmp_path / "out.bin", write)
    assert isinstance(info.value.__context__, ValueError)
    assert sigterm_recorder == [{"out.bin": b"the old file"}]  # temporary already gone, old file intact


def test_sigterm_with_its_default_action_ends_the_process_only_after_the_save(tmp_path):
    script = textwrap.dedent(
        """
        import os, signal, sys
        from nnscratch.io import atomic_write

        def write(f):
            f.write(b"first half, ")
            os.kill(os.getpid(), signal.SIGTERM)  # the default action: end the process
            f.write(b"second half")

        atomic_write(sys.argv[1], write)
        print("not reached: the deferred SIGTERM ends the process once the file is in place")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "out.bin")], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == -signal.SIGTERM, done.stderr
    assert "not reached" not in done.stdout
    assert listing(tmp_path) == ["out.bin"] and (tmp_path / "out.bin").read_bytes() == b"first half, second half"


def test_a_save_in_another_thread_leaves_the_handlers_alone(tmp_path):
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    seen = []

    def write(f):
        seen.append((signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)))
        f.write(b"from a thread")

    thread = threading.Thread(target=atomic_write, args=(tmp_path / "t.bin", write))
    thread.start()
    thread.join()
    assert seen == [handlers] and (tmp_path / "t.bin").read_bytes() == b"from a thread"


# -- temporaries left by a process killed outright ------------------------------------------------------


def test_stale_temporaries_of_our_naming_are_removed_and_nothing_else(tmp_path):
    ours = [".model.npz.abcdefgh.tmp", ".model.npz.a1_b2c3d.tmp"]
    others = [
        ".model.npz.abcdefg.tmp",  # 7 letters: not mkstemp's 8
        ".model.npz.ABCDEFGH.tmp",  # mkstemp never uses capitals
        ".model.npz.abcdefgh.part",
        ".other.npz.abcdefgh.tmp",
        "model.npz.abcdefgh.tmp",
        "model.npz",
    ]
    for name in ours + others:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / ".model.npz.zzzzzzzz.tmp").mkdir()  # our name, but a directory: not ours to remove
    removed = remove_stale_temporaries(tmp_path / "model.npz")
    assert sorted(p.name for p in removed) == sorted(ours)
    assert listing(tmp_path) == sorted([*others, ".model.npz.zzzzzzzz.tmp"])


def test_a_temporary_being_written_is_not_removed(tmp_path):
    swept = []

    def write(f):
        f.write(b"half")
        swept.extend(remove_stale_temporaries(tmp_path / "out.bin"))  # another run starting meanwhile
        f.write(b" and the rest")

    atomic_write(tmp_path / "out.bin", write)
    assert swept == [] and (tmp_path / "out.bin").read_bytes() == b"half and the rest"


def test_a_download_sweeps_the_parts_an_earlier_one_left(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "small-file.gz").write_bytes(gzip.compress(b"the right content"))
    dest = tmp_path / "cache"
    dest.mkdir()
    (dest / ".small-file.k3j_x9qa.part").write_bytes(b"a download killed halfway")
    (dest / "notes.part").write_bytes(b"not ours")
    files = {"small-file": hashlib.sha256(b"the right content").hexdigest()}
    download_mnist(dest, mirrors=[mirror.as_uri() + "/"], files=files)
    assert listing(dest) == ["notes.part", "small-file.gz"]


def test_a_temporary_that_cannot_be_removed_is_not_reported_removed(tmp_path, monkeypatch):
    (tmp_path / ".model.npz.abcdefgh.tmp").write_bytes(b"x")

    def refuse(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(os, "unlink", refuse)
    assert remove_stale_temporaries(tmp_path / "model.npz") == []


def test_an_ignored_signal_stays_ignored_during_a_save(tmp_path):
    from nnscratch.io import deferred_signals

    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        with deferred_signals():
            assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN  # not taken over to be held
            os.kill(os.getpid(), signal.SIGTERM)  # ignored now, and not delivered later either
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_an_array_stored_in_fortran_order_loads_with_its_shape_and_values(tmp_path):
    import zipfile

    array = np.asfortranarray(np.arange(24, dtype=np.float32).reshape(2, 3, 4))
    save_npz(tmp_path / "f.npz", {"a": np.zeros(1, np.float32)}, {"format": "test"})
    with zipfile.ZipFile(tmp_path / "f.npz", "a") as archive, archive.open("b.npy", "w") as member:
        np.lib.format.write_array(member, array)  # fortran_order: True in its header
    _, arrays = load_npz(tmp_path / "f.npz")
    assert arrays["b"].shape == (2, 3, 4)
    np.testing.assert_array_equal(arrays["b"], array)
