"""snnjax.nir: from_nir / to_nir against snnTorch's own forward, round trips of every
supported node through a .nir file, and the errors (unsupported node, windowed model)."""

import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from benchmarks import nir_speed
from snnjax.nn import plain
from snnjax.nn.plain_graph import Graph, sequential

REASON = "needs the interop extra: pip install 'snnjax[interop]'"
nir = pytest.importorskip("nir", reason=REASON)
snir = pytest.importorskip("snnjax.nir", reason=REASON)

MEMBRANE_TOL = 1e-5  # float32, T <= 16: measured max |diff| 2.4e-7 (conv), 9.5e-7 (RLeaky)


def _snntorch():
    torch = pytest.importorskip("torch", reason=REASON)
    snn = pytest.importorskip("snntorch", reason=REASON)
    pytest.importorskip("nirtorch", reason=REASON)
    return torch, snn


def _torch_run(torch, net, x, neurons):
    """snnTorch's forward step by step: output spikes and each neuron's membranes."""
    from snntorch import utils

    utils.reset(net)
    spikes, mems = [], {k: [] for k in neurons}
    with torch.no_grad():
        for t in range(x.shape[0]):
            out = net(x[t])
            spikes.append(out[0] if isinstance(out, tuple) else out)
            for k, layer in neurons.items():
                mems[k].append(layer.mem.clone())
    return torch.stack(spikes).numpy(), {k: torch.stack(v).numpy() for k, v in mems.items()}


def test_snntorch_conv_network_runs_with_the_same_spikes():
    torch, _ = _snntorch()

    torch.manual_seed(0)
    c, h, w, t, b = 2, 8, 8, 16, 3
    net = nir_speed.snntorch_conv(c, h, w, hidden=4)  # the speed benchmark's network
    graph = nir_speed.export(net, c, h, w)
    x = (torch.rand(t, b, c, h, w) < 0.3).float()
    spikes, mems = _torch_run(torch, net, x, {"1": net[1], "5": net[5]})

    model = snir.from_nir(graph, reset="soft")  # snnTorch's Leaky: subtract, delayed
    run = model.run(jnp.asarray(x.numpy().transpose(0, 1, 3, 4, 2)))
    np.testing.assert_array_equal(run.output, spikes)
    np.testing.assert_allclose(run.membranes["5"], mems["5"], atol=MEMBRANE_TOL)
    np.testing.assert_allclose(
        run.membranes["1"], mems["1"].transpose(0, 1, 3, 4, 2), atol=MEMBRANE_TOL
    )
    hidden = np.asarray(run.values["1"])
    assert 0 < hidden.mean() < 1 and 0 < spikes.mean() < 1  # both layers spike and rest


def test_snntorch_recurrent_network_runs_with_the_same_spikes():
    torch, snn = _snntorch()
    from snntorch.export_nir import export_to_nir

    torch.manual_seed(1)
    net = torch.nn.Sequential(
        torch.nn.Linear(3, 6),
        snn.RLeaky(beta=0.9, linear_features=6, init_hidden=True),
        torch.nn.Linear(6, 2),
        snn.Leaky(beta=torch.full((2,), 0.8), threshold=torch.full((2,), 0.5), init_hidden=True),
    )
    graph = export_to_nir(net, torch.randn(1, 3), ignore_dims=[0])
    assert ("1.w_rec", "1.lif") in graph.edges and ("1.lif", "1.w_rec") in graph.edges
    x = torch.rand(16, 4, 3) * 2
    spikes, mems = _torch_run(torch, net, x, {"1.lif": net[1], "3": net[3]})

    model = snir.from_nir(graph, reset="soft")
    run = model.run(jnp.asarray(x.numpy()))
    np.testing.assert_array_equal(run.output, spikes)
    for k in mems:
        np.testing.assert_allclose(run.membranes[k], mems[k], atol=MEMBRANE_TOL)
    assert 0 < float(run.values["1.lif"].mean()) < 1


