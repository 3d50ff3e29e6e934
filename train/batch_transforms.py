"""The grain transforms of the input pipeline's batches: decoding an example
to its image and label, the host augmentation (random crop and flip, or the
authors' :func:`train.augment.authors_train_transform`), normalisation,
mixup, and the evaluation split's padding to full batches."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import grain
import numpy as np

from train.augment import authors_train_transform


def normalise(images: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """uint8 images -> float32 ``(images / 255 - mean) / std`` per channel."""
    std = np.asarray(std, np.float32)
    scale = 1 / (255 * std)
    offset = np.asarray(mean, np.float32) / std
    return images.astype(np.float32) * scale - offset


def image_and_label(example: dict) -> dict:
    return {"image": example["image"], "label": np.int32(example["label"])}


def random_crop_flip(images: np.ndarray, padding: int, rng: np.random.Generator) -> np.ndarray:
    """Zero-pads each image by ``padding``, crops it back to size at a random
    offset and flips it horizontally with probability 1/2."""
    size, height, width, _ = images.shape
    padded = np.pad(images, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    tops, lefts = rng.integers(0, 2 * padding + 1, size=(2, size))
    flips = rng.random(size) < 0.5
    out = np.empty_like(images)
    for i, (top, left, flip) in enumerate(zip(tops, lefts, flips)):
        crop = padded[i, top : top + height, left : left + width]
        out[i] = crop[:, ::-1] if flip else crop
    return out


@dataclasses.dataclass(frozen=True)
class TrainBatch(grain.transforms.RandomMap):
    """Augments and normalises a uint8 batch, adds one-hot labels and, if
    ``mixup_alpha > 0``, applies mixup."""

    crop_padding: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    num_classes: int
    mixup_alpha: float
    augment: str = "crop_flip"

    def random_map(self, batch: dict, rng: np.random.Generator) -> dict:
        if self.augment == "authors":
            fill = tuple(round(255 * m) for m in self.mean)
            size = batch["image"].shape[1]
            image = np.stack(
                [authors_train_transform(x, rng, size, fill=fill) for x in batch["image"]]
            )
        else:
            image = random_crop_flip(batch["image"], self.crop_padding, rng)
        image = normalise(image, self.mean, self.std)
        onehot = np.eye(self.num_classes, dtype=np.float32)[batch["label"]]
        if self.mixup_alpha > 0:
            lam = np.float32(rng.beta(self.mixup_alpha, self.mixup_alpha))
            perm = rng.permutation(len(image))
            image = lam * image + (1 - lam) * image[perm]
            onehot = lam * onehot + (1 - lam) * onehot[perm]
        return {"image": image, "label": batch["label"], "label_onehot": onehot}


@dataclasses.dataclass(frozen=True)
class EvalBatch(grain.transforms.Map):
    """Normalises a batch; padded images become zero."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def map(self, batch: dict) -> dict:
        image = normalise(batch["image"], self.mean, self.std)
        image *= batch["mask"][:, None, None, None]
        return {"image": image, "label": batch["label"], "mask": batch["mask"]}


@dataclasses.dataclass(frozen=True)
class PaddedSlice:
    """Examples ``[start, stop)`` of ``source`` with a ``mask`` of 1, followed
    by blank examples with a ``mask`` of 0 up to ``length`` in total."""

    source: Sequence[dict]
    start: int
    stop: int
    length: int
    image_shape: tuple[int, int, int]

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range [0, {self.length})")
        if index < self.stop - self.start:
            example = self.source[self.start + index]
            return {
                "image": example["image"],
                "label": np.int32(example["label"]),
                "mask": np.float32(1),
            }
        return {
            "image": np.zeros(self.image_shape, np.uint8),
            "label": np.int32(0),
            "mask": np.float32(0),
        }
