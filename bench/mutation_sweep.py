"""A mutation sweep: one small deliberate bug at a time, and do the fast tests notice it?

Not part of CI.  Two groups of modules under src/nnscratch: ``ENGINE`` (layers, losses, optimisers,
training, data: about 2,400 mutants) and ``AROUND`` (augmentation, export, the scikit-learn wrapper, the
web app, images, model files, tuning, studies, reports and every ``commands/*.py``: about 2,800).  A full
sweep of both takes hours on two cores; ``--estimate`` says how long one would take here.  Run it from the
repository root, at low priority on a shared machine:

    nice -n 19 python bench/mutation_sweep.py --group engine --json engine.json   # the engine
    nice -n 19 python bench/mutation_sweep.py --group around --json around.json   # what is around it
    nice -n 19 python bench/mutation_sweep.py --json sweep.json                   # both (the default)
    nice -n 19 python bench/mutation_sweep.py losses.py web/app.py commands/train.py  # some modules
    nice -n 19 python bench/mutation_sweep.py commands                            # a folder's modules
    python bench/mutation_sweep.py --list training.py                             # only print the mutants
    nice -n 19 python bench/mutation_sweep.py --estimate --group around           # only trace and estimate
    nice -n 19 python bench/mutation_sweep.py --sample 25 --group around  # 25 random mutants a module
    nice -n 19 python bench/mutation_sweep.py --again sweep.json     # after adding tests: rerun the survivors
                                                          # (or go on with an interrupted sweep)

It needs nothing beyond the test extra (``pip install -e ".[test]"``): no mutmut, no coverage.py.

How it works
------------
1. The package and the tests are copied to a temporary directory, so that the working tree is never
   touched and other work on it during a sweep changes nothing.  Every test run there has the copy's
   ``src`` first on PYTHONPATH, so the tests, and the ``python -m nnscratch.cli`` processes and servers
   some of them start, import the copy (the mutant), not the editable install of the working tree.  The
   environment is passed through; ``$NNSCRATCH_DATA`` (real MNIST) defaults to ``../shared/mnist``, as in
   CI, when that exists.
2. The fast tests (``TEST_FILES``: ``ENGINE_TESTS`` and ``AROUND_TESTS``; not the browser, real-MNIST
   training or benchmark tests, nor any marked slow) run once on the unmutated copy with a line tracer
   (``sys.settrace``), which records which test executes which line of the modules under test, and how
   long each test takes.  A ``sitecustomize.py`` in the copy traces the Python subprocesses a test starts
   too (a CLI run, a server), and counts their lines as the test's: a command that only runs in a
   subprocess is still covered.  A test that fails here is run again untraced (the tracer slows some
   past their own time limits: signals, servers); one that fails again is left out (it says nothing).
   A line run at import time (a constant's definition) is run by every test of its module.
3. Each module is parsed with ``ast`` and mutated at one place at a time (``Mutator`` lists the
   operators):
   - operator flips: comparison boundaries and negations, arithmetic swaps, constants n -> n + 1 and
     True <-> False, ``and`` <-> ``or``, a dropped ``not`` or minus sign, min <-> max;
   - a call replaced by its argument (``rng.permutation(idx)`` -> ``idx``, ``x.copy()`` -> ``x``), two
     arguments swapped, a slice bound moved by one, an in-place statement or call deleted;
   - a keyword argument dropped (``axis=``, ``keepdims=``, ``dtype=``, ``copy=``, ``reverse=``, ``key=``,
     ``ddof=``, ``out=``, ``exist_ok=``, ``parents=``, ``missing_ok=``: ``DROPPABLE_KEYWORDS``), an axis
     moved down by one (``axis=1`` -> ``axis=0``) or a tuple of axes cut (``axis=(1, 2)`` -> ``axis=1``);
   - a random generator replaced by a copy of itself, so that the caller's does not advance: ``rng`` or
     ``*_rng`` passed on as an argument, or drawn from (``rng.integers(...)``), becomes
     ``__import__('copy').deepcopy(rng)``;
   - a sort order reversed: ``sorted(x)`` -> ``sorted(x, reverse=True)``, ``np.argsort(x)``,
     ``x.argsort()`` and ``np.sort(x)`` -> ``...[::-1]``, a minus dropped in the ``key=`` function of
     sorted/sort/min/max (and ``reverse=True`` -> ``False``, the constant mutation);
   - a value taken before instead of after a step: two consecutive simple statements (assignments and
     calls) swapped where the second changes what the first reads (``a = f(x)``, then ``x += 1``) or the
     first updates what the second reads; not where the swap could only raise a NameError, nor for two
     declarations of command-line options (``add_argument``, ``set_defaults``, ``add_*`` helpers), whose
     order only changes the order of --help;
   - a limit checked after the work instead of before: ``if ...: raise ...`` moved one statement later
     in its block (not past another such check).
   Docstrings, strings, f-strings, type annotations, default argument values, ``assert`` and ``raise``
   statements and ``__repr__`` are not mutated: their mutants change messages or what callers pass
   anyway, not behaviour.
4. The mutated module is written into the copy and only the tests that execute the mutated lines run,
   fastest first, with ``pytest -x`` and a timeout (three times their unmutated time, plus 20 s).  A
   failing run kills the mutant; a run past its timeout counts as killed too (the bug hangs training)
   and is reported apart; a mutant on a line no test executes survives without a run.
5. Survivors judged equivalent (no input can tell them from the original) are listed in
   ``EQUIVALENT`` with the reason, keyed by module, a piece of the source line and the mutation, so
   line numbers may move; mutants of the ``size=`` hint of ``pool.run`` are equivalent by rule.
   The score is (killed + timed out) / (mutants - equivalent).

The report prints each module's counts, the score and every survivor as ``module:line  mutation  |
source line``; ``--json PATH`` also writes them as JSON.  After the tracing it prints an estimate of the
sweep's time per module (each mutant at most its tests' unmutated time plus the start of pytest).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "nnscratch"
SHARED_MNIST = ROOT.parent / "shared" / "mnist"  # where CI's MNIST copy lies (.ci/run)

# The engine: layers, losses, optimisers, training and data.
ENGINE = [
    "activations.py",
    "layers/__init__.py",
    "layers/_im2col.py",
    "layers/activation.py",
    "layers/base.py",
    "layers/batchnorm.py",
    "layers/conv2d.py",
    "layers/dense.py",
    "layers/dropout.py",
    "layers/flatten.py",
    "layers/pool.py",
    "losses.py",
    "network.py",
    "optimizers.py",
    "schedules.py",
    "training.py",
    "metrics.py",
    "data.py",
]
# Around the engine: augmentation, export, the scikit-learn wrapper, the web app, images, model files,
# tuning, studies, reports and every command of the CLI.
AROUND = [
    "augment.py",
    "export.py",
    "sklearn.py",
    "web/app.py",
    "web/served.py",
    "images.py",
    "io.py",
    "tune.py",
    "study.py",
    "report.py",
    *sorted(f"commands/{p.name}" for p in (PACKAGE / "commands").glob("*.py") if p.name != "__init__.py"),
]
GROUPS = {"engine": ENGINE, "around": AROUND, "all": ENGINE + AROUND}
MODULES = GROUPS["all"]

# The fast tests of the engine (no real-MNIST training, browser, study, tuning, web or CLI runs).
ENGINE_TESTS = [
    "tests/test_activations.py",
    "tests/test_layers.py",
    "tests/test_losses.py",
    "tests/test_metrics.py",
    "tests/test_schedules.py",
    "tests/test_optimizers.py",
    "tests/test_network.py",
    "tests/test_gradcheck.py",
    "tests/test_convnet.py",
    "tests/test_training.py",
    "tests/test_training_loop.py",
    "tests/test_parallel.py",
    "tests/test_data.py",
    "tests/test_download.py",
    "tests/test_idx_roundtrip.py",
    "tests/test_hardening.py",
    "tests/test_regularisers.py",
    "tests/test_augment.py",
]
# The tests of what is around it: some start the CLI in a subprocess or a web server in a thread, some
# read real MNIST ($NNSCRATCH_DATA).  Not test_browser.py (a browser), test_mnist.py (minutes of real
# training) nor test_bench.py (the benchmarks).
AROUND_TESTS = [
    "tests/test_sklearn.py",
    "tests/test_export.py",
    "tests/test_web.py",
    "tests/test_images.py",
    "tests/test_predict_cli.py",
    "tests/test_tune.py",
    "tests/test_study.py",
    "tests/test_cli.py",
    "tests/test_cnn_cli.py",
    "tests/test_io.py",
    "tests/test_spec.py",
    "tests/test_plots.py",
    "tests/test_diagnostics.py",
]
TEST_FILES = ENGINE_TESTS + AROUND_TESTS

SIZE_HINT = "the size= hint of pool.run only decides whether work is split over threads, not its answer"
# Survivors that no test can kill, one a row: module | a piece of the source line | the mutation ("*": any;
# "text*": any that starts so) | which of the mutants of that line and mutation it is ("*": all) | why it
# changes no behaviour (a key of REASONS).  Checked by hand; a row that matched a mutant some test kills
# would inflate the score.
REASONS = {
    "super": "Layer.__init__ only sets attributes that build() and bind() set again before any use",
    "reshape": "NumPy reads any negative size in reshape as 'the rest': -2 is -1",
    "strict": "the zipped sequences have equal lengths by construction; strict= only checks that",
    "threads": "a default pool of 1 or 2 threads gives the same answers (pinned by the threads tests)",
    "tie": "a uniform draw equal to p exactly has probability 2^-24 (float32) or 2^-53 per unit",
    "im2col": "both im2col paths copy the same patches; the channel count only picks the faster",
    "window": "index s·Ho is past the last window (s·Ho >= H + 2p - k + 1): the slice ends there anyway",
    "hint": SIZE_HINT,
    "buffers": "32 or 33 kept buffers: memory stays bounded either way",
    "zeros": "the network's flat buffers are allocated as zeros",
    "padded": "a larger padded buffer whose extra border is zero and never read (the output size comes from H + 2p)",
    "dX": "a larger dX buffer, zeroed by col2im, of which only [p:p+H, p:p+W] is returned",
    "speed": "only makes the work faster: the same values either way",
    "same shape": "every window position has the same shape",
    "tiled": "zeroing dX first is redundant when the windows tile the image: they write every position",
    "chunks": "prediction chunk sizes change no answer (test_prediction_chunks_do_not_change_the_answers)",
    "copy": "a copy of the labels has the same values",
    "views": "the gradient views are made again: the same views",
    "last pair": "the last layer is dense, so the last pair is never a ReLU before pooling",
    "together": "M, V (and the buffer) are set and cleared together",
    "symmetric": "accuracy is symmetric",
    "flat": "the side of an image input is never read: the next test needs a flat input",
    "first epoch": "the first epoch always beats best_loss = inf, which sets waited to 0",
    "spawn": "the first child of spawn(2) is the child of spawn(1)",
    "early stopping": "best_params is only ever set when early stopping is on",
    "empty": "initial only counts when both label arrays are empty, and then the other -1 wins",
    "big-endian": "IDX_DTYPES are big-endian or one byte already: newbyteorder('>') changes none of them",
    "one byte": "newbyteorder('>') leaves a one-byte dtype as it is",
    "read size": "the size of a read changes no result",
    "read 0": "a read of 0 more bytes returns b'' and ends the loop",
    "read 2": "one extra byte is found by reading one or two",
    "64 dims": "NumPy arrays have at most 64 dimensions",
    "mtime": "a fixed mtime either way: the file stays reproducible",
    "val order": "the order of the validation rows changes no mean",
    "type checking": "the imports under TYPE_CHECKING are only read by type checkers (annotations are strings)",
    "exactly the tolerance": "a relative error (a float from a division) exactly equal to the tolerance does not occur",
    "promoted": "integer positions become float64 in the arithmetic that follows: the same values",
    "race": "only a signal arriving while the handlers are being put back, microseconds, could tell",
    "exclusive": "a file's mode is a link or a directory, not both: the two checks may come in either order",
    "empty chunk": "adding an empty chunk changes nothing before the check raises",
    "progress bar": "how often and how the live progress bar is redrawn on a terminal: nothing else reads it",
    "setters": "two setters of independent properties of a figure's axes (title, labels): either order draws the same",
    "crash only": "the file is complete once closed; only a crash between the rename and the close could tell",
    "three buffers": "+2 (mod 3) visits the three buffers in another order, each still reused every third batch",
    "buffer": "the given buffer or a fresh array holds the same values; callers pass one of the images' dtype only",
    "independent": "two statements that neither read nor change what the other does (a directory, a hash)",
    "same values": "astype to the dtype the array already has: a copy holds the same values as the array",
    "flush and mode": "the file's mode (fchmod) and its buffered data (flush) are independent; both precede fsync",
    "colours": "rich highlights numbers in colour on a terminal only: the text is the same",
    "cache version": "the version only has to differ from earlier releases' (whose cache entries it retires)",
    "seek 0": "the first frame of a just-opened image is the current one: seek(0) decodes nothing and changes nothing",
    "draft": "Pillow's draft picks the largest of 1/8, 1/4, 1/2 that fits min(w // req_w, h // req_h); a JPEG over "
    "the limit has both sides >= 62, so max(1, ...), max(2, ...) and w / s request the same scale",
    "eighth": "Pillow never decodes below 1/8, and a JPEG too large at 1/8 (> 256 million pixels) is refused as a "
    "decompression bomb first",
    "last": "the continue is the last statement of the loop body",
    "exif": "exif_transpose of an image without an Orientation tag returns the same pixels",
    "uint8": "the channel is uint8, and uint8 / 255.0 is already float64 with the same values",
    "clip 1": "after the stretch the largest value is contrast / contrast = 1.0 exactly: the upper clip never bites",
    "still first": "the check still raises before anything is returned, written or served; only a statement "
    "whose result it does not read runs first",
    "onnx default": "the ONNX operator's default is that value (Softmax-13 axis -1 of a 2-D output, Flatten axis 1)",
    "checker": "onnx.checker only validates the graph it is given: a valid graph is written the same either way",
    "detail": "BadRequest's message is read from .detail, never from str() or args",
    "repr": "only changes the dataclass's repr",
    "empty box": "the box is clipped to [0, 1] and the digit's resampling keeps a positive total for ink in [0, 1]: "
    "the branch for an all-zero box is never reached from preprocess, and where a blank box goes changes nothing",
}
EQUIVALENT_TABLE = """
layers/activation.py | super().__init__() | delete statement: super().__init__() | * | super
layers/batchnorm.py | super().__init__() | delete statement: super().__init__() | * | super
layers/conv2d.py | super().__init__() | delete statement: super().__init__() | * | super
layers/dropout.py | super().__init__() | delete statement: super().__init__() | * | super
layers/pool.py | super().__init__() | delete statement: super().__init__() | * | super
layers/batchnorm.py | X2 = X.reshape(-1, C) | 1 -> 2 | * | reshape
layers/conv2d.py | dY2 = dY.reshape(-1, F) | 1 -> 2 | * | reshape
layers/flatten.py | X.reshape(X.shape[0], -1) | 1 -> 2 | * | reshape
network.py | X = X.reshape(1, -1) | 1 -> 2 | 1 | reshape
network.py | X = X.reshape(-1, C, H, W) | 1 -> 2 | * | reshape
network.py | X = X.reshape(-1, 1, H, W) | 1 -> 2 | 0 | reshape
network.py | arrays[slot.key].reshape(-1) | 1 -> 2 | * | reshape
data.py | X = images.reshape(images.shape[0], -1) | 1 -> 2 | * | reshape
layers/base.py | zip(layers, self.segments, strict=True) | True -> False | * | strict
network.py | strict=True, | True -> False | * | strict
network.py | pairs = zip(self.layers, views, strict=True) | True -> False | * | strict
data.py | zip(stems, found, strict=True) | True -> False | * | strict
layers/base.py | pool: Threads = thread_pool(1) | 1 -> 2 | * | threads
optimizers.py | pool: Threads = thread_pool(1) | 1 -> 2 | * | threads
training.py | optimizer.pool = net.pool | delete statement: optimizer.pool = net.pool | * | threads
layers/dropout.py | keep = rng.random(shape, dtype=dtype) >= rate | >= -> > (boundary) | * | tie
layers/_im2col.py | FEW_CHANNELS = 4 | 4 -> 5 | * | im2col
layers/_im2col.py | if Xp.shape[3] < FEW_CHANNELS: | < -> <= (boundary) | * | im2col
layers/_im2col.py | if Xp.shape[3] < FEW_CHANNELS: | < -> >= (negation) | * | im2col
layers/_im2col.py | sliding_window_view(Xp, (k, k), axis=(1, 2)) | slice upper bound + 1 | * | window
layers/activation.py | values = X[0].size if X.ndim > 1 else 1 | > -> >= (boundary) | * | hint
layers/activation.py | values = X[0].size if X.ndim > 1 else 1 | > -> <= (negation) | * | hint
layers/activation.py | values = X[0].size if X.ndim > 1 else 1 | 1 -> 2 | * | hint
layers/base.py | if len(buffers) > 32: | > -> >= (boundary) | * | buffers
layers/base.py | if len(buffers) > 32: | 32 -> 33 | * | buffers
layers/batchnorm.py | "beta"][...] = 0.0 | delete statement: self.params['beta'][...] = 0.0 | * | zeros
layers/batchnorm.py | "running_mean"][...] = 0.0 | delete statement: self.state['running_mean'][...] = 0.0 | * | zeros
layers/conv2d.py | Xp = buffer("padded", (m, H + 2 * p, W + 2 * p, C) | 2 -> 3 | * | padded
layers/conv2d.py | dXp = self.scratch("dX", (m, H + 2 * p, W + 2 * p, C) | 2 -> 3 | * | dX
layers/conv2d.py | Wt = np.ascontiguousarray( | ascontiguousarray(x) -> x | * | speed
layers/pool.py | shape = V[:, :, 0, :, 0].shape | 0 -> 1 | * | same shape
layers/pool.py | if H % k or W % k: | % -> // | * | tiled
network.py | PREDICT_VALUES = 1 << 24 | 1 -> 2 | * | chunks
network.py | PREDICT_VALUES = 1 << 24 | 24 -> 25 | * | chunks
network.py | MAX_PREDICT_ROWS = 4096 | 4096 -> 4097 | * | chunks
network.py | widest = max(layer.widest_values() for layer in self.layers) | max -> min | * | chunks
layers/conv2d.py | return max(super().widest_values(), Ho * Wo * (self.n_columns + 1)) | * | * | chunks
network.py | batch_size = max(1, min(MAX_PREDICT_ROWS, PREDICT_VALUES // widest)) | 1 -> 2 | * | chunks
network.py | batch_size = max(1, min(MAX_PREDICT_ROWS, PREDICT_VALUES // widest)) | min -> max | * | chunks
network.py | return y.astype(np.intp, copy=False) | False -> True | * | copy
network.py | self._views[0] is not grad | 0 -> 1 | * | views
network.py | for i, layer in enumerate(layers[:-1]): | 1 -> 2 | * | last pair
optimizers.py | if self.M is None or self.V is None | or -> and | * | together
training.py | accuracy(y, P.argmax(axis=1)) | swap the arguments of accuracy | * | symmetric
training.py | side = math.isqrt(shape[0]) if len(shape) == 1 else 0 | 0 -> 1 | 1 | flat
training.py | waited: int = 0 | 0 -> 1 | * | first epoch
training.py | rng.spawn(1)[0] | 1 -> 2 | * | spawn
training.py | early_stopping is not None and self.state.best_params is not None | and -> or | * | early stopping
metrics.py | y_true.max(initial=-1), y_pred.max(initial=-1) | 1 -> 2 | 0 | empty
metrics.py | y_true.max(initial=-1), y_pred.max(initial=-1) | 1 -> 2 | 1 | empty
data.py | IDX_CODES = {dtype.newbyteorder | > -> >= (boundary) | * | big-endian
data.py | IDX_CODES = {dtype.newbyteorder | > -> <= (negation) | * | big-endian
data.py | IDX_CODES = {dtype.newbyteorder | 1 -> 2 | * | big-endian
data.py | dtype = array.dtype.newbyteorder(">") if array.dtype.itemsize > 1 | > -> >= (boundary) | * | one byte
data.py | _CHUNK = 1 << 20 | 1 -> 2 | * | read size
data.py | _CHUNK = 1 << 20 | 20 -> 21 | * | read size
data.py | while len(payload) < nbytes: | < -> <= (boundary) | * | read 0
data.py | if f.read(1): | 1 -> 2 | * | read 2
data.py | if array.ndim == 0 or array.ndim > 255: | > -> >= (boundary) | * | 64 dims
data.py | if array.ndim == 0 or array.ndim > 255: | 255 -> 256 | * | 64 dims
data.py | gzip.compress(payload, mtime=0) | 0 -> 1 | * | mtime
data.py | return np.sort(order[n_val:]), np.sort(order[:n_val]) | sort(x) -> x | 1 | val order
export.py | if layout == "nchw" and not image: | check moved after the next statement* | * | still first
export.py | net.predict_proba(np.stack( | swap with the next statement* | * | still first
export.py | graph.node("Softmax", [x], OUTPUT_NAME, axis=1) | drop keyword axis= | * | onnx default
export.py | graph.node("Flatten", [x], name, axis=1) | drop keyword axis= | * | onnx default
export.py | onnx.checker.check_model(model, full_check=True) | * | * | checker
export.py | zip(names, arrays, strict=True) | True -> False | * | strict
export.py | transpose(2, 0, 1).reshape(-1) | 1 -> 2 | 1 | reshape
web/app.py | super().__init__(detail) | delete statement: super().__init__(detail) | * | detail
web/app.py | if not served: | check moved after the next statement* | * | still first
web/app.py | if len(by_name) != len(served): | check moved after the next statement* | * | still first
web/app.py | int(declared) > MAX_BODY_BYTES | check moved after the next statement* | * | still first
web/served.py | pixels: Array = field(repr=False) | False -> True | * | repr
web/served.py | if net.n_in != SIDE * SIDE: | check moved after the next statement* | * | still first
web/served.py | self.net.layer_outputs(pixels.reshape(1, -1)) | 1 -> 2 | 1 | reshape
web/served.py | np.ascontiguousarray(outputs[shown]) | ascontiguousarray(x) -> x | * | speed
web/served.py | pixels=np.ascontiguousarray(pixels) | ascontiguousarray(x) -> x | * | speed
web/served.py | zip(weighted[:-1], weighted[1:], strict=True) | True -> False | * | strict
images.py | image = next(iter(ImageSequence.Iterator(image))) | swap with the next statement: image.load() | * | seek 0
images.py | image.size[1] > MAX_PIXELS: | check moved after the next statement: if image.size* | * | seek 0
images.py | image.draft(None, (max(1, width // scale), max(1, height // scale))) | * | * | draft
images.py | for scale in (2, 4, 8): | 8 -> 9 | * | eighth
images.py | continue | delete statement: continue | * | last
images.py | orientation = image.getexif().get(ExifTags.Base.Orientation, 1) | 1 -> 2 | * | exif
images.py | alpha = np.asarray(image.getchannel("A"), dtype=np.float64) / 255.0 | drop keyword dtype= | * | uint8
images.py | np.asarray(image.convert("RGB").convert("L"), dtype=np.float64) / 255.0 | drop keyword dtype= | * | uint8
images.py | return np.asarray(image.convert("L"), dtype=np.float64) / 255.0 | drop keyword dtype= | * | uint8
images.py | return np.clip((strokes - background) / contrast, 0.0, 1.0) | 1.0 -> 2.0 | * | clip 1
images.py | if total > 0: | > -> >= (boundary) | * | empty box
images.py | cy, cx = (bh - 1) / 2, (bw - 1) / 2 | * | * | empty box
images.py | return fit_and_centre(strokes).reshape(-1) | 1 -> 2 | * | reshape
tune.py | if TYPE_CHECKING: | negate if condition | * | type checking
tune.py | ax.scatter(*zip(*points, strict=True) | True -> False | * | strict
study.py | CACHE_VERSION = 3 | 3 -> 4 | * | cache version
commands/common.py | = Console( | False -> True | * | colours
io.py | f.flush() | swap with the next statement* | * | flush and mode
io.py | write(f) | swap with the next statement: f.flush()* | * | crash only
study.py | cache_dir.mkdir(parents=True, exist_ok=True) | swap with the next statement* | * | independent
augment.py | self._turn = (self._turn + 1) % 3 | 1 -> 2 | * | three buffers
augment.py | result = out if out is not None and out.dtype == images.dtype | == -> != (negation) | * | buffer
io.py | if not raw: | check moved after the next statement* | * | still first
augment.py | .astype(images.dtype, copy=False) | drop keyword copy= | * | same values
augment.py | pixels = np.arange(n, dtype=np.float64) | drop keyword dtype= | * | promoted
io.py | holding = False | False -> True | * | race
io.py | if stat.S_ISLNK(mode): | check moved after the next statement* | * | exclusive
io.py | if not chunk: | check moved after the next statement* | * | empty chunk
commands/train.py | self.every = max(1, n_batches // 50) | // -> / | * | progress bar
commands/train.py | self.every = max(1, n_batches // 50) | 50 -> 51 | * | progress bar
commands/train.py | self.every = max(1, n_batches // 50) | 1 -> 2 | * | progress bar
commands/train.py | self.progress.reset(self.task) | delete statement* | * | progress bar
commands/predict.py | if net.n_in != SIDE * SIDE: | check moved after the next statement* | * | still first
commands/predict.py | pixels.reshape(1, -1) | 1 -> 2 | 1 | reshape
tune.py | ax.set_ | swap with the next statement: ax.set_* | * | setters
tune.py | ax.barh( | swap with the next statement: ax.set_* | * | setters
commands/evaluate.py | accuracy(data.y_test, predicted) | swap the arguments of accuracy | * | symmetric
commands/gradcheck.py | if r.passed and r.relative_error > r.tolerance: | > -> >= (boundary) | * | exactly the tolerance
"""
EQUIVALENT = [
    (module, piece, mutation, None if nth == "*" else int(nth), REASONS[reason])
    for module, piece, mutation, nth, reason in (
        [cell.strip() for cell in row.split(" | ")] for row in EQUIVALENT_TABLE.strip().splitlines()
    )
]

MEMORY_LIMIT = 6 << 30  # bytes of address space per test run: a mutant that allocates wildly fails, not the machine

# -- mutants ------------------------------------------------------------------------------------------

BINOP = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Div,
    ast.Div: ast.Mult,
    ast.FloorDiv: ast.Div,
    ast.Mod: ast.FloorDiv,
    ast.Pow: ast.Mult,
    ast.LShift: ast.RShift,
    ast.RShift: ast.LShift,
}
BOUNDARY = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt}
NEGATION = {
    ast.Lt: ast.GtE,
    ast.LtE: ast.Gt,
    ast.Gt: ast.LtE,
    ast.GtE: ast.Lt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
}
SWAPPED_NAMES = {
    "min": "max",
    "max": "min",
    "minimum": "maximum",
    "maximum": "minimum",
    "argmin": "argmax",
    "argmax": "argmin",
    "floor": "ceil",
    "ceil": "floor",
}
# Calls whose removal (the call replaced by its only argument, or a method call by its object) is a
# bug someone could write: a forgotten shuffle, sort, square root, exponential, or copy.
IDENTITY_CALLS = {
    "permutation",
    "sort",
    "sorted",
    "reversed",
    "sqrt",
    "exp",
    "expm1",
    "log",
    "abs",
    "tanh",
    "sign",
    "floor",
    "ceil",
    "copy",
    "ascontiguousarray",
    "transpose",
}

# Calls of two arguments are mutated by swapping them, except these: commutative ones (a swap changes
# nothing) and ones whose arguments differ in kind (a swap only raises a TypeError).
NO_SWAP = {
    "maximum",
    "minimum",
    "multiply",
    "add",
    "max",
    "min",
    "isinstance",
    "issubclass",
    "getattr",
    "hasattr",
    "setattr",
    "setdefault",
    "get",
    "join",
    "replace",
    "map",
    "zip",
    "run",
    "split",
    "copy_location",
}

# Keyword arguments whose loss is a bug someone could write: a reduction over everything instead of one
# axis, a lost dimension, the default dtype, a copy where a view was meant (or the reverse), the default
# order, a directory that must already exist.
DROPPABLE_KEYWORDS = {
    "axis",
    "keepdims",
    "dtype",
    "copy",
    "reverse",
    "key",
    "ddof",
    "out",
    "exist_ok",
    "parents",
    "missing_ok",
}
# Calls whose key= function orders things: a minus dropped in it reverses the order.
ORDERING_CALLS = {"sorted", "sort", "min", "max", "argsort", "nlargest", "nsmallest"}
# A random generator: a Name or attribute called rng or ending in _rng.
COPY_RNG = "__import__('copy').deepcopy"


def is_rng(node: ast.AST) -> bool:
    name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None
    return name is not None and (name == "rng" or name.endswith("_rng")) and isinstance(node.ctx, ast.Load)


def copy_of(node: ast.expr) -> ast.expr:
    return ast.copy_location(ast.Call(ast.parse(COPY_RNG, mode="eval").body, [node], []), node)


SIMPLE_STATEMENTS = (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Expr)


def _base_name(node: ast.AST) -> str | None:
    while isinstance(node, ast.Subscript | ast.Attribute | ast.Starred):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _path(node: ast.AST) -> str | None:
    """``self.a.b`` for a chain of names and attributes; None for anything else."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _path(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def _stored(node: ast.AST) -> str | None:
    """The place a store into ``node`` changes: ``x``, ``self.a`` (for ``self.a = v``, ``self.a[i] = v``)."""
    while isinstance(node, ast.Subscript | ast.Starred):
        node = node.value
    while isinstance(node, ast.Attribute) and _path(node) is None:
        node = node.value
    return _path(node)


def _reads(node: ast.AST, found: set[str] | None = None) -> set[str]:
    """The places ``node`` reads, as the longest chains of names and attributes (``self.a.b``, ``x``)."""
    found = set() if found is None else found
    path = _path(node) if isinstance(node, ast.Name | ast.Attribute) else None
    if path is not None:
        if isinstance(node.ctx, ast.Load):  # type: ignore[attr-defined]
            found.add(path)
        return found  # a place stored into is the statement's write, not a read
    if isinstance(node, ast.Subscript) and not isinstance(node.ctx, ast.Load):
        _reads(node.slice, found)
        return found if _path(node.value) is not None else _reads(node.value, found)
    for child in ast.iter_child_nodes(node):
        _reads(child, found)
    return found


def _written(stmt: ast.stmt) -> tuple[set[str], set[str]]:
    """The names ``stmt`` binds afresh, and the places it updates (an existing value changed: ``x += 1``,
    ``x = f(x)``, ``x[i] = v``, ``self.a = v``, ``x.append(v)``, ``self.reset()``)."""
    if isinstance(stmt, ast.Expr):
        call = stmt.value
        if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute):
            place = _stored(call.func.value)
            return set(), {place} if place else set()
        return set(), set()
    targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]  # type: ignore[attr-defined]
    names, updated = set(), set()
    for target in targets:
        for node in [target, *(target.elts if isinstance(target, ast.Tuple | ast.List) else [])]:
            if isinstance(node, ast.Name):
                names.add(node.id)
            elif isinstance(node, ast.Subscript | ast.Attribute | ast.Starred):
                place = _stored(node)
                if place:
                    updated.add(place)
    if isinstance(stmt, ast.AugAssign):
        return set(), updated | names
    value = getattr(stmt, "value", None)
    read = _reads(value) if value is not None else set()
    again = {n for n in names if _touches({n}, read)}
    return names - again, updated | again


def _touches(written: set[str], read: set[str]) -> bool:
    """Whether a read place is a written one, within it or around it (``self.a`` and ``self.a.b``)."""
    return any(w == r or r.startswith(w + ".") or w.startswith(r + ".") for w in written for r in read)


def dependent(first: ast.stmt, second: ast.stmt) -> bool:
    """Whether swapping two consecutive simple statements moves a value before or after a step: the second
    changes a place the first reads (``a = f(x)``, then ``x += 1``), or the first updates a place the
    second reads (``x += 1``, then ``a = f(x)``).  Not when the second reads a name the first binds afresh:
    the swap would only raise a NameError."""
    if not (isinstance(first, SIMPLE_STATEMENTS) and isinstance(second, SIMPLE_STATEMENTS)):
        return False
    if any(isinstance(s, ast.Expr) and not isinstance(s.value, ast.Call) for s in (first, second)):
        return False
    if any(isinstance(s, ast.AnnAssign) and s.value is None for s in (first, second)):
        return False
    if _declares_options(first) and _declares_options(second):
        return False  # two command-line options declared in the other order: only --help lists them otherwise
    fresh1, updated1 = _written(first)
    fresh2, updated2 = _written(second)
    reads1, reads2 = _reads(first), _reads(second)
    if _touches(fresh1, reads2):
        return False
    return _touches(fresh2 | updated2, reads1) or _touches(updated1, reads2)


OPTION_CALLS = ("add_argument", "set_defaults")  # and the add_* helpers that declare options on a parser


def _declares_options(stmt: ast.stmt) -> bool:
    """A statement that declares command-line options: ``parser.add_argument(...)``, ``set_defaults``, a
    group of them (``group = parser.add_argument_group(...)``), or a helper function ``add_threads(parser)``
    (a plain function whose name starts ``add_``; not a method such as ``table.add_row``, whose order
    matters)."""
    if isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Call):  # group = parser.add_argument_group(...)
        func = stmt.value.func
        return isinstance(func, ast.Attribute) and func.attr in ("add_argument_group", "add_mutually_exclusive_group")
    if not (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call)):
        return False
    func = stmt.value.func
    if isinstance(func, ast.Name):
        return func.id.startswith("add_")
    return isinstance(func, ast.Attribute) and func.attr in OPTION_CALLS


def is_guard(stmt: ast.stmt) -> bool:
    """``if ...: raise ...`` (a check of a limit or an argument)."""
    return isinstance(stmt, ast.If) and not stmt.orelse and len(stmt.body) == 1 and isinstance(stmt.body[0], ast.Raise)


def symbol(op: type) -> str:
    return {
        ast.Add: "+",
        ast.Sub: "-",
        ast.Mult: "*",
        ast.Div: "/",
        ast.FloorDiv: "//",
        ast.Mod: "%",
        ast.Pow: "**",
        ast.LShift: "<<",
        ast.RShift: ">>",
        ast.Lt: "<",
        ast.LtE: "<=",
        ast.Gt: ">",
        ast.GtE: ">=",
        ast.Eq: "==",
        ast.NotEq: "!=",
        ast.Is: "is",
        ast.IsNot: "is not",
        ast.In: "in",
        ast.NotIn: "not in",
        ast.And: "and",
        ast.Or: "or",
    }[op]


def call_name(node: ast.Call) -> str | None:
    func = node.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None


@dataclass
class Mutant:
    module: str
    index: int  # the index-th mutation site of the module, in Mutator's visiting order
    line: int
    end_line: int
    description: str
    source_line: str = ""
    status: str = ""  # killed, timeout, survived, uncovered, equivalent
    reason: str = ""  # why an equivalent mutant is one
    tests_run: int = 0
    seconds: float = 0.0


class Mutator(ast.NodeTransformer):
    """Visits a module in a fixed order, numbering every place it could mutate.

    With ``target=None`` it only lists them (``found``); with ``target=i`` it applies the i-th.
    """

    def __init__(self, target: int | None = None) -> None:
        self.target = target
        self.count = 0
        self.found: list[tuple[int, int, str, bool]] = []
        self.applied: str | None = None
        self.hint = 0  # > 0 inside the size= hint of a pool.run call
        self.key = 0  # > 0 inside the key= function of an ordering call (sorted, min, max, ...)

    def site(self, node: ast.AST, description: str, last: ast.AST | None = None) -> bool:
        """Number one possible mutation at ``node`` (to ``last``, if it spans two statements); True if it is
        the one to apply now."""
        index = self.count
        self.count += 1
        if self.target is None:
            last = node if last is None else last
            end = getattr(last, "end_lineno", last.lineno) or last.lineno
            self.found.append((node.lineno, end, description, self.hint > 0))
            return False
        if index == self.target:
            self.applied = description
            return True
        return False

    # -- what is never mutated ------------------------------------------------------------------

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        if node.name == "__repr__":
            return node
        node.body = self.visit_body(node.body)  # not the arguments: annotations, and defaults callers override
        return node

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        node.body = self.visit_body(node.body)
        return node

    def visit_Module(self, node: ast.Module) -> ast.AST:
        node.body = self.visit_body(node.body)
        return node

    def visit_body(self, body: list[ast.stmt]) -> list[ast.stmt]:
        out: list[ast.stmt] = []
        for i, stmt in enumerate(body):
            if i == 0 and isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
                out.append(stmt)  # a docstring
                continue
            if isinstance(stmt, ast.Assign | ast.AugAssign | ast.AnnAssign) and _targets_name(stmt, "__all__"):
                out.append(stmt)
                continue
            following = body[i + 1] if i + 1 < len(body) else None
            if following is not None and self.swap_site(stmt, following):
                return out + [following, stmt] + body[i + 2 :]
            replaced = self.visit_statement(stmt)
            out.append(replaced)
        return out

    def swap_site(self, stmt: ast.stmt, following: ast.stmt) -> bool:
        """The block-level mutations of ``stmt`` and the statement after it; True if one is to be applied
        now (the two are then swapped)."""
        if is_guard(stmt) and not is_guard(following):
            test = ast.unparse(stmt.test)[:50]  # type: ignore[attr-defined]
            if self.site(stmt, f"check moved after the next statement: if {test}: raise", following):
                return True
        if dependent(stmt, following):
            if self.site(stmt, f"swap with the next statement: {ast.unparse(following)[:50]}", following):
                return True
        return False

    def visit_statement(self, stmt: ast.stmt) -> ast.stmt:
        if self.deletable(stmt) and self.site(stmt, f"delete statement: {ast.unparse(stmt)[:60]}"):
            return ast.copy_location(ast.Pass(), stmt)
        return self.visit(stmt)

    @staticmethod
    def deletable(stmt: ast.stmt) -> bool:
        """In-place work whose loss is a real bug (not a definition, whose loss is a NameError)."""
        if isinstance(stmt, ast.Expr):
            return isinstance(stmt.value, ast.Call)
        if isinstance(stmt, ast.AugAssign):
            return True
        if isinstance(stmt, ast.Assign):
            return all(isinstance(t, ast.Subscript | ast.Attribute) for t in stmt.targets)
        return isinstance(stmt, ast.Break | ast.Continue)

    def visit_Assert(self, node: ast.Assert) -> ast.AST:
        return node

    def visit_Raise(self, node: ast.Raise) -> ast.AST:
        return node

    def visit_JoinedStr(self, node: ast.JoinedStr) -> ast.AST:
        return node

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.AST:
        if node.value is not None:
            node.value = self.visit(node.value)
        return node

    def generic_visit(self, node: ast.AST) -> ast.AST:
        # statement lists inside if/for/while/with/try get the statement-level mutations too
        for field in ("body", "orelse", "finalbody"):
            value = getattr(node, field, None)
            if isinstance(value, list) and value and isinstance(value[0], ast.stmt):
                setattr(node, field, self.visit_body(value))
        for field, value in ast.iter_fields(node):
            if field in ("body", "orelse", "finalbody") and isinstance(value, list) and value:
                if isinstance(value[0], ast.stmt):
                    continue
            if isinstance(value, list):
                setattr(node, field, [self.visit(v) if isinstance(v, ast.AST) else v for v in value])
            elif isinstance(value, ast.AST):
                setattr(node, field, self.visit(value))
        return node

    # -- the mutations --------------------------------------------------------------------------

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        new = BINOP.get(type(node.op))
        if new and self.site(node, f"{symbol(type(node.op))} -> {symbol(new)}"):
            node.op = new()
            return node
        return self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.AST:
        new = BINOP.get(type(node.op))
        if new and self.site(node, f"{symbol(type(node.op))}= -> {symbol(new)}="):
            node.op = new()
            return node
        node.value = self.visit(node.value)
        if isinstance(node.target, ast.Subscript):
            node.target.slice = self.visit(node.target.slice)
        return node

    def visit_Compare(self, node: ast.Compare) -> ast.AST:
        for i, op in enumerate(node.ops):
            for table, kind in ((BOUNDARY, "boundary"), (NEGATION, "negation")):
                new = table.get(type(op))
                if new and self.site(node, f"{symbol(type(op))} -> {symbol(new)} ({kind})"):
                    node.ops[i] = new()
                    return node
        return self.generic_visit(node)

    def visit_BoolOp(self, node: ast.BoolOp) -> ast.AST:
        new = ast.Or if isinstance(node.op, ast.And) else ast.And
        if self.site(node, f"{symbol(type(node.op))} -> {symbol(new)}"):
            node.op = new()
            return node
        return self.generic_visit(node)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> ast.AST:
        if isinstance(node.op, ast.Not) and self.site(node, "drop not"):
            return node.operand
        if isinstance(node.op, ast.USub):
            what = "drop unary minus in a key= function (order reversed)" if self.key else "drop unary minus"
            if self.site(node, what):
                return node.operand
        return self.generic_visit(node)

    def visit_If(self, node: ast.If) -> ast.AST:
        if not isinstance(node.test, ast.Compare | ast.UnaryOp | ast.BoolOp) and self.site(
            node.test, "negate if condition"
        ):
            node.test = ast.UnaryOp(ast.Not(), node.test)
            return node
        return self.generic_visit(node)

    def visit_IfExp(self, node: ast.IfExp) -> ast.AST:
        if not isinstance(node.test, ast.Compare | ast.UnaryOp | ast.BoolOp) and self.site(
            node.test, "negate conditional expression"
        ):
            node.test = ast.UnaryOp(ast.Not(), node.test)
            return node
        return self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        value = node.value
        if isinstance(value, bool):
            if self.site(node, f"{value} -> {not value}"):
                return ast.copy_location(ast.Constant(not value), node)
        elif isinstance(value, int | float) and not isinstance(value, complex):
            if self.site(node, f"{value!r} -> {value + 1!r}"):
                return ast.copy_location(ast.Constant(value + 1), node)
        return node

    def visit_Slice(self, node: ast.Slice) -> ast.AST:
        for bound in ("lower", "upper"):
            value = getattr(node, bound)
            if value is not None and self.site(value, f"slice {bound} bound + 1"):
                setattr(node, bound, ast.BinOp(value, ast.Add(), ast.Constant(1)))
                return node
        return self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> ast.AST:
        name = call_name(node)
        if name in SWAPPED_NAMES and self.site(node, f"{name} -> {SWAPPED_NAMES[name]}"):
            if isinstance(node.func, ast.Name):
                node.func = ast.Name(SWAPPED_NAMES[name], ast.Load())
            else:
                node.func = ast.Attribute(node.func.value, SWAPPED_NAMES[name], ast.Load())  # type: ignore[union-attr]
            return node
        if name in IDENTITY_CALLS:
            if len(node.args) == 1 and not isinstance(node.args[0], ast.Starred):
                if self.site(node, f"{name}(x) -> x"):
                    return node.args[0]
            elif not node.args and isinstance(node.func, ast.Attribute) and name in ("copy", "sort", "transpose"):
                if self.site(node, f"x.{name}() -> x"):
                    return node.func.value
        if len(node.args) == 2 and name not in NO_SWAP and not any(isinstance(a, ast.Starred) for a in node.args):
            if ast.dump(node.args[0]) != ast.dump(node.args[1]) and self.site(node, f"swap the arguments of {name}"):
                node.args = [node.args[1], node.args[0]]
                return node
        mutated = self.order_sites(node, name)
        if mutated is not None:
            return mutated
        if self.keyword_sites(node) or self.rng_sites(node):
            return node
        # as generic_visit would, but noting the size= hint of pool.run (how much work a call is, which
        # only decides whether it is split over the threads: the answers are the same either way)
        node.func = self.visit(node.func)
        node.args = [self.visit(a) for a in node.args]
        for keyword in node.keywords:
            hint = name == "run" and keyword.arg == "size"
            key = name in ORDERING_CALLS and keyword.arg == "key"
            self.hint += hint
            self.key += key
            keyword.value = self.visit(keyword.value)
            self.hint -= hint
            self.key -= key
        return node

    def order_sites(self, node: ast.Call, name: str | None) -> ast.AST | None:
        """A sort order reversed: ``sorted(x)`` -> ``sorted(x, reverse=True)``, ``np.argsort(x)`` or
        ``x.argsort()`` -> ``...[::-1]``, ``np.sort(x)`` -> ``np.sort(x)[::-1]``.  (``reverse=True`` ->
        ``False`` is the constant mutation; a minus dropped in a ``key=`` function is ``visit_UnaryOp``'s.)"""
        keywords = {k.arg for k in node.keywords}
        if name == "sorted" and isinstance(node.func, ast.Name) and "reverse" not in keywords:
            if self.site(node, "sorted(x) -> sorted(x, reverse=True)"):
                node.keywords.append(ast.keyword("reverse", ast.Constant(True)))
                return node
        numpy_sort = (
            name == "sort" and isinstance(node.func, ast.Attribute) and _base_name(node.func) in ("np", "numpy")
        )
        if name == "argsort" or numpy_sort:
            if self.site(node, f"{name}(x) -> {name}(x)[::-1] (order reversed)"):
                reverse = ast.Slice(None, None, ast.UnaryOp(ast.USub(), ast.Constant(1)))
                return ast.copy_location(ast.Subscript(node, reverse, ast.Load()), node)
        return None

    def keyword_sites(self, node: ast.Call) -> bool:
        """A keyword argument dropped (``axis=``, ``keepdims=``, ``dtype=``, ``copy=``, ``reverse=``,
        ``key=`` ...), and an axis moved down by one (``axis=1`` -> ``axis=0``; 0 -> 1 is the constant
        mutation) or a tuple of axes cut to its first ones (``axis=(1, 2)`` -> ``axis=1``)."""
        for i, keyword in enumerate(node.keywords):
            if keyword.arg in DROPPABLE_KEYWORDS and self.site(keyword.value, f"drop keyword {keyword.arg}="):
                del node.keywords[i]
                return True
            if keyword.arg != "axis":
                continue
            value = keyword.value
            if isinstance(value, ast.Constant) and type(value.value) is int and value.value > 0:
                if self.site(value, f"axis={value.value} -> axis={value.value - 1}"):
                    keyword.value = ast.copy_location(ast.Constant(value.value - 1), value)
                    return True
            elif isinstance(value, ast.Tuple) and len(value.elts) > 1:
                kept = value.elts[:-1]
                shorter = kept[0] if len(kept) == 1 else ast.Tuple(kept, ast.Load())
                if self.site(value, f"axis={ast.unparse(value)} -> axis={ast.unparse(shorter)}"):
                    keyword.value = ast.copy_location(shorter, value)
                    return True
        return False

    def rng_sites(self, node: ast.Call) -> bool:
        """A random generator replaced by a copy of itself, so the caller's does not advance: passed on as
        an argument (``f(x, rng)`` -> ``f(x, deepcopy(rng))``) or drawn from (``rng.integers(...)`` ->
        ``deepcopy(rng).integers(...)``).  The copy is ``__import__('copy').deepcopy``: no import to add."""
        if isinstance(node.func, ast.Attribute) and is_rng(node.func.value):
            if self.site(node.func.value, f"draw from a copy of {ast.unparse(node.func.value)}"):
                node.func.value = copy_of(node.func.value)
                return True
        for i, arg in enumerate(node.args):
            if is_rng(arg) and self.site(arg, f"pass a copy of {ast.unparse(arg)}"):
                node.args[i] = copy_of(arg)
                return True
        for keyword in node.keywords:
            if keyword.arg is not None and is_rng(keyword.value):
                if self.site(keyword.value, f"pass a copy of {ast.unparse(keyword.value)} as {keyword.arg}="):
                    keyword.value = copy_of(keyword.value)
                    return True
        return False


def _targets_name(stmt: ast.stmt, name: str) -> bool:
    targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]  # type: ignore[attr-defined]
    return any(isinstance(t, ast.Name) and t.id == name for t in targets)


def list_mutants(module: str, source: str) -> list[Mutant]:
    lister = Mutator()
    lister.visit(ast.parse(source))
    lines = source.splitlines()
    mutants, seen = [], {}
    for i, (line, end, description, hint) in enumerate(lister.found):
        mutant = Mutant(module, i, line, end, description, lines[line - 1].strip())
        nth = seen[line, description] = seen.get((line, description), -1) + 1
        reason = SIZE_HINT if hint else equivalence(mutant, nth)
        if reason:
            mutant.status, mutant.reason = "equivalent", reason
        mutants.append(mutant)
    return mutants


def equivalence(mutant: Mutant, nth: int) -> str | None:
    """Why ``mutant`` (the nth of its line and description) is equivalent, if ``EQUIVALENT`` says so."""
    for module, piece, description, which, reason in EQUIVALENT:
        described = description in ("*", mutant.description) or (
            description.endswith("*") and mutant.description.startswith(description[:-1])  # a prefix
        )
        if module == mutant.module and described and piece in mutant.source_line:
            if which is None or which == nth:
                return reason
    return None


def mutated_source(source: str, index: int) -> str:
    mutator = Mutator(index)
    tree = mutator.visit(ast.parse(source))
    assert mutator.applied is not None, f"mutation {index} not found"
    return ast.unparse(ast.fix_missing_locations(tree))


# -- which test runs which line ---------------------------------------------------------------------

TRACE_PLUGIN = """
import json, os, sys, threading
import pytest
ROOT = os.environ["SWEEP_PACKAGE"]
hits, outcomes = {}, {}
current = ["<import>"]

def local(frame, event, arg):
    if event == "line":
        hits.setdefault(current[0], set()).add((frame.f_code.co_filename[len(ROOT) + 1:], frame.f_lineno))
    return local

def tracer(frame, event, arg):
    if frame.f_code.co_filename.startswith(ROOT):
        hits.setdefault(current[0], set()).add((frame.f_code.co_filename[len(ROOT) + 1:], frame.f_lineno))
        return local
    return None

if not os.environ.get("SWEEP_NO_TRACE"):
    sys.settrace(tracer)
    threading.settrace(tracer)

@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    current[0] = item.nodeid
    os.environ["SWEEP_TEST"] = item.nodeid  # for the subprocesses a test starts (sitecustomize.py traces them)

def pytest_runtest_logreport(report):
    seconds, passed = outcomes.get(report.nodeid, (0.0, True))
    outcomes[report.nodeid] = (seconds + report.duration, passed and not report.failed)

def pytest_sessionfinish(session):
    sys.settrace(None)
    os.environ.pop("SWEEP_TEST", None)
    children = os.environ["SWEEP_TRACE_OUT"] + ".d"
    for name in sorted(os.listdir(children)) if os.path.isdir(children) else []:
        try:
            with open(os.path.join(children, name)) as f:
                child = json.load(f)
        except (OSError, ValueError):
            continue
        hits.setdefault(child["test"], set()).update(tuple(hit) for hit in child["hits"])
    out = {"hits": {k: sorted(v) for k, v in hits.items()}, "outcomes": outcomes}
    with open(os.environ["SWEEP_TRACE_OUT"], "w") as f:
        json.dump(out, f)
"""

# Put in the copy beside the package (on PYTHONPATH, so every Python process started there imports it):
# during the tracing run, a subprocess that a test starts (``python -m nnscratch.cli ...``, a server)
# records the lines it runs too, under the test's name, and writes them when it exits.
SITECUSTOMIZE = """
import os
if os.environ.get("SWEEP_TEST") and os.environ.get("SWEEP_TRACE_OUT") and not os.environ.get("SWEEP_NO_TRACE"):
    import atexit, json, sys, threading
    _ROOT = os.environ["SWEEP_PACKAGE"]
    _hits = set()

    def _local(frame, event, arg):
        if event == "line":
            _hits.add((frame.f_code.co_filename[len(_ROOT) + 1:], frame.f_lineno))
        return _local

    def _tracer(frame, event, arg):
        if frame.f_code.co_filename.startswith(_ROOT):
            _hits.add((frame.f_code.co_filename[len(_ROOT) + 1:], frame.f_lineno))
            return _local
        return None

    def _write(test=os.environ["SWEEP_TEST"]):
        folder = os.environ["SWEEP_TRACE_OUT"] + ".d"
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, f"{os.getpid()}.json"), "w") as f:
            json.dump({"test": test, "hits": sorted(_hits)}, f)

    sys.settrace(_tracer)
    threading.settrace(_tracer)
    atexit.register(_write)
"""


def pytest_command(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=", "-m", "not slow", *args]


def environment(work: Path, **extra: str) -> dict[str, str]:
    """The environment of every test run: this one's (``$NNSCRATCH_DATA`` included, else the MNIST copy in
    ``../shared/mnist`` that CI uses, when there is one), with the copy's ``src`` first on PYTHONPATH, so
    that the tests and every ``python -m nnscratch.cli`` they start import the copy (the mutant), never the
    editable install of the working tree."""
    env = dict(os.environ)
    if not env.get("NNSCRATCH_DATA") and SHARED_MNIST.is_dir():
        env["NNSCRATCH_DATA"] = str(SHARED_MNIST)
    for name in [k for k in env if k.startswith("SWEEP_")]:
        del env[name]
    env.update(
        PYTHONPATH=f"{work / 'src'}{os.pathsep}{work}",
        PYTHONDONTWRITEBYTECODE="1",  # a mutant written within the same second must never meet a stale .pyc
        PYTEST_DISABLE_PLUGIN_AUTOLOAD="1",  # 1 s less per run; the tests need no plugin
        NNSCRATCH_THREADS=env.get("NNSCRATCH_THREADS", "2"),
        **extra,
    )
    return env


def limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def trace_tests(work: Path, tests: list[str]) -> tuple[dict[str, set[tuple[str, int]]], dict[str, tuple[float, bool]]]:
    (work / "sweep_trace_plugin.py").write_text(TRACE_PLUGIN)
    (work / "sitecustomize.py").write_text(SITECUSTOMIZE)
    out = work / "trace.json"
    env = environment(work, SWEEP_PACKAGE=str(work / "src" / "nnscratch"), SWEEP_TRACE_OUT=str(out))
    subprocess.run(
        pytest_command(["-p", "sweep_trace_plugin", *tests]), cwd=work, env=env, capture_output=True, text=True
    )
    data = json.loads(out.read_text())
    hits = {test: {(f, line) for f, line in lines} for test, lines in data["hits"].items()}
    outcomes = {test: (seconds, passed) for test, (seconds, passed) in data["outcomes"].items()}
    # A test that failed under the tracer may only be too slow for its own time limits there (a signal
    # sent at a moment, a server's workers): run those again untraced, and keep each that passes, with
    # the lines it reached while traced.
    failing = sorted(test for test, (_, passed) in outcomes.items() if not passed)
    if failing:
        retry = work / "retry.json"
        env = environment(
            work, SWEEP_PACKAGE=str(work / "src" / "nnscratch"), SWEEP_TRACE_OUT=str(retry), SWEEP_NO_TRACE="1"
        )
        subprocess.run(pytest_command(["-p", "sweep_trace_plugin", *failing]), cwd=work, env=env, capture_output=True)
        if retry.is_file():
            for test, (seconds, passed) in json.loads(retry.read_text())["outcomes"].items():
                if passed:
                    outcomes[test] = (seconds, True)
    return hits, outcomes


def tests_for(
    mutant: Mutant, hits: dict[str, set[tuple[str, int]]], outcomes: dict[str, tuple[float, bool]]
) -> list[str]:
    """The passing tests that execute the mutated lines, fastest first (all the module's tests for a line
    that runs at import time, such as a constant's definition: a subprocess a test starts imports the
    module under that test's name, but the tests that use it in the pytest process need the line too)."""
    lines = {(mutant.module, n) for n in range(mutant.line, mutant.end_line + 1)}
    chosen = {test for test, seen in hits.items() if test != "<import>" and seen & lines}
    if hits.get("<import>", set()) & lines:
        chosen |= {
            test for test, seen in hits.items() if test != "<import>" and any(f == mutant.module for f, _ in seen)
        }
    good = [t for t in chosen if outcomes.get(t, (0.0, False))[1]]
    return sorted(good, key=lambda t: (outcomes[t][0], t))


def run_mutant(work: Path, mutant: Mutant, source: str, tests: list[str], budget: float) -> str:
    target = work / "src" / "nnscratch" / mutant.module
    target.write_text(mutated_source(source, mutant.index))
    # The test ids go in a file pytest reads (``@file``): a line that every test of a module runs can
    # select more ids than a command line may hold.
    listed = work / "sweep_tests.txt"
    listed.write_text("\n".join(tests) + "\n")
    try:
        done = subprocess.run(
            pytest_command(["-x", f"@{listed.name}"]),
            cwd=work,
            env=environment(work),
            capture_output=True,
            timeout=budget,
            preexec_fn=limit_memory,
        )
    except subprocess.TimeoutExpired:
        return "timeout"
    finally:
        target.write_text(source)
    if done.returncode == 0:
        return "survived"
    if done.returncode == 5:
        raise RuntimeError(f"no tests collected for {mutant}: {done.stdout[-2000:]!r}")
    return "killed"


STARTUP = 2.0  # seconds a pytest run of the copy takes before its first test (interpreter, NumPy, collection)


def estimate(
    mutants: list[Mutant], hits: dict[str, set[tuple[str, int]]], outcomes: dict[str, tuple[float, bool]]
) -> str:
    """How long running ``mutants`` should take, module by module: each covered mutant at most its tests'
    unmutated time plus ``STARTUP`` (a killed one stops at the first failing test, so usually less)."""
    per_module: dict[str, list[float]] = {}
    for m in mutants:
        if m.status == "equivalent":
            continue
        chosen = tests_for(m, hits, outcomes)
        seconds = STARTUP + sum(outcomes[t][0] for t in chosen) if chosen else 0.0
        per_module.setdefault(m.module, []).append(seconds)
    lines = [f"{'module':24} {'mutants':>8} {'covered':>8} {'at most':>9}"]
    for module, times in per_module.items():
        lines.append(f"{module:24} {len(times):8d} {sum(t > 0 for t in times):8d} {sum(times):8.0f}s")
    total = sum(sum(times) for times in per_module.values())
    lines.append(
        f"{'all':24} {sum(len(t) for t in per_module.values()):8d} {'':8} {total:8.0f}s (~{total / 60:.0f} min)"
    )
    return "\n".join(lines)


def summarise(mutants: list[Mutant]) -> str:
    rows, lines = {}, []
    for m in mutants:
        row = rows.setdefault(m.module, dict.fromkeys(("mutants", "killed", "timeout", "survived", "equivalent"), 0))
        row["mutants"] += 1
        row["survived" if m.status == "uncovered" else m.status] += 1
    lines.append(
        f"{'module':24} {'mutants':>8} {'killed':>7} {'timeout':>8} {'survived':>9} {'equiv.':>7} {'score':>7}"
    )
    total = dict.fromkeys(("mutants", "killed", "timeout", "survived", "equivalent"), 0)
    for module, row in rows.items():
        for key in total:
            total[key] += row[key]
        lines.append(_row(module, row))
    lines.append(_row("all", total))
    survivors = [m for m in mutants if m.status in ("survived", "uncovered")]
    if survivors:
        lines.append("\nsurvivors:")
        for m in survivors:
            note = " (no test runs this line)" if m.status == "uncovered" else ""
            lines.append(f"  {m.module}:{m.line}  {m.description}{note}  | {m.source_line[:90]}")
    reasons: dict[str, list[Mutant]] = {}
    for m in mutants:
        if m.status == "equivalent":
            reasons.setdefault(m.reason, []).append(m)
    if reasons:
        lines.append("\nequivalent (left out of the score):")
        for reason, group in reasons.items():
            places = ", ".join(sorted({f"{m.module}:{m.line}" for m in group}))
            lines.append(f"  {len(group):3d}  {reason}\n         {places}")
    return "\n".join(lines)


def _row(name: str, row: dict[str, int]) -> str:
    effective = row["mutants"] - row["equivalent"]
    score = (row["killed"] + row["timeout"]) / effective if effective else 1.0
    return (
        f"{name:24} {row['mutants']:8d} {row['killed']:7d} {row['timeout']:8d} {row['survived']:9d} "
        f"{row['equivalent']:7d} {100 * score:6.1f}%"
    )


def sample(mutants: list[Mutant], n: int, seed: int) -> list[Mutant]:
    """At most ``n`` mutants of each module, drawn at random (seeded by ``seed`` and the module's name, so
    the same arguments draw the same sample, and --again goes on with it), kept in the module's order."""
    kept = []
    for module in dict.fromkeys(m.module for m in mutants):
        of_module = [m for m in mutants if m.module == module]
        chosen = random.Random(f"{seed}:{module}").sample(range(len(of_module)), min(n, len(of_module)))
        kept += [of_module[i] for i in sorted(chosen)]
    return kept


def write_report(path: Path, mutants: list[Mutant]) -> None:
    """Every mutant and its outcome so far (an empty status: not run yet), replaced in one step."""
    temporary = path.with_name(path.name + ".partial")
    temporary.write_text(json.dumps([asdict(m) for m in mutants], indent=1))
    temporary.replace(path)


def module_paths(arg: str, parser: argparse.ArgumentParser) -> list[str]:
    """``arg`` as paths under src/nnscratch: ``web/app.py``, ``src/nnscratch/web/app.py``, or a folder
    (``commands``: its modules, not ``__init__.py``)."""
    path = Path(arg)
    if path.is_absolute() or (ROOT / path).resolve().is_relative_to(PACKAGE) and (ROOT / path).exists():
        path = (ROOT / path).resolve().relative_to(PACKAGE)
    if (PACKAGE / path).is_dir():
        return sorted(str(p.relative_to(PACKAGE)) for p in (PACKAGE / path).glob("*.py") if p.name != "__init__.py")
    if not (PACKAGE / path).is_file():
        parser.error(f"no module {arg} under {PACKAGE.relative_to(ROOT)}")
    return [path.as_posix()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "modules",
        nargs="*",
        help="modules under src/nnscratch, such as losses.py, web/app.py, commands/train.py, or a folder "
        "of them such as commands (default: those of --group)",
    )
    parser.add_argument(
        "--group",
        choices=sorted(GROUPS),
        default="all",
        help=f"with no modules named: engine ({len(ENGINE)} modules), around ({len(AROUND)}) or all (default)",
    )
    parser.add_argument("--list", action="store_true", help="only list the mutants")
    parser.add_argument(
        "--estimate", action="store_true", help="only trace the tests and estimate how long the sweep would take"
    )
    parser.add_argument(
        "--sample",
        type=int,
        metavar="N",
        help="run a random sample of at most N mutants of each module (drawn with --seed, in the module's "
        "order): an estimate of each score in a fraction of the time",
    )
    parser.add_argument("--seed", type=int, default=0, help="the seed of --sample (default: 0)")
    parser.add_argument("--json", type=Path, help="also write every mutant and its outcome to this file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copy (its path is printed)")
    parser.add_argument(
        "--again",
        type=Path,
        metavar="JSON",
        help="run only the mutants that survived in this earlier --json report (after adding tests) or "
        "that it had not reached (an interrupted sweep: the report is written every 10 mutants); the "
        "others keep their status from it (default modules: the report's)",
    )
    args = parser.parse_args(argv)
    report = json.loads(args.again.read_text()) if args.again else []
    # --again with no modules named: the modules of the report, not a whole group afresh
    again = list(dict.fromkeys(old["module"] for old in report))
    modules = [m for arg in args.modules for m in module_paths(arg, parser)] or again or GROUPS[args.group]
    sources = {m: (PACKAGE / m).read_text() for m in modules}
    mutants = [mutant for m in modules for mutant in list_mutants(m, sources[m])]
    if args.sample:
        mutants = sample(mutants, args.sample, args.seed)
    earlier: dict[tuple[str, str, str, int], str] = {}
    for old in report:
        key = (old["module"], old["source_line"], old["description"], old["index"])
        earlier[key] = old["status"]
    if args.list:
        for m in mutants:
            print(f"{m.module}:{m.line}  {m.description}  | {m.source_line[:90]}")
        print(f"{len(mutants)} mutants")
        return 0

    work = Path(tempfile.mkdtemp(prefix="nnscratch-mutants-"))
    try:
        shutil.copytree(ROOT / "src", work / "src", ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copytree(ROOT / "tests", work / "tests", ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy(ROOT / "pyproject.toml", work / "pyproject.toml")
        # some tests import helpers from bench/ (test_web.py: load_test.py)
        shutil.copytree(ROOT / "bench", work / "bench", ignore=shutil.ignore_patterns("__pycache__", "results"))
        # the sources the mutants are made from are the copy's, so the sweep is of one snapshot
        sources = {m: (work / "src" / "nnscratch" / m).read_text() for m in modules}
        tests = [t for t in TEST_FILES if (work / t).is_file()]
        started = time.perf_counter()
        print(f"tracing {len(tests)} test files ...", flush=True)
        hits, outcomes = trace_tests(work, tests)
        failing = sorted(t for t, (_, passed) in outcomes.items() if not passed)
        print(f"{len(outcomes)} tests, {len(failing)} failing before any mutation (left out): {failing}", flush=True)
        print(f"traced in {time.perf_counter() - started:.0f} s; estimated time of the mutants:", flush=True)
        print(estimate(mutants, hits, outcomes), flush=True)
        if args.estimate:
            return 0
        for i, mutant in enumerate(mutants, 1):
            if mutant.status == "equivalent":
                continue
            before = earlier.get((mutant.module, mutant.source_line, mutant.description, mutant.index))
            if before in ("killed", "timeout"):
                mutant.status = before
                continue
            chosen = tests_for(mutant, hits, outcomes)
            if not chosen:
                mutant.status = "uncovered"
            else:
                budget = 20.0 + 3.0 * sum(outcomes[t][0] for t in chosen)
                start = time.perf_counter()
                mutant.status = run_mutant(work, mutant, sources[mutant.module], chosen, budget)
                mutant.seconds, mutant.tests_run = time.perf_counter() - start, len(chosen)
            if mutant.status in ("survived", "uncovered"):
                print(
                    f"[{i}/{len(mutants)}] {mutant.status}: {mutant.module}:{mutant.line} {mutant.description}",
                    flush=True,
                )
            if args.json and i % 10 == 0:  # an interrupted sweep goes on with --again from here
                write_report(args.json, mutants)
        print(f"\n{len(mutants)} mutants in {time.perf_counter() - started:.0f} s\n")
        print(summarise(mutants))
        if args.json:
            write_report(args.json, mutants)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
