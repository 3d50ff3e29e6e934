"""The device run's first seconds: everything it needs imports, on the right backend.

Imports every package and module that ``benchmarks/gpu_run.sh`` will use, prints
their versions (one line), checks that JAX runs a jitted product on the expected
backend and, with ``--data``, that the TFDS CIFAR-10 reads. Any failure prints
one line, ``preflight: <what failed>``, and exits 1: the device call stops in
seconds instead of crashing minutes later or training on the host CPU.

    python -m benchmarks.preflight --backend=gpu          # on the device
    python -m benchmarks.preflight --backend=cpu --data   # the CPU rehearsal

(``train.cli`` imports absl alone, which the device image has.)
"""

from __future__ import annotations

import importlib
import os
import sys
import time

from absl import flags

from train import cli  # absl only: the failures below stay one line

# Third-party packages the run imports (module name -> distribution name).
PACKAGES = {
    "jax": "jax",
    "jaxlib": "jaxlib",
    "flax": "flax",
    "optax": "optax",
    "orbax.checkpoint": "orbax-checkpoint",
    "chex": "chex",
    "numpy": "numpy",
    "ml_collections": "ml_collections",
    "absl": "absl-py",
    "grain": "grain",
    "tensorflow_datasets": "tensorflow-datasets",
    "array_record": "array_record",
    "google.protobuf": "protobuf",
    "tensorboardX": "tensorboardX",
    "PIL": "pillow",
    "matplotlib": "matplotlib",
}
# The project's modules on the run's path (imports that fail only on that machine).
MODULES = ("snnjax", "train.train", "benchmarks.end_to_end", "benchmarks.gpu_carry")


class PreflightError(RuntimeError):
    pass


def versions() -> dict[str, str]:
    """Imports :data:`PACKAGES`; their versions by distribution name."""
    from importlib import metadata

    found = {}
    for module, dist in PACKAGES.items():
        try:
            importlib.import_module(module)
        except Exception as e:  # noqa: BLE001  (any import failure is the answer)
            raise PreflightError(f"import {module} ({dist}): {type(e).__name__}: {e}") from None
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = "?"
    return found


def import_modules() -> None:
    for module in MODULES:
        try:
            importlib.import_module(module)
        except Exception as e:  # noqa: BLE001
            raise PreflightError(f"import {module}: {type(e).__name__}: {e}") from None


def check_backend(expected: str) -> str:
    """Runs a jitted bf16 product; the backend and device it ran on."""
    import jax
    import jax.numpy as jnp

    try:
        backend = jax.default_backend()
        x = jnp.ones((256, 256), jnp.bfloat16)
        value = float(jax.jit(lambda a: (a @ a).astype(jnp.float32).mean())(x))
    except Exception as e:  # noqa: BLE001  (e.g. "Unable to initialize backend 'cuda'")
        raise PreflightError(f"JAX on {expected}: {type(e).__name__}: {e}") from None
    if backend != expected:
        raise PreflightError(
            f"JAX backend is {backend!r}, expected {expected!r} "
            f"(JAX_PLATFORMS={os.environ.get('JAX_PLATFORMS', '')!r})"
        )
    if value != 256.0:
        raise PreflightError(f"a 256x256 product of ones gave {value}, not 256")
    return f"{jax.device_count()} x {jax.devices()[0].device_kind}"


def check_data(data_dir: str) -> str:
    from train import input_pipeline

    try:
        sizes = {
            split: len(input_pipeline.load_source("cifar10", split, data_dir=data_dir))
            for split in ("train", "test")
        }
    except Exception as e:  # noqa: BLE001
        raise PreflightError(f"CIFAR-10 in {data_dir!r}: {type(e).__name__}: {e}") from None
    if sizes != {"train": 50_000, "test": 10_000}:
        raise PreflightError(f"CIFAR-10 in {data_dir!r} has {sizes}, not 50,000 / 10,000")
    return f"cifar10 train {sizes['train']}, test {sizes['test']}"


def define_flags() -> None:
    flags.DEFINE_string("backend", "gpu", "The backend JAX must run on.")
    flags.DEFINE_bool("data", False, "Also read the TFDS CIFAR-10.")
    flags.DEFINE_string("data_dir", os.environ.get("TFDS_DATA_DIR", ""), "The TFDS data directory.")


def preflight(backend: str, data: bool = False, data_dir: str = "") -> int:
    """The checks; 0, or 1 after printing ``preflight: <what failed>``."""
    start = time.perf_counter()
    try:
        found = versions()
        import_modules()
        device = check_backend(backend)
        read = check_data(data_dir) if data else ""
    except PreflightError as e:
        print(f"preflight: {e}".splitlines()[0], file=sys.stderr, flush=True)
        return 1
    print(
        f"preflight ok in {time.perf_counter() - start:.1f} s: Python "
        f"{sys.version.split()[0]}; {device}; {read + '; ' if read else ''}"
        + ", ".join(f"{k} {v}" for k, v in found.items()),
        flush=True,
    )
    return 0


def main(argv: list[str]) -> None:
    cli.no_arguments(argv)
    sys.exit(preflight(flags.FLAGS.backend, flags.FLAGS.data, flags.FLAGS.data_dir))


if __name__ == "__main__":
    cli.run(main, define_flags)
