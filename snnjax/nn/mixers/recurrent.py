"""The recurrent mixers ("VIT-12" and Table 6): a (bi)directional LSTM, GRU or
vanilla RNN over each window's tokens in row-major order -> one LIF layer. The
preset carries the membrane across stages (the authors' LSTM model)."""

from __future__ import annotations

from snnjax.counts import LayerOps
from snnjax.nn.mixers.base import SpikingMixer, register_mixer, window_pixels
from snnjax.nn.recurrent import CELLS, RecurrentSynapse


class RecurrentMixer(SpikingMixer):
    """Recurrent synapse (hidden = C per direction) -> LIF of width C x directions."""

    cell = "lstm"
    bidirectional = True
    width_factor = 2  # the directions, set for every subclass
    preset = {"carry_membrane": True}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.width_factor = 2 if cls.bidirectional else 1

    def synapses_for(self, config, width, dilated, *, rngs):
        return [
            RecurrentSynapse(
                width,
                width,
                cell=self.cell,
                bidirectional=self.bidirectional,
                unroll=config.unroll,
                dtype=config.dtype,
                rngs=rngs,
            )
        ]

    @classmethod
    def operations(cls, layout, width, config):
        # (c_in + c_out) c_out gates per token and direction: the input part sees
        # spikes, the recurrent part the real-valued state.
        per_token = CELLS[cls.cell] * width * width * (2 if cls.bidirectional else 1)
        ops = per_token * window_pixels(layout)
        return [
            LayerOps(f"{cls.cell}_input", cls.cell, ops, "encoder_windows"),
            LayerOps(f"{cls.cell}_recurrent", cls.cell, ops),
        ]


@register_mixer("lstm")
class LSTMMixer(RecurrentMixer):
    cell, bidirectional = "lstm", True


@register_mixer("gru")
class GRUMixer(RecurrentMixer):
    cell, bidirectional = "gru", True


@register_mixer("rnn")
class RNNMixer(RecurrentMixer):
    cell, bidirectional = "rnn", False


@register_mixer("birnn")
class BiRNNMixer(RecurrentMixer):
    cell, bidirectional = "rnn", True
