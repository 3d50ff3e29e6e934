"""Sphinx configuration of the snnjax documentation site.

Build (warnings are errors, as in CI):

    .venv/bin/python -m sphinx -W --keep-going -b html docs docs/_build/html

Pages are Markdown (MyST); the notebooks in ``notebooks/`` are rendered by
myst-nb as committed (without outputs) and never executed here; the API
reference is generated from the docstrings by ``sphinx.ext.autodoc``.
"""

import os
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)

project = "snnjax"
author = "the snnjax authors"
copyright = "the snnjax authors, Apache-2.0"
release = "0.1.0"

extensions = [
    "myst_nb",  # Markdown pages (MyST) and notebooks
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",  # Google-style "Args:/Returns:" sections
    "sphinx.ext.viewcode",
    "sphinx.ext.mathjax",
]

source_suffix = {".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "**.ipynb_checkpoints", "README.md"]

# Notebooks: rendered as committed, never executed during the build (the test
# suite executes them: tests/test_notebooks.py).
nb_execution_mode = "off"

myst_enable_extensions = ["colon_fence", "dollarmath"]
myst_heading_anchors = 4

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": False}
napoleon_google_docstring = True
napoleon_numpy_docstring = False

html_theme = "furo"
html_title = "snnjax"
html_static_path = []
