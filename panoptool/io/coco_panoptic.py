"""A COCO-panoptic dataset (COCO, Mapillary Vistas, ADE20K, or Cityscapes converted): reading
and checking it.

Layout (what panopticapi and every COCO-panoptic benchmark ship)::

    <images>/<file_name>                      the images (any format OpenCV reads)
    <panoptic-json>                           {"images", "annotations", "categories"}
    <panoptic-dir>/<annotation file_name>     PNG, segment id = R + 256 G + 256^2 B, 0 = void

* ``categories[]``: ``id`` (int), ``name``, ``isthing`` (0/1: required, it decides which
  categories get instances), optional ``color`` and ``supercategory``.
* ``images[]``: ``id``, ``file_name``, ``height``, ``width``.
* ``annotations[]``: ``image_id``, ``file_name`` (of the PNG), ``segments_info[]`` with
  ``id``, ``category_id``, ``iscrowd`` (0/1, default 0), ``area``, ``bbox``.

An image is named by its *stem*: its file name without folder and extension
(``000000139.jpg`` -> ``000000139``); stems must be unique.

Every problem is an :class:`~panoptool.errors.InputError` naming the file and the entry: a
category without ``isthing``, a segment listed twice, an annotation of an unknown image, an
image listed in the JSON but missing on disk, a PNG of another size than its image, an id in a
PNG that ``segments_info`` does not list (or a listed segment that the PNG lacks: panopticapi's
``pq_compute`` refuses both).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from panoptool.errors import InputError
from panoptool.io.files import read_json, read_png, safe_join
from panoptool.labels import IGNORE, Category, LabelSpace

PathLike = str | os.PathLike

#: Value of a pixel that belongs to no segment in a COCO panoptic PNG.
VOID_ID = 0


@dataclass(frozen=True)
class PanopticCategory:
    """One entry of a COCO panoptic ``categories`` list."""

    id: int
    name: str
    isthing: bool
    color: tuple[int, int, int] | None = None
    supercategory: str = ""

    def to_dict(self) -> dict:
        d = {"id": self.id, "name": self.name, "isthing": int(self.isthing),
             "supercategory": self.supercategory}
        if self.color is not None:
            d["color"] = list(self.color)
        return d


@dataclass(frozen=True)
class PanopticSegment:
    """One entry of an annotation's ``segments_info``."""

    id: int
    category_id: int
    iscrowd: bool = False


@dataclass(frozen=True)
class PanopticImage:
    """An image of the dataset with its annotation."""

    id: int | str
    stem: str
    file_name: str
    height: int
    width: int
    png_name: str
    segments: tuple[PanopticSegment, ...]


def rgb_to_ids(rgb: np.ndarray) -> np.ndarray:
    """Segment ids of a COCO panoptic PNG: ``R + 256 G + 256^2 B``.

    Parameters
    ----------
    rgb : uint8 (H, W, 3), channels in RGB order.

    Returns
    -------
    int32 (H, W).

    >>> rgb_to_ids(np.array([[[1, 0, 0], [0, 1, 0], [255, 255, 255]]], np.uint8)).tolist()
    [[1, 256, 16777215]]
    """
    rgb = np.asarray(rgb)
    if rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.size \
            and np.little_endian:
        # the 4 bytes R, G, B, A of a pixel read as one little-endian uint32 are
        # R + 256 G + 256^2 B + 256^3 A: one OpenCV pass and a mask instead of 3 widenings
        rgba = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2RGBA)
        ids = rgba.view(np.uint32)[..., 0]
        ids &= 0xFFFFFF
        return ids.view(np.int32)
    rgb = rgb.astype(np.int32)
    return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]


