"""Spiking token mixers: the only spiking part of the model (METHOD Sec. 6), and
the unit of extension.

block input (real) -> encoder spikes -> windowed LIF layer(s) via
:func:`snnjax.window_lif` -> recomposed spike map -> Linear back to C channels.
The mixer returns its last LIF layer's membrane map, which the next block fuses
(Eq. 5), and on request the spike counts of its spiking layers.

A mixer is one :class:`SpikingMixer` subclass registered by name
(:func:`register_mixer`). It declares everything the rest of the library asks
about it: its synapses (:meth:`SpikingMixer.synapses_for`), the names of its LIF
layers (``lif_names``), its LIF width over C (``width_factor``), the preset's
other fields (``preset``) and its dense op rows (:meth:`SpikingMixer.operations`).
The config's list of mixers, the model presets, the op table, the energy
estimate's LIF layers and the run report read them from :data:`MIXERS`.
"""

from __future__ import annotations

import functools
from typing import ClassVar

import jax
import jax.numpy as jnp
from flax import nnx

from snnjax._registry import Registry
from snnjax.counts import LayerOps, SpikeCount
from snnjax.nn.config import SequencerConfig
from snnjax.nn.layers import LIFParams, SpikeEncoder, activation
from snnjax.nn.membrane_probe import measure
from snnjax.window_layer import window_lif
from snnjax.windows import WindowLayout, window_layout


class SpikingMixer(nnx.Module):
    """Windowed spiking token mixer for one block (the base of every mixer).

    Subclasses set the class attributes and implement :meth:`synapses_for` and
    :meth:`operations`; the call (encoder, :func:`snnjax.window_lif`, projection,
    spike counts, membrane probe) is shared.
    """

    name: ClassVar[str] = ""  # set by :func:`register_mixer`
    lif_names: ClassVar[tuple[str, ...]] = ("lif",)  # one per synapse, in order
    width_factor: ClassVar[int] = 1  # LIF width over the block width C
    preset: ClassVar[dict] = {}  # the preset's other fields

    def __init__(self, config: SequencerConfig, width: int, dilated: bool, *, rngs: nnx.Rngs):
        self.config, self.dilated = config, dilated
        self.lif_width = width * self.width_factor
        self.encoder = SpikeEncoder(config, rngs=rngs)
        self.synapses = nnx.List(self.synapses_for(config, width, dilated, rngs=rngs))
        if len(self.synapses) != len(self.lif_names):
            raise ValueError(
                f"mixer {self.name!r}: {len(self.synapses)} synapses but LIF "
                f"layers {self.lif_names}"
            )
        self.lif = nnx.List([LIFParams(config) for _ in self.synapses])
        self.proj = nnx.Linear(self.lif_width, width, dtype=config.dtype, rngs=rngs)
        self.probe = False  # :func:`snnjax.nn.membrane_probe.membrane_stats` turns it on
        self.collect = False  # :mod:`snnjax.conversion` turns it on (pre-activations)

    def synapses_for(
        self, config: SequencerConfig, width: int, dilated: bool, *, rngs: nnx.Rngs
    ) -> list:
        """The synaptic operators, one per LIF layer: each maps the windows
        (N, h, w, C_in) to currents (N, h, w, C_out); the last one's C_out is
        ``width * width_factor``."""
        raise NotImplementedError

    @classmethod
    def operations(
        cls, layout: WindowLayout, width: int, config: SequencerConfig
    ) -> list[LayerOps]:
        """Dense op rows of the synapses per image (METHOD Sec. 8), names relative
        to the block; ``spike_input`` names the spike layer that feeds a row
        (``"encoder_windows"`` or one of ``lif_names``), None for real inputs."""
        raise NotImplementedError

    def __call__(self, x: jax.Array, membrane: jax.Array | None, *, stats: bool = False):
        """Returns ``(y, membrane_out, counts)``; counts is None unless ``stats``.

        The ANN counterpart (``config.neuron`` "relu" / "clip"; the same
        parameters and dense ops) applies :func:`snnjax.nn.layers.activation`
        instead of the encoder's and the LIF layers' spikes, carries no membrane
        (``membrane`` must be None and None is returned) and counts non-zero
        activations as its "spikes"."""
        cfg = self.config
        spikes_in = self.encoder(x)
        per_layer = [lif.options() for lif in self.lif]
        # The SNN's call is unchanged (benchmarks/train_step.py replaces it).
        ann = {}
        if not cfg.spiking:
            acts = [functools.partial(activation, cfg.neuron, vth=o["vth"]) for o in per_layer]
            ann = {"activation": acts}
        out = window_lif(
            spikes_in,
            list(self.synapses),
            membrane,
            grid=cfg.grid,
            dilated=self.dilated,
            region_threshold=cfg.region_threshold,
            per_layer=per_layer,
            **ann,
            **cfg.neuron_options(),
        )
        y = self.proj(out.spikes)
        if self.probe:
            self._sow_membranes(x, out.window_membranes)
        if self.collect:
            self.sow(nnx.Intermediate, "preact_encoder", x)
            for name, current in zip(self.lif_names, out.window_currents):
                self.sow(nnx.Intermediate, f"preact_{name}", current)
        if not stats:
            return y, out.membrane, None
        layout = window_layout(x.shape[1:3], cfg.grid, self.dilated)
        active = (lambda a: a) if cfg.spiking else (lambda a: (a > 0).astype(a.dtype))
        spikes_in, out_spikes = active(spikes_in), active(out.spikes)
        counts = {
            "encoder": SpikeCount(spikes_in.sum(axis=(1, 2, 3)), jnp.asarray(spikes_in[0].size)),
            "encoder_windows": _window_count(spikes_in, layout),
        }
        for name, s in zip(self.lif_names, map(active, out.window_spikes)):
            counts[name] = SpikeCount(s.sum(axis=(0, 2, 3, 4)), jnp.asarray(s[:, 0].size))
        counts["out"] = SpikeCount(out_spikes.sum(axis=(1, 2, 3)), jnp.asarray(out_spikes[0].size))
        return y, out.membrane, counts

    def _sow_membranes(self, x, membranes) -> None:
        cfg = self.config
        sur = (cfg.surrogate, dict(cfg.surrogate_params))
        self.sow(nnx.Intermediate, "probe_encoder", measure(x, self.encoder.threshold(), *sur))
        for name, v, lif in zip(self.lif_names, membranes, self.lif):
            self.sow(nnx.Intermediate, f"probe_{name}", measure(v, lif.options()["vth"], *sur))


