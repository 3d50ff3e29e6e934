"""The package's layering: the pure core imports without Flax; the models
load lazily after a plain ``import snnjax`` (as the README writes it)."""

import subprocess
import sys

CORE_WITHOUT_FLAX = """
import sys
sys.modules["flax"] = None  # any import of flax now raises ImportError
import jax.numpy as jnp
import snnjax
_, (s, v) = snnjax.lif_scan(jnp.array([[0.3], [0.3], [0.6]]))
assert s[:, 0].tolist() == [0.0, 0.0, 1.0]
assert snnjax.energy.PJ_PER_ADD == 0.9
assert not any(m == "flax" or m.startswith("flax.") for m in sys.modules
               if sys.modules[m] is not None)
try:
    snnjax.models
except ImportError:
    print("ok")
"""


def test_core_imports_without_flax():
    out = subprocess.run(
        [sys.executable, "-c", CORE_WITHOUT_FLAX], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_models_after_a_plain_import():
    import snnjax

    model = snnjax.models.create("conv", widths=(8, 16, 32, 64), depths=(1, 1, 1, 1))
    assert snnjax.models.summary(model).params > 0
    assert snnjax.nn.SpikingSequencer is type(model)
