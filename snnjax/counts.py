"""What each layer of a model reports: its name, its spikes and its operations.

- :func:`block_name`: the name of a block, ``"s1b1"`` (stage 1, block 1); a
  block's layers are ``"s1b1.lif1"``, ``"s1b1.encoder"`` ...
- :class:`SpikeCount`: the spikes of one spiking layer, per image.
- :class:`LayerOps`: the dense operations of one synaptic layer.

The models (:mod:`snnjax.nn`) produce these records and :mod:`snnjax.energy`
turns them into spike rates and energy; both import this module, neither the
other.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

ENCODER = "encoder"  # the block's spike encoder (not a LIF layer)


def block_name(stage: int, block: int) -> str:
    """``"s{stage + 1}b{block + 1}"``: the name of block ``block`` of stage
    ``stage`` (both counted from 0, as in ``model.stages[stage][block]``)."""
    return f"s{stage + 1}b{block + 1}"


class SpikeCount(NamedTuple):
    """Spikes of one spiking layer for each image (B,), and its neuron count per
    image. Rate (Eq. 13) = spikes / neurons."""

    spikes: object  # array (B,)
    neurons: object  # scalar


@dataclasses.dataclass(frozen=True)
class LayerOps:
    """One synaptic layer: dense op count per image, and the spike layer that
    feeds it (``spike_input``), or None when its input is real-valued."""

    name: str
    kind: str  # conv, fc, lstm, gru, rnn
    dense_ops: int
    spike_input: str | None = None
