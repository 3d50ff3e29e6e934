"""The configuration of a spiking Sequencer (METHOD Sec. 3-6): one frozen record
that every module reads and that :func:`snnjax.models.create` validates."""

from __future__ import annotations

import dataclasses
from typing import Any

from snnjax import _checks
from snnjax import neuron as lif
from snnjax.fusion import get_fusion
from snnjax.neuron import RESETS
from snnjax.surrogate import get_surrogate
from snnjax.windows import WindowLayout, window_layout

ENCODERS = ("deterministic", "bernoulli")
NEURONS = ("lif", "relu", "clip")
SYNAPSE_INITS = ("lecun", "window")


@dataclasses.dataclass(frozen=True)
class SequencerConfig:
    """Every switch of the paper's models and ablations.

    Attributes:
      mixer: a name registered in :data:`snnjax.nn.mixers.MIXERS`: "conv"
        (conv3x3 -> LIF -> conv3x3 -> LIF per window), "lstm" / "gru" / "birnn"
        (bidirectional), "rnn" (one direction), "mlp" (token-wise Linear).
      grid, dilated: window grid and whether blocks alternate normal/dilated
        windows (N D N D ..., last stage all normal; Table 4).
      fusion, theta: membrane fusion (Eq. 5, Fig. 5).
      reset: "soft" (subtract vth * S: the paper's Eq. 6/9), "hard" or "none"
        (the authors' code: the membrane is never reset within a layer call).
      synapse_init, init_gain: the conv synapses' kernels. "lecun": variance
        1 / (9 C_in), as for a dense conv. "window": variance init_gain^2 /
        (C_in * taps), taps = the kernel taps that reach a window pixel on average
        (9 on large windows, 4 on 2x2, 1 on 1x1): input spikes at rate r give
        currents of std init_gain * sqrt(r) at every window size (1.0, on the scale
        of vth, for r = 0.25 and the default gain 2).
      region_threshold: Th_R for recomposed spikes; None keeps median spikes
        (Table 1 "MSp").
      carry_membrane: carry the membrane across stage boundaries through a learnable
        patch merging (the authors' LSTM model).
      neuron: "lif" (the SNN) or the ANN counterpart for conversion-initialised
        training (METHOD Sec. 7, docs/conversion.md): every spiking non-linearity
        (the block's encoder and each LIF layer in the windows) becomes an
        activation of its input x, with the same parameter tree and dense ops.
        "relu": max(x, 0) (Chowdhury et al. 2022's ANN). "clip": clip(x / vth,
        0, 1), a ReLU clipped at the layer's threshold and divided by it, so the
        next synapse sees values in the spike's range [0, 1] (a T = 1 spike is
        this activation rounded down: H(x - vth) = floor(clip(x / vth, 0, 1)) but at x = vth),
        and a learnable threshold is trained in the ANN too; for the Bernoulli
        encoder it is clip(x, 0, 1), the spike's expectation. The ANN carries no
        membrane: each window is independent, fusion is skipped, recomposed maps
        are the mean of overlapping windows (no region threshold).
      learnable_encoder_threshold: each block's encoder holds its own threshold
        Param (deterministic encoder only), as ``learnable_threshold`` gives each
        LIF layer; needed to balance the encoders' thresholds
        (:func:`snnjax.conversion.balance`). Off by default: the tree is unchanged.
    """

    mixer: str = "conv"
    num_classes: int = 10
    image_size: int = 32
    depths: tuple[int, ...] = (2, 2, 6, 2)
    widths: tuple[int, ...] = (48, 96, 192, 384)
    mlp_ratio: int = 3
    grid: tuple[int, int] = (2, 2)
    dilated: bool = True
    fusion: str = lif.FUSION
    theta: float = lif.THETA
    region_threshold: float | None = 0.1
    encoder: str = "deterministic"
    reset: str = lif.RESET
    synapse_init: str = "lecun"
    init_gain: float = 2.0
    surrogate: str = lif.SURROGATE
    surrogate_params: tuple[tuple[str, float], ...] = ()
    alpha: float = lif.ALPHA
    vth: float = lif.VTH
    learnable_threshold: bool = False
    learnable_leak: bool = False
    pre_norm: bool = False
    carry_membrane: bool = False
    dropout: float = 0.1
    unroll: int = 1
    remat: bool = False
    dtype: Any = None  # compute dtype (e.g. jnp.bfloat16); parameters stay float32
    neuron: str = "lif"
    learnable_encoder_threshold: bool = False

    @property
    def spiking(self) -> bool:
        """The SNN (LIF neurons), not its ANN counterpart (``neuron``)."""
        return self.neuron == "lif"

    @property
    def patch_size(self) -> int:
        """Stem stride: 2 for 32x32 (16x16 maps), 4 for 64x64 (also 16x16 maps)."""
        return self.image_size // 16

    def stage_sizes(self) -> tuple[int, ...]:
        side = self.image_size // self.patch_size
        return tuple(side // 2**i for i in range(len(self.depths)))

    def block_dilated(self, stage: int, block: int) -> bool:
        """N D N D ... inside each stage; the last stage is all normal (Sec. 4)."""
        last = stage == len(self.depths) - 1
        return self.dilated and not last and block % 2 == 1

    def neuron_options(self) -> dict:
        """The options every LIF layer shares (:func:`snnjax.lif_scan`)."""
        return dict(
            reset=self.reset,
            fusion=self.fusion,
            theta=self.theta,
            surrogate=self.surrogate,
            surrogate_params=dict(self.surrogate_params),
            unroll=self.unroll,
            remat=self.remat,
        )

    def block_layout(self, stage: int, block: int) -> WindowLayout:
        """The window layout of a block (normal or dilated, on its stage's map)."""
        side = self.stage_sizes()[stage]
        return window_layout((side, side), self.grid, self.block_dilated(stage, block))

    @property
    def lif_width_factor(self) -> int:
        """LIF width over C, as the mixer declares it (``width_factor``)."""
        return _mixer(self.mixer).width_factor

    def validate(self) -> SequencerConfig:
        _mixer(self.mixer)
        _checks.one_of(self.encoder, ENCODERS, "encoder")
        _checks.one_of(self.neuron, NEURONS, "neuron")
        if self.learnable_encoder_threshold and self.encoder != "deterministic":
            raise ValueError(
                f"learnable_encoder_threshold needs the deterministic encoder (the "
                f"{self.encoder!r} encoder has no threshold)"
            )
        _checks.one_of(self.reset, RESETS, "reset")
        _checks.one_of(self.synapse_init, SYNAPSE_INITS, "synapse_init")
        _checks.positive(self.init_gain, "init_gain")
        get_fusion(self.fusion)
        get_surrogate(self.surrogate).params(**dict(self.surrogate_params))
        if self.num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {self.num_classes}")
        if self.image_size not in (32, 64):
            raise ValueError(
                f"image_size must be 32 (CIFAR) or 64 (Tiny-ImageNet), got {self.image_size}"
            )
        if len(self.depths) != len(self.widths) or not self.depths:
            raise ValueError(
                f"depths {self.depths} and widths {self.widths} must be "
                f"non-empty and of equal length"
            )
        for i in range(1, len(self.widths)):
            if self.widths[i] != 2 * self.widths[i - 1]:
                raise ValueError(
                    f"patch merging doubles the width: widths must double "
                    f"per stage, got {self.widths}"
                )
        if not self.theta > 0:
            raise ValueError(f"theta must be positive, got {self.theta}")
        _checks.positive(self.vth, "vth")
        if self.region_threshold is not None and not 0 <= self.region_threshold < 1:
            raise ValueError(
                f"region_threshold must be in [0, 1) or None, got {self.region_threshold}"
            )
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.stage_sizes()[-1] < 1 or self.image_size % (
            self.patch_size * 2 ** (len(self.depths) - 1)
        ):
            raise ValueError(f"{len(self.depths)} stages do not fit image_size {self.image_size}")
        for s, (side, depth) in enumerate(zip(self.stage_sizes(), self.depths)):
            for b in range(depth):
                try:
                    self.block_layout(s, b)
                except ValueError as e:
                    raise ValueError(
                        f"grid {self.grid} (dilated={self.block_dilated(s, b)}) "
                        f"impossible in stage {s + 1} ({side}x{side} maps): {e}"
                    ) from None
        return self


def _mixer(name: str):
    """The mixer class registered as ``name`` (the mixers import this module)."""
    from snnjax.nn.mixers import mixer_class

    return mixer_class(name)
