"""NIR speed: one snnTorch network, exported to NIR, run by snnjax under ``jax.jit``
and by snnTorch's own step loop, on the same input (docs/nir.md).

The network is the one of tests/test_nir.py (built here, imported there): Conv2d 3x3
(padding 1) + ``snn.Leaky`` + AvgPool2d(2) + Flatten + Linear + ``snn.Leaky``, with
full-shape ``beta``/``threshold`` tensors (what snnTorch's NIR export needs).
``snntorch.export_to_nir`` writes it; ``snnjax.nir.from_nir(graph, reset="soft")``
(snnTorch's subtract reset) imports it.

Timed: the T-step forward of a (T, B, C, H, W) batch of 0/1 spikes (p = 0.3) to the
output spikes. snnjax: the imported graph under ``jax.jit`` on a channels-last
copy of the input (one conv over T*B, one ``lif_scan`` per neuron layer), compile
and one warm-up call excluded, ``block_until_ready``. snnTorch: ``utils.reset`` then
``net(x[t])`` for t < T under ``torch.no_grad``, stacked, after one warm-up call,
``torch.set_num_threads`` = the machine's cores. The two alternate within each
round (the order flips every round) so that drift and background load hit both;
the median over rounds is reported, and the ratio is the median of the per-round
ratios (snnTorch time / snnjax time). The output spikes of both must be identical.

Usage::

    python -m benchmarks.nir_speed                  # T=32, B=64, 2x32x32, 16 channels
    python -m benchmarks.nir_speed --smoke          # tiny sizes, seconds

Needs the interop extra (``pip install 'snnjax[interop]'``); importing this module
does not (torch, snntorch and nir are imported on use).
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable

from absl import flags

from train import cli


@dataclasses.dataclass(frozen=True)
class Sizes:
    steps: int = 32  # T
    batch: int = 64  # B
    channels: int = 2  # C, the input's (DVS-like polarity channels)
    size: int = 32  # H = W (even: AvgPool2d(2))
    hidden: int = 16  # the conv's output channels
    classes: int = 10


SMOKE = Sizes(steps=4, batch=2, size=8, hidden=4)


def snntorch_conv(c: int, h: int, w: int, hidden: int = 4, classes: int = 10):
    """snnTorch's conv + Leaky + AvgPool + Flatten + Linear + Leaky (seed torch first)."""
    import snntorch as snn
    import torch

    full = lambda shape, v: torch.full(shape, v)  # noqa: E731  (scalars fail NIR's type inference)
    return torch.nn.Sequential(
        torch.nn.Conv2d(c, hidden, 3, padding=1),
        snn.Leaky(
            beta=full((hidden, h, w), 0.9), threshold=full((hidden, h, w), 0.5), init_hidden=True
        ),
        torch.nn.AvgPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(hidden * (h // 2) * (w // 2), classes),
        snn.Leaky(
            beta=full((classes,), 0.8),
            threshold=full((classes,), 0.4),
            init_hidden=True,
            output=True,
        ),
    )


def export(net, c: int, h: int, w: int):
    """snnTorch's NIR export of ``net`` (one sample, its batch axis stripped)."""
    import torch
    from snntorch.export_nir import export_to_nir

    return export_to_nir(net, torch.randn(1, c, h, w), ignore_dims=[0])


@dataclasses.dataclass
class Problem:
    sizes: Sizes
    net: object  # the snnTorch network
    graph: object  # its nir.NIRGraph
    x_torch: object  # (T, B, C, H, W) torch tensor
    x: object  # (T, B, H, W, C) jax array, the same values


def make_problem(sizes: Sizes = Sizes(), seed: int = 0) -> Problem:
    import jax.numpy as jnp
    import torch

    s = sizes
    torch.manual_seed(seed)
    net = snntorch_conv(s.channels, s.size, s.size, s.hidden, s.classes)
    graph = export(net, s.channels, s.size, s.size)
    x = (torch.rand(s.steps, s.batch, s.channels, s.size, s.size) < 0.3).float()
    return Problem(s, net, graph, x, jnp.asarray(x.numpy().transpose(0, 1, 3, 4, 2)))


def torch_forward(net, x):
    """snnTorch's T-step forward: the output spikes, (T, B, classes)."""
    import torch
    from snntorch import utils

    utils.reset(net)
    with torch.no_grad():
        return torch.stack([net(x[t])[0] for t in range(x.shape[0])])


def jax_forward(model) -> Callable:
    """``x -> model(x)`` under ``jax.jit`` (the parameters are arguments, not constants)."""
    import jax
    from flax import nnx

    graphdef, params = nnx.split(model)
    run = jax.jit(lambda p, x: nnx.merge(graphdef, p)(x))
    return lambda x: run(params, x)


def cpu_model() -> str:
    """lscpu's "Model name" (else /proc/cpuinfo's, else the platform's)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "?"


@dataclasses.dataclass
class Result:
    sizes: Sizes
    snnjax_ms: list[float]
    snntorch_ms: list[float]
    ratio: float  # median over rounds of snnTorch time / snnjax time
    spike_rate: float  # the output's mean spike rate (both agree exactly)
    env: dict

    def table(self) -> str:
        s, e = self.sizes, self.env
        jm, tm = statistics.median(self.snnjax_ms), statistics.median(self.snntorch_ms)
        lines = [
            f"NIR graph of snnTorch conv({s.channels}->{s.hidden}) + Leaky + AvgPool + Linear"
            f"({s.hidden * (s.size // 2) ** 2}->{s.classes}) + Leaky, "
            f"T={s.steps}, B={s.batch}, input {s.channels}x{s.size}x{s.size}, "
            f"{len(self.snnjax_ms)} rounds",
            "",
            "| forward | median ms | best ms | x snnjax |",
            "| --- | --- | --- | --- |",
            f"| snnjax `from_nir` under jit | {jm:.1f} | {min(self.snnjax_ms):.1f} | 1.00 |",
            f"| snnTorch step loop | {tm:.1f} | {min(self.snntorch_ms):.1f} | {self.ratio:.2f} |",
            "",
            f"output spikes identical (rate {self.spike_rate:.3f}); "
            f"x snnjax = median of per-round ratios snnTorch / snnjax",
            f"CPU: {e['cpu']} ({e['cores']} cores), torch threads {e['torch_threads']}",
            f"load average (1, 5, 15 min): {e['load_start']} at start, {e['load_end']} at end",
            f"jax {e['jax']} ({e['jax_backend']}), jaxlib {e['jaxlib']}, torch {e['torch']}, "
            f"snntorch {e['snntorch']}, nir {e['nir']}, python {e['python']}",
        ]
        return "\n".join(lines)


def compare(
    problem: Problem, repeats: int = 7, torch_threads: int | None = None, model=None
) -> Result:
    """Times snnjax's jitted forward of the imported graph against snnTorch's step
    loop, interleaved, and checks that their output spikes are identical.

    ``model``: the imported graph (default: ``from_nir(problem.graph, reset="soft")``).
    """
    import jax
    import numpy as np
    import torch

    from snnjax import nir as snir

    load_start = _load()
    threads = torch_threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    if model is None:
        model = snir.from_nir(problem.graph, reset="soft")  # snnTorch's subtract reset
    forward = jax_forward(model)
    ours = np.asarray(jax.block_until_ready(forward(problem.x)))  # compiles
    theirs = torch_forward(problem.net, problem.x_torch).numpy()
    if ours.shape != theirs.shape or not np.array_equal(ours, theirs):
        differ = np.mean(ours != theirs) if ours.shape == theirs.shape else "shape"
        raise AssertionError(f"snnjax and snnTorch output spikes differ ({differ})")

    def run_jax():
        start = time.perf_counter()
        jax.block_until_ready(forward(problem.x))
        return 1e3 * (time.perf_counter() - start)

    def run_torch():
        start = time.perf_counter()
        torch_forward(problem.net, problem.x_torch)
        return 1e3 * (time.perf_counter() - start)

    jax_ms, torch_ms = [], []
    for r in range(repeats):
        if r % 2 == 0:
            jax_ms.append(run_jax())
            torch_ms.append(run_torch())
        else:
            torch_ms.append(run_torch())
            jax_ms.append(run_jax())
    ratio = statistics.median(t / j for t, j in zip(torch_ms, jax_ms, strict=True))
    env = {"cpu": cpu_model(), "cores": os.cpu_count(), "torch_threads": threads}
    env.update(load_start=load_start, load_end=_load(), python=platform.python_version())
    for dist in ("jax", "jaxlib", "torch", "snntorch", "nir"):
        env[dist] = importlib.metadata.version(dist)
    env["jax_backend"] = jax.default_backend()
    return Result(problem.sizes, jax_ms, torch_ms, ratio, float(ours.mean()), env)


# ----------------------------------------------------------------------------- command line


def define_flags() -> None:
    d = Sizes()
    flags.DEFINE_integer("steps", d.steps, "T.", lower_bound=1)
    flags.DEFINE_integer("batch", d.batch, "B.", lower_bound=1)
    flags.DEFINE_integer("size", d.size, "Input height = width (even).", lower_bound=2)
    flags.DEFINE_integer("channels", d.channels, "Input channels.", lower_bound=1)
    flags.DEFINE_integer("hidden", d.hidden, "The conv's output channels.", lower_bound=1)
    flags.DEFINE_integer("repeats", 9, "Timed rounds (each: one call of each).", lower_bound=1)
    flags.DEFINE_integer(
        "torch_threads",
        None,
        "torch.set_num_threads (default: the machine's cores).",
        lower_bound=1,
    )
    flags.DEFINE_integer("seed", 0, "Seeds the network and the input.")
    flags.DEFINE_bool("smoke", False, f"Tiny sizes ({SMOKE}), 2 rounds: seconds, for CI.")


def main(argv: list[str]) -> None:
    from absl import app

    cli.no_arguments(argv)
    f = flags.FLAGS
    if f.size % 2:
        raise app.UsageError(f"--size={f.size}: must be even (AvgPool2d(2))")
    sizes = SMOKE if f.smoke else Sizes(f.steps, f.batch, f.channels, f.size, f.hidden)
    result = compare(make_problem(sizes, f.seed), 2 if f.smoke else f.repeats, f.torch_threads)
    print(result.table(), flush=True)


if __name__ == "__main__":
    cli.run(main, define_flags)