MIXERS: Registry[type[SpikingMixer]] = Registry("mixer")


def register_mixer(name: str, *, override: bool = False):
    """Class decorator: registers a :class:`SpikingMixer` subclass as ``name``
    (the config's ``mixer`` and a model preset of the same name)."""

    def register(cls: type[SpikingMixer]) -> type[SpikingMixer]:
        if not (isinstance(cls, type) and issubclass(cls, SpikingMixer)):
            raise TypeError(f"a mixer must subclass SpikingMixer, got {cls!r}")
        if not cls.lif_names or not all(n.startswith("lif") for n in cls.lif_names):
            raise ValueError(
                f"mixer {name!r}: LIF layer names must start with 'lif', got {cls.lif_names}"
            )
        cls.name = name
        MIXERS.register(name, cls, override=override)
        return cls

    return register


def mixer_class(name: str) -> type[SpikingMixer]:
    """The mixer registered as ``name`` (ValueError naming the registered ones)."""
    return MIXERS.get(name)


def create_mixer(
    config: SequencerConfig, width: int, dilated: bool, *, rngs: nnx.Rngs
) -> SpikingMixer:
    """The mixer of ``config.mixer`` for a block of ``width`` channels."""
    return mixer_class(config.mixer)(config, width, dilated, rngs=rngs)


def window_pixels(layout: WindowLayout) -> int:
    """Pixels over all windows (a dilated layout covers some pixels twice)."""
    h, w = layout.window_shape
    return layout.num_windows * h * w


def _window_count(spikes: jax.Array, layout) -> SpikeCount:
    """The encoder's spikes as the window synapses read them: a pixel covered by
    k dilated windows counts k times (the input of the first synapse, for
    counting its additions; spikes per image count each spike once)."""
    coverage = jnp.asarray(layout.coverage(), spikes.dtype)[None, :, :, None]
    neurons = window_pixels(layout) * spikes.shape[-1]
    return SpikeCount((spikes * coverage).sum(axis=(1, 2, 3)), jnp.asarray(neurons))
