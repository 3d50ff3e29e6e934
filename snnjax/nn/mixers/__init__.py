"""The spiking token mixers, one module each, registered by name in
:data:`MIXERS`. Every module of this package is imported here, so a new
built-in mixer is one new file (plus its test); a mixer defined elsewhere
registers itself with :func:`register_mixer` when its module is imported."""

import importlib
import pkgutil

from snnjax.nn.mixers.base import (
    MIXERS,
    SpikingMixer,
    create_mixer,
    mixer_class,
    register_mixer,
    window_pixels,
)
from snnjax.nn.mixers.conv import ConvMixer, _conv_init, taps_in_window
from snnjax.nn.mixers.recurrent import RecurrentMixer

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "MIXERS",
    "ConvMixer",
    "RecurrentMixer",
    "SpikingMixer",
    "_conv_init",
    "create_mixer",
    "mixer_class",
    "register_mixer",
    "taps_in_window",
    "window_pixels",
]
