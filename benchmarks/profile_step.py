"""Where a training step's time goes on this machine: XLA ops from jax.profiler.

Builds the same train step as ``benchmarks/train_step.py``, traces a few calls
and sums the duration of every XLA op (thunk), grouped by kind (convolution,
dot, transpose/copy, gather/scatter, pad/slice/concat, loop, elementwise
fusion). Each op is classified from its line in the compiled HLO.

    python -m benchmarks.profile_step --model=conv --batch=64 [--variant=windows]
    GLIBC_TUNABLES=glibc.malloc.hugetlb=1 python -m benchmarks.profile_step ...

Op times are wall time per op, so on a shared machine they include time the
thread was descheduled: compare the shares, not the milliseconds.
"""

from __future__ import annotations

import collections
import glob
import gzip
import json
import os
import re
import resource
import shutil
import tempfile
import time

import jax
from absl import flags

from benchmarks.train_step import VARIANTS, model_overrides, sgd_train_step
from snnjax import models, rng
from train import cli


def build(model_name, variant, batch, image_size=32):
    preset, overrides = model_overrides(model_name)
    model = models.create(preset, image_size=image_size, **{**overrides, **VARIANTS[variant]})
    train_step, _, state = sgd_train_step(model)

    key = jax.random.key(0)
    x = jax.random.normal(key, (batch, image_size, image_size, 3))
    y = jax.random.randint(key, (batch,), 0, model.config.num_classes)
    step = jax.jit(train_step, donate_argnums=0).lower(state, x, y).compile()
    return step, state, x, y


KINDS = (  # the first match wins: a loop is a loop whatever its body holds
    ("while (scan)", (" while(",)),
    ("convolution", ("convolution(",)),
    ("dot (matmul)", (" dot(",)),
    ("gather/scatter", ("gather(", "scatter(", "dynamic-slice(", "dynamic-update-slice(")),
    ("reduce", ("reduce(", "reduce-window(")),
    ("transpose/copy", ("transpose(", "copy(")),
    ("pad/slice/concat", ("pad(", "slice(", "concatenate(")),
)


RNG = ("_bernoulli", "threefry", "random_bits", "_uniform")


def _without_metadata(instruction: str) -> str:
    """The instruction without its metadata: op names like "transpose(jvp())" are no ops."""
    return instruction.split(", metadata=")[0]


def classify(hlo: str) -> dict[str, str]:
    """op name -> kind, from the instruction's line and its fused computation."""
    comps, current = {}, None
    for line in hlo.splitlines():
        m = re.match(r"^(?:ENTRY )?%?([\w.\-]+) ", line)
        if m and line.rstrip().endswith("{"):
            current = m.group(1)
            comps[current] = []
        elif current is not None:
            comps[current].append(line)
    kinds = {}
    for lines in comps.values():
        for line in lines:
            m = re.match(r"\s*(?:ROOT )?%?([\w.\-]+) = (.*)", line)
            if not m:
                continue
            name, instruction = m.groups()
            rest = _without_metadata(instruction)
            body = rest
            c = re.search(r"calls=%?([\w.\-]+)", rest)
            if c and c.group(1) in comps:
                body = rest + "\n".join(map(_without_metadata, comps[c.group(1)]))
            kind = "elementwise / other fusion"
            if any(n in instruction for n in RNG):
                kinds[name] = "random bits (dropout masks)"
                continue
            for k, needles in KINDS:
                if any(n in body for n in needles):
                    kind = k
                    break
            kinds[name] = kind
    return kinds


def profile(step, args, calls=3):
    jax.block_until_ready(step(*args))
    tmp = tempfile.mkdtemp(prefix="step_trace_")
    try:
        with jax.profiler.trace(tmp):
            for _ in range(calls):
                jax.block_until_ready(step(*args))
        files = glob.glob(os.path.join(tmp, "**", "*.trace.json.gz"), recursive=True)
        events = json.load(gzip.open(files[0]))["traceEvents"] if files else []
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    total, count = collections.Counter(), collections.Counter()
    for e in events:
        nm = e.get("name", "")
        if (
            e.get("ph") != "X"
            or nm.startswith(("$", "end:"))
            or "::" in nm
            or " " in nm
            or "(" in nm
        ):
            continue
        total[nm] += e["dur"] / 1e3 / calls
        count[nm] += 1
    return total, count


def define_flags() -> None:
    flags.DEFINE_string("model", "conv", "Model (as benchmarks.train_step's --models).")
    flags.DEFINE_enum("variant", "windows", list(VARIANTS), "Variant of the model.")
    flags.DEFINE_integer("batch", 64, "Batch size.", lower_bound=1)
    flags.DEFINE_integer("calls", 3, "Traced calls.", lower_bound=1)
    flags.DEFINE_integer("top", 25, "Ops listed.", lower_bound=1)
    flags.DEFINE_enum(
        "threefry", "unrolled", ["unrolled", "rolled"], "Threefry's CPU lowering (dropout masks)."
    )


def main(argv: list[str]) -> None:
    cli.no_arguments(argv)
    a = flags.FLAGS
    rng.unroll_threefry_on_cpu(a.threefry == "unrolled")  # as benchmarks/train_step.py
    step, state, x, y = build(a.model, a.variant, a.batch)
    kinds = classify(step.as_text())
    # No donation when profiling repeatedly: rebuild state from the output.
    holder = {"s": state}

    def call():
        holder["s"], loss = step(holder["s"], x, y)
        return loss

    jax.block_until_ready(call())
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    t, cpu = time.perf_counter(), time.process_time()
    for _ in range(3):
        jax.block_until_ready(call())
    wall = (time.perf_counter() - t) / 3 * 1e3
    cpu = (time.process_time() - cpu) / 3 * 1e3
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / 3
    total, count = profile(lambda *_: call(), (), a.calls)
    # Loops: ops inside a while body are timed too; don't double count the while.
    by_kind = collections.Counter()
    for nm, ms in total.items():
        kind = kinds.get(nm, "?")
        if kind == "while (scan)":
            continue
        by_kind[kind] += ms
    op_sum = sum(by_kind.values())
    print(
        f"# {a.model} {a.variant} batch {a.batch}: step {wall:.0f} ms wall, "
        f"{cpu:.0f} ms CPU, {faults:.0f} page faults, {op_sum:.0f} ms in XLA ops "
        f"(GLIBC_TUNABLES={os.environ.get('GLIBC_TUNABLES', '')!r}, "
        f"load {os.getloadavg()[0]:.2f})"
    )
    print("| kind | ms | share |\n|---|---:|---:|")
    for k, ms in by_kind.most_common():
        print(f"| {k} | {ms:.0f} | {100 * ms / op_sum:.0f}% |")
    print("\n| top op | kind | calls | ms |\n|---|---|---:|---:|")
    for nm, ms in total.most_common(a.top):
        print(f"| {nm} | {kinds.get(nm, '?')} | {count[nm] // a.calls} | {ms:.1f} |")


if __name__ == "__main__":
    cli.run(main, define_flags)