def test_snnjax_export_runs_in_snntorch_with_the_same_spikes():
    torch, _ = _snntorch()
    from snntorch import utils
    from snntorch.import_nir import import_from_nir

    rngs = nnx.Rngs(0)
    model = sequential(
        nnx.Conv(2, 4, (3, 3), padding=[(1, 1), (1, 1)], rngs=rngs),
        plain.LIF(0.9, 0.5),  # hard reset to 0: what snnTorch's importer builds
        plain.AvgPool2d(2),
        plain.Flatten(),
        nnx.Linear(64, 6, rngs=rngs),
        plain.LIF(0.8, 0.3),
    )
    x = (np.random.default_rng(0).random((12, 2, 8, 8, 2)) < 0.4).astype(np.float32)
    ours = np.asarray(model(jnp.asarray(x)))
    net = import_from_nir(snir.to_nir(model, (2, 8, 8)))
    xt = torch.from_numpy(x.transpose(0, 1, 4, 2, 3).copy())
    theirs = []
    for i in range(x.shape[1]):  # its Flatten(start_dim=0) takes one sample at a time
        utils.reset(net)
        with torch.no_grad():
            theirs.append(torch.stack([net(xt[t, i])[0] for t in range(x.shape[0])]).numpy())
    np.testing.assert_array_equal(ours, np.stack(theirs, axis=1))
    assert 0 < ours.mean() < 1


def _every_node_graphs():
    """Two graphs covering every supported node, BatchNorm folding and a cycle."""
    rngs = nnx.Rngs(3)
    bn = nnx.BatchNorm(4, use_running_average=True, rngs=rngs)
    bn.mean[...] = jnp.linspace(-0.2, 0.3, 4)
    bn.var[...] = jnp.linspace(0.5, 2.0, 4)
    bn.scale[...] = jnp.linspace(0.8, 1.2, 4)
    bn.bias[...] = jnp.linspace(0.0, 0.2, 4)
    conv = sequential(
        nnx.Conv(2, 4, (3, 3), strides=1, padding="SAME", rngs=rngs),
        bn,
        plain.LIF(jnp.linspace(0.5, 0.95, 4), 0.6, v_reset=-0.1, bias=0.02),
        plain.SumPool2d(2),
        nnx.Conv(4, 4, (3, 3), padding="VALID", kernel_dilation=1, rngs=rngs),
        plain.CubaLIF(0.7, 0.85, 0.4, syn_gain=0.5, reset="soft"),
        plain.AvgPool2d(2, 1, 1),
        plain.Flatten(),
        nnx.Linear(4 * 2 * 2, 5, use_bias=False, rngs=rngs),
        plain.IF(0.1, r=2.0),
    )
    nodes = {
        "scale": plain.Scale(jnp.linspace(0.5, 1.5, 6)),
        "lif": plain.LIF(0.9, 1.0, reset="soft"),
        "rec": nnx.Linear(6, 6, rngs=rngs),
        "delay": plain.Delay(np.array([0, 1, 2, 3, 1, 0])),
        "li": plain.LI(0.7, gain=1.5, bias=0.1),
        "int": plain.I(0.3),
        "cli": plain.CubaLI(0.6, 0.8, syn_gain=2.0),
        "thr": plain.Threshold(0.5),
    }
    edges = [
        ("input", "scale"),
        ("scale", "lif"),
        ("lif", "rec"),
        ("rec", "lif"),
        ("lif", "delay"),
        ("delay", "li"),
        ("delay", "int"),
        ("li", "thr"),
        ("thr", "output"),
        ("int", "cli"),
        ("cli", "out2"),
    ]
    vector = Graph(nodes, edges, outputs=("output", "out2"))
    return [(conv, (2, 6, 6), (9, 2, 6, 6, 2)), (vector, (6,), (9, 3, 6))]


