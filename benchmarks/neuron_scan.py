"""Neuron-scan benchmark: the Open Neuromorphic SNN-library setup.

One Linear layer (in = out = N neurons) then one LIF layer, batch B = 16,
T = 500 time steps, float32, forward + backward with loss = sum of the output
spikes, for N = 1,024 / 4,096 / 16,384 (on a CPU the first two by default).
Input: random 0/1 spikes (p = 0.5), shape (T, B, N); the same weights, input
and LIF parameters for every library.

Rows (each compiled / warmed up first, then timed in interleaved rounds so that
background load hits every row alike; the median over rounds is reported). The
PyTorch rows run in a worker process (:mod:`benchmarks.neuron_worker`):

* ``floor``: the same Linear alone, forward + backward over all T steps (loss =
  sum(y * g) for a fixed random cotangent g), once in JAX and once in PyTorch:
  the work every row has to do anyway.
* ``snnjax``: ``snnjax.lif_scan`` after the Linear applied to all T steps at
  once; also with ``unroll=8`` and with ``remat=True``.
* ``spyx``: ``spyx.nn.LIF`` driven by ``spyx.nn.run`` (its ``lax.scan``), with
  the Linear before the scan and inside it (``spyx.nn.Sequential``).
* ``snntorch``: ``snntorch.Leaky`` in a Python time loop, with the Linear
  before the loop (one batched matmul) and inside it (the tutorial form).

Parameter mapping (the same dynamics in all three; see docs/benchmarks.md):
leak 0.9 (snnjax ``alpha``, snnTorch/Spyx ``beta``), threshold 1.0, reset by
subtraction (snnjax ``reset="soft"``, snnTorch ``reset_mechanism="subtract"``,
Spyx's only reset), arctan surrogate (snnjax ``"atan"`` alpha=2 is exactly
snnTorch's default ``atan(alpha=2)``; Spyx ``axn.arctan(k=1)`` is the same
curve divided by pi). Spyx emits the spike of the *previous* membrane, so its
spike count lacks the last step's spikes; otherwise the counts agree.

Columns: ``x floor`` = time / the same framework's Linear-alone floor (median of
per-round ratios); ``x lif_scan`` = time / snnjax ``lif_scan`` (default
options); ``median ms`` / ``best ms`` over rounds; ``peak MB`` = peak resident memory above the pre-call level during
one call (Linux VmHWM reset via /proc/self/clear_refs after ``malloc_trim``);
``XLA MB`` = the compiled executable's temp + output buffers (JAX rows).

Usage::

    python -m benchmarks.neuron_scan                 # CPU: N = 1024 4096
    python -m benchmarks.neuron_scan --neurons=16384
    python -m benchmarks.neuron_scan --smoke         # tiny sizes, seconds

The modules: :mod:`benchmarks.neuron_peers` (the problem and each library's
rows), :mod:`benchmarks.neuron_measure` (timing and memory of one call),
:mod:`benchmarks.neuron_worker` (the PyTorch rows' process); this one runs
the interleaved rounds and prints the table.

torch, snntorch and spyx are optional: rows whose library is missing are
reported as skipped with the reason.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import statistics
import sys
import time

from absl import app, flags

from benchmarks.neuron_measure import Row, environment
from benchmarks.neuron_peers import Problem, _importable, build_rows, make_problem, profile_ours
from benchmarks.neuron_worker import TorchWorker
from train import cli

LIBRARIES = ("snnjax", "spyx", "snntorch")


@dataclasses.dataclass
class Options:
    """What to run (the command line's flags)."""

    neurons: list[int] | None = None  # default: 1024 4096 on CPU, plus 16384 elsewhere
    steps: int = 500  # T
    batch: int = 16  # B
    repeats: int | None = None  # default 7 for N <= 1024, else 5
    slow_repeats: int | None = None  # default 3 for N <= 1024, else 1
    unroll: int = 8
    libraries: list[str] = dataclasses.field(default_factory=lambda: list(LIBRARIES))
    inside: bool = True
    memory: bool = True
    profile: bool = False
    json: str | None = None
    torch_threads: int | None = None
    torch_in_process: bool = False
    smoke: bool = False


def run_size(
    prob: Problem,
    libraries: list[str],
    repeats: int,
    unroll: int,
    slow_repeats: int,
    memory: bool,
    log=print,
    worker: TorchWorker | None = None,
    inside: bool = True,
    torch_threads: int | None = None,
) -> list[Row]:
    rows = build_rows(prob, libraries, unroll, worker, torch_threads)
    if not inside:
        rows = [r for r in rows if "inside" not in r.form]
    live = [r for r in rows if r.skipped is None]
    for r in live:  # warm-up (first call after compilation)
        r.first_call_s, r.loss, _ = r.run()
        r.max_repeats = repeats
        log(
            f"  warm-up N={prob.n:<6} {r.name:<45} compile "
            f"{_fmt(r.compile_s, '6.2f', ' eager')} s, first call "
            f"{r.first_call_s:7.3f} s"
        )
    floors = {r.floor_of: r for r in live if r.library == "floor"}
    for k in range(repeats):  # interleaved rounds, rotating the start
        order = live[k % len(live) :] + live[: k % len(live)] if live else []
        round_t: dict[str, float] = {}
        for r in order:
            if k >= r.max_repeats:
                continue
            # Peak memory is taken on the first timed call.
            round_t[r.name], _, peak_mb = r.run(memory and k == 0)
            if memory and k == 0:
                r.peak_mb = peak_mb
            r.times.append(round_t[r.name])
        ours = round_t.get("snnjax | lif_scan, Linear before scan")
        for r in live:
            if r.name not in round_t:
                continue
            f = floors.get(r.floor_of)
            if f is not None and f.name in round_t:
                r.ratios.append(round_t[r.name] / round_t[f.name])
            if ours:
                r.vs_ours.append(round_t[r.name] / ours)
            # Rows far slower than their floor in the first round (the Linear inside
            # the loop) get fewer rounds: they are not close calls.
            if k == 0 and r.ratios and r.ratios[0] > 2.5:
                r.max_repeats = min(repeats, slow_repeats)
        log(
            f"  round {k + 1}/{repeats} N={prob.n}: "
            + ", ".join(
                f"{r.library}:{1e3 * round_t[r.name]:.0f}" for r in order if r.name in round_t
            )
        )
    return rows


def _fmt(v, spec: str, empty: str = "—") -> str:
    return empty if v is None else format(v, spec)


def table(rows: list[Row]) -> str:
    head = (
        "| library | form | N | × floor | × lif_scan | median ms | best ms "
        "| compile s | peak MB | XLA MB | spikes |"
    )
    lines = [head, "|" + "---|" * 11]
    for r in rows:
        if r.skipped:
            lines.append(f"| {r.library} | {r.form} | {r.n} | skipped: {r.skipped} | | | | | | | |")
            continue
        ratio = statistics.median(r.ratios) if r.ratios else None
        vs = statistics.median(r.vs_ours) if r.vs_ours else None
        lines.append(
            f"| {r.library} | {r.form} | {r.n} | {_fmt(ratio, '.3f')} "
            f"| {_fmt(vs, '.3f')} | {_fmt(r.median_ms(), '.1f')} "
            f"| {_fmt(1e3 * min(r.times) if r.times else None, '.1f')} "
            f"| {_fmt(r.compile_s, '.2f', 'eager')} | {_fmt(r.peak_mb, '.0f')} "
            f"| {_fmt(r.xla_mb, '.0f')} | {_fmt(r.loss, '.0f')} |"
        )
    return "\n".join(lines)


def _run_sizes(args: Options, sizes, all_rows, profiles, worker, log) -> None:
    for n in sizes:
        prob = make_problem(args.steps, args.batch, n)
        repeats = args.repeats or (7 if n <= 1024 else 5)
        slow = args.slow_repeats or (3 if n <= 1024 else 1)
        rows = run_size(
            prob,
            args.libraries,
            repeats,
            args.unroll,
            slow,
            args.memory,
            log=log,
            worker=worker,
            inside=args.inside,
            torch_threads=args.torch_threads,
        )
        all_rows += rows
        if args.profile and "snnjax" in args.libraries:
            profiles[n] = profile_ours(prob, log=log)
        del prob
        gc.collect()


def scan(args: Options, log=print, command: str | None = None) -> dict:
    """Runs the benchmark; returns the results (also written to ``args.json``)."""
    args = dataclasses.replace(args, libraries=list(args.libraries))
    if args.smoke:
        sizes, args.steps, args.batch, args.repeats = [32], 20, 2, 2
        args.unroll = 4
    elif args.neurons:
        sizes = args.neurons
    else:
        import jax

        sizes = [1024, 4096] if jax.default_backend() == "cpu" else [1024, 4096, 16384]
    env = environment()
    log("environment: " + json.dumps(env))
    cmd = command or "python -m benchmarks.neuron_scan " + " ".join(sys.argv[1:])
    all_rows: list[Row] = []
    profiles: dict = {}
    worker = None
    if (
        "snntorch" in args.libraries
        and not args.torch_in_process
        and not (_importable("torch") or _importable("snntorch"))
    ):
        worker = TorchWorker(env.get("jax_backend", "cpu"), args.torch_threads)
    t_start = time.perf_counter()
    try:
        _run_sizes(args, sizes, all_rows, profiles, worker, log)
    finally:
        if worker is not None:
            worker.close()
    wall = time.perf_counter() - t_start
    if hasattr(os, "getloadavg"):
        env["loadavg_1_5_15min_at_end"] = [round(v, 2) for v in os.getloadavg()]
    md = table(all_rows)
    log(
        f"\nload average at start/end: "
        f"{env.get('loadavg_1_5_15min_at_start')} / "
        f"{env.get('loadavg_1_5_15min_at_end')}"
    )
    log(
        f"\n{cmd.strip()}  (T={args.steps}, B={args.batch}, float32, "
        f"median of {args.repeats or '7 (N <= 1024) / 5'} rounds; "
        f"wall {wall:.0f} s)\n"
    )
    log(md)
    result = {
        "command": cmd.strip(),
        "environment": env,
        "T": args.steps,
        "B": args.batch,
        "repeats": args.repeats,
        "wall_s": wall,
        "table": md,
        "profiles": {str(k): v for k, v in profiles.items()},
        "rows": [
            {k: v for k, v in dataclasses.asdict(r).items() if k not in ("call", "peak", "remote")}
            | {"median_ms": r.median_ms()}
            for r in all_rows
        ],
    }
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return result


def define_flags() -> None:
    flags.DEFINE_list(
        "neurons",
        None,
        "Sizes N, comma-separated (default: 1024,4096 on CPU, plus 16384 elsewhere).",
    )
    flags.DEFINE_integer("steps", 500, "T.", lower_bound=1)
    flags.DEFINE_integer("batch", 16, "B.", lower_bound=1)
    flags.DEFINE_integer(
        "repeats", None, "Timed rounds (default 7 for N <= 1024, else 5).", lower_bound=1
    )
    flags.DEFINE_integer(
        "slow_repeats",
        None,
        "Rounds for rows > 2.5x their floor in the first round (default 3 for N <= 1024, else 1).",
        lower_bound=1,
    )
    flags.DEFINE_integer("unroll", 8, "lif_scan's unroll for the unrolled row.", lower_bound=1)
    flags.DEFINE_list("libraries", list(LIBRARIES), f"Libraries, from {','.join(LIBRARIES)}.")
    flags.DEFINE_bool("inside", True, "Also the Linear-inside-the-loop forms (the slow ones).")
    flags.DEFINE_bool("memory", True, "Measure the peak memory of one call per row.")
    flags.DEFINE_bool("profile", False, "Also print XLA op times of the floor and lif_scan rows.")
    flags.DEFINE_string("json", None, "Also write the results here.")
    flags.DEFINE_integer(
        "torch_threads",
        None,
        "torch.set_num_threads for the PyTorch rows (default: PyTorch's own, one per core).",
        lower_bound=1,
    )
    flags.DEFINE_bool(
        "torch_in_process", False, "Run the PyTorch rows in this process, not in a worker."
    )
    flags.DEFINE_bool("smoke", False, "Tiny sizes (N=32, T=20, B=2, 2 rounds): seconds, for CI.")


def main(argv: list[str]) -> None:
    cli.no_arguments(argv)
    f = flags.FLAGS
    unknown = [name for name in f.libraries if name not in LIBRARIES]
    if unknown:
        raise app.UsageError(f"--libraries: unknown {unknown[0]!r}; choose from {LIBRARIES}")
    try:
        neurons = [int(n) for n in f.neurons] if f.neurons else None
    except ValueError as e:
        raise app.UsageError(f"--neurons: {e}") from e
    options = Options(
        neurons=neurons,
        **{
            field.name: f[field.name].value
            for field in dataclasses.fields(Options)
            if field.name != "neurons"
        },
    )
    scan(options)


if __name__ == "__main__":
    cli.run(main, define_flags)
