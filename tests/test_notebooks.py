"""Every notebook in notebooks/ runs top to bottom without error (nbclient).

The notebooks check their own numbers with ``assert`` (Table 5 against METHOD.md,
partition/recompose identity, the region threshold, surrogate gradients), so an
executed notebook is a test of its content. They are kept with outputs stripped.
"""

import json
import sys
from pathlib import Path

import pytest
from train_utils import copy_run

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
# How many figures each notebook draws: a figure that fails to render is missing here.
FIGURES = {
    "01_neurons_and_surrogates.ipynb": 3,
    "02_windows_and_omega.ipynb": 4,
    "03_model_inspection.ipynb": 3,
    "04_nir.ipynb": 1,
}
# Notebooks that need an optional extra: skipped with the reason when it is missing.
EXTRAS = {"04_nir.ipynb": ("interop", ["nir", "torch", "snntorch", "nirtorch"])}
CELL_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def kernel_path(tmp_path_factory):
    """A ``python3`` kernelspec that runs the interpreter running pytest (the venv).

    Put first on JUPYTER_PATH, it shadows any user- or system-wide ``python3`` spec
    that could point at another Python without snnjax installed.
    """
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "Python 3 (snnjax tests)",
                "language": "python",
            }
        )
    )
    return root


def test_the_notebooks_are_there():
    names = {p.name for p in NOTEBOOKS}
    assert set(FIGURES) <= names, f"missing notebooks: {set(FIGURES) - names}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stored_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, (
                f"{path.name} cell {i} has outputs: keep notebooks stripped in git"
            )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, kernel_path, monkeypatch, request, tmp_path):
    monkeypatch.setenv("JUPYTER_PATH", str(kernel_path))
    monkeypatch.delenv("SNNJAX_SAVE_DOCS", raising=False)  # never rewrite docs/img in tests
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend renders
    monkeypatch.delenv("SNNJAX_WORKDIR", raising=False)
    if path.name in EXTRAS:
        extra, modules = EXTRAS[path.name]
        for module in modules:
            pytest.importorskip(module, reason=f"needs pip install 'snnjax[{extra}]'")
    if path.name == "03_model_inspection.ipynb":
        # 03 on a finished run, the suite's tiny one (tests/conftest.py): its
        # checkpoint loaded, inspected and its curves plotted. The short
        # training run it would do otherwise is train_and_evaluate, tested in
        # test_train.py; compiling it made this the slowest test.
        workdir, _ = request.getfixturevalue("tiny_run")
        monkeypatch.setenv("SNNJAX_WORKDIR", copy_run(workdir, tmp_path))
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        kernel_name="python3",
        timeout=CELL_TIMEOUT_S,
        startup_timeout=120,
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
    )
    client.execute()  # raises CellExecutionError on the first failing cell

    figures = sum(
        "image/png" in out.get("data", {})
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
    )
    assert figures >= FIGURES.get(path.name, 1), (
        f"{path.name} drew {figures} figures, expected {FIGURES.get(path.name, 1)}"
    )
