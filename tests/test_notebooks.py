"""The tutorial notebooks are stored clean and use only the public API: valid nbformat 4, no outputs, no
execution counts, the python3 kernel, and no private name of nnscratch.  They are not executed here; the
documentation build executes every one of them."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

TUTORIALS = Path(__file__).resolve().parent.parent / "docs" / "tutorials"
NOTEBOOKS = (
    "01-backprop-by-hand",
    "02-five-activations",
    "03-first-convnet",
    "04-your-handwriting",
    "05-ecosystem",
)
PRIVATE_PATH = re.compile(r"\bnnscratch(?:\.\w+)*?\._")  # nnscratch.study._Diagnose, nnscratch._version
PRIVATE_ATTRIBUTE = re.compile(r"\._(?!_)\w")  # net._stack, history._repr_html_(): any object's private member
FROM_IMPORT = re.compile(r"^\s*from\s+nnscratch(?:\.\w+)*\s+import\s+\(?([^)#]*)", re.MULTILINE)


def read(name: str) -> nbformat.NotebookNode:
    return nbformat.read(TUTORIALS / f"{name}.ipynb", as_version=nbformat.NO_CONVERT)


def code_of(notebook: nbformat.NotebookNode) -> str:
    return "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "code")


def test_the_five_tutorials_exist():
    missing = [name for name in NOTEBOOKS if not (TUTORIALS / f"{name}.ipynb").is_file()]
    assert not missing, f"missing notebooks in {TUTORIALS}: {missing}"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_a_tutorial_is_valid_nbformat_4(name):
    notebook = read(name)
    assert notebook.nbformat == 4
    nbformat.validate(notebook)  # raises ValidationError naming what is wrong


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_a_tutorial_is_stored_without_outputs_or_execution_counts(name):
    cells = [cell for cell in read(name).cells if cell.cell_type == "code"]
    assert cells
    with_outputs = [i for i, cell in enumerate(cells) if cell.outputs]
    counted = [i for i, cell in enumerate(cells) if cell.execution_count is not None]
    assert not with_outputs, f"code cells {with_outputs} have outputs; clear them (jupyter nbconvert --clear-output)"
    assert not counted, f"code cells {counted} have execution counts; clear them"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_a_tutorial_runs_on_the_python3_kernel(name):
    metadata = read(name).metadata
    assert metadata["kernelspec"]["name"] == "python3"
    assert metadata["language_info"]["name"] == "python"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_a_tutorial_imports_nnscratch_and_uses_no_private_name(name):
    code = code_of(read(name))
    assert re.search(r"^\s*(import nnscratch\b|from nnscratch\b)", code, re.MULTILINE), "it never imports nnscratch"
    assert not PRIVATE_PATH.findall(code), f"private names of nnscratch: {PRIVATE_PATH.findall(code)}"
    assert not PRIVATE_ATTRIBUTE.findall(code), f"private members: {PRIVATE_ATTRIBUTE.findall(code)}"
    imported = [part.strip().split(" as ")[0] for names in FROM_IMPORT.findall(code) for part in names.split(",")]
    private = [imported_name for imported_name in imported if imported_name.startswith("_")]
    assert not private, f"private names imported from nnscratch: {private}"


def test_the_private_name_checks_catch_what_they_should():
    assert PRIVATE_PATH.search("nnscratch.study._Diagnose(X, y)")
    assert PRIVATE_PATH.search("nnscratch._version")
    assert not PRIVATE_PATH.search("nnscratch.plots.learning_curves(h)")
    assert PRIVATE_ATTRIBUTE.search("net._stack") and PRIVATE_ATTRIBUTE.search("history._repr_html_()")
    assert not PRIVATE_ATTRIBUTE.search("type(x).__name__, 10_000, net.layers[0].W")
    assert FROM_IMPORT.findall("from nnscratch.study import run_one, _Diagnose") == ["run_one, _Diagnose"]
    assert FROM_IMPORT.findall("from nnscratch import (\n    plots,\n    _x,\n)") == ["\n    plots,\n    _x,\n"]
