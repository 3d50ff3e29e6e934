"""The base config: the paper's training recipe (METHOD Sec. 7), conv model on
CIFAR-10 (Table 1, "ResNET-12F").

Every other config starts from :func:`get_config` and changes a few fields.
Override any field on the command line, e.g. ``--config.lr=0.1`` or
``--config.model.grid=1``; tuples as ``'--config.model.widths=(32,64,128,256)'``.

Fields
------
Data: ``dataset`` ("cifar10", "cifar100", "tiny_imagenet"), ``data_dir`` (""
means ``$TFDS_DATA_DIR``), ``download`` (False: the dataset must be prepared
in the data directory, else the run stops at once saying how to prepare it;
True: download and prepare it there first, network required),
``validation_examples`` (the last N images of the training split, held out of
training: the periodic evaluations and the choice of the "best" checkpoint use
them, never the test split; 0: train on the whole split, keep no "best"),
``worker_count`` (grain worker processes), ``input``, ``input_memory_mb``
and ``grain_in_memory`` (which input path; see ``train/device_input.py``),
``batch_size`` (global, summed over all devices and processes; the paper does
not state it, 128 assumed), ``eval_batch_size``, ``max_eval_batches`` (-1: the
whole evaluation split), ``eval_flip`` (True: evaluations also report
``accuracy_flip``, the accuracy of the logits summed over each image and its
horizontal mirror, a test-time augmentation that costs a second forward pass;
``accuracy`` stays that of the plain images), ``mixup_alpha``.

Model (``config.model``): ``name`` is a preset of :mod:`snnjax.models` ("conv",
"lstm", "gru", "rnn", "birnn", "mlp"); the other fields are those of
:class:`snnjax.nn.config.SequencerConfig` except ``mixer`` (set by the preset)
and ``num_classes`` / ``image_size`` (set by the dataset). ``carry_membrane``
None takes the preset's value; ``region_threshold`` None keeps median spikes
(Table 1 "MSp"); ``dtype`` is the compute dtype, "float32" or "bfloat16"
(parameters and optimiser state stay float32).

Devices: ``data_parallel`` "gspmd" (XLA partitions the global step over the
``data`` mesh: bit for bit the step of one device, random draws included) or
"local" (every device runs the step on its shard under ``shard_map`` and one
``pmean`` averages the gradients: the same values up to float rounding, random
draws from per-device streams; on CPU host devices, e.g.
``XLA_FLAGS=--xla_force_host_platform_device_count=2`` on a 2-core CPU, the
fast one: docs/benchmarks.md). The in-memory device input keeps "gspmd".

Stem initialisation: ``stem_whitening`` > 0 initialises the patch stem's
kernel with the whitening filters of the patches of the first
``stem_whitening`` training images (never held-out ones; the same on every
host), in +/- pairs, each direction scaled by ``1 / sqrt(lambda +
stem_whitening_eps)`` (:mod:`snnjax.whitening`); 0 keeps the model's random
initialisation. The paper does not specify the stem's initialisation.

Optimisation: ``optimizer`` "sgd" (momentum, coupled weight decay as in
PyTorch) or "adamw" (decoupled weight decay); ``lr`` the peak learning rate,
reached by a linear warm-up from ``warmup_lr`` over ``warmup_epochs``, then a
decay to ``min_lr`` at the end of training (per step), ``lr_decay`` "cosine"
or "linear"; ``mixer_lr_scale`` multiplies the learning rate (and decoupled
weight decay) of the spiking mixers' parameters (1: none);
``weight_decay`` applies to kernels and weight matrices only, chosen by the
parameter's name (``kernel``, ``w_rec``), not to biases (``bias``, ``b_rec``),
normalisation scales or LIF thresholds and leaks; ``grad_clip_norm`` clips the global gradient norm (0 disables);
``label_smoothing``; ``ema_decay`` > 0 keeps an exponential moving average
of the parameters (decay per step, :mod:`train.averaging`), which every
evaluation then uses (the final one also reports the final iterate's
accuracy); 0 keeps none. ``num_train_steps`` > 0 replaces ``num_epochs`` as the
length of training (smoke tests).

Non-finite steps: ``nonfinite`` "stop" (a step whose loss or gradient norm is
NaN or infinite ends the run with an error naming the step; its update is not
applied and nothing after the last finite state is saved) or "skip" (the
update of such a step is not applied, the run goes on, and the skipped steps
are counted in the metrics and the summary).

``seed`` fixes the initialisation, the data order, the augmentation and the RNG
streams: it is part of the run, so a checkpoint is resumed only with its seed
(another seed is refused as another config).

Run control (may change when resuming): ``log_every_steps`` (>= 1),
``eval_every_epochs`` (evaluations on the validation examples; 0 or
``validation_examples`` 0: only the final evaluation), ``checkpoint_every_steps`` (0: only at the end
and when stopped), ``keep_checkpoints`` (>= 1, the last N periodic
checkpoints), ``stop_after_steps`` (-1: never; otherwise save and stop at that
step, as a preemption would), ``time_limit_s`` (0: none; otherwise training stops at
the first log point after that many seconds since the run began, setup and compiling
included, and the run then saves, evaluates and writes its summary as at the end, with
``stopped_by_time_limit`` true and ``steps`` < ``planned_steps``: the schedule did not
finish), ``nonfinite``, ``download``, and the data and
evaluation fields ``data_dir``, ``worker_count``, ``grain_in_memory`` (the same
batches either way), ``eval_batch_size``, ``max_eval_batches``, ``eval_flip``.

Every field is checked before anything is compiled or created
(:func:`train.train.validate_config`).
"""

