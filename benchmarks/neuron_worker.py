"""The PyTorch rows of the neuron-scan benchmark, in a child process.

The parent (:class:`TorchWorker`) sends JSON commands on the child's stdin;
the child (:func:`torch_worker_main`, started with ``python -c``: it is no
command-line program) answers one line each, prefixed with ``@@``.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys

from benchmarks.neuron_measure import Row
from benchmarks.neuron_peers import TORCH_FORMS, Problem, _skipped, make_problem, torch_rows

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_CHILD = (
    "import sys; from benchmarks.neuron_worker import torch_worker_main; "
    "torch_worker_main(sys.argv[1], int(sys.argv[2]))"
)


class TorchWorker:
    """The PyTorch rows, run in a child process.

    In one process with JAX, PyTorch's OpenMP threads and XLA's thread pool fight
    over the two cores: snnTorch's many small per-step ops got 2-20x slower here
    (measured: 3 s alone, 6-23 s with JAX loaded). The child holds the PyTorch
    rows; the parent asks it for one timed call at a time, so the rounds stay
    interleaved and only one library computes at any moment.
    """

    def __init__(self, jax_backend: str, threads: int | None = None):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD, jax_backend, str(threads or 0)],
            cwd=ROOT,  # where the benchmarks package is importable
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
