"""The Cityscapes data layer: find a dataset root, list the images of a split, read them.

Layout (the official one)::

    <root>/leftImg8bit/<split>/<city>/<stem>_leftImg8bit.png      RGB uint8
    <root>/gtFine/<split>/<city>/<stem>_gtFine_labelIds.png        uint8 label ids
    <root>/gtFine/<split>/<city>/<stem>_gtFine_instanceIds.png     uint16 instance ids
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from panoptool.errors import InputError
from panoptool.io.files import read_png
from panoptool.labels import KNOWN_LABEL_ID

PathLike = str | os.PathLike

ENV_ROOT = "CITYSCAPES_DATASET"
LABEL_SUFFIX = "_gtFine_labelIds.png"
INSTANCE_SUFFIX = "_gtFine_instanceIds.png"
IMAGE_SUFFIX = "_leftImg8bit.png"


@dataclass(frozen=True)
class Sample:
    """One image of a split and the paths of its files."""

    root: Path
    split: str
    city: str
    stem: str

    @property
    def image_path(self) -> Path:
        return self.root / "leftImg8bit" / self.split / self.city / f"{self.stem}{IMAGE_SUFFIX}"

    @property
    def label_ids_path(self) -> Path:
        return self.root / "gtFine" / self.split / self.city / f"{self.stem}{LABEL_SUFFIX}"

    @property
    def instance_ids_path(self) -> Path:
        return self.root / "gtFine" / self.split / self.city / f"{self.stem}{INSTANCE_SUFFIX}"

    @property
    def file_name(self) -> str:
        """The image's file name, ``<stem>_leftImg8bit.png``."""
        return self.image_path.name

    def read_image(self) -> np.ndarray:
        """The RGB image, uint8 (H, W, 3)."""
        return read_image(self)

    def read_ground_truth(self, instance_dtype=np.int32) -> tuple[np.ndarray, np.ndarray]:
        """``(label_ids uint8, instance_ids)``; see :func:`read_ground_truth`."""
        return read_ground_truth(self, instance_dtype)


def resolve_root(root: PathLike | None, *, need_gt: bool = True) -> Path:
    """The dataset root: ``root`` if given, else ``$CITYSCAPES_DATASET``.

    Raises
    ------
    InputError
        If neither is set, the folder does not exist or it has no ``gtFine/`` folder
        (``need_gt``; else no ``gtFine/`` and no ``leftImg8bit/`` folder).
    """
    if root is None:
        env = os.environ.get(ENV_ROOT)
        if not env:
            raise InputError(None, f"no dataset root: pass --root or set ${ENV_ROOT}")
        root = env
    root = Path(root)
    if not root.is_dir():
        raise InputError(root, "dataset root not found")
    if not (root / "gtFine").is_dir() and (need_gt or not (root / "leftImg8bit").is_dir()):
        raise InputError(root, "not a Cityscapes root: it has no gtFine/ folder")
    return root


def list_images(root: PathLike | None, split: str) -> list[Sample]:
    """The images of a split, with or without ground truth (Cityscapes' test split).

    Where ``gtFine/<split>/`` holds label files the samples are those of
    :func:`list_samples` (``need_images=True``); otherwise they are found through
    ``leftImg8bit/<split>/<city>/*_leftImg8bit.png``.

    Raises
    ------
    InputError
        If the split has neither ground truth nor images.
    """
    root = resolve_root(root, need_gt=False)
    if any((root / "gtFine" / split).glob(f"*/*{LABEL_SUFFIX}")):
        return list_samples(root, split, need_images=True)
    image_dir = root / "leftImg8bit" / split
    samples = [Sample(root, split, p.parent.name, p.name[: -len(IMAGE_SUFFIX)])
               for p in image_dir.glob(f"*/*{IMAGE_SUFFIX}") if not p.name.startswith(".")]
    if not samples:
        raise InputError(image_dir, f"split {split!r} has no ground truth and no "
                                    f"*{IMAGE_SUFFIX} images")
    samples.sort(key=lambda s: s.stem)
    return samples


