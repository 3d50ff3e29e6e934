"""``quick``: a reduced model and schedule that learns CIFAR-10 on a 2-core CPU.

    python -m train.main --config=train/configs/quick.py --workdir=/tmp/quick_run

The conv model of the paper with its spiking machinery intact (2x2 windows,
dilated windows, Omega fusion, LIF with surrogate gradients) but a quarter of
the widths and one block per stage (two in stage 3), trained with AdamW for a
few epochs. Sized to end, evaluation of the full test set included, within
about 14 minutes on a 2-core CPU.
"""

import ml_collections

from train.configs import default


def get_config() -> ml_collections.ConfigDict:
    config = default.get_config()
    config.model = default.model_config(
        "conv", widths=(16, 32, 64, 128), depths=(1, 1, 2, 1), dropout=0.0)
    config.batch_size = 128
    config.num_epochs = 8
    config.optimizer = "adamw"
    config.lr = 3e-3
    config.warmup_lr = 1e-4
    config.warmup_epochs = 0.5
    config.weight_decay = 0.05
    config.mixup_alpha = 0.0
    config.label_smoothing = 0.1
    config.eval_every_epochs = 0
    config.checkpoint_every_steps = 500
    config.log_every_steps = 20
    return config
