"""Sphinx configuration of the nnscratch documentation.

Build it with ``sphinx-build -W --keep-going -b html docs docs/_build/html`` (warnings are errors); the
tutorial notebooks are executed on every build.  Nothing is fetched from the network.
"""

from __future__ import annotations

import nnscratch

project = "nnscratch"
author = "the nnscratch authors"
copyright = "nnscratch authors, MIT licence"
release = nnscratch.__version__
version = release

extensions = [
    "myst_nb",  # MyST Markdown pages and executed Jupyter notebooks
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",  # every {py:...} reference to the code also leads to its highlighted source
    "sphinx.ext.mathjax",
    "sphinxarg.ext",  # the command-line reference, generated from the parser itself
]

source_suffix = {".md": "myst-nb", ".ipynb": "myst-nb"}
root_doc = "index"
exclude_patterns = ["_build", "jupyter_execute", "**.ipynb_checkpoints", "Thumbs.db", ".DS_Store"]

# MyST: $...$ and $$...$$ math, \begin{align} environments, ::: fences, definition lists.
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

# The notebooks are run afresh on every build, and an error in any cell fails the build.
nb_execution_mode = "force"
nb_execution_raise_on_error = True
nb_execution_timeout = 600  # seconds per cell: a tutorial trains small networks on MNIST
nb_execution_excludepatterns: list[str] = []
nb_merge_streams = True

# autodoc: members in source order, type hints in the description rather than the signature.
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_preserve_defaults = True
napoleon_google_docstring = True
napoleon_numpy_docstring = True

html_theme = "furo"
html_title = f"nnscratch {release}"
html_static_path: list[str] = []