def list_samples(root: PathLike | None, split: str, *, need_images: bool = False) -> list[Sample]:
    """The images of a split, sorted by stem, found through their ``*_gtFine_labelIds.png``.

    Parameters
    ----------
    root : dataset root (see :func:`resolve_root`).
    split : ``train``, ``val``, ``test`` or any folder name below ``gtFine/``.
    need_images : also require ``leftImg8bit/<split>/`` and each image file.

    Raises
    ------
    InputError
        If the split folder is missing or empty, or (``need_images``) an image is missing.
    """
    root = resolve_root(root)
    split_dir = root / "gtFine" / split
    if not split_dir.is_dir():
        raise InputError(split_dir, f"split {split!r} not found")
    samples = [Sample(root, split, p.parent.name, p.name[: -len(LABEL_SUFFIX)])
               for p in split_dir.glob(f"*/*{LABEL_SUFFIX}")]
    if not samples:
        raise InputError(split_dir, f"no *{LABEL_SUFFIX} files in split {split!r}")
    samples.sort(key=lambda s: s.stem)
    if need_images:
        for s in samples:
            if not s.image_path.is_file():
                raise InputError(s.image_path, "image not found")
    return samples


def read_image(sample: Sample) -> np.ndarray:
    """The RGB image of a sample, uint8 (H, W, 3)."""
    return read_png(sample.image_path, dtype=np.uint8, channels=3)


def read_label_ids(path: PathLike) -> np.ndarray:
    """A ``*_labelIds.png``: uint8 (H, W) of known Cityscapes label ids."""
    label_ids = read_png(path, dtype=np.uint8, channels=1)
    present = _present_values(label_ids, 256)  # a histogram: much faster than a per-pixel check
    unknown = present[~KNOWN_LABEL_ID[present]]
    if unknown.size:
        raise InputError(path, f"unknown label id(s) {unknown.tolist()}")
    return label_ids


def _present_values(image: np.ndarray, n_values: int) -> np.ndarray:
    """Sorted distinct values of a uint8/uint16 image (a histogram, OpenCV-fast)."""
    hist = cv2.calcHist([np.ascontiguousarray(image)], [0], None, [n_values], [0, n_values])
    return np.flatnonzero(hist.ravel())


def read_instance_ids(path: PathLike, dtype=np.int32) -> np.ndarray:
    """A ``*_instanceIds.png`` (uint16 on disk) as ``dtype`` (H, W): int32 by default (ids
    can be subtracted and compared freely), or uint16 as stored (no conversion)."""
    inst = read_png(path, channels=1)
    if inst.dtype not in (np.uint16, np.int32, np.uint8):
        raise InputError(path, f"expected a 16-bit PNG, got dtype {inst.dtype}")
    present = _present_values(inst.astype(np.uint16, copy=False), 1 << 16)
    label_part = np.where(present >= 1000, present // 1000, present)
    bad = present[(label_part > 255) | ~KNOWN_LABEL_ID[np.minimum(label_part, 255)]]
    if bad.size:
        raise InputError(path, f"instance id(s) with unknown label {bad[:5].tolist()}")
    return inst.astype(dtype, copy=False)


def read_ground_truth(sample: Sample, instance_dtype=np.int32) -> tuple[np.ndarray, np.ndarray]:
    """``(label_ids uint8 (H, W), instance_ids (H, W))`` of a sample, sizes checked;
    ``instance_dtype`` as in :func:`read_instance_ids`."""
    label_ids = read_label_ids(sample.label_ids_path)
    instance_ids = read_instance_ids(sample.instance_ids_path, instance_dtype)
    if instance_ids.shape != label_ids.shape:
        raise InputError(sample.instance_ids_path,
                         f"size {instance_ids.shape[1]}x{instance_ids.shape[0]} differs from "
                         f"{sample.label_ids_path.name} ({label_ids.shape[1]}x{label_ids.shape[0]})")
    return label_ids, instance_ids