def ids_to_rgb(ids: np.ndarray) -> np.ndarray:
    """Inverse of :func:`rgb_to_ids`: uint8 (H, W, 3) RGB of int (H, W) ids below 2^24.

    >>> ids_to_rgb(np.array([[1, 256, 16777215]])).tolist()
    [[[1, 0, 0], [0, 1, 0], [255, 255, 255]]]
    """
    ids = np.asarray(ids, dtype=np.int64)
    return np.stack([ids % 256, ids // 256 % 256, ids // 65536 % 256], axis=-1).astype(np.uint8)


def _int(value, what: str, path: Path) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InputError(path, f"{what} must be an integer, got {value!r}")
    return int(value)


def parse_categories(raw, path: PathLike) -> tuple[PanopticCategory, ...]:
    """Check and read a ``categories`` list.

    >>> cats = parse_categories([{"id": 7, "name": "road", "isthing": 0},
    ...                          {"id": 26, "name": "car", "isthing": 1, "color": [0, 0, 142]}],
    ...                         "x.json")
    >>> [(c.id, c.name, c.isthing, c.color) for c in cats]
    [(7, 'road', False, None), (26, 'car', True, (0, 0, 142))]
    """
    path = Path(path)
    if not isinstance(raw, list) or not raw:
        raise InputError(path, "'categories' must be a non-empty list")
    out, seen = [], set()
    for k, cat in enumerate(raw):
        if not isinstance(cat, dict):
            raise InputError(path, f"categories[{k}] is not an object")
        cid = _int(cat.get("id"), f"categories[{k}].id", path)
        name = cat.get("name")
        label = f"category {cid} ({name})" if name else f"category {cid}"
        if not isinstance(name, str) or not name:
            raise InputError(path, f"{label} has no name")
        if "isthing" not in cat:
            raise InputError(path, f"{label} lacks 'isthing' (0 for stuff, 1 for things)")
        if cat["isthing"] not in (0, 1):  # True/False compare equal to 1/0
            raise InputError(path, f"{label}: isthing must be 0 or 1, got {cat['isthing']!r}")
        if cid in seen:
            raise InputError(path, f"{label} is listed twice")
        seen.add(cid)
        color = cat.get("color")
        if color is not None:
            if (not isinstance(color, (list, tuple)) or len(color) != 3
                    or not all(isinstance(c, int) and 0 <= c <= 255 for c in color)):
                raise InputError(path, f"{label}: color must be 3 integers in 0..255, "
                                       f"got {color!r}")
            color = tuple(int(c) for c in color)
        out.append(PanopticCategory(cid, name, bool(cat["isthing"]), color,
                                    str(cat.get("supercategory", ""))))
    return tuple(out)


def parse_segments(raw, where: str, categories: set[int], path: Path
                   ) -> tuple[PanopticSegment, ...]:
    """Check and read a ``segments_info`` list (``where`` names the image in errors)."""
    if not isinstance(raw, list):
        raise InputError(path, f"{where}: 'segments_info' must be a list")
    out, seen = [], set()
    for seg in raw:
        if not isinstance(seg, dict):
            raise InputError(path, f"{where}: a segment is not an object")
        sid = _int(seg.get("id"), f"{where}: segment id", path)
        if not 0 < sid < 1 << 24:
            raise InputError(path, f"{where}: segment id {sid} is outside 1..2^24-1")
        if sid in seen:
            raise InputError(path, f"{where}: segment {sid} is listed twice")
        seen.add(sid)
        cat = _int(seg.get("category_id"), f"{where}: segment {sid}: category_id", path)
        if cat not in categories:
            raise InputError(path, f"{where}: segment {sid} has category_id {cat}, which "
                                   f"'categories' does not list")
        crowd = seg.get("iscrowd", 0)
        if crowd not in (0, 1):
            raise InputError(path, f"{where}: segment {sid}: iscrowd must be 0 or 1, got "
                                   f"{crowd!r}")
        out.append(PanopticSegment(sid, cat, bool(crowd)))
    return tuple(out)


def parse_annotation(ann, categories: set[int], path: PathLike
                     ) -> tuple[int | str, str, tuple[PanopticSegment, ...]]:
    """Check and read one ``annotations`` entry: (image id, PNG file name, segments)."""
    path = Path(path)
    if not isinstance(ann, dict) or "image_id" not in ann:
        raise InputError(path, "an annotation is not an object with an image_id")
    image_id = ann["image_id"]
    where = f"image {image_id!r}"
    png = ann.get("file_name")
    if not isinstance(png, str) or not png:
        raise InputError(path, f"{where}: the annotation has no file_name")
    return image_id, png, parse_segments(ann.get("segments_info"), where, categories, path)


def index_annotations(annotations: list, categories: set[int], images, path: PathLike,
                      listed_in: str) -> dict:
    """``{image id: (PNG file name, segments)}`` of an ``annotations`` list, each entry
    checked (:func:`parse_annotation`): its image must be one of ``images`` (any container
    of ids; ``listed_in`` names where they are listed, in the error) and annotated once."""
    path = Path(path)
    out = {}
    for ann in annotations:
        image_id, png, segments = parse_annotation(ann, categories, path)
        if image_id not in images:
            raise InputError(path, f"annotation of image id {image_id!r}, which {listed_in} "
                                   f"does not list")
        if image_id in out:
            raise InputError(path, f"image id {image_id!r} is annotated twice")
        out[image_id] = (png, segments)
    return out


def stem_of(file_name: str) -> str:
    """An image's name in panoptool: its file name without folder and extension.

    >>> stem_of("val2017/000000139.jpg")
    '000000139'
    """
    return os.path.splitext(os.path.basename(file_name))[0]


def _images(raw, path: Path) -> dict:
    if not isinstance(raw, list):
        raise InputError(path, "'images' must be a list")
    images, stems = {}, set()
    for k, img in enumerate(raw):
        if not isinstance(img, dict) or "id" not in img:
            raise InputError(path, f"images[{k}] is not an object with an id")
        image_id = img["id"]
        file_name = img.get("file_name")
        if not isinstance(file_name, str) or not file_name:
            raise InputError(path, f"image {image_id!r} has no file_name")
        h = _int(img.get("height"), f"image {image_id!r}: height", path)
        w = _int(img.get("width"), f"image {image_id!r}: width", path)
        if h < 1 or w < 1:
            raise InputError(path, f"image {image_id!r}: size {w}x{h} is empty")
        stem = stem_of(file_name)
        if image_id in images:
            raise InputError(path, f"image id {image_id!r} is listed twice")
        if stem in stems:
            raise InputError(path, f"two images have the file stem {stem!r}")
        stems.add(stem)
        images[image_id] = (stem, file_name, h, w)
    return images


@dataclass(frozen=True)
class CocoPanopticDataset:
    """A checked COCO panoptic JSON with its folders. Build with :func:`read_dataset`."""

    json_path: Path
    panoptic_dir: Path
    images_dir: Path | None
    categories: tuple[PanopticCategory, ...]
    images: tuple[PanopticImage, ...]

    @property
    def stems(self) -> list[str]:
        return [img.stem for img in self.images]

    def image(self, stem: str) -> PanopticImage:
        for img in self.images:
            if img.stem == stem:
                return img
        raise InputError(self.json_path, f"no image with stem {stem!r}")

    def image_path(self, image: PanopticImage) -> Path:
        if self.images_dir is None:
            raise InputError(self.json_path, "no images folder given (--images)")
        return safe_join(self.images_dir, image.file_name, source=self.json_path)

    def png_path(self, image: PanopticImage) -> Path:
        return safe_join(self.panoptic_dir, image.png_name, source=self.json_path)

    def read_ids(self, image: PanopticImage) -> np.ndarray:
        """The image's segment-id map, int32 (H, W), checked against its annotation: the PNG
        has the image's size, each non-zero id is a listed segment and each listed segment
        occurs."""
        return read_segment_ids(self.png_path(image), image)

    def check_images_on_disk(self) -> None:
        """Every image the JSON lists exists in the images folder."""
        for img in self.images:
            path = self.image_path(img)
            if not path.is_file():
                raise InputError(path, f"image {img.id!r} is listed in {self.json_path.name} "
                                       f"but missing on disk")


def read_segment_ids(path: PathLike, image: PanopticImage) -> np.ndarray:
    """The segment-id map of ``image`` read from its panoptic PNG ``path``, int32 (H, W),
    checked: the PNG has the image's size, each non-zero id is a listed segment, each listed
    segment occurs."""
    ids, _, _ = read_segments(path, image)
    return ids


def read_segments(path: PathLike, image: PanopticImage
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Like :func:`read_segment_ids`, also giving the distinct ids present (sorted, void
    included if present) and each pixel's index into them: ``(ids, present, inverse)``."""
    ids, listed, index, counts = segment_index(path, image)
    if not counts[0]:  # no void pixel
        return ids, listed, index - 1
    return ids, np.concatenate([[VOID_ID], listed]), index


def remap(index: np.ndarray, table: np.ndarray) -> np.ndarray:
    """``table[index]`` for an index map of :func:`segment_index` (OpenCV's LUT where the
    index is 8-bit: ten times faster than numpy's gather).

    >>> remap(np.array([[0, 2, 1]], np.uint8), np.array([0, 7, 9], np.int32)).tolist()
    [[0, 9, 7]]
    """
    if index.dtype == np.uint8 and len(table) <= 256 and index.ndim == 2 and index.size:
        full = np.zeros(256, dtype=table.dtype)
        full[:len(table)] = table
        return cv2.LUT(index, full)
    return np.take(table, index)


def segment_index(path: PathLike, image: PanopticImage
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The checked segment-id map of ``image`` (see :func:`read_segment_ids`), the listed
    segment ids sorted, each pixel's position in them plus one (0 on void) and the number
    of pixels of each position: ``(ids int32 (H, W), listed int64 (G,), index (H, W) uint8
    (G < 256) or int32, counts int64 (G + 1,))``.

    A look-up table over the 2^24 possible ids replaces a sort of the pixels: it is
    allocated zeroed by the system and only its pages that hold listed ids are touched.
    """
    rgb = read_png(path, dtype=np.uint8, channels=3)
    if rgb.shape[:2] != (image.height, image.width):
        raise InputError(path, f"PNG is {rgb.shape[1]}x{rgb.shape[0]}, its image "
                               f"{image.file_name} is {image.width}x{image.height}")
    ids = rgb_to_ids(rgb)
    listed = np.array(sorted(s.id for s in image.segments), dtype=np.int64)
    small = len(listed) < 256
    lut = np.zeros(1 << 24, dtype=np.uint8 if small else np.int32)
    lut[listed] = np.arange(1, len(listed) + 1)
    index = np.take(lut, ids)
    if small and index.size:
        counts = cv2.calcHist([index], [0], None, [256], [0, 256]).ravel()
        counts = counts[:len(listed) + 1].astype(np.int64)
    else:
        counts = np.bincount(index.ravel(), minlength=len(listed) + 1)
    n_void = np.count_nonzero(ids == VOID_ID) if counts[0] else 0
    if counts[0] != n_void:
        unlisted = np.unique(ids[(index == 0) & (ids != VOID_ID)])
        raise InputError(path, f"segment id {int(unlisted[0])} occurs in the PNG but not "
                               f"in segments_info of image {image.id!r}"
                               + (f" ({unlisted.size} such ids)" if unlisted.size > 1 else ""))
    absent = listed[counts[1:] == 0]
    if absent.size:
        raise InputError(path, f"segment {int(absent[0])} of image {image.id!r} is listed "
                               f"in segments_info but absent from the PNG")
    return ids, listed, index, counts


def segment_encoding(path: PathLike, image: PanopticImage, thing_ids: frozenset[int]
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Label id and instance id of each listed segment of ``image``, in the order of
    ``segments_info``: ``(label_ids uint8 (G,), instance_ids int32 (G,))``, by the rule of
    :func:`label_maps` (``path``, the PNG, is named in errors).

    >>> img = PanopticImage(1, "a", "a.jpg", 1, 3, "a.png", (PanopticSegment(5, 7),
    ...     PanopticSegment(9, 26), PanopticSegment(4, 26, True), PanopticSegment(8, 26)))
    >>> [a.tolist() for a in segment_encoding("a.png", img, frozenset({26}))]
    [[7, 26, 26, 26], [7, 26000, 26, 26001]]
    """
    label_of = np.array([seg.category_id for seg in image.segments], dtype=np.uint8)
    instance_of = np.zeros(len(image.segments), dtype=np.int32)
    counter: dict[int, int] = {}
    for k, seg in enumerate(image.segments):
        if seg.category_id in thing_ids and not seg.iscrowd:
            n = counter.get(seg.category_id, 0)
            if n >= 1000:
                raise InputError(path, f"image {image.id!r} has over 1000 instances of "
                                       f"category {seg.category_id}")
            counter[seg.category_id] = n + 1
            instance_of[k] = seg.category_id * 1000 + n
        else:
            instance_of[k] = seg.category_id
    return label_of, instance_of


def label_maps(path: PathLike, image: PanopticImage, thing_ids: frozenset[int], *,
               keep_segment_ids: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The panoptic PNG of ``image`` as panoptool's ground-truth encoding (the one of
    Cityscapes' ``*_labelIds.png`` / ``*_instanceIds.png``): ``(label_ids uint8,
    instance_ids int32)``.

    Each pixel's label id is its segment's ``category_id`` (0 on void). A non-crowd segment
    of a thing category (``thing_ids``) gets instance id ``category_id * 1000 + k``, k = 0,
    1, ... in the order of ``segments_info``; stuff and crowd segments get ``category_id``
    (a crowd region, as in Cityscapes), void 0.

    ``keep_segment_ids``: a non-crowd thing segment keeps its segment id as instance id
    (for ids that already are Cityscapes instance ids of their category, as
    createPanopticImgs writes them: gaps in the numbering survive).

    Raises
    ------
    InputError
        As :func:`read_segment_ids`, or with 1000 or more instances of one category.
    """
    _, listed, index, _ = segment_index(path, image)
    seg_label, seg_instance = segment_encoding(path, image, thing_ids)
    if keep_segment_ids:
        seg_instance = np.where(seg_instance >= 1000,
                                np.array([seg.id for seg in image.segments], dtype=np.int32),
                                seg_instance)
    label_of = np.zeros(len(listed) + 1, dtype=np.uint8)  # position 0: void
    instance_of = np.zeros(len(listed) + 1, dtype=np.int32)
    position = np.searchsorted(listed, [seg.id for seg in image.segments]) + 1
    label_of[position] = seg_label
    instance_of[position] = seg_instance
    return remap(index, label_of), remap(index, instance_of)


def read_dataset(panoptic_json: PathLike, panoptic_dir: PathLike | None = None,
                 images_dir: PathLike | None = None, *, check_images: bool = True
                 ) -> CocoPanopticDataset:
    """Read and check a COCO panoptic dataset description.

    Parameters
    ----------
    panoptic_json : the JSON (``images``, ``annotations``, ``categories``).
    panoptic_dir : folder of the panoptic PNGs; default the JSON's path without ``.json``
        (panopticapi's convention).
    images_dir : folder of the images (needed to train and for ``make-targets``' image
        checks; evaluation needs only the PNGs).
    check_images : with ``images_dir``: refuse a JSON that lists an image missing on disk.
    """
    json_path = Path(panoptic_json)
    data = read_json(json_path)
    if not isinstance(data, dict):
        raise InputError(json_path, "expected a COCO panoptic object (images, annotations, "
                                    "categories)")
    for key in ("images", "annotations", "categories"):
        if key not in data:
            raise InputError(json_path, f"no {key!r} list: not a COCO panoptic JSON")
    categories = parse_categories(data["categories"], json_path)
    known = {c.id for c in categories}
    images = _images(data["images"], json_path)
    if not isinstance(data["annotations"], list):
        raise InputError(json_path, "'annotations' must be a list")
    annotated = index_annotations(data["annotations"], known, images, json_path, "'images'")
    records = []
    for image_id, (stem, file_name, h, w) in images.items():
        if image_id not in annotated:
            raise InputError(json_path, f"image {image_id!r} has no annotation")
        png, segments = annotated[image_id]
        records.append(PanopticImage(image_id, stem, file_name, h, w, png, segments))
    png_dir = Path(panoptic_dir) if panoptic_dir is not None else json_path.with_suffix("")
    if not png_dir.is_dir():
        raise InputError(png_dir, "panoptic PNG folder not found (--panoptic-dir)")
    dataset = CocoPanopticDataset(json_path, png_dir,
                                  Path(images_dir) if images_dir is not None else None,
                                  categories, tuple(records))
    if images_dir is not None:
        if not Path(images_dir).is_dir():
            raise InputError(images_dir, "images folder not found (--images)")
        if check_images:
            dataset.check_images_on_disk()
    return dataset


def label_space(categories: tuple[PanopticCategory, ...], name: str = "coco-panoptic",
                source: PathLike | None = None, ignore: tuple[int, ...] = ()) -> LabelSpace:
    """The label space of a COCO panoptic ``categories`` list: label id = category id, train
    ids 0..K-1 in the order of the ids, things = ``isthing``; a category without a colour
    gets one from a fixed pseudo-random palette. Label id 0 is ``void`` (not evaluated), as
    0 is in the PNGs; the categories in ``ignore`` are not evaluated either (no train id,
    void in the metrics). ``source``: the JSON the categories come from, named in errors.

    >>> ls = label_space(parse_categories([{"id": 7, "name": "road", "isthing": 0},
    ...                                    {"id": 26, "name": "car", "isthing": 1}], "x.json"))
    >>> ls.num_classes, ls.thing_label_ids, int(ls.label_to_train[26])
    (2, (26,), 1)
    """
    cats = sorted(categories, key=lambda c: c.id)
    unknown = sorted(set(ignore) - {c.id for c in cats})
    if unknown:
        raise InputError(source, f"ignored category id(s) {unknown} are not in 'categories'")
    if any(not 0 < c.id < 256 for c in cats):
        bad = next(c for c in cats if not 0 < c.id < 256)
        raise InputError(source, f"category {bad.id} ({bad.name}): panoptool needs category "
                                 f"ids in 1..255 (0 is void)")
    supers = {s: k for k, s in enumerate(dict.fromkeys(c.supercategory for c in cats))}
    rng = np.random.default_rng(0)
    palette = rng.integers(0, 256, size=(256, 3))
    evaluated = [c for c in cats if c.id not in set(ignore)]
    train_id = {c.id: k for k, c in enumerate(evaluated)}
    void = Category(VOID_ID, "void", IGNORE, "void", len(supers), False, True, (0, 0, 0))
    return LabelSpace(name, (void,) + tuple(
        Category(c.id, c.name, train_id.get(c.id, IGNORE), c.supercategory,
                 supers[c.supercategory], c.isthing, c.id not in train_id,
                 c.color if c.color is not None else tuple(int(v) for v in palette[c.id]))
        for c in cats))
