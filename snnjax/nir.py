"""NIR interchange: :func:`from_nir` and :func:`to_nir` (docs/nir.md).

NIR (the Neuromorphic Intermediate Representation) describes classic T-step
networks in continuous time, unbatched and channels-first. :func:`from_nir` gives
a :class:`snnjax.nn.plain_graph.Graph` run on ``(T, B, ...)`` channels-last
sequences; :func:`to_nir` writes one back. Continuous parameters map onto the
step ``dt`` by forward Euler (``alpha = 1 - dt/tau``, ``gain = r dt/tau``, ``bias
= v_leak dt/tau``; IF and I integrate ``r I`` per step), see
:mod:`snnjax.nn.plain`. ``nir`` is imported on first use (the ``interop`` extra).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from snnjax.nn import plain
from snnjax.nn.plain_graph import Graph

DEFAULT_DT = 1e-4  # snnTorch's export step
SUPPORTED = (
    "Input Output NIRGraph Affine Linear Scale Conv2d Flatten SumPool2d AvgPool2d "
    "LIF IF CubaLIF LI I CubaLI Threshold Delay"
).split()


def _nir():
    try:
        import nir
    except ImportError:
        raise ImportError("snnjax.nir needs NIR: pip install 'snnjax[interop]'") from None
    return nir


def _last(a):
    """NIR's channels-first per-sample array -> channels-last (rank >= 2)."""
    a = np.asarray(a, np.float32)
    return np.moveaxis(a, 0, -1) if a.ndim >= 2 else a


def _first(a, shape):
    """A parameter broadcast to the channels-last ``shape``, written channels-first."""
    a = np.broadcast_to(np.asarray(a, np.float32), shape)
    return np.ascontiguousarray(np.moveaxis(a, -1, 0) if a.ndim >= 2 else a)


def _inline(nir, graph):
    """Nodes and edges with sub-graphs inlined and their Input/Output nodes bypassed."""
    nodes, edges = {}, list(graph.edges)
    for name, node in graph.nodes.items():
        if not isinstance(node, nir.NIRGraph):
            nodes[name] = node
            continue
        inner_nodes, inner_edges = _inline(nir, node)
        rename = {k: k if k.startswith(f"{name}.") else f"{name}.{k}" for k in inner_nodes}
        nodes.update({rename[k]: n for k, n in inner_nodes.items()})
        edges += [(rename[a], rename[b]) for a, b in inner_edges]
        ports = {}
        for kind in (nir.Input, nir.Output):
            found = [rename[k] for k, n in inner_nodes.items() if isinstance(n, kind)]
            if len(found) != 1:
                raise ValueError(f"sub-graph {name!r} must have one {kind.__name__} node")
            ports[kind] = found[0]
            nodes[found[0]] = None  # a pass-through, bypassed below
        edges = [
            (ports[nir.Output] if a == name else a, ports[nir.Input] if b == name else b)
            for a, b in edges
        ]
    for p in [k for k, n in nodes.items() if n is None]:
        ins, outs = [a for a, b in edges if b == p], [b for a, b in edges if a == p]
        edges = [e for e in edges if p not in e] + [(a, b) for a in ins for b in outs]
        del nodes[p]
    return nodes, edges


def _steps(dt, tau, name):
    ratio = dt / np.asarray(tau, np.float64)
    if np.any(ratio > 1) or np.any(ratio <= 0):
        raise ValueError(f"node {name!r}: tau must be positive and at least dt={dt}")
    return ratio


def _neuron(nir, node, name, dt, reset, surrogate):
    get = lambda field: _last(getattr(node, field))
    spiking = dict(reset=reset, surrogate=surrogate)
    if isinstance(node, nir.IF):
        return plain.IF(get("v_threshold"), r=get("r"), v_reset=get("v_reset"), **spiking)
    if isinstance(node, nir.I):
        return plain.I(get("r"))
    if isinstance(node, (nir.LIF, nir.LI)):
        k = _last(_steps(dt, node.tau, name))
        leak = dict(gain=get("r") * k, bias=get("v_leak") * k)
        if isinstance(node, nir.LI):
            return plain.LI(1 - k, **leak)
        return plain.LIF(1 - k, get("v_threshold"), v_reset=get("v_reset"), **leak, **spiking)
    ks, km = _last(_steps(dt, node.tau_syn, name)), _last(_steps(dt, node.tau_mem, name))
    syn = dict(syn_gain=get("w_in") * ks, gain=get("r") * km, bias=get("v_leak") * km)
    if isinstance(node, nir.CubaLI):
        return plain.CubaLI(1 - ks, 1 - km, **syn)
    v = dict(v_reset=get("v_reset"), **spiking)
    return plain.CubaLIF(1 - ks, 1 - km, get("v_threshold"), **syn, **v)


