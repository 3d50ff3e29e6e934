"""Neuron-scan benchmark: the Open Neuromorphic SNN-library setup.

One Linear layer (in = out = N neurons) then one LIF layer, batch B = 16,
T = 500 time steps, float32, forward + backward with loss = sum of the output
spikes, for N = 1,024 / 4,096 / 16,384 (on a CPU the first two by default).
Input: random 0/1 spikes (p = 0.5), shape (T, B, N); the same weights, input
and LIF parameters for every library.

Rows (each compiled / warmed up first, then timed in interleaved rounds so that
background load hits every row alike; the median over rounds is reported). The
PyTorch rows run in a worker process (see :class:`TorchWorker`):

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
    python -m benchmarks.neuron_scan --neurons 16384
    python -m benchmarks.neuron_scan --smoke         # tiny sizes, seconds

torch, snntorch and spyx are optional: rows whose library is missing are
reported as skipped with the reason.
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import gc
import importlib
import importlib.util
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np

LEAK = 0.9
THRESHOLD = 1.0
INPUT_RATE = 0.5
SEED = 0


# --- measurement helpers -------------------------------------------------------


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


# --- rows -------------------------------------------------------------------------


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


@dataclasses.dataclass
class Problem:
    t: int
    b: int
    n: int
    x: np.ndarray  # (T, B, N) float32 0/1 spikes
    w: np.ndarray  # (N, N) float32, y = x @ w + bias
    bias: np.ndarray  # (N,)
    g: np.ndarray  # (T, B, N) cotangent for the floor


def make_problem(t: int, b: int, n: int, seed: int = SEED) -> Problem:
    rng = np.random.default_rng(seed)
    bound = 1.0 / np.sqrt(n)  # PyTorch's nn.Linear default init range
    x = (rng.random((t, b, n), dtype=np.float32) < INPUT_RATE).astype(np.float32)
    w = rng.uniform(-bound, bound, (n, n)).astype(np.float32)
    bias = rng.uniform(-bound, bound, (n,)).astype(np.float32)
    g = rng.standard_normal((t, b, n), dtype=np.float32)
    return Problem(t, b, n, x, w, bias, g)


def _jax_row(library, form, n, fn, args) -> Row:
    """Compiles ``fn(*args)`` ahead of time; the row calls the executable."""
    import jax

    row = Row(library, form, n, floor_of="jax")
    t0 = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    row.compile_s = time.perf_counter() - t0
    try:
        ma = compiled.memory_analysis()
        row.xla_mb = (ma.temp_size_in_bytes + ma.output_size_in_bytes) / 2**20
    except Exception:  # noqa: BLE001 - not every backend reports it
        row.xla_mb = None

    def call() -> float:
        loss, grads = compiled(*args)
        jax.block_until_ready(grads)
        return float(loss)

    row.call = call
    if jax.default_backend() != "cpu":  # host RSS says nothing; see XLA MB
        row.peak = lambda call: (call(), None)[1]
    return row


def _linear_jax(p, x):
    return x @ p["w"] + p["b"]


def _floor_jax(p, x, g):
    import jax
    import jax.numpy as jnp

    return jax.value_and_grad(lambda p: jnp.sum(_linear_jax(p, x) * g))(p)


def _ours_jax(**opts):
    """Linear on all T steps at once, then lif_scan; value and grad of sum(S)."""
    import jax
    import jax.numpy as jnp

    import snnjax

    def loss(p, x):
        _, (s, _) = snnjax.lif_scan(
            _linear_jax(p, x), alpha=LEAK, vth=THRESHOLD, reset="soft", surrogate="atan", **opts
        )
        return jnp.sum(s)

    return lambda p, x: jax.value_and_grad(loss)(p, x)


def _jax_inputs(prob: Problem):
    import jax.numpy as jnp

    params = {"w": jnp.asarray(prob.w), "b": jnp.asarray(prob.bias)}
    return params, jnp.asarray(prob.x), jnp.asarray(prob.g)


def jax_rows(prob: Problem, unroll: int) -> list[Row]:
    params, x, g = _jax_inputs(prob)
    n = prob.n
    return [
        _jax_row("floor", "JAX Linear alone", n, _floor_jax, (params, x, g)),
        _jax_row("snnjax", "lif_scan, Linear before scan", n, _ours_jax(), (params, x)),
        _jax_row("snnjax", f"lif_scan unroll={unroll}", n, _ours_jax(unroll=unroll), (params, x)),
        _jax_row("snnjax", "lif_scan remat=True", n, _ours_jax(remat=True), (params, x)),
    ]


def profile_ours(prob: Problem, calls: int = 3, top: int = 12, log=print) -> dict:
    """Where lif_scan's time goes beyond the floor: XLA CPU ops of the floor and
    of the snnjax row from ``jax.profiler`` (ms per call, summed over loop steps)."""
    import jax

    from benchmarks.profile_step import profile

    params, x, g = _jax_inputs(prob)
    out = {}
    for name, fn, args in (
        ("floor", _floor_jax, (params, x, g)),
        ("snnjax", _ours_jax(), (params, x)),
    ):
        compiled = jax.jit(fn).lower(*args).compile()
        total, count = profile(compiled, args, calls)
        out[name] = {k: (v, count[k] // calls) for k, v in total.most_common(top)}
        log(
            f"  profile N={prob.n} {name}: "
            + ", ".join(
                f"{k} {v:.1f} ms" + (f" ({c}x)" if c > 1 else "") for k, (v, c) in out[name].items()
            )
        )
    return out


def spyx_rows(prob: Problem) -> list[Row]:
    import jax
    import jax.numpy as jnp
    import spyx
    from flax import nnx

    n, b = prob.n, prob.b
    x = jnp.asarray(prob.x)
    act = spyx.axn.arctan(k=1.0)  # 1 / (pi (1 + (pi x)^2)): snnTorch's atan / pi

    def linear():
        return nnx.Linear(
            n,
            n,
            rngs=nnx.Rngs(0),
            kernel_init=lambda *_: jnp.asarray(prob.w),
            bias_init=lambda *_: jnp.asarray(prob.bias),
        )

    def lif():
        return spyx.nn.LIF((n,), beta=LEAK, threshold=THRESHOLD, activation=act, rngs=nnx.Rngs(0))

    lin_filter = nnx.Any(nnx.PathContains("kernel"), nnx.PathContains("bias"))

    # Linear before the scan: one batched matmul, then spyx.nn.run over the LIF.
    lin_graph, lin_state = nnx.split(linear())
    lif_graph, lif_state = nnx.split(lif())

    def pre(lin_state, x):
        def loss(lin_state):
            cur = nnx.merge(lin_graph, lin_state)(x)
            spikes, _ = spyx.nn.run(nnx.merge(lif_graph, lif_state), cur)
            return jnp.sum(spikes)

        return jax.value_and_grad(loss)(lin_state)

    # Linear inside the scan: spyx.nn.Sequential(Linear, LIF), the Spyx idiom.
    seq = spyx.nn.Sequential(linear(), lif())
    seq_graph, seq_lin, seq_rest = nnx.split(seq, lin_filter, ...)

    def inside(seq_lin, x):
        def loss(seq_lin):
            spikes, _ = spyx.nn.run(nnx.merge(seq_graph, seq_lin, seq_rest), x)
            return jnp.sum(spikes)

        return jax.value_and_grad(loss)(seq_lin)

    del b
    return [
        _jax_row("spyx", "LIF + run, Linear before scan", n, pre, (lin_state, x)),
        _jax_row("spyx", "LIF + run, Linear inside scan", n, inside, (seq_lin, x)),
    ]


def torch_device(jax_backend: str) -> str:
    """CUDA when JAX runs on a GPU and this torch build has CUDA, else CPU."""
    import torch

    return "cuda" if jax_backend == "gpu" and torch.cuda.is_available() else "cpu"


def torch_rows(prob: Problem, jax_backend: str = "cpu") -> list[Row]:
    import snntorch
    import torch

    n = prob.n
    device = torch_device(jax_backend)
    x = torch.from_numpy(prob.x).to(device)
    g = torch.from_numpy(prob.g).to(device)
    cuda = device == "cuda"

    def linear():
        fc = torch.nn.Linear(n, n)
        with torch.no_grad():
            fc.weight.copy_(torch.from_numpy(prob.w.T.copy()))
            fc.bias.copy_(torch.from_numpy(prob.bias))
        return fc.to(device)

    def leaky():
        # Default spike_grad is snntorch.surrogate.atan(alpha=2).
        return snntorch.Leaky(beta=LEAK, threshold=THRESHOLD, reset_mechanism="subtract").to(device)

    def cuda_peak(call):
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        call()
        return (torch.cuda.max_memory_allocated() - before) / 2**20

    def torch_row(form, step, floor_of="torch", library="snntorch"):
        fc, lif = linear(), leaky()
        row = Row(library, form, n, floor_of=floor_of)

        def call() -> float:
            fc.zero_grad(set_to_none=True)
            loss = step(fc, lif)
            loss.backward()
            if cuda:
                torch.cuda.synchronize()
            return float(loss.detach())

        row.call = call
        if cuda:
            row.peak = cuda_peak
        return row

    def floor(fc, lif):
        return (fc(x) * g).sum()

    def pre(fc, lif):
        cur = fc(x)  # (T, B, N): one matmul over all steps
        mem = lif.reset_mem()
        spk_rec = []
        # unbind, not cur[t]: each cur[t]'s backward would materialise a full
        # (T, B, N) gradient (O(T^2) work: over 10x slower at N = 1024 here).
        for cur_t in cur.unbind(0):
            spk, mem = lif(cur_t, mem)
            spk_rec.append(spk)
        return torch.stack(spk_rec).sum()

    def inside(fc, lif):
        mem = lif.reset_mem()
        spk_rec = []
        for t in range(x.shape[0]):
            spk, mem = lif(fc(x[t]), mem)
            spk_rec.append(spk)
        return torch.stack(spk_rec).sum()

    return [
        torch_row("PyTorch Linear alone", floor, library="floor"),
        torch_row("Leaky, Linear before loop", pre),
        torch_row("Leaky, Linear inside loop", inside),
    ]


def _skipped(rows: list[tuple[str, str]], n: int, reason: str) -> list[Row]:
    return [Row(library, form, n, skipped=reason) for library, form in rows]


TORCH_FORMS = [
    ("floor", "PyTorch Linear alone"),
    ("snntorch", "Leaky, Linear before loop"),
    ("snntorch", "Leaky, Linear inside loop"),
]


def _importable(name: str) -> str | None:
    """None if ``name`` can be imported, else the reason."""
    try:
        if importlib.util.find_spec(name) is None:
            return f"No module named {name!r}"
    except (ImportError, ValueError) as e:  # ValueError: sys.modules[name] is None
        return str(e)
    if name in sys.modules and sys.modules[name] is None:
        return f"import of {name} halted; None in sys.modules"
    return None


class TorchWorker:
    """The PyTorch rows, run in a child process (``--torch-worker``).

    In one process with JAX, PyTorch's OpenMP threads and XLA's thread pool fight
    over the two cores: snnTorch's many small per-step ops got 2-20x slower here
    (measured: 3 s alone, 6-23 s with JAX loaded). The child holds the PyTorch
    rows; the parent asks it for one timed call at a time, so the rounds stay
    interleaved and only one library computes at any moment.
    """

    def __init__(self, jax_backend: str, threads: int | None = None):
        import subprocess

        self.proc = subprocess.Popen(
            [
                sys.executable,
                os.path.abspath(__file__),
                "--torch-worker",
                jax_backend,
                str(threads or 0),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )

    def ask(self, **msg):
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()
        while True:  # skip anything else a library prints on stdout
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("the torch worker exited")
            if line.startswith("@@"):
                reply = json.loads(line[2:])
                if "error" in reply:
                    raise RuntimeError(f"torch worker: {reply['error']}")
                return reply

    def rows(self, prob: Problem) -> list[Row]:
        reply = self.ask(cmd="build", t=prob.t, b=prob.b, n=prob.n)
        if reply.get("skipped"):
            return _skipped(TORCH_FORMS, prob.n, reply["skipped"])
        rows = []
        for i, (library, form) in enumerate(TORCH_FORMS):

            def remote(memory, i=i):
                r = self.ask(cmd="run", row=i, memory=memory)
                return r["s"], r["loss"], r["peak_mb"]

            rows.append(Row(library, form, prob.n, floor_of="torch", remote=remote))
        return rows

    def close(self):
        try:
            self.ask(cmd="exit")
        except (RuntimeError, OSError, ValueError):
            pass
        self.proc.wait(timeout=30)


def torch_worker_main(jax_backend: str, threads: int = 0) -> None:
    """Child side of :class:`TorchWorker`: JSON commands on stdin, "@@" replies."""
    out = sys.stdout
    sys.stdout = sys.stderr  # keep library prints off the reply channel

    def reply(**msg):
        out.write("@@" + json.dumps(msg) + "\n")
        out.flush()

    rows: list[Row] = []
    for line in sys.stdin:
        msg = json.loads(line)
        try:
            if msg["cmd"] == "exit":
                reply(ok=True)
                return
            if msg["cmd"] == "build":
                rows = []
                gc.collect()
                try:
                    import snntorch  # noqa: F401
                    import torch

                    if threads:
                        torch.set_num_threads(threads)
                except ImportError as e:
                    reply(skipped=f"not installed ({e})")
                    continue
                rows = torch_rows(make_problem(msg["t"], msg["b"], msg["n"]), jax_backend)
                reply(ok=True)
            elif msg["cmd"] == "run":
                secs, loss, peak_mb = rows[msg["row"]].run(msg["memory"])
                reply(s=secs, loss=loss, peak_mb=peak_mb)
        except Exception as e:  # noqa: BLE001 - reported to the parent
            reply(error=f"{type(e).__name__}: {e}")


def build_rows(
    prob: Problem,
    libraries: list[str],
    unroll: int,
    worker: TorchWorker | None = None,
    threads: int | None = None,
) -> list[Row]:
    rows: list[Row] = []
    if "snnjax" in libraries:
        rows += jax_rows(prob, unroll)
    if "spyx" in libraries:
        try:
            importlib.import_module("spyx")
            importlib.import_module("flax.nnx")
        except ImportError as e:
            rows += _skipped(
                [
                    ("spyx", "LIF + run, Linear before scan"),
                    ("spyx", "LIF + run, Linear inside scan"),
                ],
                prob.n,
                f"not installed ({e})",
            )
        else:
            rows += spyx_rows(prob)
    if "snntorch" in libraries:
        missing = _importable("torch") or _importable("snntorch")
        if missing:
            rows += _skipped(TORCH_FORMS, prob.n, f"not installed ({missing})")
        elif worker is not None:
            rows += worker.rows(prob)
        else:  # in this process (--torch-in-process)
            import jax
            import torch

            if threads:
                torch.set_num_threads(threads)
            rows += torch_rows(prob, jax.default_backend())
    return rows


# --- the run --------------------------------------------------------------------------


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


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--neurons",
        type=int,
        nargs="+",
        default=None,
        help="sizes N (default: 1024 4096 on CPU, plus 16384 elsewhere)",
    )
    p.add_argument("--steps", type=int, default=500, help="T")
    p.add_argument("--batch", type=int, default=16, help="B")
    p.add_argument(
        "--repeats", type=int, default=None, help="timed rounds (default 7 for N <= 1024, else 5)"
    )
    p.add_argument(
        "--slow-repeats",
        type=int,
        default=None,
        help="rounds for rows > 2.5x their floor in the first round "
        "(default 3 for N <= 1024, else 1)",
    )
    p.add_argument("--unroll", type=int, default=8)
    p.add_argument(
        "--libraries",
        nargs="+",
        default=["snnjax", "spyx", "snntorch"],
        choices=["snnjax", "spyx", "snntorch"],
    )
    p.add_argument(
        "--no-inside",
        action="store_true",
        help="skip the Linear-inside-the-loop forms (the slow ones)",
    )
    p.add_argument("--no-memory", action="store_true")
    p.add_argument(
        "--profile",
        action="store_true",
        help="also print XLA op times of the floor and lif_scan rows",
    )
    p.add_argument("--json", default=None, help="also write the results here")
    p.add_argument(
        "--torch-threads",
        type=int,
        default=None,
        help="torch.set_num_threads for the PyTorch rows (default: PyTorch's own, one per core)",
    )
    p.add_argument(
        "--torch-in-process",
        action="store_true",
        help="run the PyTorch rows in this process, not in a worker",
    )
    p.add_argument(
        "--smoke",
        action="store_true",
        help="tiny sizes (N=32, T=20, B=2, 2 rounds): seconds, for CI",
    )
    return p.parse_args(argv)


def _run_sizes(args, sizes, all_rows, profiles, worker, log) -> None:
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
            not args.no_memory,
            log=log,
            worker=worker,
            inside=not args.no_inside,
            torch_threads=args.torch_threads,
        )
        all_rows += rows
        if args.profile and "snnjax" in args.libraries:
            profiles[n] = profile_ours(prob, log=log)
        del prob
        gc.collect()


def main(argv=None, log=print) -> dict:
    args = parse_args(argv)
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
    cmd = "python -m benchmarks.neuron_scan " + " ".join(sys.argv[1:] if argv is None else argv)
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


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--torch-worker":
        torch_worker_main(sys.argv[2], int(sys.argv[3]))
    else:
        main()
