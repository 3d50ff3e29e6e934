"""Timing and memory of one call, for the neuron-scan benchmark's rows.

:class:`Row` is one row of :mod:`benchmarks.neuron_scan`'s table: a blocking
forward + backward call (here, or in the PyTorch worker), its timings over
rounds and its memory. ``peak MB`` is the peak resident memory above the
pre-call level during one call (Linux VmHWM reset via /proc/self/clear_refs
after ``malloc_trim``).
"""

from __future__ import annotations

import ctypes
import dataclasses
import gc
import os
import platform
import statistics
import time
from collections.abc import Callable


def _rss_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    """Resets VmHWM to the current RSS (Linux >= 4.0); False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _malloc_trim() -> None:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def peak_rss_delta_mb(call: Callable[[], object]) -> float | None:
    """Peak RSS during ``call()`` above the level just before it, in MB."""
    gc.collect()
    _malloc_trim()
    before = _rss_kib("VmRSS")
    if before is None or not _reset_peak_rss():
        return None
    call()
    peak = _rss_kib("VmHWM")
    return None if peak is None else max(0.0, (peak - before) / 1024)


def _run_local(call: Callable[[], float], peak, memory: bool):
    """Times one blocking ``call()``; returns (seconds, loss, peak MB or None)."""
    box = {}

    def timed():
        t0 = time.perf_counter()
        box["loss"] = call()
        box["s"] = time.perf_counter() - t0

    peak_mb = (peak or peak_rss_delta_mb)(timed) if memory else timed()
    return box["s"], box["loss"], peak_mb


@dataclasses.dataclass
class Row:
    library: str
    form: str
    n: int
    floor_of: str = ""  # the framework whose floor this row is divided by
    call: Callable[[], float] | None = None  # one fwd+bwd, blocking; returns loss
    peak: Callable[[Callable], float | None] | None = None  # memory of one call
    remote: Callable[[bool], tuple] | None = None  # run in the torch worker
    skipped: str | None = None
    compile_s: float | None = None
    first_call_s: float | None = None
    xla_mb: float | None = None
    peak_mb: float | None = None
    loss: float | None = None
    times: list[float] = dataclasses.field(default_factory=list)
    ratios: list[float] = dataclasses.field(default_factory=list)
    vs_ours: list[float] = dataclasses.field(default_factory=list)
    max_repeats: int = 0

    @property
    def name(self) -> str:
        return f"{self.library} | {self.form}"

    def median_ms(self) -> float | None:
        return 1e3 * statistics.median(self.times) if self.times else None

    def run(self, memory: bool = False) -> tuple[float, float, float | None]:
        """One timed fwd+bwd: (seconds, loss, peak MB when ``memory``)."""
        if self.remote is not None:
            return self.remote(memory)
        return _run_local(self.call, self.peak, memory)


def environment() -> dict:
    env = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cores": os.cpu_count(),
    }
    if hasattr(os, "getloadavg"):  # other processes on the machine skew timings
        env["loadavg_1_5_15min_at_start"] = [round(v, 2) for v in os.getloadavg()]
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    env["cpu"] = line.split(":", 1)[1].strip()
                    break
            f.seek(0)
            env["avx512"] = "avx512f" in f.read()
    except OSError:
        pass
    import importlib.metadata

    for dist in ("jax", "jaxlib", "numpy", "flax", "torch", "snntorch", "spyx"):
        try:  # without importing torch into this (JAX) process
            env[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            env[dist] = None
    try:
        import jax

        env["jax_backend"] = jax.default_backend()
    except Exception:  # noqa: BLE001
        pass
    return env