def _dense(node, rngs):
    w = np.asarray(node.weight, np.float32)
    if w.ndim != 2:
        raise ValueError(f"only 2-D Linear/Affine weights are supported, got {w.shape}")
    bias = getattr(node, "bias", None)
    layer = nnx.Linear(w.shape[1], w.shape[0], use_bias=bias is not None, rngs=rngs)
    layer.kernel[...] = jnp.asarray(w.T)
    if bias is not None:
        layer.bias[...] = jnp.asarray(bias, jnp.float32)
    return layer


def _conv(node, rngs):
    w = np.asarray(node.weight, np.float32)  # (O, I/groups, kH, kW)
    pad = node.padding
    if isinstance(pad, (str, bytes)):
        padding = (pad.decode() if isinstance(pad, bytes) else pad).upper()
    else:
        padding = [(int(p), int(p)) for p in np.broadcast_to(np.asarray(pad), (2,))]
    pair = lambda v: tuple(int(a) for a in np.broadcast_to(np.asarray(v), (2,)))
    groups = int(node.groups)
    layer = nnx.Conv(
        w.shape[1] * groups,
        w.shape[0],
        w.shape[2:],
        strides=pair(node.stride),
        padding=padding,
        kernel_dilation=pair(node.dilation),
        feature_group_count=groups,
        rngs=rngs,
    )
    layer.kernel[...] = jnp.asarray(w.transpose(2, 3, 1, 0))
    layer.bias[...] = jnp.asarray(np.zeros(w.shape[0]) if node.bias is None else node.bias)
    return layer


def _import(nir, node, name, dt, reset, surrogate, rngs):
    if isinstance(node, (nir.LIF, nir.IF, nir.CubaLIF, nir.LI, nir.I, nir.CubaLI)):
        if reset is None:
            reset = node.metadata.get("reset", "hard")
            reset = reset.decode() if isinstance(reset, bytes) else str(reset)
        return _neuron(nir, node, name, dt, reset, surrogate)
    if isinstance(node, (nir.Affine, nir.Linear)):
        return _dense(node, rngs)
    if isinstance(node, nir.Conv2d):
        return _conv(node, rngs)
    if isinstance(node, nir.Scale):
        return plain.Scale(_last(node.scale))
    if isinstance(node, nir.Flatten):
        return plain.Flatten(int(node.start_dim), int(node.end_dim))
    if isinstance(node, (nir.SumPool2d, nir.AvgPool2d)):
        cls = plain.AvgPool2d if isinstance(node, nir.AvgPool2d) else plain.SumPool2d
        return cls(node.kernel_size, node.stride, node.padding)
    if isinstance(node, nir.Threshold):
        return plain.Threshold(_last(node.threshold), surrogate=surrogate)
    if isinstance(node, nir.Delay):
        steps = np.asarray(node.delay, np.float64) / dt
        if not np.allclose(steps, np.round(steps), atol=1e-6):
            raise ValueError(f"node {name!r}: Delay {node.delay} is not whole steps of dt={dt}")
        return plain.Delay(_last(np.round(steps)))
    raise ValueError(
        f"NIR node {name!r} ({type(node).__name__}) is not supported by snnjax.nir; "
        f"supported: {', '.join(SUPPORTED)}"
    )


def from_nir(
    graph,
    *,
    dt: float | None = None,
    reset: str | None = None,
    surrogate="rectangular",
    seed: int = 0,
) -> Graph:
    """A runnable :class:`~snnjax.nn.plain_graph.Graph` of a ``nir.NIRGraph`` or a file.

    Args:
      graph: a ``nir.NIRGraph``, or the path of a ``.nir`` file.
      dt: the step the continuous parameters are discretised with; None takes the
        graph's ``metadata["dt"]`` (written by :func:`to_nir`), else 1e-4 (snnTorch's).
      reset: "hard" (NIR's: to ``v_reset``) or "soft" (subtract the threshold, the
        default of snnTorch's Leaky) for every neuron; None takes each node's
        ``metadata["reset"]`` (written by :func:`to_nir`), else "hard".
      surrogate: the spike's surrogate gradient, for training the imported model.
      seed: seeds the placeholder initialisation of linear/conv layers (overwritten).

    The model maps ``(T, B, ...)`` (channels-last) to the output spikes; see
    :meth:`Graph.run` for the explicit state and membranes.
    """
    nir = _nir()
    if isinstance(graph, (str, os.PathLike)):
        graph = nir.read(graph)
    if dt is None:
        dt = float(np.asarray((graph.metadata or {}).get("dt", DEFAULT_DT)))
    nodes, edges = _inline(nir, graph)
    rngs = nnx.Rngs(seed)
    ports = {
        kind: [k for k, n in nodes.items() if isinstance(n, kind)]
        for kind in (nir.Input, nir.Output)
    }
    layers = {
        k: _import(nir, n, k, dt, reset, surrogate, rngs)
        for k, n in nodes.items()
        if not isinstance(n, (nir.Input, nir.Output))
    }
    return Graph(layers, edges, ports[nir.Input], ports[nir.Output])


