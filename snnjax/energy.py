"""Spike statistics, operation counts and the energy estimate (paper Sec. 4.2,
Eq. 13-14, Tables 2-3, Fig. 4; METHOD Sec. 8).

- Spike rate of a layer (Eq. 13): spikes x T / neurons, averaged over images.
- A layer whose input is spikes costs additions: rate(input) x T x dense ops.
- A layer whose input is real-valued costs MACs: dense ops x T.
- Energy (45 nm, Horowitz 2014): 4.6 pJ per 32-bit MAC, 0.9 pJ per addition.
The equivalent ANN does every dense op as a MAC.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

import numpy as np

PJ_PER_MAC = 4.6
PJ_PER_ADD = 0.9
SPIKING_LAYERS = ("encoder", "lif", "lif1", "lif2")


@dataclasses.dataclass(frozen=True)
class LayerOps:
  """One synaptic layer: dense op count per image, and the spike layer that
  feeds it (``spike_input``), or None when its input is real-valued."""

  name: str
  kind: str  # conv, fc, lstm, gru, rnn
  dense_ops: int
  spike_input: str | None = None


@dataclasses.dataclass(frozen=True)
class LayerEnergy:
  name: str
  kind: str
  dense_ops: int
  input_rate: float | None  # None: real-valued input (MACs)
  adds: float
  macs: float

  @property
  def energy_mj(self) -> float:
    return (self.adds * PJ_PER_ADD + self.macs * PJ_PER_MAC) * 1e-9


@dataclasses.dataclass(frozen=True)
class EnergyReport:
  """Per-layer and total operations and energy per image (Table 2)."""

  layers: tuple[LayerEnergy, ...]
  timesteps: int

  @property
  def dense_ops(self) -> int:
    return sum(l.dense_ops for l in self.layers)

  @property
  def adds(self) -> float:
    return sum(l.adds for l in self.layers)

  @property
  def macs(self) -> float:
    return sum(l.macs for l in self.layers)

  @property
  def energy_mj(self) -> float:
    return sum(l.energy_mj for l in self.layers)

  @property
  def ann_energy_mj(self) -> float:
    """The same network run densely: every op a MAC, once."""
    return self.dense_ops * PJ_PER_MAC * 1e-9

  def table(self, per_layer: bool = True) -> str:
    """A Markdown table (operations in millions, energy in mJ per image)."""
    head = ["| layer | kind | dense MACs (M) | input rate | adds (M) | MACs (M) | "
            "energy (mJ) |", "|---|---|---:|---:|---:|---:|---:|"]
    rows = [f"| {l.name} | {l.kind} | {l.dense_ops / 1e6:.3f} | "
            f"{'real' if l.input_rate is None else f'{l.input_rate:.3f}'} | "
            f"{l.adds / 1e6:.3f} | {l.macs / 1e6:.3f} | {l.energy_mj:.4f} |"
            for l in self.layers] if per_layer else []
    total = [f"| **SNN total (T={self.timesteps})** | | {self.dense_ops / 1e6:.2f} | "
             f"| {self.adds / 1e6:.2f} | {self.macs / 1e6:.2f} | "
             f"{self.energy_mj:.3f} |",
             f"| **ANN (dense)** | | {self.dense_ops / 1e6:.2f} | | 0 | "
             f"{self.dense_ops / 1e6:.2f} | {self.ann_energy_mj:.3f} |"]
    return "\n".join(head + rows + total)


def spike_rates(counts: Mapping[str, object]) -> dict[str, float]:
  """Rate per layer (Eq. 13) from ``SpikeCount``s, averaged over images."""
  return {name: float(np.mean(np.asarray(c.spikes)) / float(np.asarray(c.neurons)))
          for name, c in counts.items()}


def is_spiking_layer(name: str) -> bool:
  return name.rsplit(".", 1)[-1] in SPIKING_LAYERS


def mean_spike_rate(counts: Mapping[str, object]) -> float:
  """Mean rate over the LIF layers (the paper's 0.54 conv / 0.32 LSTM)."""
  rates = [r for n, r in spike_rates(counts).items()
           if n.rsplit(".", 1)[-1] in ("lif", "lif1", "lif2")]
  return float(np.mean(rates))


def spikes_per_image(counts: Mapping[str, object]) -> float:
  """Total spikes of all spiking layers for one image (Table 3)."""
  return float(sum(np.mean(np.asarray(c.spikes)) for n, c in counts.items()
                   if is_spiking_layer(n)))


def estimate(operations: Sequence[LayerOps], rates: Mapping[str, float],
             timesteps: int = 1) -> EnergyReport:
  """Adds, MACs and energy per image from the op table and the spike rates."""
  layers = []
  for op in operations:
    if op.spike_input is None:
      layers.append(LayerEnergy(op.name, op.kind, op.dense_ops, None, 0.0,
                                float(op.dense_ops * timesteps)))
      continue
    if op.spike_input not in rates:
      raise ValueError(f"no spike rate for {op.spike_input!r}, the input of "
                       f"{op.name!r}; rates given: {sorted(rates)[:6]}...")
    rate = rates[op.spike_input]
    layers.append(LayerEnergy(op.name, op.kind, op.dense_ops, rate,
                              rate * timesteps * op.dense_ops, 0.0))
  return EnergyReport(tuple(layers), timesteps)
