"""The conv mixer ("ResNET-12F"): conv3x3(C -> C) -> LIF -> conv3x3(C -> C) -> LIF
inside every window."""

from __future__ import annotations

from flax import nnx

from snnjax.counts import LayerOps
from snnjax.nn.config import SequencerConfig
from snnjax.nn.conv import WindowConv
from snnjax.nn.mixers.base import SpikingMixer, register_mixer, window_pixels
from snnjax.windows import WindowLayout, window_layout

KERNEL = (3, 3)


@register_mixer("conv")
class ConvMixer(SpikingMixer):
    lif_names = ("lif1", "lif2")

    def synapses_for(self, config, width, dilated, *, rngs):
        init = _conv_init(config, width, dilated)
        return [
            WindowConv(width, width, KERNEL, kernel_init=init, dtype=config.dtype, rngs=rngs)
            for _ in range(2)
        ]

    @classmethod
    def operations(cls, layout, width, config):
        ops = KERNEL[0] * KERNEL[1] * width * width * window_pixels(layout)
        return [
            LayerOps("conv1", "conv", ops, "encoder_windows"),
            LayerOps("conv2", "conv", ops, "lif1"),
        ]


def taps_in_window(kernel_size: tuple[int, int], window_shape: tuple[int, int]) -> float:
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
    layout: WindowLayout = window_layout((side, side), config.grid, dilated)
    taps = taps_in_window(KERNEL, layout.window_shape)
    return nnx.initializers.variance_scaling(
        config.init_gain**2 * (KERNEL[0] * KERNEL[1]) / taps, "fan_in", "truncated_normal"
    )
