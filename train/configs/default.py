"""The base config: the paper's recipe (METHOD Sec. 7), conv model on CIFAR-10
(Table 1, "ResNET-12F"). Every field's default, type and allowed values live in
:mod:`train.schema`; what each means in ``docs/configs.md``.

Every other config starts from :func:`get_config` and changes a few fields.
Override any field on the command line, e.g. ``--config.lr=0.1`` or
``--config.model.grid=1``; tuples as ``'--config.model.widths=(32,64,128,256)'``.
"""

from __future__ import annotations

import ml_collections

from train import schema

model_config = schema.model_block


def get_config() -> ml_collections.ConfigDict:
    """The paper's recipe: SGD, conv model, CIFAR-10, 300 epochs."""
    return schema.defaults()