# ----------------------------------------------------------------------------- export


EXPORTABLE = (
    plain.LIF,
    plain.LI,
    plain.Scale,
    plain.Threshold,
    plain.Flatten,
    plain.SumPool2d,
    plain.Delay,
    nnx.Linear,
    nnx.Conv,
)


def _windowed(model):
    """The path and type of the first windowed (Sequencer) node in ``model``, if any."""
    from snnjax.nn.mixers import SpikingMixer

    for path, node in nnx.iter_graph(model):
        if isinstance(node, SpikingMixer):
            return "/".join(map(str, path)), type(node).__name__
    return None


def _export_neuron(nir, layer, shape, dt):
    """The NIR node of a plain neuron whose per-sample (channels-last) shape is ``shape``."""
    f = lambda name: _first(getattr(layer, name)[...], shape)
    meta = {"reset": layer.reset} if isinstance(layer, plain.LIF) else {}
    if isinstance(layer, plain.IF):
        return nir.IF(r=f("gain"), v_threshold=f("vth"), v_reset=f("v_reset"), metadata=meta)
    if isinstance(layer, plain.I):
        return nir.I(r=f("gain"))
    if np.any(f("alpha") >= 1) or (hasattr(layer, "alpha_syn") and np.any(f("alpha_syn") >= 1)):
        raise ValueError(f"{type(layer).__name__} with alpha >= 1 has no tau; use plain.IF/I")
    tau = dt / (1 - f("alpha"))
    cont = dict(r=f("gain") * tau / dt, v_leak=f("bias") * tau / dt)
    spiking = dict(v_threshold=f("vth"), v_reset=f("v_reset")) if meta else {}
    if isinstance(layer, (plain.CubaLIF, plain.CubaLI)):
        tau_syn = dt / (1 - f("alpha_syn"))
        syn = dict(tau_syn=tau_syn, tau_mem=tau, w_in=f("syn_gain") * tau_syn / dt)
        kind = nir.CubaLIF if meta else nir.CubaLI
        return kind(**syn, **cont, **spiking, metadata=meta)
    return nir.LIF(tau=tau, **cont, **spiking, metadata=meta) if meta else nir.LI(tau=tau, **cont)


def _export_conv(nir, conv, in_shape):
    if len(conv.kernel_size) != 2:
        raise ValueError(f"only 2-D convolutions export, got kernel_size {conv.kernel_size}")
    pad = conv.padding
    if isinstance(pad, str):
        pad = pad.lower()
    else:
        pads = [pad] * 2 if isinstance(pad, int) else list(pad)
        pairs = [(p, p) if isinstance(p, int) else tuple(p) for p in pads]
        if any(lo != hi for lo, hi in pairs):
            raise ValueError(f"NIR's Conv2d has symmetric padding only, got {pad}")
        pad = tuple(int(lo) for lo, _ in pairs)
    pair = lambda v: tuple(int(a) for a in np.broadcast_to(np.asarray(1 if v is None else v), (2,)))
    kernel = np.asarray(conv.kernel[...])
    bias = np.asarray(conv.bias[...]) if conv.bias is not None else np.zeros(kernel.shape[-1])
    return nir.Conv2d(
        input_shape=tuple(in_shape[:2]),
        weight=kernel.transpose(3, 2, 0, 1),
        stride=pair(conv.strides),
        padding=pad,
        dilation=pair(conv.kernel_dilation),
        groups=int(conv.feature_group_count),
        bias=bias,
    )


def _export(nir, layer, in_shape, out_shape, dt):
    if isinstance(layer, (plain.LIF, plain.LI)):
        return _export_neuron(nir, layer, out_shape, dt)
    if isinstance(layer, nnx.Linear):
        w = np.asarray(layer.kernel[...]).T
        return (
            nir.Affine(w, np.asarray(layer.bias[...])) if layer.bias is not None else nir.Linear(w)
        )
    if isinstance(layer, nnx.Conv):
        return _export_conv(nir, layer, in_shape)
    if isinstance(layer, plain.Scale):
        return nir.Scale(_first(layer.scale[...], out_shape))
    if isinstance(layer, plain.Threshold):
        return nir.Threshold(_first(layer.vth[...], out_shape))
    if isinstance(layer, plain.Flatten):
        first = in_shape[-1:] + in_shape[:-1] if len(in_shape) >= 2 else in_shape
        return nir.Flatten({"input": np.array(first)}, layer.start_dim, layer.end_dim)
    if isinstance(layer, plain.SumPool2d):
        kind = nir.AvgPool2d if layer.average else nir.SumPool2d
        return kind(*(np.array(v) for v in (layer.kernel_size, layer.stride, layer.padding)))
    return nir.Delay(_first(layer.steps[...] * dt, out_shape))


