"""Spike statistics, operation counts and the energy estimate (paper Sec. 4.2,
Eq. 13-14, Tables 2-3, Fig. 4; METHOD Sec. 8).

- Spike rate of a layer (Eq. 13): spikes x T / neurons, averaged over images.
- Energy (45 nm, Horowitz 2014): 4.6 pJ per 32-bit MAC, 0.9 pJ per addition.

Two accountings (:data:`ACCOUNTINGS`), named in every report:

- ``"layerwise"`` (the default, honest about real values): a layer whose input
  is spikes costs additions, rate(its input) x T x dense ops; a layer whose
  input is real-valued (stem, MLPs, merging, head, recurrent state) costs
  MACs, dense ops x T. The dense ANN does every op as one MAC (4.6 pJ).
- ``"paper"`` (the paper's Table 2 and the field's usual shortcut): MACs only
  for the encoding layer(s) (``encoding_layers``, our stem), additions = the
  mean LIF spike rate x T x the dense ops of every other layer. Its ANN rows
  charge 5.5 pJ per op (4.6 + 0.9: 247 M ops -> 1.36 mJ, printed "1.35 J").
  The paper prints its SNN energies in "mJ"; they are micro-joules
  (132 M x 0.9 pJ + 2.14 M x 4.6 pJ = 128.6 uJ, printed "128 mJ").

Reports give energy in micro-joules (``energy_uj``) and milli-joules
(``energy_mj``) per image.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np

from snnjax.counts import ENCODER, LayerOps, SpikeCount

PJ_PER_MAC = 4.6
PJ_PER_ADD = 0.9
ACCOUNTINGS = ("layerwise", "paper")
ANN_PJ_PER_OP = {"layerwise": PJ_PER_MAC, "paper": PJ_PER_MAC + PJ_PER_ADD}


@dataclasses.dataclass(frozen=True)
class LayerEnergy:
    name: str
    kind: str
    dense_ops: int
    input_rate: float | None  # None: charged as MACs
    adds: float
    macs: float

    @property
    def energy_uj(self) -> float:
        return (self.adds * PJ_PER_ADD + self.macs * PJ_PER_MAC) * 1e-6

    @property
    def energy_mj(self) -> float:
        return self.energy_uj * 1e-3


@dataclasses.dataclass(frozen=True)
class EnergyReport:
    """Per-layer and total operations and energy per image (Table 2)."""

    layers: tuple[LayerEnergy, ...]
    timesteps: int
    accounting: str = "layerwise"

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
    def energy_uj(self) -> float:
        return sum(l.energy_uj for l in self.layers)

    @property
    def energy_mj(self) -> float:
        return self.energy_uj * 1e-3

    @property
    def ann_pj_per_op(self) -> float:
        """What this accounting charges the dense ANN per op."""
        return ANN_PJ_PER_OP[self.accounting]

    @property
    def ann_energy_uj(self) -> float:
        """The same network run densely, once: every op at :attr:`ann_pj_per_op`."""
        return self.dense_ops * self.ann_pj_per_op * 1e-6

    @property
    def ann_energy_mj(self) -> float:
        return self.ann_energy_uj * 1e-3

    def table(self, per_layer: bool = True) -> str:
        """A Markdown table (operations in millions, energy in uJ per image)."""
        head = [
            f"Accounting: {self.accounting}; 45 nm, {PJ_PER_MAC} pJ/MAC, "
            f"{PJ_PER_ADD} pJ/add; ANN at {self.ann_pj_per_op:g} pJ per dense op.",
            "",
            "| layer | kind | dense ops (M) | input rate | adds (M) | MACs (M) | energy (uJ) |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        rows = (
            [
                f"| {l.name} | {l.kind} | {l.dense_ops / 1e6:.3f} | "
                f"{'-' if l.input_rate is None else f'{l.input_rate:.3f}'} | "
                f"{l.adds / 1e6:.3f} | {l.macs / 1e6:.3f} | {l.energy_uj:.3f} |"
                for l in self.layers
            ]
            if per_layer
            else []
        )
        total = [
            f"| **SNN total (T={self.timesteps})** | | {self.dense_ops / 1e6:.2f} | "
            f"| {self.adds / 1e6:.2f} | {self.macs / 1e6:.2f} | "
            f"{self.energy_uj:.2f} |",
            f"| **ANN (dense)** | | {self.dense_ops / 1e6:.2f} | | | "
            f"{self.dense_ops / 1e6:.2f} | {self.ann_energy_uj:.2f} |",
        ]
        return "\n".join(head + rows + total)


def spike_rates(counts: Mapping[str, object]) -> dict[str, float]:
    """Rate per layer (Eq. 13) from :class:`SpikeCount` records, averaged over images."""
    return {
        name: float(np.mean(np.asarray(c.spikes)) / float(np.asarray(c.neurons)))
        for name, c in counts.items()
    }


def lif_layer_names() -> frozenset[str]:
    """The LIF layer names every registered mixer declares (``lif_names`` of
    :data:`snnjax.nn.mixers.MIXERS`; loads the Flax models on first call)."""
    from snnjax.nn.mixers import MIXERS

    return frozenset(n for name in MIXERS.names() for n in MIXERS.get(name).lif_names)


def is_spiking_layer(name: str) -> bool:
    """An encoder or a LIF layer (``"s1b1.lif1"``), not an auxiliary count."""
    return name.rsplit(".", 1)[-1] == ENCODER or is_lif_layer(name)


# A spiking layer firing below SILENT_RATE is nearly silent, above
# SATURATED_RATE saturated (rate_warnings, train/report.py, the stability screen).
SILENT_RATE = 0.01
SATURATED_RATE = 0.99


def rate_warnings(
    rates: Mapping[str, float], floor: float = SILENT_RATE, ceiling: float = SATURATED_RATE
) -> list[str]:
    """One line per spiking layer that is nearly silent (rate < ``floor``: it
    passes almost no signal, and little surrogate gradient) or saturated
    (rate > ``ceiling``: its spikes carry almost no information)."""
    out = []
    for name, rate in rates.items():
        if not is_spiking_layer(name):
            continue
        if rate < floor:
            out.append(f"spiking layer {name} is nearly silent: rate {rate:.4f} < {floor}")
        elif rate > ceiling:
            out.append(f"spiking layer {name} is saturated: rate {rate:.4f} > {ceiling}")
    return out


def is_lif_layer(name: str) -> bool:
    return name.rsplit(".", 1)[-1] in lif_layer_names()


def mean_rate(rates: Mapping[str, float]) -> float:
    """Mean of the LIF layers' rates (the paper's 0.54 conv / 0.32 LSTM)."""
    lif = [r for n, r in rates.items() if is_lif_layer(n)]
    if not lif:
        raise ValueError(
            f"no LIF layer (names ending in {sorted(lif_layer_names())}) among the "
            f"rates given: {sorted(rates)[:6]}..."
        )
    return float(np.mean(lif))


def mean_spike_rate(counts: Mapping[str, SpikeCount]) -> float:
    """:func:`mean_rate` of the counts' rates."""
    return mean_rate(spike_rates(counts))


