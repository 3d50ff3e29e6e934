"""Spiking token mixers: the only spiking part of the model (METHOD Sec. 6).

block input (real) -> encoder spikes -> windowed LIF layer(s) via
:func:`snnjax.window_lif` -> recomposed spike map -> Linear back to C channels.
The mixer returns its last LIF layer's membrane map, which the next block fuses
(Eq. 5), and on request the spike counts of its spiking layers.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from snnjax.layer import window_lif
from snnjax.nn.config import SequencerConfig
from snnjax.nn.conv import WindowConv
from snnjax.nn.layers import LIFParams, SpikeCount, SpikeEncoder
from snnjax.nn.probe import measure
from snnjax.nn.recurrent import RecurrentSynapse
from snnjax.windows import window_layout

RECURRENT = {"lstm": ("lstm", True), "gru": ("gru", True), "rnn": ("rnn", False),
             "birnn": ("rnn", True)}


class SpikingMixer(nnx.Module):
  """Windowed spiking token mixer for one block.

  conv: conv3x3(C -> C) -> LIF -> conv3x3(C -> C) -> LIF inside every window.
  lstm / gru / rnn / birnn: recurrent synapse over each window's tokens -> LIF.
  mlp: token-wise Linear(C -> 2C) -> LIF.
  """

  def __init__(self, config: SequencerConfig, width: int, dilated: bool, *,
               rngs: nnx.Rngs):
    self.config, self.dilated = config, dilated
    dtype = config.dtype
    self.lif_width = width * config.lif_width_factor
    self.encoder = SpikeEncoder(config, rngs=rngs)
    if config.mixer == "conv":
      init = _conv_init(config, width, dilated)
      conv = lambda cin, cout: WindowConv(cin, cout, (3, 3), kernel_init=init,
                                          dtype=dtype, rngs=rngs)
      self.synapses = nnx.List([conv(width, width), conv(width, width)])
    elif config.mixer == "mlp":
      self.synapses = nnx.List([nnx.Linear(width, self.lif_width, dtype=dtype,
                                           rngs=rngs)])
    else:
      cell, bidirectional = RECURRENT[config.mixer]
      self.synapses = nnx.List([RecurrentSynapse(
          width, width, cell=cell, bidirectional=bidirectional,
          unroll=config.unroll, dtype=dtype, rngs=rngs)])
    self.lif = nnx.List([LIFParams(config) for _ in self.synapses])
    self.proj = nnx.Linear(self.lif_width, width, dtype=dtype, rngs=rngs)
    self.probe = False  # :func:`snnjax.nn.probe.membrane_stats` turns it on

  @property
  def lif_names(self) -> tuple[str, ...]:
    return ("lif1", "lif2") if len(self.synapses) == 2 else ("lif",)

  def __call__(self, x: jax.Array, membrane: jax.Array | None, *,
               stats: bool = False):
    """Returns ``(y, membrane_out, counts)``; counts is None unless ``stats``."""
    cfg = self.config
    spikes_in = self.encoder(x)
    out = window_lif(spikes_in, list(self.synapses), membrane, grid=cfg.grid,
                     dilated=self.dilated, region_threshold=cfg.region_threshold,
                     per_layer=[lif.options() for lif in self.lif],
                     **cfg.neuron_options())
    y = self.proj(out.spikes)
    if self.probe:
      self._sow_membranes(x, out.window_membranes)
    if not stats:
      return y, out.membrane, None
    layout = window_layout(x.shape[1:3], cfg.grid, self.dilated)
    counts = {"encoder": SpikeCount(spikes_in.sum(axis=(1, 2, 3)),
                                    jnp.asarray(spikes_in[0].size)),
              "encoder_windows": _window_count(spikes_in, layout)}
    for name, s in zip(self.lif_names, out.window_spikes):
      counts[name] = SpikeCount(s.sum(axis=(0, 2, 3, 4)), jnp.asarray(s[:, 0].size))
    counts["out"] = SpikeCount(out.spikes.sum(axis=(1, 2, 3)),
                               jnp.asarray(out.spikes[0].size))
    return y, out.membrane, counts


  def _sow_membranes(self, x, membranes) -> None:
    cfg = self.config
    sur = (cfg.surrogate, dict(cfg.surrogate_params))
    self.sow(nnx.Intermediate, "probe_encoder", measure(x, cfg.vth, *sur))
    for name, v, lif in zip(self.lif_names, membranes, self.lif):
      self.sow(nnx.Intermediate, f"probe_{name}",
               measure(v, lif.options()["vth"], *sur))


def taps_in_window(kernel_size: tuple[int, int],
                   window_shape: tuple[int, int]) -> float:
  """Mean number of a 'SAME' kernel's taps that land inside the window, over
  the window's pixels (the rest multiply the zero padding at its border)."""
  taps = 1.0
  for k, n in zip(kernel_size, window_shape):
    taps *= sum(max(0, n - abs(d)) for d in range(-(k // 2), k // 2 + 1)) / n
  return taps


def _conv_init(config: SequencerConfig, width: int, dilated: bool):
  """The conv synapses' kernel initialiser (``config.synapse_init``)."""
  if config.synapse_init == "lecun":
    return nnx.initializers.lecun_normal()
  side = config.stage_sizes()[config.widths.index(width)]
  layout = window_layout((side, side), config.grid, dilated)
  taps = taps_in_window((3, 3), layout.window_shape)
  return nnx.initializers.variance_scaling(
      config.init_gain ** 2 * 9 / taps, "fan_in", "truncated_normal")


def _window_count(spikes: jax.Array, layout) -> SpikeCount:
  """The encoder's spikes as the window synapses read them: a pixel covered by
  k dilated windows counts k times (the input of the first synapse, for
  counting its additions; spikes per image count each spike once)."""
  coverage = jnp.asarray(layout.coverage(), spikes.dtype)[None, :, :, None]
  h, w = layout.window_shape
  neurons = layout.num_windows * h * w * spikes.shape[-1]
  return SpikeCount((spikes * coverage).sum(axis=(1, 2, 3)), jnp.asarray(neurons))