def _fold_batchnorms(model):
    """Nodes and edges with each BatchNorm folded into the Conv/Linear before it."""
    nodes, edges = dict(model.nodes.items()), list(model.edges)
    for name, bn in list(nodes.items()):
        if not isinstance(bn, nnx.BatchNorm):
            continue
        preds = [a for a, b in edges if b == name]
        prev = nodes.get(preds[0]) if len(preds) == 1 else None
        if not isinstance(prev, (nnx.Conv, nnx.Linear)) or [
            b for a, b in edges if a == preds[0]
        ] != [name]:
            raise ValueError(f"BatchNorm node {name!r} must follow one Conv/Linear to fold into")
        mean, var = np.asarray(bn.mean[...]), np.asarray(bn.var[...])
        scale = np.asarray(bn.scale[...]) if bn.scale is not None else 1.0
        shift = np.asarray(bn.bias[...]) if bn.bias is not None else 0.0
        g = scale / np.sqrt(var + bn.epsilon)
        bias = np.asarray(prev.bias[...]) if prev.bias is not None else 0.0
        folded = nnx.clone(prev)
        folded.kernel[...] = jnp.asarray(np.asarray(prev.kernel[...]) * g)
        if folded.bias is None:
            folded.bias = nnx.Param(jnp.zeros(folded.kernel.shape[-1]))
        folded.bias[...] = jnp.asarray((bias - mean) * g + shift)
        nodes[preds[0]] = folded
        del nodes[name]
        edges = [(a, b) for a, b in edges if name not in (a, b)] + [
            (preds[0], b) for a, b in edges if a == name
        ]
    return nodes, edges


def to_nir(model, input_shape, *, dt: float = DEFAULT_DT):
    """The ``nir.NIRGraph`` of a plain :class:`~snnjax.nn.plain_graph.Graph`.

    Args:
      model: the graph; BatchNorm nodes fold into the Conv/Linear before them
        (with their running statistics).
      input_shape: NIR's per-sample shape of the input, channels-first (e.g.
        ``(2, 34, 34)``), or a dict of them for several inputs.
      dt: the step the neurons' discrete parameters are read at (``tau = dt /
        (1 - alpha)``), written to ``metadata["dt"]``; each neuron's reset is
        written to its ``metadata["reset"]`` (NIR itself knows the hard reset only).

    ``nir.write(path, graph)`` writes it to a file.
    """
    nir = _nir()
    if not isinstance(model, Graph):
        found = _windowed(model)
        if found is not None:
            raise ValueError(
                f"{type(model).__name__} cannot be written in NIR: node {found[0]!r} "
                f"({found[1]}) runs LIF scans over window partitions (snnjax.partition), "
                "and NIR has no window-partition node; only plain T-step graphs "
                "(snnjax.nn.plain_graph.Graph) export"
            )
        raise ValueError(
            f"to_nir exports a snnjax.nn.plain_graph.Graph, got {type(model).__name__}"
        )
    shapes = input_shape if isinstance(input_shape, Mapping) else {model.inputs[0]: input_shape}
    nodes, edges = _fold_batchnorms(model)
    for k, layer in nodes.items():
        if not isinstance(layer, EXPORTABLE):
            raise ValueError(f"node {k!r} ({type(layer).__name__}) has no NIR counterpart")
    graph = Graph(nodes, edges, model.inputs, model.outputs)
    sample = {
        k: jax.ShapeDtypeStruct((1, 1, *_last(np.zeros(tuple(s))).shape), jnp.float32)
        for k, s in shapes.items()
    }
    values = jax.eval_shape(lambda x: graph.run(x).values, sample)
    sizes = {k: v.shape[2:] for k, v in {**values, **sample}.items()}
    out = {
        k: _export(nir, layer, sizes[graph.preds[k][0]], sizes[k], dt)
        for k, layer in graph.nodes.items()
    }
    to_first = lambda s: np.array(s[-1:] + s[:-1] if len(s) >= 2 else s)
    for k in graph.inputs:
        out[k] = nir.Input({"input": np.array(tuple(shapes[k]))})
    for k in graph.outputs:
        out[k] = nir.Output({"output": to_first(sizes[graph.preds[k][0]])})
    return nir.NIRGraph(out, list(graph.edges), metadata={"dt": float(dt)})
