"""Model factory, presets and summaries for the paper's models (Tables 1, 4, 6).

    model = snnjax.models.create("conv", num_classes=10)             # Table 1
    model = snnjax.models.create("conv", grid=(1, 2), dilated=False)  # Table 4
    model = snnjax.models.create("lstm", fusion="linear")             # Fig. 5
"""

from __future__ import annotations

import dataclasses

import jax
from flax import nnx

from snnjax.energy import LayerOps
from snnjax.nn.config import SequencerConfig
from snnjax.nn.mixers import RECURRENT
from snnjax.nn.recurrent import CELLS
from snnjax.nn.sequencer import SpikingSequencer

PRESETS: dict[str, dict] = {
    # "ResNET-12F" in the paper: conv mixer, no cross-stage membrane carry.
    "conv": dict(mixer="conv"),
    # "VIT-12": BiLSTM mixer, membrane carried across stages (the authors' code).
    "lstm": dict(mixer="lstm", carry_membrane=True),
    # Table 6: the recurrent mixer with other cells.
    "gru": dict(mixer="gru", carry_membrane=True),
    "rnn": dict(mixer="rnn", carry_membrane=True),
    "birnn": dict(mixer="birnn", carry_membrane=True),
    "mlp": dict(mixer="mlp", carry_membrane=True),
}
_FIELDS = {f.name for f in dataclasses.fields(SequencerConfig)}


def config(name: str, num_classes: int = 10, image_size: int = 32,
           **overrides) -> SequencerConfig:
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
  fields = {**PRESETS[name], "num_classes": num_classes, "image_size": image_size,
            **overrides}
  return SequencerConfig(**fields).validate()


def create(name: str, num_classes: int = 10, image_size: int = 32, *,
           rngs: nnx.Rngs | int = 0, **overrides) -> SpikingSequencer:
  """Builds preset ``name`` (see :data:`PRESETS`); overrides are
  :class:`SequencerConfig` fields. Bad names and impossible combinations raise
  ValueError here, at construction."""
  cfg = config(name, num_classes, image_size, **overrides)
  if isinstance(rngs, int):
    rngs = nnx.Rngs(rngs)
  return SpikingSequencer(cfg, rngs=rngs)


def operations(cfg: SequencerConfig) -> list[LayerOps]:
  """Dense op count of every synaptic layer per image (METHOD Sec. 8): conv
  k_h k_w c_in c_out over all window pixels; recurrent (c_in + c_out) c_out
  gates per token and direction (input part fed by spikes, recurrent part
  real); fully connected f_in f_out per token."""
  ops = []
  sides, widths = cfg.stage_sizes(), cfg.widths
  p = cfg.patch_size
  ops.append(LayerOps("stem", "conv", p * p * 3 * widths[0] * sides[0] ** 2))
  for s, (side, depth, c) in enumerate(zip(sides, cfg.depths, widths)):
    if s > 0:
      prev = widths[s - 1]
      ops.append(LayerOps(f"s{s + 1}.merge", "fc", 4 * prev * 2 * prev * side ** 2))
      if cfg.carry_membrane:
        m = prev * cfg.lif_width_factor
        ops.append(LayerOps(f"s{s + 1}.membrane_merge", "fc", 8 * m * m * side ** 2))
    lif = c * cfg.lif_width_factor
    tokens = side * side
    for b in range(depth):
      name = f"s{s + 1}b{b + 1}"
      layout = cfg.block_layout(s, b)
      h, w = layout.window_shape
      window_pixels = layout.num_windows * h * w
      if cfg.mixer == "conv":
        ops.append(LayerOps(f"{name}.conv1", "conv", 9 * c * c * window_pixels,
                            f"{name}.encoder_windows"))
        ops.append(LayerOps(f"{name}.conv2", "conv", 9 * c * c * window_pixels,
                            f"{name}.lif1"))
      elif cfg.mixer == "mlp":
        ops.append(LayerOps(f"{name}.token_fc", "fc", c * lif * window_pixels,
                            f"{name}.encoder_windows"))
      else:
        cell, bidirectional = RECURRENT[cfg.mixer]
        per_token = CELLS[cell] * c * c * (2 if bidirectional else 1)
        ops.append(LayerOps(f"{name}.{cell}_input", cell, per_token * window_pixels,
                            f"{name}.encoder_windows"))
        ops.append(LayerOps(f"{name}.{cell}_recurrent", cell,
                            per_token * window_pixels))
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
    lines = [f"parameters (used in forward): {self.params / 1e6:.3f} M",
             f"dense MACs per image:         {self.dense_macs / 1e6:.1f} M"]
    for i, (shape, pattern) in enumerate(self.stages):
      lines.append(f"stage {i + 1}: map {shape[0]}x{shape[1]}x{shape[2]}, "
                   f"blocks {' '.join(pattern)}")
    return "\n".join(lines)


def count_params(model: nnx.Module) -> int:
  return sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))


def summary(model: SpikingSequencer) -> ModelSummary:
  """Parameters, dense MACs per image and the per-stage shapes and window
  pattern (N normal, D dilated) of a model built by :func:`create`."""
  cfg = model.config
  stages = tuple(
      ((side, side, c), "".join("D" if cfg.block_layout(s, b).dilated else "N"
                                 for b in range(depth)))
      for s, (side, depth, c) in enumerate(zip(cfg.stage_sizes(), cfg.depths,
                                               cfg.widths)))
  return ModelSummary(count_params(model),
                      sum(op.dense_ops for op in operations(cfg)), stages)
