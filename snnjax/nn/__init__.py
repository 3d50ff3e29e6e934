"""Flax NNX modules of the spiking Sequencer; they call the functional core."""

from snnjax.nn.config import SequencerConfig
from snnjax.nn.layers import MLP, LIFParams, PatchMerging, SpikeCount, SpikeEncoder
from snnjax.nn.mixers import MIXERS, SpikingMixer, create_mixer, register_mixer
from snnjax.nn.recurrent import RecurrentSynapse
from snnjax.nn.sequencer import SequencerBlock, SpikingSequencer

__all__ = [
    "MIXERS",
    "LIFParams",
    "MLP",
    "PatchMerging",
    "RecurrentSynapse",
    "SequencerBlock",
    "SequencerConfig",
    "SpikeCount",
    "SpikeEncoder",
    "SpikingMixer",
    "SpikingSequencer",
    "create_mixer",
    "register_mixer",
]
