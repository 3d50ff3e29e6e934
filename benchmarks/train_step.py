"""Training-step and inference throughput of the spiking Sequencer.

For each model and batch size, in one process and one run: the windowed model
as configured, the same model with normal windows only, with grid 1x1 (no
windows), and with the per-window Python loop of the core tests (one synaptic
call per window). Reports compile time, median step time, images/s, ratios to
grid 1x1, peak memory, and on accelerators the model FLOP utilisation.

    python -m benchmarks.train_step                       # conv, lstm, quick
    python -m benchmarks.train_step --models=conv --batch_sizes=64
    python -m benchmarks.train_step --smoke               # seconds, for CI

``--hugepages`` re-executes the script with ``GLIBC_TUNABLES=glibc.malloc.hugetlb=1``
(Linux): glibc then backs its heap with transparent huge pages, and XLA's
per-step temporary buffers cost a few hundred 2 MiB page faults per step instead
of tens of thousands of 4 KiB ones (about 2 us each in these VMs; the effect on
step time is in docs/benchmarks.md). The table reports page faults and process
CPU time per step beside wall time.

``--threefry=rolled`` keeps JAX's rolled Threefry loop on the CPU for the
dropout masks (the default here, as in the training program, is
:func:`snnjax.rng.unroll_threefry_on_cpu`: the same bits, faster).

``--host_devices=N`` (CPU) gives XLA N host devices and runs the step data
parallel over them as the training program's ``config.data_parallel="local"``
does: each device its 1/N of the batch under ``shard_map``, one ``pmean`` of
the gradients (``make train`` uses 2 on a 2-core CPU).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import platform
import resource
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import optax
from absl import app, flags
from flax import nnx
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from snnjax import models, rng
from snnjax.nn.mixers import base as _mixer_module  # (the mixers call window_lif)
from snnjax.testing import window_lif_loop  # (the per-window loop reference)
from snnjax.window_layer import WindowLIFOutput
from train import cli
from train.mesh import DATA_AXIS, create_mesh

# Dense peak FLOP/s per chip for the utilisation column (bf16 / fp32).
PEAK_TFLOPS = {"H100": (989.0, 67.0), "H200": (989.0, 67.0), "A100": (312.0, 19.5)}
# --smoke: the tests' tiny model (a normal and a dilated block, then a normal
# one, with a patch merging between): small, and it has every kind of block.
SMOKE = dict(widths=(8, 16), depths=(2, 1))
VARIANTS = {
    "windows": dict(),
    "normal only": dict(dilated=False),
    "grid 1x1": dict(grid=(1, 1)),
    "per-window loop": dict(),
}


def model_overrides(name: str) -> tuple[str, dict]:
    """(preset, overrides) for a preset name or 'quick' (the quick config)."""
    if name != "quick":
        return name, {}
    from train import train  # the training program's reduced model
    from train.configs import quick

    name, cfg = train.model_config(quick.get_config())
    fields = dataclasses.asdict(cfg)
    for derived in ("num_classes", "image_size", "dtype"):
        fields.pop(derived)
    return name, fields


def _loop_window_lif(
    x, synapse, membrane=None, *, grid, dilated, region_threshold, per_layer=(), **neuron
):
    synapses = list(synapse) if not callable(synapse) else [synapse]
    options = {**neuron, **(per_layer[0] if per_layer else {})}
    options.pop("unroll", None)
    options.pop("remat", None)
    s, v = window_lif_loop(x, synapses, membrane, grid, dilated, region_threshold, **options)
    return WindowLIFOutput(s, v, (), ())


@contextlib.contextmanager
def per_window_loop():
    original = _mixer_module.window_lif
    _mixer_module.window_lif = _loop_window_lif
    try:
        yield
    finally:
        _mixer_module.window_lif = original


@dataclasses.dataclass
class Result:
    model: str
    variant: str
    batch: int
    compile_s: float
    step_ms: float
    infer_ms: float
    peak_mb: float
    flops: float
    faults: float = 0.0  # minor page faults per training step
    cpu_ms: float = 0.0  # process CPU time per training step (all threads)

    @property
    def train_ips(self) -> float:
        return self.batch / self.step_ms * 1e3

    @property
    def infer_ips(self) -> float:
        return self.batch / self.infer_ms * 1e3


def _median_ms(fn, repeats, counters=None):
    times, cpu = [], []
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        jax.block_until_ready(fn())
        times.append((time.perf_counter() - start) * 1e3)
        cpu.append((time.process_time() - cpu_start) * 1e3)
    if counters is not None:
        counters["faults"] = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / repeats
        counters["cpu_ms"] = statistics.median(cpu)
    return statistics.median(times)


def cpu_model() -> str:
    """The CPU's model name (as lscpu prints it) and its core count."""
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            name = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{name}, {os.cpu_count()} cores"


