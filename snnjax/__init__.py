"""snnjax: single-time-step spiking neural networks in JAX.

The functional core (pure functions, explicit state):

- :func:`spike` and the surrogate registry            (paper Eq. 3)
- :func:`lif_step`, :func:`lif_scan`, :class:`LIFState` (Eq. 6)
- :func:`omega` and the fusion registry               (Eq. 5, Fig. 5)
- :func:`partition`, :func:`recompose`                (Sec. 3, Algorithm 1)
- :func:`window_lif`                                  (Sec. 3, Eq. 4-5)
- :mod:`snnjax.theory`                                (Eq. 20, Table 5)
- :mod:`snnjax.energy`                                (Eq. 13-14, Tables 2-3)
- :mod:`snnjax.whitening`                             (patch-whitening stem init)
- :mod:`snnjax.conversion`                            (ANN -> SNN, threshold balancing)

The Flax models (:mod:`snnjax.models`, :mod:`snnjax.nn`) load on first use
(``snnjax.models.create(...)`` after a plain ``import snnjax``), so the core
imports without Flax.
"""

import importlib

from snnjax import theory
from snnjax.fusion import fusion_names, get_fusion, linear, omega, omega_code, register_fusion
from snnjax.neuron import LIFState, lif_scan, lif_step
from snnjax.surrogate import Surrogate, get_surrogate, register_surrogate, spike, surrogate_names
from snnjax.window_layer import WindowLIFOutput, window_lif
from snnjax.windows import WindowLayout, partition, recompose, window_layout

__all__ = [
    "LIFState",
    "Surrogate",
    "WindowLIFOutput",
    "WindowLayout",
    "fusion_names",
    "get_fusion",
    "get_surrogate",
    "lif_scan",
    "lif_step",
    "linear",
    "omega",
    "omega_code",
    "partition",
    "recompose",
    "register_fusion",
    "register_surrogate",
    "spike",
    "surrogate_names",
    "theory",
    "window_layout",
    "window_lif",
]
__version__ = "0.1.0"
_LAZY = ("conversion", "energy", "models", "nn", "probe")


def __getattr__(name: str):
    if name in _LAZY:
        module = importlib.import_module(
            "snnjax.nn.membrane_probe" if name == "probe" else f"snnjax.{name}"
        )
        globals()[name] = module
        return module
    raise AttributeError(f"module 'snnjax' has no attribute {name!r}")
