"""Torch data pipeline for training: images + targets, augmentation, a resumable sample stream.

Augmentation (random scale, horizontal flip, random crop) is drawn from a generator seeded by
``(seed, position in the stream)``, never from a global or per-worker random state, so a
sample is the same whatever the number of loader workers or processes, and a resumed run sees
exactly the samples the uninterrupted run would have seen.

The stream: epoch ``e`` visits the images in the order of a permutation drawn from
``(seed, e)``; position ``p`` of the stream is image ``perm_{p // n}[p % n]``. Iteration ``t``
of a run with global batch ``G`` uses positions ``t*G .. t*G + G - 1``; under DDP rank ``r`` of
``W`` takes the ``r``-th slice of ``G / W`` of them. One process with batch ``G`` and ``W``
processes with batch ``G / W`` therefore see the same images with the same augmentation.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from panoptool.errors import ConfigError, InputError, PanoptoolError
from panoptool.io.formats import decode_offsets, read_targets, target_paths
from panoptool.labels import IGNORE
from panoptool.training.config import Augment  # noqa: F401  (re-exported)

PathLike = str | os.PathLike

#: ImageNet statistics (RGB, 0..1 scale) used by torchvision's pretrained ResNets.
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def normalize(image: np.ndarray) -> np.ndarray:
    """uint8 RGB (H, W, 3) -> float32 (3, H, W), ImageNet-normalised."""
    x = (image.astype(np.float32) * (1 / 255.0) - MEAN) / STD
    return np.ascontiguousarray(x.transpose(2, 0, 1))


@dataclass(frozen=True)
class CropGeometry:
    """Where one augmented sample comes from: the image (``size``) rescaled by ``scale`` to
    ``scaled``, flipped or not, then cut at ``origin`` to ``crop`` (padded where the scaled
    image is smaller). All sizes and positions are (y, x) in pixels.
    """

    size: tuple[int, int]
    scale: float
    flip: bool
    scaled: tuple[int, int]
    origin: tuple[int, int]
    crop: tuple[int, int]

    @classmethod
    def draw(cls, size: tuple[int, int], crop: tuple[int, int], aug: Augment,
             rng: np.random.Generator) -> "CropGeometry":
        """The geometry of one sample, drawn from ``rng`` (scale, flip, then the origin).

        >>> g = CropGeometry.draw((40, 60), (32, 32), Augment(scale=(1.0, 1.0), flip=False),
        ...                       np.random.default_rng(0))
        >>> g.scaled, g.origin
        ((40, 60), (7, 18))
        """
        h, w = size
        s = float(rng.uniform(aug.scale[0], aug.scale[1])) if aug.scale[0] != aug.scale[1] \
            else float(aug.scale[0])
        flip = bool(aug.flip and rng.random() < 0.5)
        sh, sw = max(1, round(h * s)), max(1, round(w * s))
        ch, cw = crop
        y0 = int(rng.integers(0, max(sh - ch, 0) + 1))
        x0 = int(rng.integers(0, max(sw - cw, 0) + 1))
        return cls(size=(h, w), scale=s, flip=flip, scaled=(sh, sw), origin=(y0, x0),
                   crop=(ch, cw))

    def resize(self, a: np.ndarray, interp: int) -> np.ndarray:
        """``a`` (H, W, ...) at the scaled size (``cv2`` interpolation ``interp``)."""
        sh, sw = self.scaled
        return a if self.scaled == self.size else cv2.resize(a, (sw, sh), interpolation=interp)

    def fit(self, a: np.ndarray, fill) -> np.ndarray:
        """Flip and crop ``a`` (scaled size), padding with ``fill`` to the crop size."""
        (ch, cw), (y0, x0) = self.crop, self.origin
        if self.flip:
            a = a[:, ::-1]
        a = a[y0:y0 + ch, x0:x0 + cw]
        if a.shape[:2] != (ch, cw):
            out = np.full((ch, cw) + a.shape[2:], fill, dtype=a.dtype)
            out[:a.shape[0], :a.shape[1]] = a
            a = out
        return np.ascontiguousarray(a)

    def centers(self, centers_yx: np.ndarray) -> np.ndarray:
        """Instance centres (K, 2) (y, x) of the image in the crop's pixels, float32: scaled
        in the pixel-centre convention (coordinate c becomes ``(c + 0.5) * s - 0.5``),
        flipped and shifted exactly."""
        (h, w), (sh, sw), (y0, x0) = self.size, self.scaled, self.origin
        centers = centers_yx.astype(np.float64).reshape(-1, 2)
        cy = (centers[:, 0] + 0.5) * (sh / h) - 0.5
        cx = (centers[:, 1] + 0.5) * (sw / w) - 0.5
        if self.flip:
            cx = (sw - 1) - cx
        return np.stack([cy - y0, cx - x0], axis=1).astype(np.float32)

    def contour(self, contour: np.ndarray) -> np.ndarray:
        """The 0/1 contour map (H, W) cropped; a shrunk map is area-averaged and kept where
        > 0, so that a 1-px contour does not fall between the samples."""
        if self.scale < 1:
            shrunk = self.resize(contour.astype(np.float32), cv2.INTER_AREA) > 0
            return self.fit(shrunk.astype(np.uint8), 0)
        return self.fit(self.resize(contour, cv2.INTER_NEAREST), 0)


def augment_sample(image: np.ndarray, targets: dict[str, np.ndarray], crop: tuple[int, int],
                   aug: Augment, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Rescale, flip and crop one image and its targets (pure; randomness from ``rng``).

    Parameters
    ----------
    image : uint8 (H, W, 3) RGB.
    targets : from :func:`panoptool.io.formats.read_targets` (``train_ids``, ``contour``,
        ``instance_index``, ``centers_yx``).
    crop : (ch, cw) output size; a scaled image smaller than the crop is padded (ignore label,
        no contour, no offset, ``pixel_valid`` False).
    aug : scale range and flip switch.
    rng : the generator of this sample.

    The image is resized bilinearly, label maps by nearest neighbour, except that a shrunk
    contour map is area-averaged and thresholded at > 0 (thin contours must not vanish);
    instance centres are scaled, flipped and shifted exactly, then the offsets re-derived
    (see :class:`CropGeometry`).

    Returns
    -------
    dict of arrays of size (ch, cw): ``image`` float32 (3, ch, cw) normalised, ``semantic``
    int64, ``contour`` float32, ``offset_yx`` float32 (2, ch, cw) in pixels of the scaled
    image, ``offset_valid`` bool, ``pixel_valid`` bool.
    """
    g = CropGeometry.draw(image.shape[:2], crop, aug, rng)
    img = g.fit(g.resize(image, cv2.INTER_LINEAR), 0)
    valid = g.fit(np.ones(g.scaled, dtype=bool), False)
    semantic = g.fit(g.resize(targets["train_ids"], cv2.INTER_NEAREST), IGNORE)
    contour = g.contour(targets["contour"])
    index = g.fit(g.resize(targets["instance_index"], cv2.INTER_NEAREST), 0)
    offset_yx, offset_valid = decode_offsets(index, g.centers(targets["centers_yx"]))
    x = normalize(img)
    x[:, ~valid] = 0.0  # padding = the mean colour
    return {"image": x, "semantic": semantic.astype(np.int64),
            "contour": contour.astype(np.float32), "offset_yx": offset_yx,
            "offset_valid": offset_valid, "pixel_valid": valid}


