"""The spec grammar's words: plain ASCII digits, no whitespace, bounded numbers, short quotes of long tokens."""

from __future__ import annotations

import re
import time

import pytest

from nnscratch.errors import SpecError
from nnscratch.layers import Conv2D, Dense
from nnscratch.layers.base import MAX_SIZE
from nnscratch.network import Network
from nnscratch.spec import DenseSpec, parse_hidden, parse_layer, parse_spec


@pytest.mark.parametrize(
    "spec, char",
    [
        ("784-３２-10", "U+FF13"),  # fullwidth digits: int() reads them, a spec must not
        ("784-32-１0", "U+FF11"),
        ("１x28x28-conv4k3-10", "U+FF11"),
        ("1x28x28-conv٣k3-10", "U+0663"),  # Arabic-Indic three
        ("784-32:ｒｅｌｕ-10", "U+FF52"),
    ],
)
def test_digits_and_letters_of_other_scripts_are_refused(spec, char):
    with pytest.raises(SpecError, match=re.escape(char) + ".*plain ASCII, digits 0-9"):
        parse_spec(spec)


@pytest.mark.parametrize(
    "spec, char",
    [
        ("784-32\n-10", "U+000A"),
        ("784-32-10\n", "U+000A"),  # a regex's $ matches before a final line break
        (" 784-32-10", "U+0020"),
        ("784 - 32 - 10", "U+0020"),
        ("784-32\t-10", "U+0009"),
        ("784-32\x00-10", "U+0000"),
        ("784-32\u00a0-10", "U+00A0"),  # no-break space
        ("784-32\u2028-10", "U+2028"),  # line separator
    ],
)
def test_whitespace_and_control_characters_in_a_spec_are_refused(spec, char):
    with pytest.raises(SpecError, match=f"network spec .* holds .*{re.escape(char)}.* without spaces or line breaks"):
        Network.from_spec(spec)


def test_a_hidden_list_keeps_its_spaces_after_commas_but_refuses_other_whitespace():
    assert parse_hidden("32:relu, 16") == [DenseSpec(32, "relu"), DenseSpec(16, "relu")]
    for text in ("32:relu,\n16", "32:relu,\t16", "３２:relu", "32:relu,1６"):
        with pytest.raises(SpecError, match="list of hidden layers .* plain ASCII"):
            parse_hidden(text)
    with pytest.raises(SpecError, match="layer '３２' holds"):
        parse_layer("３２")


@pytest.mark.parametrize(
    "spec, token, what",
    [
        ("1x28x28-conv4k3s100000000000000000000-10", "conv4k3s100000000000000000000", "stride"),
        ("1x28x28-conv4k3p2147483648-10", "conv4k3p2147483648", "padding"),
        ("1x28x28-conv4k99999999999-10", "conv4k99999999999", "kernel size"),
        ("1x28x28-conv99999999999k3-10", "conv99999999999k3", "number of filters"),
        ("1x28x28-maxpool16-10", "maxpool16", "window"),
        ("784-99999999999:relu-10", "99999999999:relu", "number of units"),
        ("784-32-99999999999", "99999999999", "number of units"),
        ("1x99999999999x28-10", "1x99999999999x28", "input size"),
    ],
)
def test_every_number_in_a_spec_is_bounded_and_the_message_names_its_token(spec, token, what):
    with pytest.raises(SpecError, match=f"^'{token}': the {what} must be from [01] to "):
        Network.from_spec(spec)


def test_the_largest_sizes_a_spec_allows_still_parse():
    (shape, layers) = parse_spec(f"1x28x28-conv4k3s{MAX_SIZE}p000001-10")
    assert shape == (1, 28, 28) and (layers[0].stride, layers[0].padding) == (MAX_SIZE, 1)
    assert parse_hidden(f"{MAX_SIZE}:relu") == [DenseSpec(MAX_SIZE, "relu")]


def test_a_number_of_thousands_of_digits_is_refused_quickly_as_a_spec_error():
    # int() of 5,000 digits raises a ValueError of its own ("Exceeds the limit (4300 digits)")
    started = time.perf_counter()
    for spec in ("784-" + "9" * 5000 + "-10", "1x28x28-conv4k3s" + "9" * 100_000 + "-10"):
        with pytest.raises(SpecError, match="must be from 1 to 2,147,483,647"):
            parse_spec(spec)
    with pytest.raises(SpecError, match="number of units"):
        parse_hidden("9" * 5000)
    assert time.perf_counter() - started < 0.5


def test_a_long_unknown_token_is_quoted_cut_short():
    token = "x" * 100_000
    with pytest.raises(SpecError) as raised:
        parse_spec(f"784-{token}-10")
    message = str(raised.value)
    assert f"unknown layer '{'x' * 40}…' in '784-{'x' * 36}…'" in message and len(message) < 400
    for call in (lambda: parse_hidden(token + ":relu"), lambda: parse_layer("32:" + "q" * 100_000)):
        with pytest.raises(SpecError) as raised:
            call()
        assert "…'" in str(raised.value) and len(str(raised.value)) < 300


def test_layers_built_from_model_files_are_bounded_too():
    for make in (
        lambda: Conv2D(4, 3, stride=2**40),
        lambda: Conv2D(2**40, 3),
        lambda: Dense(2**40),
        lambda: DenseSpec(2**40, "relu"),
        lambda: Network((1, 2**40, 1), [Dense(3)]),
    ):
        with pytest.raises(SpecError, match="2,147,483,647"):
            make()
    with pytest.raises(SpecError, match="a number above 2,147,483,647"):
        Conv2D(4, 3, padding=10**5000)  # no repr: Python will not print 5,000 digits
