"""``quick``: a reduced model and schedule that learns CIFAR-10 on a 2-core CPU.

    python -m train.main --config=train/configs/quick.py --workdir=/tmp/quick_run

The paper's conv model with its spiking machinery intact (2x2 window groups,
normal/dilated windows, Omega fusion, LIF neurons with surrogate gradients,
T = 1) at half the widths (24, 48, 96, 192) and one block per stage (two in
stage 3: a normal and a dilated one), 1.56 M parameters; AdamW with a short
warm-up and cosine decay over 6 epochs, batch 128, crop + flip augmentation,
label smoothing, no mixup or dropout (too few epochs to need them). The window
scans are unrolled (the same computation, about 20 % faster on a CPU).

Sized to end on its own, evaluation of the full 10,000 test images included,
within about 14 minutes on a 2-core CPU even when the machine is shared
(~400 img/s). Measured: 65.4 % test accuracy, 7 min 11 s wall at ~740 img/s
(load average ~2); with windows off (``--config.model.grid=1
--config.model.fusion=none --config.model.dilated=false``) 65.6 %, 5 min 41 s.
"""

import ml_collections

from train.configs import default


def get_config() -> ml_collections.ConfigDict:
    config = default.get_config()
    config.model = default.model_config(
        "conv", widths=(24, 48, 96, 192), depths=(1, 1, 2, 1), dropout=0.0, unroll=4,
        synapse_init="window", pre_norm=True)
    config.batch_size = 128
    config.num_epochs = 6
    config.optimizer = "adamw"
    config.lr = 3e-3
    config.warmup_lr = 1e-4
    config.warmup_epochs = 0.5
    config.weight_decay = 0.05
    config.mixup_alpha = 0.0
    config.label_smoothing = 0.1
    config.eval_every_epochs = 0
    config.validation_examples = 0  # train on all 50,000; nothing is selected
    config.checkpoint_every_steps = 500
    config.log_every_steps = 50
    return config
