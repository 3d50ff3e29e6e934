"""The token-MLP mixer (Table 6): token-wise Linear(C -> 2C) -> LIF."""

from __future__ import annotations

from flax import nnx

from snnjax.counts import LayerOps
from snnjax.nn.mixers.base import SpikingMixer, register_mixer, window_pixels


@register_mixer("mlp")
class MLPMixer(SpikingMixer):
    width_factor = 2
    preset = {"carry_membrane": True}

    def synapses_for(self, config, width, dilated, *, rngs):
        return [nnx.Linear(width, width * self.width_factor, dtype=config.dtype, rngs=rngs)]

    @classmethod
    def operations(cls, layout, width, config):
        return [
            LayerOps(
                "token_fc",
                "fc",
                width * width * cls.width_factor * window_pixels(layout),
                "encoder_windows",
            )
        ]
