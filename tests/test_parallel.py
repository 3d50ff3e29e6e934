"""Data parallelism: 8 simulated CPU devices and 2 processes joined by
jax.distributed (gloo) train to the same parameters as one device.

Both run in subprocesses (tests/parallel_worker.py): the device count and
jax.distributed must be fixed before JAX starts, and the rest of the suite
stays on one device.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import numpy as np
import pytest
from train_utils import REPO, cifar10_dir, final_params, once_per_run, subprocess_env

WORKER = os.path.join(os.path.dirname(__file__), "parallel_worker.py")
TIMEOUT = 300


@pytest.fixture(scope="module")
def eight_devices(tmp_path_factory) -> dict:
    """The arrays of ``parallel_worker.py devices`` (one run for all workers):
    one step on 1 and on 8 devices, and the 1-device reference of the
    2-process run."""
    cifar10_dir()

    def make(path):
        result = subprocess.run(
            [sys.executable, WORKER, "devices", str(path / "out.npz")],
            cwd=REPO,
            env=subprocess_env(8),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
        assert result.returncode == 0, result.stdout + result.stderr

    path = once_per_run(tmp_path_factory, "eight_devices", make)
    return dict(np.load(path / "out.npz"))


def test_eight_devices_step_equals_one_device_step(eight_devices):
    data = eight_devices
    np.testing.assert_allclose(data["loss/8"], data["loss/1"], rtol=1e-5)
    one = {k.removeprefix("params/1/"): data[k] for k in data if k.startswith("params/1/")}
    eight = {k.removeprefix("params/8/"): data[k] for k in data if k.startswith("params/8/")}
    assert one.keys() == eight.keys() and len(one) > 10
    for name in one:
        np.testing.assert_allclose(eight[name], one[name], rtol=1e-5, atol=1e-6, err_msg=name)
    for key in (k for k in data if k.startswith("rest/1/")):  # RNG streams advanced alike.
        np.testing.assert_array_equal(data[key.replace("rest/1/", "rest/8/")], data[key])


def test_local_data_parallel_matches_one_device(eight_devices):
    """``config.data_parallel="local"`` (shard_map, one gradient pmean) on 8
    devices: a model without random draws takes one device's step up to float
    rounding; with dropout and a Bernoulli encoder the RNG state advances as on
    one device and every device draws its own numbers; evaluation sums match."""
    data = eight_devices

    def group(prefix):
        return {k.removeprefix(prefix): data[k] for k in data if k.startswith(prefix)}

    np.testing.assert_allclose(data["local/det/8/loss"], data["local/det/1/loss"], rtol=1e-5)
    one, eight = group("local/det/1/params/"), group("local/det/8/params/")
    assert one.keys() == eight.keys() and len(one) > 10
    for name in one:
        np.testing.assert_allclose(eight[name], one[name], rtol=1e-5, atol=1e-6, err_msg=name)
    assert np.isfinite(data["local/rand/8/loss"])
    rest_one, rest_local = group("rest/1/"), group("local/rand/8/rest/")
    assert rest_one.keys() == rest_local.keys()
    for name in rest_one:  # keys unchanged, counters advanced alike
        np.testing.assert_array_equal(rest_local[name], rest_one[name], err_msg=name)
    assert len(np.unique(data["local/streams"])) == 8
    eval_one, eval_eight = group("local/eval/1/"), group("local/eval/8/")
    assert eval_one.keys() == eval_eight.keys() and any("correct_flip" in k for k in eval_one)
    for name in eval_one:
        np.testing.assert_allclose(eval_eight[name], eval_one[name], rtol=1e-5, err_msg=name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_train_like_one(eight_devices, tmp_path):
    """Two processes with 2 CPU devices each (4 in all, gloo collectives) run
    the training program for 3 steps; one process on one device, fed the same
    global batches (process 0's rows, then process 1's), reaches the same
    parameters (computed in the devices run: its 1-device program is this one)."""
    workdir = str(tmp_path / "run")
    port = _free_port()
    workers = [
        subprocess.Popen(
            [sys.executable, WORKER, "process", workdir, str(port), str(i), "2"],
            cwd=REPO,
            env=subprocess_env(2),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    outputs = [w.communicate(timeout=TIMEOUT)[0] for w in workers]
    for worker, output in zip(workers, outputs):
        assert worker.returncode == 0, output
    assert "4 device(s), 2 process(es)" in outputs[0]

    prefix = "two/"  # the same 3 steps in the devices run, on one device
    reference = {
        k.removeprefix(prefix): v for k, v in eight_devices.items() if k.startswith(prefix)
    }
    distributed = final_params(workdir)
    assert reference.keys() == distributed.keys() and len(reference) > 10
    for name in reference:
        np.testing.assert_allclose(
            distributed[name], reference[name], rtol=1e-5, atol=1e-6, err_msg=name
        )
