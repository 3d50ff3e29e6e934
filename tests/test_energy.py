"""Operation counts and the energy estimate (Sec. 4.2, Eq. 13-14, Table 2)."""

import jax.numpy as jnp
import pytest
from flax import nnx

from snnjax import energy, models
from snnjax.nn.layers import SpikeCount
from snnjax.nn.sequencer import SpikingSequencer


def test_hand_computed_two_layer_example():
  # A real-input conv (MACs) feeding spikes at rate 0.25 into an fc (adds).
  ops = [energy.LayerOps("conv", "conv", 3 * 3 * 3 * 16 * 32 * 32),  # 442,368
         energy.LayerOps("fc", "fc", 16 * 32 * 32 * 10, "conv.lif")]  # 163,840
  counts = {"conv.lif": SpikeCount(jnp.array([4096.0, 8192.0]), jnp.array(24576))}
  rates = energy.spike_rates(counts)
  assert rates == {"conv.lif": 0.25}
  report = energy.estimate(ops, rates, timesteps=1)
  assert report.macs == 442368 and report.adds == 0.25 * 163840
  expected_mj = (442368 * 4.6 + 40960 * 0.9) * 1e-9
  assert report.energy_mj == pytest.approx(expected_mj, rel=1e-12)
  assert report.ann_energy_mj == pytest.approx((442368 + 163840) * 4.6e-9, rel=1e-12)
  report2 = energy.estimate(ops, rates, timesteps=2)
  assert report2.macs == 2 * 442368 and report2.adds == 2 * 40960
  table = report.table()
  assert "| conv | conv |" in table and "ANN (dense)" in table
  assert energy.spikes_per_image(counts) == 6144.0


def test_missing_rate_is_a_clear_error():
  ops = [energy.LayerOps("fc", "fc", 10, "x.lif")]
  with pytest.raises(ValueError, match="x.lif"):
    energy.estimate(ops, {})


@pytest.mark.parametrize("name", ["conv", "lstm"])
def test_dense_total_equals_summary(name):
  cfg = models.config(name)
  model = nnx.eval_shape(lambda: SpikingSequencer(cfg, rngs=nnx.Rngs(0)))
  ops = models.operations(cfg)
  rates = {op.spike_input: 0.5 for op in ops if op.spike_input}
  report = energy.estimate(ops, rates)
  assert report.dense_ops == models.summary(model).dense_macs
  # Every spike-fed op is either a conv/fc/recurrent input part, never the stem.
  assert ops[0].name == "stem" and ops[0].spike_input is None
  assert report.energy_mj < report.ann_energy_mj


def test_conv_op_table_by_hand():
  ops = {op.name: op for op in models.operations(models.config("conv"))}
  assert ops["stem"].dense_ops == 2 * 2 * 3 * 48 * 16 * 16
  assert ops["s1b1.conv1"].dense_ops == 9 * 48 * 48 * 16 * 16          # normal
  assert ops["s1b2.conv1"].dense_ops == 9 * 48 * 48 * 4 * 12 * 12      # dilated
  assert ops["s3b2.conv2"].dense_ops == 9 * 192 * 192 * 4 * 3 * 3      # 4x4 maps
  assert ops["s2.merge"].dense_ops == 4 * 48 * 96 * 8 * 8
  assert ops["head"].dense_ops == 384 * 10
  lstm = {op.name: op for op in models.operations(models.config("lstm"))}
  # (c_in + c_out) c_out 4 per token and direction, split into spike and real parts.
  per_token = (48 + 48) * 48 * 4 * 2
  assert (lstm["s1b1.lstm_input"].dense_ops + lstm["s1b1.lstm_recurrent"].dense_ops
          == per_token * 16 * 16)
  assert lstm["s1b1.lstm_recurrent"].spike_input is None