@pytest.mark.parametrize("case", [0, 1])
def test_round_trip_of_every_supported_node_through_a_file(case, tmp_path):
    model, shape, x_shape = _every_node_graphs()[case]
    x = jax.random.uniform(jax.random.key(case), x_shape, minval=0.0, maxval=1.5)
    graph = snir.to_nir(model, shape, dt=1e-3)
    nir.write(tmp_path / "model.nir", graph)
    back = snir.from_nir(tmp_path / "model.nir")  # dt and resets from the metadata
    a, b = model.run(x), back.run(x)
    for k in a.membranes:
        np.testing.assert_allclose(a.membranes[k], b.membranes[k], atol=1e-5)
    for k, layer in model.nodes.items():
        if isinstance(layer, (plain.LIF, plain.Threshold)):  # spikes: exact
            np.testing.assert_array_equal(a.values[k], b.values[k])
            assert 0 < float(a.values[k].mean()) < 1
    for y, z in zip(jax.tree.leaves(a.output), jax.tree.leaves(b.output)):
        np.testing.assert_allclose(y, z, atol=1e-5)
    assert not any(isinstance(n, nnx.BatchNorm) for n in back.nodes.values())  # folded


def test_continuous_parameters_discretise_by_forward_euler():
    lif = nir.LIF(
        tau=np.array([2e-3]),
        r=np.array([4.0]),
        v_leak=np.array([0.5]),
        v_threshold=np.array([1.0]),
        v_reset=np.array([0.25]),
    )
    model = snir.from_nir(nir.NIRGraph.from_list(lif), dt=1e-3)  # dt/tau = 0.5
    run = model.run(jnp.array([0.5, 0.0, 0.0, 0.0])[:, None, None])
    # v_n = .5 v + .5 * 4 I + .5 * .5: .25+1 = 1.25 -> spike, reset to .25;
    # .125+.25 = .375; .1875+.25 = .4375; .21875+.25 = .46875
    np.testing.assert_allclose(run.membranes["lif"][:, 0, 0], [1.25, 0.375, 0.4375, 0.46875])
    np.testing.assert_array_equal(run.output[:, 0, 0], [1, 0, 0, 0])


def test_unsupported_node_is_named():
    conv1d = nir.Conv1d(None, np.ones((2, 1, 3)), 1, 0, 1, 1, np.zeros(2))
    graph = nir.NIRGraph(
        {
            "input": nir.Input(np.array([1, 8])),
            "c1": conv1d,
            "output": nir.Output(np.array([2, 6])),
        },
        [("input", "c1"), ("c1", "output")],
        type_check=False,
    )
    with pytest.raises(ValueError, match=r"'c1' \(Conv1d\) is not supported"):
        snir.from_nir(graph)
    with pytest.raises(ValueError, match=r"'x' \(Dropout\) has no NIR counterpart"):
        snir.to_nir(
            Graph({"x": nnx.Dropout(0.1, rngs=nnx.Rngs(0))}, [("input", "x"), ("x", "output")]),
            (3,),
        )


def test_windowed_model_export_names_the_node():
    from snnjax import models

    model = nnx.eval_shape(lambda: models.create("conv", widths=(8, 16), depths=(2, 1)))
    with pytest.raises(ValueError, match=r"node 'stages/0/0/mixer' .*no window-partition node"):
        snir.to_nir(model, (3, 32, 32))


def test_missing_extra_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "nir", None)
    with pytest.raises(ImportError, match=r"pip install 'snnjax\[interop\]'"):
        snir.from_nir("model.nir")


def test_speed_benchmark_smoke():
    """benchmarks.nir_speed --smoke: the same spikes, a table with the ratio and the CPU."""
    _snntorch()
    import subprocess

    from train_utils import REPO

    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.nir_speed", "--smoke"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert "output spikes identical" in out and "| snnTorch step loop |" in out, out
    assert "CPU: " in out and "load average" in out, out