@dataclass(frozen=True)
class BadSample:
    """What a dataset returns instead of a sample it cannot read: the file and the problem.

    Returned (not raised) so that the error crosses the DataLoader's worker boundary intact
    (torch re-raises worker exceptions as a RuntimeError carrying a traceback) and the
    training / inference loop decides whether to stop or skip (``--on-bad-image``).
    """

    path: str | None
    problem: str

    @classmethod
    def of(cls, exc: PanoptoolError, fallback: PathLike) -> "BadSample":
        path = getattr(exc, "path", None)
        problem = getattr(exc, "problem", None)
        if problem is None:
            return cls(str(fallback), str(exc))
        return cls(path, problem)

    def error(self) -> InputError:
        return InputError(self.path, self.problem)

    def line(self) -> str:
        return str(self.error())


ON_BAD_IMAGE = ("stop", "skip")


def check_on_bad_image(value: str) -> str:
    """Validate an ``--on-bad-image`` value (``stop`` or ``skip``)."""
    if value not in ON_BAD_IMAGE:
        raise ConfigError(f"--on-bad-image must be stop or skip, got {value!r}")
    return value


def collate_samples(samples: list) -> tuple[dict[str, torch.Tensor] | None, list[BadSample]]:
    """Collate the readable samples of a batch; return ``(batch or None, bad samples)``."""
    bad = [s for s in samples if isinstance(s, BadSample)]
    good = [s for s in samples if not isinstance(s, BadSample)]
    batch = torch.utils.data.default_collate(good) if good else None
    return batch, bad


def image_sizes(dataset, samples: list) -> list[tuple[int, int]]:
    """The (height, width) of a split's images: a Cityscapes split's one size (its first
    image's, read), a COCO-panoptic split's sizes as its JSON gives them (each image is
    checked against it when read)."""
    if dataset.kind == "cityscapes":
        return [samples[0].read_image().shape[:2]]
    return sorted({(s.image.height, s.image.width) for s in samples})


