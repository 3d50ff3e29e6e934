"""The documentation site's API reference covers the public API: every name that
``snnjax`` exports is documented by an ``automodule`` of docs/api/ (members on by
default, docs/conf.py), and every guide the README links exists."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import snnjax

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _documented_modules() -> set[str]:
    text = "\n".join(p.read_text() for p in (DOCS / "api").glob("*.md"))
    blocks = re.findall(r"\.\. automodule:: ([\w.]+)\n((?:   :[^\n]*\n)*)", text)
    return {name for name, options in blocks if ":no-members:" not in options}


def test_every_public_name_is_in_the_api_reference():
    documented = _documented_modules()
    missing = []
    for name in snnjax.__all__:
        obj = getattr(snnjax, name)
        module = obj.__name__ if inspect.ismodule(obj) else obj.__module__
        if module not in documented:
            missing.append(f"{name} ({module})")
    assert not missing, f"not in docs/api/*.md: {missing}"


def test_the_public_modules_are_documented():
    documented = _documented_modules()
    for module in (
        "snnjax.energy",
        "snnjax.theory",
        "snnjax.nn.models",
        "snnjax.conversion",
        "snnjax.nir",
        "snnjax.nn.config",
        "train.schema",
        "train.run",
    ):
        assert module in documented, module


def test_readme_links_exist():
    readme = (DOCS.parent / "README.md").read_text()
    for link in re.findall(r"\]\((docs/[^)#]+)", readme):
        assert (DOCS.parent / link).exists(), link
