"""The rows of the neuron-scan benchmark: the same problem in each library.

One Linear layer (in = out = N neurons) then one LIF layer over T steps,
forward + backward with loss = sum of the output spikes (the floor rows: the
Linear alone), built as :class:`~benchmarks.neuron_measure.Row` objects for
snnjax (``lif_scan``), Spyx (``spyx.nn.run``) and snnTorch (a Python loop);
see :mod:`benchmarks.neuron_scan` for the parameter mapping. torch, snntorch
and spyx are optional: a missing library's rows are skipped with the reason.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import sys
import time
from typing import TYPE_CHECKING

import numpy as np

from benchmarks.neuron_measure import Row

if TYPE_CHECKING:
    from benchmarks.neuron_worker import TorchWorker

LEAK = 0.9
THRESHOLD = 1.0
INPUT_RATE = 0.5
SEED = 0


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