HUGEPAGES = "glibc.malloc.hugetlb=1"


def reexec_with_hugepages(argv) -> None:
    """Restarts this script with glibc's heap on transparent huge pages."""
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    if sys.platform != "linux" or "--hugepages" not in argv or "glibc.malloc.hugetlb" in tunables:
        return
    env = dict(os.environ, GLIBC_TUNABLES=":".join(filter(None, [tunables, HUGEPAGES])))
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, "-m", "benchmarks.train_step", *argv], env)


def sgd_train_step(model):
    """The benchmarked step (SGD with momentum on the cross-entropy) as a pure
    function ``(state, x, y) -> (state, loss)``, with its graphdef and state."""
    opt = nnx.Optimizer(model, optax.sgd(0.01, momentum=0.9), wrt=nnx.Param)
    graphdef, state = nnx.split((model, opt))

    def train_step(state, x, y, axis_name=None):
        model, opt = nnx.merge(graphdef, state)

        def loss_fn(model):
            return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        if axis_name is not None:  # data parallel: this device's shard of the batch
            loss, grads = jax.lax.pmean((loss, grads), axis_name)
        opt.update(model, grads)
        return nnx.state((model, opt)), loss

    return train_step, graphdef, state


def measure(preset, overrides, variant, batch, repeats, image_size=32, dtype=None) -> Result:
    loop = variant == "per-window loop"
    with per_window_loop() if loop else contextlib.nullcontext():
        model = models.create(
            preset, image_size=image_size, dtype=dtype, **{**overrides, **VARIANTS[variant]}
        )
        train_step, graphdef, state = sgd_train_step(model)

        def infer(state, x):
            model, _ = nnx.merge(graphdef, state)
            model.eval()
            return model(x)

        key = jax.random.key(0)
        x = jax.random.normal(key, (batch, image_size, image_size, 3))
        y = jax.random.randint(key, (batch,), 0, model.config.num_classes)
        if jax.device_count() > 1:  # --host_devices: shard_map over all devices
            mesh = create_mesh()
            state = jax.device_put(state, NamedSharding(mesh, P()))
            x, y = jax.device_put((x, y), NamedSharding(mesh, P(DATA_AXIS)))
            local = functools.partial(jax.shard_map, mesh=mesh, check_vma=False)
            train_step = local(
                functools.partial(train_step, axis_name=DATA_AXIS),
                in_specs=(P(), P(DATA_AXIS), P(DATA_AXIS)),
                out_specs=(P(), P()),
            )
            infer = local(infer, in_specs=(P(), P(DATA_AXIS)), out_specs=P(DATA_AXIS))
        start = time.perf_counter()
        step = jax.jit(train_step, donate_argnums=0).lower(state, x, y).compile()
        compile_s = time.perf_counter() - start
        forward = jax.jit(infer).lower(state, x).compile()
    mem = step.memory_analysis()
    peak = (
        (mem.temp_size_in_bytes + mem.argument_size_in_bytes + mem.output_size_in_bytes) / 2**20
        if mem is not None
        else float("nan")
    )
    cost = step.cost_analysis() or {}
    holder = {"state": state}

    def run_step():
        holder["state"], loss = step(holder["state"], x, y)
        return loss

    run_step()  # warm-up
    counters = {}
    step_ms = _median_ms(run_step, repeats, counters)
    infer_ms = _median_ms(lambda: forward(holder["state"], x), repeats)
    return Result(
        preset if not overrides else f"{preset}*",
        variant,
        batch,
        compile_s,
        step_ms,
        infer_ms,
        peak,
        float(cost.get("flops", 0.0)),
        **counters,
    )


def utilisation(result: Result) -> str:
    device = jax.devices()[0]
    if device.platform == "cpu":
        return "-"
    peak = next((v for k, v in PEAK_TFLOPS.items() if k in device.device_kind), None)
    if peak is None or not result.flops:
        return "?"
    achieved = result.flops / (result.step_ms * 1e-3) / 1e12
    bf16, fp32 = peak
    return (
        f"{achieved:.1f} TF/s ({100 * achieved / fp32:.0f}% of fp32, "
        f"{100 * achieved / bf16:.1f}% of bf16 peak)"
    )


