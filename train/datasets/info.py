"""Static facts about the supported datasets (classes, image size, splits,
normalisation): what a model or a report needs without the data stack
(:mod:`train.input_pipeline` re-exports them)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """Static facts about a supported dataset.

    Attributes:
      name: the name used by this module (and the training config).
      tfds_name: the TFDS dataset name.
      num_classes: number of classes.
      image_size: height and width of the (square) images.
      crop_padding: zero padding on each side before the random training crop.
      train_split: the TFDS split used for training.
      eval_split: the TFDS split used for evaluation by default.
      mean: per-channel (RGB) mean of the training images, on the [0, 1] scale.
      std: per-channel (RGB) standard deviation of the training images, on the
        [0, 1] scale.

    Split sizes are not static (a Tiny-ImageNet subset has fewer images than
    the full set): ask :func:`num_examples`.
    """

    name: str
    tfds_name: str
    num_classes: int
    image_size: int
    crop_padding: int
    train_split: str
    eval_split: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


# Mean and std: the commonly published per-channel statistics of each full
# training set (pixel values scaled to [0, 1], population std over all pixels).
_DATASETS = {
    "cifar10": DatasetInfo(
        name="cifar10",
        tfds_name="cifar10",
        num_classes=10,
        image_size=32,
        crop_padding=4,
        train_split="train",
        eval_split="test",
        mean=(0.4914, 0.4822, 0.4465),
        std=(0.2470, 0.2435, 0.2616),
    ),
    "cifar100": DatasetInfo(
        name="cifar100",
        tfds_name="cifar100",
        num_classes=100,
        image_size=32,
        crop_padding=4,
        train_split="train",
        eval_split="test",
        mean=(0.5071, 0.4865, 0.4409),
        std=(0.2673, 0.2564, 0.2762),
    ),
    "tiny_imagenet": DatasetInfo(
        name="tiny_imagenet",
        tfds_name="tiny_imagenet",
        num_classes=200,
        image_size=64,
        crop_padding=8,
        train_split="train",
        eval_split="validation",
        mean=(0.4802, 0.4481, 0.3975),
        std=(0.2770, 0.2691, 0.2821),
    ),
}


def supported_datasets() -> tuple[str, ...]:
    """The names :func:`get_dataset_info` accepts."""
    return tuple(sorted(_DATASETS))


def get_dataset_info(name: str) -> DatasetInfo:
    """Returns the :class:`DatasetInfo` of ``name``.

    Raises:
      ValueError: if ``name`` is not one of "cifar10", "cifar100", "tiny_imagenet".
    """
    try:
        return _DATASETS[name]
    except KeyError:
        raise ValueError(
            f"name={name!r} is not a supported dataset; choose one of {sorted(_DATASETS)}"
        ) from None
