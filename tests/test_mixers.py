"""The mixer registry: the guide's example mixer (docs/guides/adding_a_mixer.md) runs as written, and every
mixer's op rows agree with a count derived independently from the model's
parameter shapes (a kernel's size times the positions it is applied at)."""

import re
from pathlib import Path

import numpy as np
import pytest
from flax import nnx

from snnjax import energy, models
from snnjax.counts import block_name
from snnjax.nn import mixers

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "guides" / "adding_a_mixer.md"
TINY = dict(widths=(8, 16, 32, 64), depths=(1, 1, 2, 1))


def guide_example() -> str:
    """The first code block of the guide "Adding a token mixer"."""
    return re.search(r"```python\n(.*?)```", GUIDE.read_text(), re.S).group(1)


def ops_from_parameters(model) -> dict[str, int]:
    """Dense ops per image by module ("stem", "s2.merge", "s1b1", "head", ...):
    every kernel (and recurrent weight) size times the positions it is applied
    at: window pixels for a mixer's synapses, the stage's tokens for the rest of a
    block, the next stage's tokens for a merging, one for the head."""
    cfg = model.config
    sides = cfg.stage_sizes()
    out: dict[str, int] = {}
    for path, value in nnx.to_flat_state(nnx.state(model, nnx.Param)):
        if path[-1] not in ("kernel", "w_rec"):
            continue
        size = int(np.prod(value.shape))
        if path[0] == "stem":
            key, n = "stem", sides[0] ** 2
        elif path[0] == "head":
            key, n = "head", 1
        elif path[0] in ("merges", "membrane_merges"):
            key, n = f"s{path[1] + 2}.merge", sides[path[1] + 1] ** 2
        else:
            s, b = path[1], path[2]
            key = block_name(s, b)
            if path[3:5] == ("mixer", "synapses"):
                layout = cfg.block_layout(s, b)
                n = layout.num_windows * int(np.prod(layout.window_shape))
            else:
                n = sides[s] ** 2
        out[key] = out.get(key, 0) + size * n
    return out


def ops_from_table(cfg) -> dict[str, int]:
    out: dict[str, int] = {}
    for op in models.operations(cfg):
        key = op.name.split(".")[0] if "b" in op.name.split(".")[0] else op.name
        key = key.replace("membrane_merge", "merge")
        out[key] = out.get(key, 0) + op.dense_ops
    return out


def test_guide_example_mixer_runs_and_counts_its_ops():
    namespace = {}
    exec(compile(guide_example(), str(GUIDE), "exec"), namespace)
    model, logits, counts = namespace["model"], namespace["logits"], namespace["counts"]
    assert "token_fc" in models.PRESETS and model.config.mixer == "token_fc"
    assert logits.shape == (2, 10)
    assert "s1b1.lif" in counts and "s4b1.lif" in counts
    assert energy.is_lif_layer("s1b1.lif")
    assert namespace["report"].dense_ops == sum(ops_from_parameters(model).values())
    assert ops_from_table(model.config) == ops_from_parameters(model)
    with pytest.raises(ValueError, match="already registered"):
        mixers.register_mixer("token_fc")(namespace["TokenFCMixer"])


def test_registry_restored_after_the_example():
    assert "token_fc" not in mixers.MIXERS
    assert sorted(models.PRESETS) == ["birnn", "conv", "gru", "lstm", "mlp", "rnn"]


@pytest.mark.parametrize("name", sorted(models.PRESETS))
def test_op_table_matches_parameter_shapes(name):
    model = nnx.eval_shape(lambda: models.create(name, **TINY))
    assert ops_from_table(model.config) == ops_from_parameters(model)


@pytest.mark.parametrize("name", ["conv", "lstm"])
def test_op_table_of_the_paper_models_matches_parameter_shapes(name):
    model = nnx.eval_shape(lambda: models.create(name))
    table = ops_from_table(model.config)
    assert table == ops_from_parameters(model)
    assert sum(table.values()) == models.summary(model).dense_macs


def test_mixer_declarations():
    for name in mixers.MIXERS.names():
        cls = mixers.mixer_class(name)
        assert cls.name == name and cls.lif_names
        assert models.config(name).lif_width_factor == cls.width_factor
    assert energy.lif_layer_names() == {"lif", "lif1", "lif2"}
    with pytest.raises(ValueError, match="start with 'lif'"):

        @mixers.register_mixer("bad")
        class Bad(mixers.SpikingMixer):
            lif_names = ("spikes",)

    with pytest.raises(TypeError, match="subclass"):
        mixers.register_mixer("bad")(object)


def test_a_mixer_with_mismatched_synapses_fails_at_construction():
    @mixers.register_mixer("mismatch")
    class Mismatch(mixers.SpikingMixer):
        lif_names = ("lif1", "lif2")

        def synapses_for(self, config, width, dilated, *, rngs):
            return [nnx.Linear(width, width, rngs=rngs)]

    with pytest.raises(ValueError, match="1 synapses"):
        models.create("mismatch", **TINY)
