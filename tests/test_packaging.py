"""What `pip install snnjax` gives: the library with its own four dependencies,
a version, type hints; the training program's packages only in the `train` extra."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import tomllib

from train_utils import REPO

import snnjax

# Imported by train/ (and benchmarks/), never by the library. optax and orbax
# (flax's own dependencies) and absl-py (chex's) come with the library anyway.
TRAINING_PACKAGES = (
    "tensorflow_datasets",
    "tensorflow",
    "grain",
    "ml_collections",
    "tensorboardX",
    "matplotlib",
)


def _pyproject() -> dict:
    with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)


def _names(requirements: list[str]) -> set[str]:
    return {r.split(">")[0].split("=")[0].split("<")[0].strip().lower() for r in requirements}


def test_version_is_the_packages():
    assert snnjax.__version__ == _pyproject()["project"]["version"]
    assert snnjax.__version__ == importlib.metadata.version("snnjax")


def test_type_hints_are_shipped():
    assert os.path.isfile(os.path.join(os.path.dirname(snnjax.__file__), "py.typed"))
    assert "py.typed" in _pyproject()["tool"]["setuptools"]["package-data"]["snnjax"]


def test_core_dependencies_are_the_librarys_only():
    project = _pyproject()["project"]
    assert _names(project["dependencies"]) == {"jax", "flax", "chex", "numpy"}
    train = _names(project["optional-dependencies"]["train"])
    assert {"optax", "orbax-checkpoint", "tensorflow-datasets", "grain", "absl-py"} <= train


def test_the_library_imports_without_the_training_packages():
    """Every module of snnjax (but snnjax.nir, which needs the `interop` extra)
    imports in a process where the training program's packages cannot be found."""
    code = f"""
import importlib, importlib.abc, pkgutil, sys
BLOCKED = {TRAINING_PACKAGES!r}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"blocked: {{name}}")
sys.meta_path.insert(0, Block())
import snnjax
names = [m.name for m in pkgutil.walk_packages(snnjax.__path__, "snnjax.")]
for name in names:
    if name != "snnjax.nir":
        importlib.import_module(name)
snnjax.lif_scan  # the lazy public names resolve too
loaded = sorted({{m.split(".")[0] for m in sys.modules}} & set(BLOCKED))
assert not loaded, loaded
print(len(names))
"""
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ | {"JAX_PLATFORMS": "cpu"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert int(result.stdout.split()[-1]) > 20  # every module was walked
