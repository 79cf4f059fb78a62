"""A COCO-panoptic dataset as a Cityscapes root (``panoptool convert panoptic-gt --to
cityscapes``), the reverse of :func:`panoptool.convert.panoptic.convert_panoptic_gt`.

Any dataset :func:`panoptool.io.datasets.open_dataset` opens as COCO panoptic (COCO's layout,
a description, ``synth --format coco-panoptic``), one split, becomes::

    <out>/leftImg8bit/<split>/<city>/<stem>_leftImg8bit.png       RGB
    <out>/gtFine/<split>/<city>/<stem>_gtFine_labelIds.png         uint8, category ids
    <out>/gtFine/<split>/<city>/<stem>_gtFine_instanceIds.png      uint16

The ids are panoptool's ground-truth encoding (:meth:`CocoSample.read_ground_truth
<panoptool.io.datasets.CocoSample.read_ground_truth>`), the one of Cityscapes' files: label id
= category id (0 on void), instance id ``category * 1000 + k`` for the k-th non-crowd segment
of a thing category, ``category`` for stuff and crowd segments. Where every such segment id
already is a Cityscapes instance id of its category (``id // 1000 == category_id``: what
createPanopticImgs and ``synth --format coco-panoptic`` write) the instance ids are the
segment ids, so Cityscapes -> COCO panoptic -> Cityscapes gives back the same ``instanceIds``
(instance numbers with gaps included).

What does not fit is refused, before anything is written, with one line: category ids
outside 1..255 (``labelIds`` is uint8) and instance ids beyond 65535 (``instanceIds`` is
uint16: a category above 65 with instances, or category 65 with more than 536 of them).

Cities: a Cityscapes stem ``<city>_<sequence>_<frame>`` (6-digit numbers) keeps its city;
any other stem goes to a folder named after the split (``gtFine/val2017/val2017/``). Stems
stay as they are.

Like the other conversions it runs on all cores, writes every file atomically and resumes:
each converted image leaves a sidecar ``<out>/.from_coco_panoptic_<split>.parts/<stem>.json``
with the digests of its sources (panoptic PNG, image, segments), written after its PNGs, so
a re-run converts only new or changed images. ``<out>/convert-<split>.json`` records the
source and its label space.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from panoptool.errors import ConfigError, InputError
from panoptool.io.coco_panoptic import label_maps
from panoptool.io.files import LABEL_PNG_PARAMS, UP_PNG_PARAMS, read_json, write_json, write_png
from panoptool.labels import CITYSCAPES, LABELS_KEY

PathLike = str | os.PathLike

#: The largest instance id a Cityscapes ``*_instanceIds.png`` holds (uint16).
MAX_INSTANCE_ID = 65535
_PLAIN = r"[A-Za-z0-9][A-Za-z0-9_.-]*"
_CITYSCAPES_STEM = re.compile(rf"(?P<city>{_PLAIN})_\d{{6}}_\d{{6}}")


def converted_city_folder(stem: str, split: str) -> str:
    """The city folder a converted image is written to: its city if ``stem`` is a Cityscapes
    stem, else ``split`` (a Cityscapes root needs a city level; unlike
    :func:`panoptool.io.formats.city_of`, which gives our outputs none for such stems).

    >>> converted_city_folder("frankfurt_000000_000294", "val")
    'frankfurt'
    >>> converted_city_folder("000000000139", "val2017")
    'val2017'
    >>> converted_city_folder("stuttgart_00_000000_000001", "demo")  # demoVideo stems too
    'stuttgart_00'
    """
    match = _CITYSCAPES_STEM.fullmatch(stem)
    return match["city"] if match else split


def _keeps_segment_ids(image, thing_ids: frozenset[int]) -> bool:
    """Whether every non-crowd thing segment id of ``image`` is a Cityscapes instance id of
    its category (then the instance ids are the segment ids)."""
    return all(s.id // 1000 == s.category_id for s in image.segments
               if s.category_id in thing_ids and not s.iscrowd)


def _largest_instance_id(image, thing_ids: frozenset[int]) -> tuple[int, int]:
    """``(instance id, category)`` of the largest instance id ``image`` gets (0, 0: none)."""
    things = [s for s in image.segments if s.category_id in thing_ids and not s.iscrowd]
    if not things:
        return 0, 0
    if _keeps_segment_ids(image, thing_ids):
        top = max(things, key=lambda s: s.id)
        return top.id, top.category_id
    counts: dict[int, int] = {}
    for s in things:
        counts[s.category_id] = counts.get(s.category_id, 0) + 1
    value, cat = max((c * 1000 + n - 1, c) for c, n in counts.items())
    return value, cat


def check_ids_fit(data) -> None:
    """Refuse (InputError naming the JSON, one line) a split whose ids do not fit Cityscapes'
    files: a category id outside 1..255, an instance id beyond 65535. ``data`` is a
    :class:`panoptool.io.coco_panoptic.CocoPanopticDataset`."""
    names = {c.id: c.name for c in data.categories}
    for c in data.categories:
        if not 1 <= c.id <= 255:
            raise InputError(data.json_path, f"category {c.id} ({c.name}): a Cityscapes "
                                             f"*_labelIds.png is uint8, so category ids must "
                                             f"lie in 1..255 (0 is void)")
    things = frozenset(c.id for c in data.categories if c.isthing)
    for image in data.images:
        value, cat = _largest_instance_id(image, things)
        if value > MAX_INSTANCE_ID:
            raise InputError(data.json_path, f"image {image.id!r}: category {cat} "
                                             f"({names[cat]}) gets instance id {value}, beyond "
                                             f"{MAX_INSTANCE_ID} (a Cityscapes "
                                             f"*_instanceIds.png is uint16): categories above "
                                             f"65 cannot have instances")


@dataclass(frozen=True)
class CityscapesSummary:
    """What :func:`coco_to_cityscapes` did."""

    out: str
    split: str
    images: int
    converted: int
    skipped: int
    cityscapes_classes: bool

    def line(self) -> str:
        note = "" if self.cityscapes_classes else (
            "; the categories are not Cityscapes' classes, and stages read a Cityscapes root "
            "with Cityscapes' label table")
        return (f"convert panoptic-gt --to cityscapes: {self.images} image(s), "
                f"{self.converted} converted, {self.skipped} already done -> "
                f"{Path(self.out) / 'gtFine' / self.split}{note}")


def _are_cityscapes_classes(categories) -> bool:
    """Every category is the Cityscapes label of that id (name and thing/stuff)."""
    table = {c.id: c for c in CITYSCAPES.categories}
    return all(c.id in table and table[c.id].name == c.name
               and table[c.id].has_instances == c.isthing for c in categories)


def _source_key(sample) -> dict:
    """What a converted image depends on: its PNG's and image's bytes and its segments."""
    from panoptool.evaluation.metrics.gt import file_digest

    segments = [[s.id, s.category_id, int(s.iscrowd), int(s.category_id in sample.thing_ids)]
                for s in sample.image.segments]
    return {"panoptic_png": file_digest(sample.png_path), "image": file_digest(sample.image_path),
            "segments": hashlib.blake2b(json.dumps(segments).encode(),
                                        digest_size=16).hexdigest()}


def _output_paths(out: Path, split: str, city: str, stem: str) -> dict[str, Path]:
    from panoptool.io.cityscapes import Sample

    target = Sample(out, split, city, stem)
    return {"image": target.image_path, "label_ids": target.label_ids_path,
            "instance_ids": target.instance_ids_path}


def _convert_one(sample, *, out: str, parts_dir: str, overwrite: bool) -> bool:
    """Convert one image (worker); False where its outputs are current (skipped)."""
    out = Path(out)
    city = converted_city_folder(sample.stem, sample.split)
    paths = _output_paths(out, sample.split, city, sample.stem)
    part_path = Path(parts_dir) / f"{sample.stem}.json"
    key = _source_key(sample)
    if not overwrite and part_path.is_file() and all(p.is_file() for p in paths.values()):
        try:
            if read_json(part_path) == key:
                return False
        except InputError:
            pass  # a damaged sidecar: convert again
    # one read of the PNG; Cityscapes-encoded segment ids kept as they are
    label_ids, instance_ids = label_maps(
        sample.png_path, sample.image, sample.thing_ids,
        keep_segment_ids=_keeps_segment_ids(sample.image, sample.thing_ids))
    if int(instance_ids.max(initial=0)) > MAX_INSTANCE_ID:  # check_ids_fit refuses it first
        raise InputError(sample.png_path, f"instance ids beyond {MAX_INSTANCE_ID}")
    write_png(paths["image"], sample.read_image(), params=UP_PNG_PARAMS)
    write_png(paths["label_ids"], label_ids, params=LABEL_PNG_PARAMS)
    write_png(paths["instance_ids"], instance_ids.astype(np.uint16), params=UP_PNG_PARAMS)
    write_json(part_path, key, indent=None)
    return True


def coco_to_cityscapes(root, split: str, out: PathLike, *, workers: int = 0,
                       overwrite: bool = False, show_progress: bool = True) -> CityscapesSummary:
    """One split of a COCO-panoptic dataset -> a Cityscapes root (see the module docstring).

    Parameters
    ----------
    root : the dataset (anything :func:`~panoptool.io.datasets.open_dataset` opens as COCO
        panoptic), or a dataset object.
    split : the split to convert; it becomes ``gtFine/<split>/``.
    out : the Cityscapes root to write (created, or added to); not the dataset's folder.
    workers : worker processes, 0 = all cores.
    overwrite : convert every image again instead of resuming.
    show_progress : show a progress bar on stderr.

    Raises
    ------
    InputError
        Not a COCO-panoptic dataset, an unknown split, a missing image or panoptic PNG, ids
        that do not fit (:func:`check_ids_fit`), or a broken annotation.
    ConfigError
        If ``out`` is the dataset's own folder, or ``split`` is no plain folder name.
    """
    from panoptool.io.datasets import open_dataset
    from panoptool.io.files import make_folder, remove_stale_temporaries
    from panoptool.io.formats import stage_config
    from panoptool.runtime.guard import output_lock
    from panoptool.runtime.pool import run_parallel

    dataset = open_dataset(root)
    if dataset.kind != "coco-panoptic":
        raise InputError(dataset.root, "is a Cityscapes root already: --to cityscapes "
                                       "converts a COCO-panoptic dataset")
    if not re.fullmatch(_PLAIN, split):
        raise ConfigError(f"split {split!r} is not a plain folder name, so it cannot become "
                          f"gtFine/<split>/")
    out = Path(out)
    if out.resolve() == dataset.folder.resolve():
        raise ConfigError(f"--out {out} is the COCO dataset's own folder: its gtFine/ would "
                          f"make the folder read as a Cityscapes root; choose another")
    data = dataset.dataset(split)
    check_ids_fit(data)
    labels = dataset.label_space(split)
    samples = dataset.samples(split, need_images=True)
    for sample in samples:
        if not sample.png_path.is_file():
            raise InputError(sample.png_path, f"panoptic PNG of image {sample.image.id!r} "
                                              f"(listed in {data.json_path.name}) not found")
    parts_dir = out / f".from_coco_panoptic_{split}.parts"
    with output_lock(out, "convert"):
        remove_stale_temporaries(out)
        make_folder(parts_dir)
        func = partial(_convert_one, out=str(out), parts_dir=str(parts_dir),
                       overwrite=overwrite)
        chunksize = max(1, min(8, len(samples) // (4 * max(1, workers or 2))))
        converted = sum(run_parallel(func, samples, workers=workers,
                                     description=f"convert {split} to cityscapes",
                                     chunksize=chunksize, show_progress=show_progress))
        write_json(out / f"convert-{split}.json", stage_config("convert", {
            "to": "cityscapes", "from": dataset.describe(), "split": split,
            LABELS_KEY: labels.to_dict()}))
    return CityscapesSummary(out=str(out), split=split, images=len(samples),
                             converted=converted, skipped=len(samples) - converted,
                             cityscapes_classes=_are_cityscapes_classes(data.categories))
