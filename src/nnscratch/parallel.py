"""Every core at work: the engine's large operations split into contiguous chunks, one per thread.

NumPy releases the GIL inside its loops over arrays, and the BLAS library releases it for a matrix
product, so T threads that each run NumPy on their own rows of the same arrays run on T cores at once.
A :class:`Threads` pool keeps T - 1 worker threads alive for the whole run (starting a thread per
operation would cost more than most operations); the calling thread takes the first chunk itself.

What is split, and how (the layers and optimisers call :meth:`Threads.chunks` and :meth:`Threads.run`):

* elementwise work (activations, pooling, batch norm's passes, dropout's multiply, Adam's ten passes):
  rows, or runs of the flat parameter vector;
* matrix products with the batch as their rows (X W, a convolution's columns by its filters, dY Wᵀ):
  rows, each chunk one single-threaded product;
* matrix products that sum over the batch (dW = Xᵀ dZ): the rows of dW, so that every value is still
  one sum over the whole batch, in the order a single product takes it.

Small operations (below ``GRAIN`` values) run on the calling thread: handing a chunk to another thread
costs some 10-40 µs, more than an operation on a few thousand values.

While the engine runs, the BLAS library itself is kept to one thread (:func:`single_threaded_blas`,
through threadpoolctl, the standard way to set it).  Otherwise its own worker threads, which keep
spinning on the cores for a while after each product, compete with this pool's threads for the same
cores, and the elementwise work between two products gains nothing.

Determinism: the chunks depend only on the sizes and on T, and each chunk's arithmetic is fixed, so a
run is bit for bit the same for a given T.  Between different T, elementwise work is the same, but a
matrix product is not always: the BLAS library sums a product's terms in blocks whose size it chooses
from the matrices' shapes (and from its own thread count), so a product split into row chunks can
differ from the whole in the last bits; so do batch norm's statistics, summed chunk by chunk.  A run
with T threads therefore matches another run with T threads exactly, and one with another T to about
1e-6 at first, the difference then growing as training follows a slightly different path.
"""

from __future__ import annotations

import contextlib
import os
import queue
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

ENV_THREADS = "NNSCRATCH_THREADS"
GRAIN = 1 << 19  # values: below this, an operation runs on the calling thread
GEMM_COST = 40  # a matrix product's multiply-adds per value of elementwise work, for the GRAIN test


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


# A fixed ceiling, not this machine's cores: a run made with N threads must be repeatable on a smaller
# machine, but a pool of a million threads is a typo that would exhaust the process's memory.
MAX_THREADS = 256


def default_threads() -> int:
    """``$NNSCRATCH_THREADS`` if set, else every available core."""
    text = os.environ.get(ENV_THREADS, "").strip()
    if not text:
        return available_cores()
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_THREADS:
        from nnscratch.errors import SpecError

        raise SpecError(f"{ENV_THREADS} must be a number of threads from 1 to {MAX_THREADS}, got {text!r}")
    return value


class Threads:
    """A pool of ``n`` threads (the caller and n - 1 workers) that run one function on contiguous chunks."""

    def __init__(self, n: int) -> None:
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_THREADS:
            from nnscratch.errors import SpecError

            raise SpecError(f"the number of threads must be an integer from 1 to {MAX_THREADS}, got {n!r}")
        self.n = n
        self._inboxes: list[queue.SimpleQueue] = []
        self._done: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()  # one run at a time (a pool shared by two networks in two threads)

    def __repr__(self) -> str:
        return f"Threads({self.n})"

    def __reduce__(self) -> tuple[Any, tuple[int]]:
        """Pickled as its size: unpickling gives the receiving process's own pool of that size."""
        return thread_pool, (self.n,)

    def _start(self) -> None:
        for _ in range(self.n - 1):
            inbox: queue.SimpleQueue = queue.SimpleQueue()
            threading.Thread(target=self._work, args=(inbox,), daemon=True, name="nnscratch").start()
            self._inboxes.append(inbox)

    def _work(self, inbox: queue.SimpleQueue) -> None:
        while True:
            fn, start, stop, errors = inbox.get()
            try:
                with np.errstate(**errors):  # the caller's floating-point error handling (thread-local)
                    self._done.put((start, fn(start, stop), None))
            except BaseException as exc:  # handed back to the caller, raised there
                self._done.put((start, None, exc))

    def chunks(self, n: int, *, size: int = 1) -> list[tuple[int, int]]:
        """Split range(n) into contiguous (start, stop) pieces, one per thread, each worth ``size`` values
        per item; a single piece when the whole is smaller than ``GRAIN`` or there is one thread."""
        parts = 1 if n * size < GRAIN else min(self.n, n)
        bounds = [n * i // parts for i in range(parts + 1)]
        return [(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]

    def run(self, fn: Callable[[int, int], Any], n: int, *, size: int = 1) -> list[Any]:
        """Call ``fn(start, stop)`` for each chunk of range(n) (see :meth:`chunks`), at the same time;
        return the results in chunk order.  An exception in any chunk is raised here."""
        if self.n == 1 or n * size < GRAIN:  # one chunk (an empty batch too gets its one call)
            return [fn(0, n)]
        pieces = self.chunks(n, size=size)
        if len(pieces) == 1:
            return [fn(0, n)]
        with self._lock:
            if not self._inboxes:
                self._start()
            errors = np.geterr()
            for inbox, (start, stop) in zip(self._inboxes, pieces[1:], strict=False):
                inbox.put((fn, start, stop, errors))
            results = {pieces[0][0]: fn(*pieces[0])}
            error = None
            for _ in pieces[1:]:
                start, result, exc = self._done.get()
                results[start] = result
                error = error or exc
        if error is not None:
            raise error
        return [results[start] for start, _ in pieces]


_POOLS: dict[int, Threads] = {}
_POOLS_LOCK = threading.Lock()


def thread_pool(n: int) -> Threads:
    """The process's pool of ``n`` threads, started on first use and shared by every network that asks
    for n (like the BLAS library's own pool: worker threads are a resource of the process, and sharing
    them keeps two networks from starting two sets)."""
    with _POOLS_LOCK:
        if n not in _POOLS:
            _POOLS[n] = Threads(n)
        return _POOLS[n]


# threadpoolctl's view of the loaded BLAS libraries, and how many modules were imported when it was
# taken: importing an extension module (SciPy, scikit-learn, PyTorch) can load a BLAS library of its
# own, which an older view would leave free to start its threads.
_CONTROLLER: list[Any] = []
_CONTROLLER_MODULES: list[int] = [-1]
_INSIDE = threading.local()  # how deep this thread is in single_threaded_blas blocks


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Keep the BLAS library to one thread inside the block, since the pool does the splitting.

    Entering costs some microseconds (the libraries are inspected on first use, and again after an
    import may have loaded another), and a block inside another costs nothing, so the engine enters
    it around whole operations: a training run, a prediction, a gradient.
    """
    depth = getattr(_INSIDE, "depth", 0)
    if depth:
        _INSIDE.depth = depth + 1
        try:
            yield
        finally:
            _INSIDE.depth = depth
        return
    if _CONTROLLER_MODULES[0] != len(sys.modules):  # the first time, or after new imports (about 1 ms)
        from threadpoolctl import ThreadpoolController

        _CONTROLLER[:] = [ThreadpoolController()]
        _CONTROLLER_MODULES[0] = len(sys.modules)
    with _CONTROLLER[0].limit(limits=1, user_api="blas"):
        _INSIDE.depth = 1
        try:
            yield
        finally:
            _INSIDE.depth = 0
