"""Subprocess side of tests/test_parallel.py (JAX's device count and
jax.distributed must be set up before JAX starts, so these run in fresh
processes).

    python tests/parallel_worker.py devices OUT.npz
        With XLA_FLAGS=--xla_force_host_platform_device_count=8: one training
        step from the same state on the same batch over a 1-device mesh and
        over the 8-device mesh; saves losses and parameters of both. Also the
        one-device reference of the multi-process run (``two/`` keys, see
        :func:`one_device_like_two_processes`), with the 1-device program
        compiled once for both.
    python tests/parallel_worker.py process WORKDIR PORT PROCESS_ID NUM_PROCESSES
        One process of a multi-process run of train.train_and_evaluate on the
        config of :func:`parallel_config`, joined through jax.distributed on
        127.0.0.1:PORT.
"""

from __future__ import annotations

import sys

import jax
import numpy as np
from train_utils import flatten, tiny_config


def parallel_config():
    """SGD (updates linear in the gradient), dropout, Bernoulli encoder and mixup:
    the RNG streams and the data must agree across layouts, not only the maths
    (``data_parallel="gspmd"``: bit for bit one device's step; the quick
    config's "local" is tested by :func:`local_data_parallel`)."""
    return tiny_config(
        data_parallel="gspmd",
        optimizer="sgd",
        lr=0.05,
        weight_decay=2e-5,
        num_train_steps=3,
        model_encoder="bernoulli",
        model_dropout=0.1,
        mixup_alpha=0.1,
        checkpoint_every_steps=100,
    )


def one_step_on_two_meshes(out: str) -> None:
    from train import input_pipeline, train

    assert jax.device_count() == 8, jax.devices()
    config = parallel_config()
    batch = next(
        input_pipeline.create_train_iterator(
            "cifar10",
            global_batch_size=config.batch_size,
            seed=0,
            data_dir=config.data_dir,
            mixup_alpha=config.mixup_alpha,
        )
    )
    results = {}
    for devices in (jax.devices()[:1], jax.devices()):
        chain = train.setup(config, devices=devices, per_epoch=1000)
        mesh, state, step = chain.mesh, chain.state, chain.train_step(config)
        state, metrics = step(state, train.global_batch(batch, mesh))
        jax.block_until_ready(state)
        n = len(devices)
        results[f"loss/{n}"] = np.asarray(metrics["loss"])
        results.update({f"params/{n}/{k}": v for k, v in flatten(state.params).items()})
        results.update({f"rest/{n}/{k}": v for k, v in flatten(state.rest).items()})
    results.update(local_data_parallel(config, batch))
    two = one_device_like_two_processes(config, steps=config.num_train_steps)
    results.update({f"two/{k}": v for k, v in two.items()})
    np.savez(out, **results)


def _local(config):
    config = config.copy_and_resolve_references()
    config.data_parallel = "local"
    return config


def local_data_parallel(config, batch) -> dict:
    """``config.data_parallel="local"`` (shard_map) on the 8 devices:
    ``local/det/{1,8}/``: one step of a model that draws no random numbers on
    one device and on 8 (the same values up to rounding); ``local/rand/8/``:
    one step of ``config`` (dropout, Bernoulli encoder), whose RNG state must
    advance as on one device; ``local/eval/{1,8}/``: the evaluation sums of
    one batch; ``local/streams``: one uniform draw per device from the folded
    streams (all different)."""
    from flax import nnx
    from jax.sharding import PartitionSpec as P

    from train import input_pipeline, train
    from train.mesh import DATA_AXIS

    results = {}
    det = config.copy_and_resolve_references()
    det.model.encoder, det.model.dropout = "deterministic", 0.0
    runs = (("det/1", det, 1), ("det/8", _local(det), 8), ("rand/8", _local(config), 8))
    for name, cfg, n in runs:
        chain = train.setup(cfg, devices=jax.devices()[:n], per_epoch=1000)
        state, metrics = chain.train_step(cfg)(chain.state, train.global_batch(batch, chain.mesh))
        results[f"local/{name}/loss"] = np.asarray(metrics["loss"])
        results.update({f"local/{name}/params/{k}": v for k, v in flatten(state.params).items()})
        results.update({f"local/{name}/rest/{k}": v for k, v in flatten(state.rest).items()})
    eval_batch = next(
        input_pipeline.create_eval_iterator(
            "cifar10", global_batch_size=64, data_dir=config.data_dir
        )
    )
    for n, mode in ((1, "gspmd"), (8, "local")):
        mesh = train.create_mesh(jax.devices()[:n])
        model = train.setup(det, mesh=mesh, per_epoch=1000)
        step = train.make_eval_step(model.model, mesh, flip=True, data_parallel=mode)
        totals, _ = step(model.state.params, model.state.rest, train.global_batch(eval_batch, mesh))
        results.update({f"local/eval/{n}/{k}": v for k, v in flatten(totals).items()})
    mesh = train.create_mesh()
    rest = nnx.state(nnx.Rngs(0))
    draw = jax.shard_map(
        lambda r: jax.random.uniform(
            train.device_streams(r, DATA_AXIS)["default"]["key"][...], (1,)
        ),
        mesh=mesh,
        in_specs=P(),
        out_specs=P(DATA_AXIS),
    )
    results["local/streams"] = np.asarray(jax.jit(draw)(rest))
    return results


def one_device_like_two_processes(config, steps: int) -> dict:
    """The parameters after ``steps`` steps on one device fed the global
    batches of a 2-process run (process 0's rows, then process 1's)."""
    from train import device_input, input_pipeline, train

    per_epoch = (50000 // 2) // (config.batch_size // 2)
    chain = train.setup(config, devices=jax.devices()[:1], per_epoch=per_epoch)
    mesh, state, step = chain.mesh, chain.state, chain.train_step(config)
    iterators = [
        input_pipeline.create_train_iterator(
            "cifar10",
            global_batch_size=config.batch_size,
            seed=config.seed,
            data_dir=config.data_dir,
            mixup_alpha=config.mixup_alpha,
            crop_padding=device_input.crop_padding(config),
            process_index=i,
            process_count=2,
        )
        for i in range(2)
    ]
    for _ in range(steps):
        parts = [next(it) for it in iterators]
        batch = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        state, _ = step(state, train.global_batch(batch, mesh))
    return flatten(state.params)


def one_of_several_processes(workdir: str, port: int, process_id: int, num_processes: int):
    from train import main, train

    main.initialize_distributed(
        auto=False,
        coordinator_address=f"127.0.0.1:{port}",
        num_processes=num_processes,
        process_id=process_id,
    )
    assert jax.process_count() == num_processes
    train.train_and_evaluate(parallel_config(), workdir)


if __name__ == "__main__":
    if sys.argv[1] == "devices":
        one_step_on_two_meshes(sys.argv[2])
    else:
        one_of_several_processes(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
