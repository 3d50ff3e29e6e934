# Two entry points: `make train` (the main job) and `make test`.
# Each creates the virtual environment itself on a fresh clone.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
WORKDIR ?= workdirs/quick
# TFDS datasets: $TFDS_DATA_DIR if set, else the shared prepared copy beside the
# repo if there is one, else ~/tensorflow_datasets (TFDS's default), where the
# first run prepares CIFAR-10 (config.download, train/datasets/cifar_archive.py).
TFDS_DATA_DIR ?= $(or $(wildcard $(abspath ../shared/data/tfds)),$(HOME)/tensorflow_datasets)
export TFDS_DATA_DIR

.PHONY: venv train test docs lint format clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[train,dev,notebooks,interop]'
	touch $(STAMP)

venv: $(STAMP)

# Two XLA host devices: with config.data_parallel="local" each runs half of the
# batch, which keeps both cores busy (docs/benchmarks.md); no effect on a GPU.
HOST_DEVICES ?= 2
train: $(STAMP)
	GLIBC_TUNABLES=glibc.malloc.hugetlb=1 \
	XLA_FLAGS="$$XLA_FLAGS --xla_force_host_platform_device_count=$(HOST_DEVICES)" \
	$(PY) -m train.main --config=train/configs/quick.py --workdir=$(WORKDIR)

# Two pytest-xdist workers (compiling, which dominates the suite, is mostly
# single-threaded); worksteal keeps a module's tests on one worker unless the
# other runs dry, so module fixtures are mostly built once.
TEST_WORKERS ?= 2
test: $(STAMP)
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist worksteal tests

# The documentation site (Sphinx + myst-nb, docs/conf.py), warnings as errors.
docs: $(STAMP)
	$(PY) -m pip install --quiet -e '.[docs]'
	$(PY) -m sphinx -E -W --keep-going -q -b html docs docs/_build/html

# The linter and the formatter check (configured in pyproject.toml [tool.ruff]).
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) build *.egg-info
