"""python -m train.report on a tiny finished run: the report and its plots."""

import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from train_utils import REPO, copy_run


@pytest.fixture(scope="module")
def finished_run(tiny_run, tmp_path_factory):
    """A copy of the session's tiny run (tests/conftest.py): the report and the
    probe write into it."""
    return Path(copy_run(tiny_run[0], tmp_path_factory.mktemp("run")))


def test_report_command_writes_markdown_and_plots(finished_run):
    out = subprocess.run(
        [sys.executable, "-m", "train.report", f"--workdir={finished_run}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    report_dir = finished_run / "report"
    text = (report_dir / "report.md").read_text()
    for needle in (
        "test accuracy",
        "spikes per image",
        "ANN (dense)",
        "learning_curves.png",
        "spike_profile.png",
        '"dataset": "cifar10"',
        "Accounting: layerwise",
        "Accounting: paper",
        "paper accounting",
        "uJ",
    ):
        assert needle in text
    for name in ("learning_curves.png", "spike_profile.png"):
        image = Image.open(report_dir / name)
        assert image.size[0] > 300 and image.size[1] > 200
        low, high = image.convert("L").getextrema()
        assert high - low > 100  # not blank


def test_spike_profile_marks_dilated_blocks(finished_run):
    from snnjax import models
    from snnjax.counts import block_name
    from train import evaluate, report  # both importable in one process (no flags at import)

    del evaluate
    assert report.load_model_config(str(finished_run)).widths == (8, 16)
    cfg = models.config("conv")  # the 12-block model: N D | N D | N D N D N D | N N
    rates = {
        f"{block_name(s, b)}.{layer}": 0.1
        for s, depth in enumerate(cfg.depths)
        for b in range(depth)
        for layer in ("lif1", "lif2")
    }
    rows = report.lif_profile(rates, cfg)
    pattern = "".join("D" if d else "N" for name, _, d in rows if name.endswith("lif1"))
    assert pattern == "NDNDNDNDNDNN"


def test_probe_writes_membrane_health_and_the_report_draws_it(finished_run):
    from train import probe, report, rundir

    health = probe.probe_checkpoint(str(finished_run), num_images=16)
    assert set(health["init"]) == set(health["trained"])
    assert any(name.endswith(".lif2") for name in health["trained"])
    for stats in list(health["init"].values()) + list(health["trained"].values()):
        assert 0 <= stats["rate"] <= 1 and 0 <= stats["in_window"] <= 1
        assert stats["v_std"] >= 0
    assert {"init (trained head)", "trained"} == set(health["grad_norm"])
    assert any(k.endswith(".mixer") and v > 0 for k, v in health["grad_norm"]["trained"].items())
    assert (finished_run / rundir.HEALTH).exists()
    report.write_report(str(finished_run))
    assert (finished_run / "report" / "membrane_health.png").exists()
    assert "membrane_health.png" in (finished_run / "report" / "report.md").read_text()


def test_mixer_ablation_zeroes_exactly_the_mixers_outputs(finished_run, monkeypatch):
    """zero_mixers zeroes the named blocks' mixer projections and nothing
    else; with all of them zeroed the model computes what a model whose
    mixers return 0 computes (a patched SpikingMixer, the reference);
    mixer_ablation's "none" is the plain evaluation."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from flax import nnx

    from snnjax.nn.mixers import SpikingMixer
    from train import probe, rundir, train

    config, model, state = rundir.load_run(str(finished_run))
    blocks = ["s1b1", "s1b2", "s2b1"]
    zeroed = probe.zero_mixers(state.params, blocks[1:])
    changed = [
        jax.tree_util.keystr(path)
        for (path, a), b in zip(
            jax.tree_util.tree_leaves_with_path(state.params), jax.tree_util.tree_leaves(zeroed)
        )
        if not np.array_equal(a, b)
    ]
    assert changed and all("['mixer']['proj']" in p for p in changed)
    assert all(not p.startswith("['stages'][0][0]") for p in changed)

    images = jnp.asarray(np.random.default_rng(0).uniform(size=(4, 32, 32, 3)), jnp.float32)

    def logits(params):
        net = nnx.merge(model.eval_graphdef, params, state.rest, copy=True)
        return np.asarray(net(images))

    ablated = logits(probe.zero_mixers(state.params, blocks))
    call = SpikingMixer.__call__

    def silent(self, x, membrane, *, stats=False):
        y, membrane, counts = call(self, x, membrane, stats=stats)
        return jnp.zeros_like(y), membrane, counts

    monkeypatch.setattr(SpikingMixer, "__call__", silent)
    np.testing.assert_allclose(ablated, logits(state.params), rtol=1e-5, atol=1e-6)
    monkeypatch.undo()
    assert not np.allclose(ablated, logits(state.params))

    accuracy = probe.mixer_ablation(model, state, config, train.create_mesh())
    assert set(accuracy) == {"none", "all", *blocks}
    plain = train.evaluate(model, state, config, train.create_mesh(), averaged=False)
    assert accuracy["none"] == plain["accuracy"]
