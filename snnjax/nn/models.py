"""Model factory, presets and summaries for the paper's models (Tables 1, 4, 6).

model = snnjax.models.create("conv", num_classes=10)             # Table 1
model = snnjax.models.create("conv", grid=(1, 2), dilated=False)  # Table 4
model = snnjax.models.create("lstm", fusion="linear")             # Fig. 5
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping

import jax
from flax import nnx

from snnjax.counts import LayerOps, block_name
from snnjax.nn.config import SequencerConfig
from snnjax.nn.mixers import MIXERS
from snnjax.nn.sequencer import SpikingSequencer


class _Presets(Mapping):
    """One preset per registered mixer (:data:`snnjax.nn.mixers.MIXERS`), named
    like it: ``{"mixer": name, **mixer.preset}``. "conv" is the paper's
    "ResNET-12F" (no cross-stage membrane carry); "lstm" its "VIT-12" (membrane
    carried across stages, as in the authors' code); "gru", "rnn", "birnn" and
    "mlp" the recurrent mixer's other cells (Table 6)."""

    def __getitem__(self, name: str) -> dict:
        if name not in MIXERS:
            raise KeyError(name)
        return {"mixer": name, **MIXERS.get(name).preset}

    def __iter__(self) -> Iterator[str]:
        return iter(MIXERS.names())

    def __len__(self) -> int:
        return len(MIXERS.names())


PRESETS: Mapping[str, dict] = _Presets()
_FIELDS = {f.name for f in dataclasses.fields(SequencerConfig)}


def config(name: str, num_classes: int = 10, image_size: int = 32, **overrides) -> SequencerConfig:
    """The validated :class:`SequencerConfig` of preset ``name`` with overrides."""
    if name not in PRESETS:
        raise ValueError(f"unknown model {name!r}; presets: {sorted(PRESETS)}")
    unknown = set(overrides) - _FIELDS
    if unknown:
        raise ValueError(f"unknown override(s) {sorted(unknown)}; valid: {sorted(_FIELDS)}")
    if "grid" in overrides and isinstance(overrides["grid"], int):
        overrides["grid"] = (overrides["grid"], overrides["grid"])
    for key in ("grid", "depths", "widths"):
        if key in overrides:
            overrides[key] = tuple(overrides[key])
    if isinstance(overrides.get("surrogate_params"), dict):
        overrides["surrogate_params"] = tuple(sorted(overrides["surrogate_params"].items()))
    fields = {**PRESETS[name], "num_classes": num_classes, "image_size": image_size, **overrides}
    return SequencerConfig(**fields).validate()


def create(
    name: str, num_classes: int = 10, image_size: int = 32, *, rngs: nnx.Rngs | int = 0, **overrides
) -> SpikingSequencer:
    """Builds preset ``name`` (see :data:`PRESETS`); overrides are
    :class:`SequencerConfig` fields. Bad names and impossible combinations raise
    ValueError here, at construction."""
    cfg = config(name, num_classes, image_size, **overrides)
    if isinstance(rngs, int):
        rngs = nnx.Rngs(rngs)
    return SpikingSequencer(cfg, rngs=rngs)


def operations(cfg: SequencerConfig) -> list[LayerOps]:
    """Dense op count of every synaptic layer per image (METHOD Sec. 8): the
    mixer's own rows (:meth:`SpikingMixer.operations`: conv k_h k_w c_in c_out
    over all window pixels; recurrent (c_in + c_out) c_out gates per token and
    direction, input part fed by spikes, recurrent part real), and fully
    connected f_in f_out per token for the rest."""
    ops = []
    sides, widths = cfg.stage_sizes(), cfg.widths
    p = cfg.patch_size
    ops.append(LayerOps("stem", "conv", p * p * 3 * widths[0] * sides[0] ** 2))
    for s, (side, depth, c) in enumerate(zip(sides, cfg.depths, widths)):
        if s > 0:
            prev = widths[s - 1]
            ops.append(LayerOps(f"s{s + 1}.merge", "fc", 4 * prev * 2 * prev * side**2))
            if cfg.carry_membrane:
                m = prev * cfg.lif_width_factor
                ops.append(LayerOps(f"s{s + 1}.membrane_merge", "fc", 8 * m * m * side**2))
        lif = c * cfg.lif_width_factor
        tokens = side * side
        for b in range(depth):
            name = block_name(s, b)
            layout = cfg.block_layout(s, b)
            for op in MIXERS.get(cfg.mixer).operations(layout, c, cfg):
                ops.append(
                    dataclasses.replace(
                        op,
                        name=f"{name}.{op.name}",
                        spike_input=op.spike_input and f"{name}.{op.spike_input}",
                    )
                )
            ops.append(LayerOps(f"{name}.proj", "fc", lif * c * tokens, f"{name}.out"))
            ops.append(LayerOps(f"{name}.mlp_fc1", "fc", c * cfg.mlp_ratio * c * tokens))
            ops.append(LayerOps(f"{name}.mlp_fc2", "fc", c * cfg.mlp_ratio * c * tokens))
    ops.append(LayerOps("head", "fc", widths[-1] * cfg.num_classes))
    return ops


@dataclasses.dataclass(frozen=True)
class ModelSummary:
    params: int
    dense_macs: int
    stages: tuple[tuple[tuple[int, int, int], str], ...]  # ((H, W, C), "NDND")

    def __str__(self) -> str:
        lines = [
            f"parameters (used in forward): {self.params / 1e6:.3f} M",
            f"dense MACs per image:         {self.dense_macs / 1e6:.1f} M",
        ]
        for i, (shape, pattern) in enumerate(self.stages):
            lines.append(
                f"stage {i + 1}: map {shape[0]}x{shape[1]}x{shape[2]}, blocks {' '.join(pattern)}"
            )
        return "\n".join(lines)


def count_params(params: nnx.Module | nnx.State) -> int:
    """The number of parameters of a model, or of its parameter state (a train
    state's ``params``)."""
    if isinstance(params, nnx.Module):
        params = nnx.state(params, nnx.Param)
    return sum(x.size for x in jax.tree.leaves(params))


def summary(model: SpikingSequencer) -> ModelSummary:
    """Parameters, dense MACs per image and the per-stage shapes and window
    pattern (N normal, D dilated) of a model built by :func:`create`."""
    cfg = model.config
    stages = tuple(
        (
            (side, side, c),
            "".join("D" if cfg.block_layout(s, b).dilated else "N" for b in range(depth)),
        )
        for s, (side, depth, c) in enumerate(zip(cfg.stage_sizes(), cfg.depths, cfg.widths))
    )
    return ModelSummary(count_params(model), sum(op.dense_ops for op in operations(cfg)), stages)
