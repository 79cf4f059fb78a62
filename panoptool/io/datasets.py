"""Datasets behind one interface: a Cityscapes root or a COCO-panoptic dataset.

Every stage names its data with ``--root`` (:func:`open_dataset`), which may be

* a **Cityscapes root** (``gtFine/``, ``leftImg8bit/``; :mod:`panoptool.io.cityscapes`);
* a **COCO-panoptic folder in COCO's own layout**: ``annotations/panoptic_<split>.json``,
  the PNGs in ``annotations/panoptic_<split>/`` and the images in ``<split>/`` (COCO 2017
  as downloaded: ``--split val2017``);
* a **dataset description**: a JSON file (or a folder holding ``panoptool_dataset.json``)
  for any other layout (Mapillary Vistas, ADE20K, the two-image sample)::

      {"format": "coco-panoptic", "name": "my-data",
       "splits": {"val": {"images": "images", "panoptic_json": "panoptic_val.json",
                          "panoptic_dir": "panoptic_val"}},
       "ignore_categories": []}

  Paths are relative to the description's folder; ``panoptic_dir`` defaults to the JSON's
  path without ``.json``; ``ignore_categories`` lists category ids that are not evaluated
  (void in targets and metrics).

A dataset gives, for a split, its samples (:meth:`Dataset.samples`): each has a ``stem``,
an ``image_path`` and its ``file_name``, a ``split``, a ``city`` (the output sub-folder),
``read_image()`` and ``read_ground_truth()`` returning panoptool's ground-truth encoding,
the one of Cityscapes' files: ``label_ids`` uint8 (the dataset's category ids) and
``instance_ids`` (``label * 1000 + k`` for thing instances, ``label`` for stuff and crowd).
COCO instance ids reach 200999, so a COCO sample returns int32. The classes come from :meth:`Dataset.label_space`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from panoptool.errors import InputError
from panoptool.io import cityscapes
from panoptool.io import coco_panoptic as cp
from panoptool.io.files import read_json, read_png, safe_join
from panoptool.labels import CITYSCAPES, LabelSpace

PathLike = str | os.PathLike

#: Name of a dataset description inside a dataset folder.
DESCRIPTION_NAME = "panoptool_dataset.json"
#: The dataset formats: what ``Dataset.kind`` is.
KINDS = ("cityscapes", "coco-panoptic")
FORMAT_COCO_PANOPTIC = "coco-panoptic"


class Dataset(Protocol):
    """What every stage needs of a dataset."""

    kind: str
    root: Path

    @property
    def folder(self) -> Path: ...

    def label_space(self, split: str) -> LabelSpace: ...

    def samples(self, split: str, *, need_images: bool = False) -> list: ...

    def images(self, split: str) -> list: ...

    def describe(self) -> dict: ...


# --- Cityscapes --------------------------------------------------------------------------------

@dataclass(frozen=True)
class CityscapesDataset:
    """A Cityscapes root (:mod:`panoptool.io.cityscapes`)."""

    root: Path
    kind: str = "cityscapes"

    @property
    def folder(self) -> Path:
        return self.root

    def label_space(self, split: str) -> LabelSpace:
        return CITYSCAPES

    def samples(self, split: str, *, need_images: bool = False) -> list[cityscapes.Sample]:
        return cityscapes.list_samples(self.root, split, need_images=need_images)

    def images(self, split: str) -> list[cityscapes.Sample]:
        return cityscapes.list_images(self.root, split)

    def describe(self) -> dict:
        return {"format": self.kind, "root": str(self.root.resolve())}


# --- COCO panoptic -----------------------------------------------------------------------------

@dataclass(frozen=True)
class CocoSplit:
    """The files of one split of a COCO-panoptic dataset."""

    panoptic_json: Path
    panoptic_dir: Path | None = None
    images: Path | None = None


@dataclass(frozen=True)
class CocoSample:
    """One image of a COCO-panoptic split (picklable: workers get it whole)."""

    split: str
    stem: str
    image_path: Path
    png_path: Path
    json_path: Path
    image: cp.PanopticImage
    thing_ids: frozenset[int]

    @property
    def city(self) -> str:
        """The output sub-folder (Cityscapes' city); a COCO split has none."""
        return ""

    @property
    def file_name(self) -> str:
        """The image's file name (without folder), as the JSON gives it: known without an
        images folder, which evaluation and the oracle do not need."""
        return Path(self.image.file_name).name

    def read_ids(self) -> np.ndarray:
        """The checked segment-id map, int32 (H, W)."""
        return cp.read_segment_ids(self.png_path, self.image)

    def read_ground_truth(self, instance_dtype=np.int32) -> tuple[np.ndarray, np.ndarray]:
        """``(label_ids uint8, instance_ids)`` (:func:`coco_panoptic.label_maps`);
        ``instance_dtype`` uint16 refuses ids beyond 65535 (category ids above 65)."""
        label_ids, instance_ids = cp.label_maps(self.png_path, self.image, self.thing_ids)
        if np.dtype(instance_dtype) != np.int32:
            if np.iinfo(instance_dtype).max < int(instance_ids.max(initial=0)):
                raise InputError(self.png_path, f"instance ids up to "
                                                f"{int(instance_ids.max())} do not fit "
                                                f"{np.dtype(instance_dtype).name}")
            instance_ids = instance_ids.astype(instance_dtype)
        return label_ids, instance_ids

    def read_image(self) -> np.ndarray:
        """The RGB image, uint8 (H, W, 3), of the size the JSON gives."""
        image = read_image_file(self.image_path)
        if image.shape[:2] != (self.image.height, self.image.width):
            raise InputError(self.image_path, f"image is {image.shape[1]}x{image.shape[0]}, "
                                              f"{self.json_path.name} says "
                                              f"{self.image.width}x{self.image.height}")
        return image


def read_image_file(path: PathLike) -> np.ndarray:
    """An RGB image of any format OpenCV reads (PNG, JPEG ...), uint8 (H, W, 3)."""
    path = Path(path)
    if path.suffix.lower() == ".png":
        return read_png(path, dtype=np.uint8, channels=3)
    import cv2

    if not path.is_file():
        raise InputError(path, "image not found")
    data = np.fromfile(path, dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise InputError(path, "not a readable image (corrupt or unknown format)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


_DATASETS: dict[tuple, cp.CocoPanopticDataset] = {}


@dataclass(frozen=True)
class CocoPanopticData:
    """A COCO-panoptic dataset: its splits, each a JSON + PNG folder + images folder."""

    root: Path  # the description file, or the folder in COCO's layout
    splits: dict[str, CocoSplit] = field(hash=False, compare=False)
    name: str = "coco-panoptic"
    ignore_categories: tuple[int, ...] = ()
    kind: str = FORMAT_COCO_PANOPTIC

    @property
    def folder(self) -> Path:
        return self.root if self.root.is_dir() else self.root.parent

    def split(self, split: str) -> CocoSplit:
        if split not in self.splits:
            raise InputError(self.root, f"split {split!r} not found; this dataset has "
                                        f"{', '.join(sorted(self.splits)) or 'no splits'}")
        return self.splits[split]

    def dataset(self, split: str, *, check_images: bool = False) -> cp.CocoPanopticDataset:
        """The split's checked JSON (read once per process and file version)."""
        files = self.split(split)
        path = files.panoptic_json
        if not path.is_file():
            raise InputError(path, f"panoptic JSON of split {split!r} not found")
        key = (str(path.resolve()), path.stat().st_mtime_ns, str(files.panoptic_dir),
               str(files.images))
        if key not in _DATASETS:
            _DATASETS[key] = cp.read_dataset(path, files.panoptic_dir, files.images,
                                             check_images=False)
        data = _DATASETS[key]
        if check_images:
            if data.images_dir is None:
                raise InputError(self.root, f"split {split!r} has no images folder")
            if not data.images_dir.is_dir():
                raise InputError(data.images_dir, "images folder not found")
            data.check_images_on_disk()
        return data

    def label_space(self, split: str) -> LabelSpace:
        data = self.dataset(split)
        return cp.label_space(data.categories, self.name, source=data.json_path,
                              ignore=self.ignore_categories)

    def samples(self, split: str, *, need_images: bool = False) -> list[CocoSample]:
        """The split's images, sorted by stem (``need_images``: each image must exist)."""
        data = self.dataset(split, check_images=need_images)
        if not data.images:
            raise InputError(data.json_path, f"split {split!r} lists no images")
        things = frozenset(c.id for c in data.categories if c.isthing)
        missing = Path(os.devnull)
        out = [CocoSample(split, img.stem,
                          data.image_path(img) if data.images_dir is not None else missing,
                          data.png_path(img), data.json_path, img, things)
               for img in data.images]
        out.sort(key=lambda s: s.stem)
        return out

    def images(self, split: str) -> list[CocoSample]:
        return self.samples(split, need_images=True)

    def describe(self) -> dict:
        return {"format": self.kind, "root": str(self.root.resolve()), "name": self.name,
                "splits": {k: {"panoptic_json": str(v.panoptic_json),
                               "panoptic_dir": str(v.panoptic_dir) if v.panoptic_dir else None,
                               "images": str(v.images) if v.images else None}
                           for k, v in sorted(self.splits.items())}}


def coco_layout(folder: PathLike) -> CocoPanopticData:
    """A folder in COCO's layout: ``annotations/panoptic_<split>.json`` (+ PNG folder of the
    same name) and images in ``<split>/``."""
    folder = Path(folder)
    splits = {}
    for path in sorted((folder / "annotations").glob("panoptic_*.json")):
        split = path.stem[len("panoptic_"):]
        splits[split] = CocoSplit(path, path.with_suffix(""), folder / split)
    if not splits:
        raise InputError(folder / "annotations", "no panoptic_<split>.json: not a COCO-panoptic "
                                                 "folder")
    return CocoPanopticData(folder, splits, name=folder.resolve().name or "coco-panoptic")


def read_description(path: PathLike) -> CocoPanopticData:
    """A dataset description file (see the module docstring)."""
    path = Path(path)
    data = read_json(path)
    if not isinstance(data, dict):
        raise InputError(path, "expected a dataset description object (format, splits)")
    if data.get("format") != FORMAT_COCO_PANOPTIC:
        raise InputError(path, f"format must be {FORMAT_COCO_PANOPTIC!r}, got "
                               f"{data.get('format')!r}")
    raw = data.get("splits")
    if not isinstance(raw, dict) or not raw:
        raise InputError(path, "'splits' must be a non-empty object: split name -> "
                               "{images, panoptic_json, panoptic_dir}")
    base = path.parent
    splits = {}
    for name, entry in raw.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("panoptic_json"), str):
            raise InputError(path, f"split {name!r} needs a 'panoptic_json' path")

        def where(key: str) -> Path | None:
            value = entry.get(key)
            if value is None:
                return None
            if not isinstance(value, str) or not value:
                raise InputError(path, f"split {name!r}: {key} must be a path")
            return Path(value) if os.path.isabs(value) else safe_join(base, value, source=path)

        splits[str(name)] = CocoSplit(where("panoptic_json"), where("panoptic_dir"),
                                      where("images"))
    ignore = data.get("ignore_categories", [])
    if not isinstance(ignore, list) or not all(isinstance(i, int) for i in ignore):
        raise InputError(path, "'ignore_categories' must be a list of category ids")
    name = data.get("name", path.parent.resolve().name)
    if not isinstance(name, str) or not name:
        raise InputError(path, "'name' must be a non-empty string")
    return CocoPanopticData(path, splits, name=name, ignore_categories=tuple(ignore))


def write_description(path: PathLike, splits: dict[str, dict[str, str]], *,
                      name: str | None = None, ignore_categories=()) -> Path:
    """Write a dataset description (paths as given: relative to its folder, or absolute)."""
    from panoptool.io.files import write_json

    path = Path(path)
    body = {"format": FORMAT_COCO_PANOPTIC, "name": name or path.parent.resolve().name,
            "splits": splits, "ignore_categories": list(ignore_categories)}
    write_json(path, body)
    return path


# --- opening -----------------------------------------------------------------------------------

def open_dataset(root: "PathLike | Dataset | None") -> Dataset:
    """The dataset ``--root`` names (see the module docstring); ``None``:
    ``$CITYSCAPES_DATASET``. A :class:`Dataset` is returned as it is.

    Raises
    ------
    InputError
        If the path is missing or none of the layouts fits.
    """
    if root is not None and not isinstance(root, (str, os.PathLike)):
        return root  # already a dataset
    if root is None:
        env = os.environ.get(cityscapes.ENV_ROOT)
        if not env:
            raise InputError(None, f"no dataset root: pass --root or set "
                                   f"${cityscapes.ENV_ROOT}")
        root = env
    path = Path(root)
    if path.is_file():
        return read_description(path)
    if not path.is_dir():
        raise InputError(path, "dataset root not found")
    if (path / DESCRIPTION_NAME).is_file():
        return read_description(path / DESCRIPTION_NAME)
    if (path / "gtFine").is_dir() or (path / "leftImg8bit").is_dir():
        return CityscapesDataset(path)
    if any((path / "annotations").glob("panoptic_*.json")):
        return coco_layout(path)
    raise InputError(path, f"not a dataset root: it has no gtFine/ (Cityscapes), no "
                           f"annotations/panoptic_<split>.json (COCO panoptic) and no "
                           f"{DESCRIPTION_NAME}")


