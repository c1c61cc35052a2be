"""Sphinx configuration of the API reference, built from the docstrings (docs/decisions.md, "API reference").

Build it with ``python -m sphinx -W --keep-going -b html docs/api build/api`` from the repository root
(``pip install -e '.[docs]'``); CI builds it with warnings as errors.
"""

import sys
from pathlib import Path

# The package of this checkout, whether or not it is installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

project = "neurodyn"
author = "neurodyn contributors"
copyright = "neurodyn contributors"

extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon"]

# The docstrings are reStructuredText; their "Raises:" and "Args:" sections are Google style, and
# ``load_npz`` lists the arrays of its file as a section of parameters.
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_custom_sections = [("Arrays", "params_style")]

# A package page documents the names of its ``__all__``; a module page, what the module defines.
autodoc_default_options = {"members": True, "member-order": "bysource"}
# Annotations stay in the signatures. References that resolve nowhere (torch, xarray, numpy types:
# intersphinx would download their inventories, and CI is offline) are plain text, not errors.
autodoc_typehints = "signature"
nitpicky = False

html_theme = "alabaster"
html_theme_options = {"description": "continuous-time associative memory"}
html_title = "neurodyn API reference"
exclude_patterns = ["_build"]


def _parameters_as_args(app, what, name, obj, options, lines):
    """A ``Parameters`` heading underlined with dashes whose entries are written ``name: text``
    (continuation lines indented), as ``Network`` and ``simulate`` write theirs, is Google
    style under a numpy heading: make it an ``Args:`` section for napoleon, which runs next."""
    for i in range(len(lines) - 1):
        if lines[i].strip() == "Parameters" and set(lines[i + 1].strip()) == {"-"}:
            indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
            lines[i : i + 2] = [indent + "Args:"]
            j = i + 1
            while j < len(lines) and lines[j].strip():
                lines[j] = "    " + lines[j]
                j += 1
            return


def setup(app):
    # Before napoleon's own handler (priority 500), which turns Args: into fields.
    app.connect("autodoc-process-docstring", _parameters_as_args, priority=400)