def spikes_per_image(counts: Mapping[str, SpikeCount]) -> float:
    """Total spikes of all spiking layers (encoders and LIF layers) for one
    image, each spike counted once (Table 3)."""
    return float(
        sum(np.mean(np.asarray(c.spikes)) for n, c in counts.items() if is_spiking_layer(n))
    )


def estimate(
    operations: Sequence[LayerOps],
    rates: Mapping[str, float],
    timesteps: int = 1,
    accounting: str = "layerwise",
    encoding_layers: Sequence[str] = ("stem",),
) -> EnergyReport:
    """Adds, MACs and energy per image from the op table and the spike rates.

    Args:
      operations: the op table (:func:`snnjax.models.operations`).
      rates: spike rate per spiking layer (:func:`spike_rates`).
      timesteps: T (1 for this method).
      accounting: "layerwise" or "paper" (see the module docstring).
      encoding_layers: the layers the "paper" accounting charges as MACs.
    """
    if accounting not in ACCOUNTINGS:
        raise ValueError(f"accounting must be one of {ACCOUNTINGS}, got {accounting!r}")
    if accounting == "paper":
        return _paper_estimate(operations, rates, timesteps, encoding_layers)
    layers = []
    for op in operations:
        if op.spike_input is None:
            layers.append(
                LayerEnergy(
                    op.name, op.kind, op.dense_ops, None, 0.0, float(op.dense_ops * timesteps)
                )
            )
            continue
        if op.spike_input not in rates:
            raise ValueError(
                f"no spike rate for {op.spike_input!r}, the input of "
                f"{op.name!r}; rates given: {sorted(rates)[:6]}..."
            )
        rate = rates[op.spike_input]
        layers.append(
            LayerEnergy(op.name, op.kind, op.dense_ops, rate, rate * timesteps * op.dense_ops, 0.0)
        )
    return EnergyReport(tuple(layers), timesteps, "layerwise")


def _paper_estimate(operations, rates, timesteps, encoding_layers) -> EnergyReport:
    unknown = set(encoding_layers) - {op.name for op in operations}
    if unknown:
        raise ValueError(f"encoding layer(s) {sorted(unknown)} not in the op table")
    s = mean_rate(rates)
    layers = tuple(
        LayerEnergy(op.name, op.kind, op.dense_ops, None, 0.0, float(op.dense_ops * timesteps))
        if op.name in encoding_layers
        else LayerEnergy(op.name, op.kind, op.dense_ops, s, s * timesteps * op.dense_ops, 0.0)
        for op in operations
    )
    return EnergyReport(layers, timesteps, "paper")