from __future__ import annotations

import dataclasses

import ml_collections

from snnjax import whitening
from snnjax.nn.config import SequencerConfig

# SequencerConfig fields that the training config does not set directly.
_DERIVED_MODEL_FIELDS = ("mixer", "num_classes", "image_size")


def model_config(name: str = "conv", **overrides) -> ml_collections.ConfigDict:
    """The ``config.model`` block: preset ``name`` and every
    :class:`SequencerConfig` field at its default, with ``overrides``."""
    fields = {
        f.name: f.default
        for f in dataclasses.fields(SequencerConfig)
        if f.name not in _DERIVED_MODEL_FIELDS
    }
    fields.update(
        carry_membrane=ml_collections.FieldReference(None, field_type=bool),
        region_threshold=ml_collections.FieldReference(
            fields["region_threshold"], field_type=float
        ),
        surrogate_params={},
        dtype="float32",
    )
    unknown = set(overrides) - set(fields)
    if unknown:
        raise ValueError(f"unknown model field(s) {sorted(unknown)}; valid: {sorted(fields)}")
    config = ml_collections.ConfigDict({"name": name, **fields})
    for key, value in overrides.items():
        config[key] = value
    return config


def get_config() -> ml_collections.ConfigDict:
    """The paper's recipe: SGD, conv model, CIFAR-10, 300 epochs."""
    config = ml_collections.ConfigDict()

    config.dataset = "cifar10"
    config.data_dir = ""
    config.download = False
    config.validation_examples = 5000
    config.worker_count = 0
    config.input = "auto"  # "grain" | "device" | "auto": see train/device_input.py
    config.input_memory_mb = 4096.0  # the in-memory split: per device ("auto"), per host (grain)
    # grain: decode this host's training slice once, in host memory, when it fits
    # input_memory_mb (the same batches; on a 2-core CPU 5 instead of 37 ms per batch of 64).
    config.grain_in_memory = True
    # How the step is split over the devices: "gspmd" (bit for bit one device's
    # step) or "local" (shard_map + one gradient pmean: faster on CPU host devices).
    config.data_parallel = "gspmd"
    config.batch_size = 128
    config.eval_batch_size = 512
    config.max_eval_batches = -1
    config.eval_flip = False
    config.mixup_alpha = 0.1
    config.crop_padding = -1  # pad-and-crop pixels per side; -1: the dataset's (CIFAR 4)

    config.model = model_config("conv")
    # Data-dependent initialisation of the patch stem (snnjax/whitening.py): the
    # number of training images whose patch covariance whitens it; 0: the model's init.
    config.stem_whitening = 0
    config.stem_whitening_eps = whitening.DEFAULT_EPS

    config.optimizer = "sgd"
    config.lr = 0.05
    config.warmup_lr = 1e-4
    config.min_lr = 1e-6
    config.warmup_epochs = 3.0
    config.num_epochs = 300
    config.num_train_steps = -1
    config.momentum = 0.9
    config.adam_b1 = 0.9
    config.adam_b2 = 0.999
    config.weight_decay = 2e-5
    config.grad_clip_norm = 20.0
    config.label_smoothing = 0.1
    config.ema_decay = 0.0
    config.lr_decay = "cosine"
    config.mixer_lr_scale = 1.0

    config.seed = 0
    config.log_every_steps = 50
    config.eval_every_epochs = 1
    config.checkpoint_every_steps = 1000
    config.keep_checkpoints = 3
    config.stop_after_steps = -1
    config.time_limit_s = 0.0
    config.nonfinite = "stop"
    return config