class TrainDataset(torch.utils.data.Dataset):
    """Images of a split with their targets, augmented; indexed by ``(image index, seed)``
    pairs from :class:`StreamBatchSampler`.

    Parameters
    ----------
    root : the dataset (anything :func:`panoptool.io.datasets.open_dataset` accepts);
        split : split name; targets_root : ``make-targets`` output folder.
    aug : augmentation settings.

    Attributes
    ----------
    dataset : the opened dataset; samples : its samples of ``split`` (images checked).
    image_size : (height, width), the largest side of each axis over the images.
    crop : the crop of every sample: ``aug.crop`` clipped to ``image_size``; smaller
        images are padded (ignore label, no contour, no offset, ``pixel_valid`` False).

    Raises
    ------
    InputError
        If the split has no images or an image has no targets (named).
    """

    def __init__(self, root, split: str, targets_root: PathLike, aug: Augment = Augment()):
        from panoptool.io.datasets import open_dataset

        self.dataset = open_dataset(root)
        self.samples: list = self.dataset.samples(split, need_images=True)
        self.targets_root = Path(targets_root)
        self.split = split
        self.aug = aug
        for s in self.samples:
            if not target_paths(self.targets_root, split, s.stem)["offset"].is_file():
                raise InputError(target_paths(self.targets_root, split, s.stem)["offset"],
                                 "target missing: run `panoptool make-targets` for split "
                                 f"{split!r} into {self.targets_root}")
        sizes = image_sizes(self.dataset, self.samples)
        h, w = max(size[0] for size in sizes), max(size[1] for size in sizes)
        self.image_size = (h, w)
        self.crop = (min(aug.crop[0], h), min(aug.crop[1], w))

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, item: tuple[int, int]) -> dict[str, torch.Tensor] | BadSample:
        """The augmented sample, or a :class:`BadSample` naming the file it cannot read."""
        try:
            return self._load(item)
        except PanoptoolError as exc:
            return BadSample.of(exc, self.samples[item[0]].image_path)

    def _load(self, item: tuple[int, int]) -> dict[str, torch.Tensor]:
        index, seed = item
        sample = self.samples[index]
        image = sample.read_image()
        targets = read_targets(self.targets_root, self.split, sample.stem)
        if targets["train_ids"].shape != image.shape[:2]:
            raise InputError(target_paths(self.targets_root, self.split, sample.stem)["semantic"],
                             f"size {targets['train_ids'].shape} differs from the image "
                             f"{image.shape[:2]}")
        out = augment_sample(image, targets, self.crop, self.aug, np.random.default_rng(seed))
        return {k: torch.from_numpy(v) for k, v in out.items()}


class StreamBatchSampler:
    """Yields the per-process batches of iterations ``start, start + 1, ...`` (endless).

    Each element is ``(image index, augmentation seed)``; see the module docstring.

    Parameters
    ----------
    n_images : dataset size.
    batch : samples per process and iteration.
    seed : run seed.
    start : first iteration.
    rank, world : this process's rank and the number of processes.
    """

    def __init__(self, n_images: int, batch: int, seed: int, start: int = 0, rank: int = 0,
                 world: int = 1):
        self.n, self.batch, self.seed, self.start = n_images, batch, seed, start
        self.rank, self.world = rank, world
        self._perm_epoch, self._perm = -1, None

    def position(self, p: int) -> tuple[int, int]:
        """The stream element at position ``p``: (image index, augmentation seed)."""
        epoch, k = divmod(p, self.n)
        if epoch != self._perm_epoch:
            self._perm = np.random.default_rng([self.seed, epoch, 7]).permutation(self.n)
            self._perm_epoch = epoch
        aug_seed = int(np.random.SeedSequence([self.seed, p, 11]).generate_state(1)[0])
        return int(self._perm[k]), aug_seed

    def batch_at(self, iteration: int) -> list[tuple[int, int]]:
        first = (iteration * self.world + self.rank) * self.batch
        return [self.position(p) for p in range(first, first + self.batch)]

    def __iter__(self):
        t = self.start
        while True:
            yield self.batch_at(t)
            t += 1


def _worker_init(_: int) -> None:
    from panoptool.runtime.guard import worker_initializer
    worker_initializer(_PARENT_PID)
    torch.set_num_threads(1)
    cv2.setNumThreads(1)


#: pid of the process that builds the loaders (the workers' parent), read by forked workers.
_PARENT_PID = os.getpid()


def make_loader(dataset: TrainDataset, sampler: StreamBatchSampler, workers: int,
                pin_memory: bool = False) -> torch.utils.data.DataLoader:
    """A DataLoader over the stream; ``workers`` = 0 loads in this process."""
    global _PARENT_PID
    _PARENT_PID = os.getpid()
    kwargs = {}
    if workers > 0:
        kwargs = {"worker_init_fn": _worker_init, "prefetch_factor": 2,
                  "persistent_workers": False}
    return torch.utils.data.DataLoader(dataset, batch_sampler=sampler, num_workers=workers,
                                       pin_memory=pin_memory, collate_fn=collate_samples,
                                       **kwargs)
