"""Properties of the IDX reader and writer, for random shapes, every IDX dtype, raw and gzip.

* What ``write_idx`` writes, ``read_idx`` reads back unchanged: same shape, dtype and values.
* A file cut short anywhere raises DataError; it never comes back as a smaller or different array.
* A damaged gzip file raises DataError or, if only bytes nobody reads changed, gives the same array.
"""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nnscratch.data import IDX_DTYPES, read_idx, write_idx
from nnscratch.errors import DataError

# The native-order form of every dtype IDX stores: uint8, int8, int16, int32, float32, float64.
DTYPES = [dtype.newbyteorder("=") for dtype in IDX_DTYPES.values()]

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_names = itertools.count()


@pytest.fixture(scope="module")
def workdir():
    with tempfile.TemporaryDirectory(prefix="idx-") as directory:
        yield Path(directory)


def arrays(max_dims: int = 4, max_side: int = 6):
    """Arrays of any IDX dtype, 1..max_dims dimensions of 0..max_side each, any values (NaN included)."""
    return hnp.arrays(
        dtype=st.sampled_from(DTYPES),
        shape=hnp.array_shapes(min_dims=1, max_dims=max_dims, min_side=0, max_side=max_side),
    )


def fresh_path(directory: Path, compress: bool) -> Path:
    return directory / f"a{next(_names)}.idx{'.gz' if compress else ''}"


@SETTINGS
@given(array=arrays(), compress=st.booleans())
def test_what_is_written_is_read_back_unchanged(workdir, array, compress):
    path = write_idx(fresh_path(workdir, compress), array)
    back = read_idx(path)
    assert back.shape == array.shape
    assert back.dtype.newbyteorder("=") == array.dtype
    np.testing.assert_array_equal(back, array)  # NaN compares equal to NaN here
    if compress:
        assert path.read_bytes()[:2] == b"\x1f\x8b"


@SETTINGS
@given(array=arrays(max_dims=3), compress=st.booleans(), data=st.data())
def test_any_truncation_raises_a_data_error(workdir, array, compress, data):
    path = write_idx(fresh_path(workdir, compress), array)
    content = path.read_bytes()
    keep = data.draw(st.integers(min_value=0, max_value=len(content) - 1), label="bytes kept")
    path.write_bytes(content[:keep])
    with pytest.raises(DataError):
        read_idx(path)


@SETTINGS
@given(array=arrays(max_dims=3), data=st.data())
def test_a_damaged_gzip_file_is_refused_or_read_correctly(workdir, array, data):
    path = write_idx(fresh_path(workdir, True), array)
    content = bytearray(path.read_bytes())
    offset = data.draw(st.integers(min_value=0, max_value=len(content) - 1), label="offset")
    content[offset] ^= data.draw(st.integers(min_value=1, max_value=255), label="xor")
    path.write_bytes(bytes(content))
    try:
        back = read_idx(path)
    except DataError:
        return
    # gzip's checksum covers the content, so only header fields nobody reads (time, OS) may change
    np.testing.assert_array_equal(back, array)


@SETTINGS
@given(array=arrays(max_dims=3), compress=st.booleans(), extra=st.binary(min_size=1, max_size=16))
def test_bytes_appended_to_a_file_are_refused_or_ignored_never_misread(workdir, array, compress, extra):
    path = write_idx(fresh_path(workdir, compress), array)
    path.write_bytes(path.read_bytes() + extra)
    try:
        back = read_idx(path)
    except DataError:
        return
    # gzip allows zero padding after the stream; raw IDX has no room for anything extra
    assert compress and not any(extra)
    np.testing.assert_array_equal(back, array)


def test_every_idx_dtype_is_covered():
    assert {d.name for d in DTYPES} == {"uint8", "int8", "int16", "int32", "float32", "float64"}
