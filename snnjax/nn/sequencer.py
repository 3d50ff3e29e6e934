"""The 12-block spiking Sequencer (METHOD Sec. 6).

stem (patch conv) -> 4 stages of blocks [2, 2, 6, 2], widths [48, 96, 192, 384],
patch merging between stages -> global average pool -> zero-initialised head.
Block: ``x = x + mixer(x)``, ``x = x + MLP(x)``. The membrane map of each block's
last LIF layer is passed explicitly to the next block (fused by Eq. 5). The ANN
counterpart (``config.neuron``) passes none: no fusion, and with
``carry_membrane`` its ``membrane_merges`` are kept in the tree but not used.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from snnjax.counts import block_name
from snnjax.nn.config import SequencerConfig
from snnjax.nn.layers import MLP, PatchMerging, SpikeCount
from snnjax.nn.mixers import create_mixer


class SequencerBlock(nnx.Module):
    def __init__(self, config: SequencerConfig, width: int, dilated: bool, *, rngs: nnx.Rngs):
        self.dilated = dilated
        norm = lambda: (
            nnx.LayerNorm(width, dtype=config.dtype, rngs=rngs) if config.pre_norm else None
        )
        self.norm1, self.norm2 = norm(), norm()
        self.mixer = create_mixer(config, width, dilated, rngs=rngs)
        self.mixer_dropout = nnx.Dropout(config.dropout, rngs=rngs)
        self.mlp = MLP(width, config.mlp_ratio, config.dropout, dtype=config.dtype, rngs=rngs)

    def __call__(self, x, membrane, *, stats: bool = False):
        h = self.norm1(x) if self.norm1 is not None else x
        y, membrane, counts = self.mixer(h, membrane, stats=stats)
        x = x + self.mixer_dropout(y)
        h = self.norm2(x) if self.norm2 is not None else x
        return x + self.mlp(h), membrane, counts


class SpikingSequencer(nnx.Module):
    """The backbone and head. Call: ``logits = model(images)`` or
    ``logits, counts = model(images, stats=True)`` with ``counts`` a dict
    ``"s{stage}b{block}.{layer}" -> SpikeCount`` (per image spikes, neurons)."""

    def __init__(self, config: SequencerConfig, *, rngs: nnx.Rngs):
        self.config = config.validate()
        dtype, widths = config.dtype, config.widths
        p = config.patch_size
        self.stem = nnx.Conv(
            3, widths[0], (p, p), strides=p, padding="VALID", dtype=dtype, rngs=rngs
        )
        self.stages = nnx.List(
            [
                nnx.List(
                    [
                        SequencerBlock(config, width, config.block_dilated(s, b), rngs=rngs)
                        for b in range(depth)
                    ]
                )
                for s, (depth, width) in enumerate(zip(config.depths, widths))
            ]
        )
        self.merges = nnx.List([PatchMerging(w, dtype=dtype, rngs=rngs) for w in widths[:-1]])
        lif = config.lif_width_factor
        self.membrane_merges = nnx.List(
            [PatchMerging(lif * w, dtype=dtype, rngs=rngs) for w in widths[:-1]]
            if config.carry_membrane
            else []
        )
        self.head = nnx.Linear(
            widths[-1], config.num_classes, kernel_init=nnx.initializers.zeros, rngs=rngs
        )

    def __call__(self, images: jax.Array, *, stats: bool = False):
        cfg = self.config
        expected = (cfg.image_size, cfg.image_size, 3)
        if images.ndim != 4 or images.shape[1:] != expected:
            raise ValueError(
                f"images must have shape (B, {expected[0]}, {expected[1]}, 3), got {images.shape}"
            )
        x = self.stem(images.astype(cfg.dtype or images.dtype))
        membrane = None
        all_counts: dict[str, SpikeCount] = {}
        for s, blocks in enumerate(self.stages):
            if s > 0:
                x = self.merges[s - 1](x)
                carry = cfg.carry_membrane and cfg.spiking  # the ANN has no membrane
                membrane = self.membrane_merges[s - 1](membrane) if carry else None
            for b, block in enumerate(blocks):
                x, membrane, counts = block(x, membrane, stats=stats)
                if stats:
                    all_counts.update({f"{block_name(s, b)}.{k}": v for k, v in counts.items()})
        logits = self.head(jnp.mean(x, axis=(1, 2)).astype(jnp.float32))
        return (logits, all_counts) if stats else logits
