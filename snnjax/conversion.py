"""ANN -> SNN conversion: the paper's conversion paragraph (METHOD Sec. 7), after
Chowdhury et al. 2022 (and Rathi et al. 2020, whose code theirs builds on).

Train the ANN counterpart of the SNN (``neuron="relu"`` or ``"clip"``: the same
parameter tree and dense ops, docs/conversion.md), copy its parameters into the
SNN (:func:`load_ann_params`), then balance each spiking layer's threshold to a
percentile (90 in Chowdhury's code) of its pre-activations on N training images
(:func:`balance`), and train the SNN with surrogate gradients.

Pre-activations are what a layer's threshold is compared with: the synaptic
currents ``I`` of a LIF layer (Eq. 6, without the fused membrane term), and the
block input ``x`` of the encoder (``S = H(x - vth)``).

Balancing is sequential, layer by layer in network order, on the SNN's own
spikes, as in Rathi's/Chowdhury's ``find_threshold``: layer l is measured with
layers < l already balanced and spiking. It must be: the SNN's layer l reads
binary spikes (and fuses spiking membranes), whose scale is set by the
thresholds before it, not the ANN's real-valued activations.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from flax.traverse_util import flatten_dict

from snnjax.counts import ENCODER, SpikeCount, block_name
from snnjax.energy import spike_rates

MODES = ("threshold", "scale")
NONPOSITIVE = ("error", "keep")
PREFIX = "preact_"


@dataclasses.dataclass(frozen=True)
class LayerBalance:
    """What :func:`balance` did to one spiking layer (a summary JSON record).

    Attributes:
      layer: ``"s{stage}b{block}.{encoder|lif...}"``.
      percentile: the percentile's value p_l of the layer's pre-activations (the
        SNN's, layers before it balanced).
      method: "threshold" (vth set to p_l), "scale" (synapse weights and bias
        times vth / p_l, vth fixed) or "none" (left as it was: a Bernoulli
        encoder, or an encoder without a threshold Param in "scale" mode).
      threshold, scale: the layer's resulting vth and its synapse's weight scale.
      fraction_above: fraction of those pre-activations above p_l (~ 1 - q / 100).
      ann_fraction_above: the same for the ANN's pre-activations (None without it).
      spike_rate: the SNN's spike rate (Eq. 13) after balancing, same images.
    """

    layer: str
    percentile: float
    method: str
    threshold: float
    scale: float
    fraction_above: float
    ann_fraction_above: float | None
    spike_rate: float

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def spiking_layers(model: nnx.Module) -> list[str]:
    """The spiking layers' names in network order (the order of :func:`balance`)."""
    return [
        f"{block_name(s, b)}.{name}"
        for s, blocks in enumerate(model.stages)
        for b, block in enumerate(blocks)
        for name in (ENCODER, *block.mixer.lif_names)
    ]


def load_ann_params(snn: nnx.Module, ann: nnx.Module | nnx.State | dict) -> nnx.State:
    """The SNN's parameters (``nnx.State`` of its Params) with every parameter of
    the ANN (a module, its ``nnx.State`` of Params, or that state's pure dict)
    copied in unchanged. The SNN may hold Params the ANN lacks only for
    thresholds and leaks (``vth``, ``alpha``), which keep the SNN's values."""
    if isinstance(ann, nnx.Module):
        ann = nnx.state(ann, nnx.Param)
    if isinstance(ann, nnx.State):
        source = {path: v.get_value() for path, v in nnx.to_flat_state(ann)}
    else:
        source = flatten_dict(ann)
    out, seen = [], set()
    for path, var in nnx.to_flat_state(nnx.state(snn, nnx.Param)):
        name = "/".join(map(str, path))
        if path not in source:
            if path[-1] not in ("vth", "alpha"):
                raise ValueError(f"ann has no parameter {name} (the SNN's)")
            out.append((path, var))
            continue
        value = source[path]
        if jnp.shape(value) != var.get_value().shape:
            raise ValueError(
                f"ann parameter {name} must have the SNN's shape "
                f"{var.get_value().shape}, got {jnp.shape(value)}"
            )
        out.append((path, var.replace(jnp.asarray(value, var.get_value().dtype))))
        seen.add(path)
    extra = sorted("/".join(map(str, p)) for p in set(source) - seen)
    if extra:
        raise ValueError(f"ann parameters not in the SNN: {extra[:6]}")
    return nnx.from_flat_state(out)


def collect_preactivations(
    model: nnx.Module, images: jax.Array, *, layers=None, batch_size: int = 128
) -> dict[str, np.ndarray]:
    """The pre-activations of the spiking ``layers`` (all when None) of a model
    (SNN or ANN) on ``images``, as ``name -> float32 (N * neurons,)`` host
    arrays; the model is left as it was."""
    names = spiking_layers(model)
    layers = names if layers is None else list(layers)
    unknown = sorted(set(layers) - set(names))
    if unknown:
        raise ValueError(f"layers {unknown} are not spiking layers of the model: {names[:4]}...")
    passes = [_run(model, batch, layers)[1] for batch in _batches(images, batch_size)]
    return {n: np.concatenate([p[n] for p in passes]) for n in layers}


def balance(
    snn: nnx.Module,
    images: jax.Array,
    *,
    percentile: float = 90.0,
    mode: str = "threshold",
    ann: nnx.Module | None = None,
    batch_size: int = 128,
    nonpositive: str = "error",
) -> tuple[nnx.State, list[LayerBalance]]:
    """Threshold balancing, sequentially in network order (module docstring).

    Args:
      snn: the SNN with the ANN's parameters loaded (:func:`load_ann_params`);
        not modified.
      images: (N, H, W, 3) training images (Chowdhury: one batch of 512).
      percentile: q in (0, 100]: p_l is the q-th percentile of layer l's
        pre-activations (np.percentile, linear interpolation).
      mode: "threshold" (Rathi's and Chowdhury's: each layer's vth = p_l, the
        weights unchanged; needs ``learnable_threshold`` and, for the
        deterministic encoder, ``learnable_encoder_threshold``) or "scale"
        (thresholds fixed; each LIF layer's synapse scaled by vth / p_l, as in
        Diehl et al. 2015's weight normalisation; linear synapses only, and
        encoders are balanced only where they hold a threshold Param).
      ann: the trained ANN, for the report's ``ann_fraction_above``.
      batch_size: images per forward pass.
      nonpositive: what to do with a layer whose percentile is <= 0 (fewer than
        1 - q/100 of its currents positive: the spiking layers before it fire
        too little): "error", or "keep" (the layer is left as it is, method
        "none" in the report, and balancing goes on).

    Returns:
      ``(state, report)``: the SNN's ``nnx.State`` (``nnx.update(snn, state)``)
      and one :class:`LayerBalance` per spiking layer, in network order.
    """
    cfg = snn.config
    if not cfg.spiking:
        raise ValueError(f"snn must be spiking (neuron='lif'), got neuron={cfg.neuron!r}")
    if ann is not None and ann.config.spiking:
        raise ValueError("ann must be the ANN counterpart (neuron 'relu' or 'clip'), got an SNN")
    if ann is not None and spiking_layers(ann) != spiking_layers(snn):
        raise ValueError("ann must have the SNN's spiking layers (the same preset and depths)")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {percentile}")
    if nonpositive not in NONPOSITIVE:
        raise ValueError(f"nonpositive must be one of {NONPOSITIVE}, got {nonpositive!r}")
    _check_mode(snn, mode)
    model = nnx.clone(snn)
    ann_values = None if ann is None else collect_preactivations(ann, images, batch_size=batch_size)
    done = []
    for name in spiking_layers(model):
        values = collect_preactivations(model, images, layers=[name], batch_size=batch_size)[name]
        p = float(np.percentile(values, percentile))
        if p <= 0 and nonpositive == "error":
            raise ValueError(
                f"the {percentile}th percentile of {name}'s pre-activations is {p:.4g} <= 0: "
                "no positive threshold; choose a higher percentile (or nonpositive='keep')"
            )
        if p <= 0:
            method, threshold, scale = "none", _threshold(model, name), 1.0
        else:
            method, threshold, scale = _apply(model, name, p, mode)
        ann_above = None if ann_values is None else float(np.mean(ann_values[name] > p))
        done.append((name, p, method, threshold, scale, float(np.mean(values > p)), ann_above))
    counts = [_run(model, batch, ())[0] for batch in _batches(images, batch_size)]
    rates = spike_rates(
        {
            n: SpikeCount(np.concatenate([c[n].spikes for c in counts]), counts[0][n].neurons)
            for n in counts[0]
        }
    )
    report = [LayerBalance(*record, spike_rate=rates[record[0]]) for record in done]
    return nnx.state(model), report


def _check_mode(snn, mode) -> None:
    """Clear errors, before any work, for a model that ``mode`` cannot balance."""
    cfg = snn.config
    if mode == "threshold":
        if not cfg.learnable_threshold:
            raise ValueError(
                "mode 'threshold' needs per-layer thresholds: learnable_threshold=True"
            )
        if cfg.encoder == "deterministic" and not cfg.learnable_encoder_threshold:
            raise ValueError(
                "mode 'threshold' needs the encoders' thresholds: learnable_encoder_threshold=True"
            )
        return
    for blocks in snn.stages:
        for block in blocks:
            for syn in block.mixer.synapses:
                if not _linear(syn):
                    raise ValueError(
                        f"mode 'scale' needs linear synapses (kernel and bias); the "
                        f"{cfg.mixer!r} mixer has {type(syn).__name__}: use mode='threshold'"
                    )


def _linear(syn) -> bool:
    names = {path[0] for path, _ in nnx.to_flat_state(nnx.state(syn, nnx.Param))}
    return names <= {"kernel", "bias"}


def _apply(model, name: str, p: float, mode: str) -> tuple[str, float, float]:
    """Balances layer ``name`` of ``model`` in place; (method, threshold, scale)."""
    block, layer = name.split(".")
    s, b = (int(i) - 1 for i in block[1:].split("b"))
    mixer = model.stages[s][b].mixer
    if layer == ENCODER:
        enc = mixer.encoder
        if not isinstance(enc.vth, nnx.Param):
            return "none", float(enc.threshold()), 1.0
        _set(enc.vth, p)
        return "threshold", p, 1.0
    k = mixer.lif_names.index(layer)
    lif = mixer.lif[k]
    if mode == "threshold":
        _set(lif.vth, p)
        return "threshold", p, 1.0
    vth = float(lif.options()["vth"])
    syn = mixer.synapses[k]
    for param in (getattr(syn, "kernel", None), getattr(syn, "bias", None)):
        if isinstance(param, nnx.Param):
            param[...] = param[...] * (vth / p)
    return "scale", vth, vth / p


def _threshold(model, name: str) -> float:
    """Layer ``name``'s current threshold."""
    block, layer = name.split(".")
    s, b = (int(i) - 1 for i in block[1:].split("b"))
    mixer = model.stages[s][b].mixer
    if layer == ENCODER:
        return float(mixer.encoder.threshold())
    return float(mixer.lif[mixer.lif_names.index(layer)].options()["vth"])


def _set(param: nnx.Param, value: float) -> None:
    """Sets a scalar Param, keeping its dtype and weak type (no recompiling)."""
    param[...] = jax.lax.full_like(param[...], value)


def _batches(images, batch_size):
    if images.ndim != 4 or not len(images):
        raise ValueError(f"images must be a non-empty (N, H, W, 3) batch, got {images.shape}")
    return [images[i : i + batch_size] for i in range(0, len(images), batch_size)]


def _run(model, images, layers) -> tuple[dict, dict[str, np.ndarray]]:
    """One eval forward of a copy of ``model`` with the pre-activation collection
    on: spike counts and ``name -> flattened float32`` pre-activations of
    ``layers``, copied to the host (the others stay on the device, dropped)."""
    model = nnx.clone(model)
    model.eval()
    model.set_attributes(collect=True, raise_if_not_found=False)
    counts, sown = _captured(model, images)
    values = {}
    for path, value in nnx.to_flat_state(sown):
        # path: ("stages", s, b, "mixer", "preact_<layer>"); one entry per call.
        name = f"{block_name(path[1], path[2])}.{str(path[-1]).removeprefix(PREFIX)}"
        if name in layers:
            values[name] = np.asarray(value.get_value()[0], np.float32).ravel()
    return counts, values


@nnx.jit
def _captured(model, images):
    (_, counts), sown = nnx.capture(model, nnx.Intermediate)(images, stats=True)
    return counts, sown