def table(results: list[Result]) -> str:
    base = {(r.model, r.batch): r for r in results if r.variant == "grid 1x1"}
    lines = [
        "| model | variant | batch | step time / grid 1x1 | train img/s | "
        "infer img/s | compile s | step ms | CPU ms | faults | peak MB | MFU |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        ref = base.get((r.model, r.batch))
        ratio = f"{r.step_ms / ref.step_ms:.2f}x" if ref else "-"
        lines.append(
            f"| {r.model} | {r.variant} | {r.batch} | {ratio} | "
            f"{r.train_ips:.1f} | {r.infer_ips:.1f} | {r.compile_s:.1f} | "
            f"{r.step_ms:.0f} | {r.cpu_ms:.0f} | {r.faults:.0f} | {r.peak_mb:.0f} | "
            f"{utilisation(r)} |"
        )
    return "\n".join(lines)


def define_flags() -> None:
    flags.DEFINE_string("models", "conv,lstm,quick", "Comma-separated models.")
    flags.DEFINE_string("batch_sizes", "32,64,128", "Comma-separated batch sizes.")
    flags.DEFINE_string("variants", ",".join(VARIANTS), "Comma-separated variants.")
    flags.DEFINE_integer("repeats", 5, "Timed steps per row.", lower_bound=1)
    flags.DEFINE_enum(
        "dtype", "float32", ["float32", "bfloat16"], "Compute dtype (parameters stay float32)."
    )
    flags.DEFINE_bool(
        "hugepages", False, f"Restart with GLIBC_TUNABLES={HUGEPAGES} (see the module docstring)."
    )
    flags.DEFINE_integer(
        "host_devices",
        1,
        "XLA host devices, the step data parallel over them (set before JAX starts).",
        lower_bound=1,
    )
    flags.DEFINE_enum(
        "threefry",
        "unrolled",
        ["unrolled", "rolled"],
        "Threefry's CPU lowering (dropout masks): snnjax.rng's unrolled rounds, "
        "or JAX's rolled default (the same bits).",
    )
    flags.DEFINE_bool("smoke", False, "Tiny models, batch 4, one repeat: checks the script runs.")


def main(argv: list[str]) -> None:
    cli.no_arguments(argv)
    f = flags.FLAGS
    run(
        models=f.models,
        batch_sizes=f.batch_sizes,
        variants=f.variants,
        repeats=f.repeats,
        dtype=f.dtype,
        threefry=f.threefry,
        smoke=f.smoke,
    )


def run(
    models: str = "conv,lstm,quick",
    batch_sizes: str = "32,64,128",
    variants: str = ",".join(VARIANTS),
    repeats: int = 5,
    dtype: str = "float32",
    threefry: str = "unrolled",
    smoke: bool = False,
) -> list[Result]:
    """Measures every model x batch size x variant and prints the table."""
    rng.unroll_threefry_on_cpu(threefry == "unrolled")
    unknown = [v for v in variants.split(",") if v not in VARIANTS]
    if unknown:
        raise app.UsageError(f"unknown variant {unknown[0]!r}; choose from {list(VARIANTS)}")
    batches = [4] if smoke else [int(b) for b in batch_sizes.split(",")]
    repeats = 1 if smoke else repeats
    print(
        f"# devices: {jax.device_count()} x {jax.devices()[0].device_kind} "
        f"({cpu_model()}), jax {jax.__version__}, compute dtype {dtype}, "
        f"threefry {threefry}, "
        f"GLIBC_TUNABLES={os.environ.get('GLIBC_TUNABLES', '')!r}, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    compute_dtype = jnp.bfloat16 if dtype == "bfloat16" else None
    results = []
    for name in models.split(","):
        preset, overrides = model_overrides(name)
        if smoke:
            overrides = {**overrides, **SMOKE}
        for batch in batches:
            for variant in variants.split(","):
                results.append(
                    measure(preset, overrides, variant, batch, repeats, dtype=compute_dtype)
                )
                print(
                    f"  {name} {variant} b={batch}: {results[-1].train_ips:.1f} img/s",
                    file=sys.stderr,
                    flush=True,
                )
    print(table(results))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nprocess peak RSS: {rss:.0f} MB; load average {os.getloadavg()[0]:.2f}")
    return results


def set_host_devices(argv) -> None:
    """``--host_devices=N``: N XLA host devices (before JAX's backend starts)."""
    for arg in argv:
        if arg.startswith("--host_devices="):
            flag = f"--xla_force_host_platform_device_count={int(arg.split('=', 1)[1])}"
            os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {flag}".strip()


if __name__ == "__main__":
    reexec_with_hugepages(sys.argv[1:])
    set_host_devices(sys.argv[1:])
    cli.run(main, define_flags)
