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
      conv = lambda cin, cout: WindowConv(cin, cout, (3, 3), dtype=dtype, rngs=rngs)
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
    if not stats:
      return y, out.membrane, None
    layout = window_layout(x.shape[1:3], cfg.grid, self.dilated)
    counts = {"encoder": _window_count(spikes_in, layout)}
    for name, s in zip(self.lif_names, out.window_spikes):
      counts[name] = SpikeCount(s.sum(axis=(0, 2, 3, 4)), jnp.asarray(s[:, 0].size))
    counts["out"] = SpikeCount(out.spikes.sum(axis=(1, 2, 3)),
                               jnp.asarray(out.spikes[0].size))
    return y, out.membrane, counts


def _window_count(spikes: jax.Array, layout) -> SpikeCount:
  """Spikes as the windows see them: overlapped pixels count once per window."""
  coverage = jnp.asarray(layout.coverage(), spikes.dtype)[None, :, :, None]
  h, w = layout.window_shape
  neurons = layout.num_windows * h * w * spikes.shape[-1]
  return SpikeCount((spikes * coverage).sum(axis=(1, 2, 3)), jnp.asarray(neurons))
