"""One config per result the paper reports, chosen by name:

    python -m train.main --config=train/configs/paper.py:<name> --workdir=DIR

All use the paper's recipe (:mod:`train.configs.default`: SGD, lr 0.05, 300
epochs on CIFAR, 250 on Tiny-ImageNet, ...) and change only what the
experiment varies. Names (``EXPERIMENTS`` lists them all):

* ``table1-<dataset>-<model>``: Table 1, dataset ``cifar10`` | ``cifar100`` |
  ``tiny`` (Tiny-ImageNet), model ``conv`` ("ResNET-12F") | ``lstm``
  ("VIT-12"); append ``-msp`` for the median-spike variant (region threshold
  None; the paper reports it on CIFAR-10).
* ``table4-<model>-g<groups>-<windows>``: Table 4 on CIFAR-10, ``groups`` 1
  (grid 1x1), 2 (1x2) or 4 (2x2), ``windows`` ``normal`` | ``dilated``.
* ``table6-<dataset>-<model>``: Table 6, the recurrent mixer with another cell,
  model ``mlp`` | ``rnn`` | ``birnn`` | ``gru`` (CIFAR-100 without ``mlp``).
* ``fig5-<model>-fusion-<fn>``: Fig. 5(a) on CIFAR-10, membrane fusion ``omega``
  | ``linear`` | ``relu`` | ``sigmoid`` | ``tanh`` | ``none``.
* ``fig5-<model>-theta<t>``: Fig. 5(b, c) on CIFAR-10, Omega with theta ``t`` in
  0.1, 0.3, 0.5, 0.7, 0.9.
"""

from __future__ import annotations

import ml_collections

from train.configs import default

_DATASETS = {"cifar10": "cifar10", "cifar100": "cifar100", "tiny": "tiny_imagenet"}
_EPOCHS = {"cifar10": 300, "cifar100": 300, "tiny_imagenet": 250}
_GRIDS = {"g1": (1, 1), "g2": (1, 2), "g4": (2, 2)}
_FUSIONS = ("omega", "linear", "relu", "sigmoid", "tanh", "none")
_THETAS = ("0.1", "0.3", "0.5", "0.7", "0.9")

EXPERIMENTS: tuple[str, ...] = (
    *(f"table1-{d}-{m}" for d in _DATASETS for m in ("conv", "lstm")),
    "table1-cifar10-conv-msp",
    "table1-cifar10-lstm-msp",
    *(
        f"table4-{m}-{g}-{w}"
        for m in ("conv", "lstm")
        for g in _GRIDS
        for w in ("normal", "dilated")
    ),
    *(f"table6-cifar10-{m}" for m in ("mlp", "rnn", "birnn", "gru")),
    *(f"table6-cifar100-{m}" for m in ("rnn", "birnn", "gru")),
    *(f"fig5-{m}-fusion-{f}" for m in ("conv", "lstm") for f in _FUSIONS),
    *(f"fig5-{m}-theta{t}" for m in ("conv", "lstm") for t in _THETAS),
)


def get_config(name: str = "") -> ml_collections.ConfigDict:
    """The config of experiment ``name`` (one of :data:`EXPERIMENTS`)."""
    if name not in EXPERIMENTS:
        raise ValueError(
            f"unknown experiment {name!r}: pass one as "
            f"--config=train/configs/paper.py:<name>, with <name> one of: " + ", ".join(EXPERIMENTS)
        )
    config = default.get_config()
    parts = name.split("-")
    table = parts[0]
    if table in ("table1", "table6"):
        dataset, model = _DATASETS[parts[1]], parts[2]
        config.dataset = dataset
        config.num_epochs = _EPOCHS[dataset]
        config.model = default.model_config(model)
        if parts[3:] == ["msp"]:
            config.model.region_threshold = None
    elif table == "table4":
        model, grid, windows = parts[1:]
        config.model = default.model_config(model, grid=_GRIDS[grid], dilated=windows == "dilated")
    else:  # fig5
        model, kind = parts[1], parts[2]
        if kind == "fusion":
            config.model = default.model_config(model, fusion=parts[3])
        else:
            config.model = default.model_config(
                model, fusion="omega", theta=float(kind.removeprefix("theta"))
            )
    return config
