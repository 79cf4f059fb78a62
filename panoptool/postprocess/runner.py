"""Run the post-processing over a folder of prediction maps (or the ground-truth oracle) and
write the official Cityscapes result files, in the label space of the maps (Cityscapes, or a
COCO-panoptic dataset's categories).

Output folder (see :mod:`panoptool.io.formats`)::

    semantic/<stem>_pred_labelIds.png      uint8 label ids (COCO: category ids; 0 = void)
    instance/<stem>_pred.txt               "masks/<stem>_<k>.png <labelId> <score>" per line
    instance/masks/<stem>_<k>.png          uint8 0/255
    panoptic/<stem>_panoptic.png           RGB, id = R + 256 G + 256^2 B
    panoptic/<stem>_segments.json          this image's COCO annotation (written last: its
                                           presence marks the image as done)
    panoptic.json                          COCO panoptic, assembled from the sidecars at the end
    coco_instances/<stem>_instances.json   this image's COCO results entries (--instance-format
                                           coco or both; written before the panoptic sidecar)
    instances.json                         COCO results (RLE), assembled from those at the end
    config.json                            formats.stage_config("postprocess", ...)

The label space: the maps' (or, with ``--oracle``, the targets') ``config.json`` records it
(``labels``, :func:`panoptool.labels.labels_of_config`; maps and targets without one are
Cityscapes'); every label id and category id written is one of its ids, and the results'
``config.json`` records it again. The oracle refuses targets of another label space than its
dataset's (:func:`panoptool.labels.require_same`).

Resuming: ``config.json`` is written before the first image. A run into a folder that holds
a ``config.json`` with the same settings and no ``panoptic.json`` (an interrupted run) skips
the images already done. A folder that holds finished results (``panoptic.json``), results
made with other settings, or result files without ``config.json`` is refused unless
``overwrite``, which first deletes the result files this stage writes (nothing else).
"""

from __future__ import annotations

import glob
import os
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import cv2
import numpy as np

from panoptool.io import coco as coco_io
from panoptool.io import formats
from panoptool.errors import ConfigError, InputError, OutputError
from panoptool.io.files import (LABEL_PNG_PARAMS, UP_PNG_PARAMS, read_json, remove_stale_temporaries,
                  write_json, write_png, write_text)
from panoptool.labels import CITYSCAPES, LABELS_KEY, LabelSpace, labels_of_config, require_same
from panoptool.postprocess.config import PostprocessConfig
from panoptool.postprocess.panoptic import PanopticResult, coco_categories, derive_panoptic, segment_bboxes

PathLike = str | os.PathLike

SIDECAR_SUFFIX = "_segments.json"
#: Values of ``--instance-format``: official txt + PNG masks, COCO results JSON, or both.
INSTANCE_FORMATS = ("cityscapes", "coco", "both")


def coco_sidecar_path(out: PathLike, stem: str) -> Path:
    """Per-image COCO results entries written during the parallel phase."""
    return (Path(out) / coco_io.SIDECAR_DIR
            / f"{stem}{coco_io.SIDECAR_SUFFIX}")


def sidecar_path(out: PathLike, stem: str) -> Path:
    """Per-image COCO annotation written during the parallel phase."""
    return Path(out) / formats.PANOPTIC_DIR / f"{stem}{SIDECAR_SUFFIX}"


@dataclass
class PostprocessSummary:
    """What a run did."""

    out: str
    images: int = 0
    done: int = 0
    skipped: int = 0
    instances: int = 0
    seconds: float = 0.0
    already_done: bool = False

    def line(self) -> str:
        if self.already_done:
            return (f"postprocess: {self.out} already holds finished results of these "
                    f"{self.images} image(s) with the same settings; nothing to do")
        return (f"postprocess: {self.done} image(s) written, {self.skipped} already done, "
                f"{self.instances} instance(s), {self.seconds:.1f} s -> {self.out}")


# --- writing one image ---------------------------------------------------------------------

def _panoptic_rgb(panoptic_ids: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) RGB with id = R + 256 G + 256^2 B, as
    :func:`formats.panoptic_id_to_rgb` but by reinterpreting the bytes of the ids (ids are
    in [0, 2^24))."""
    ids = np.ascontiguousarray(panoptic_ids, dtype="<u4")
    # dropping the 4th byte with OpenCV: 7x faster than numpy's strided copy
    return cv2.cvtColor(ids.view(np.uint8).reshape(*ids.shape, 4), cv2.COLOR_RGBA2RGB)


def write_result(out: PathLike, stem: str, train_ids: np.ndarray, result: PanopticResult,
                 instance_format: str = "both", labels: LabelSpace = CITYSCAPES) -> dict:
    """Write the semantic, instance and panoptic files of one image; return its COCO
    annotation (also written as the image's sidecar, last).

    ``instance_format``: ``cityscapes`` (``_pred.txt`` + PNG masks), ``coco`` (COCO results
    entries, :mod:`panoptool.evaluation.coco`) or ``both``. ``labels``: the label space of
    ``train_ids`` (the semantic result holds its label ids)."""
    out = Path(out)
    if instance_format not in INSTANCE_FORMATS:
        raise ValueError(f"instance_format must be one of {INSTANCE_FORMATS}, got "
                         f"{instance_format!r}")
    h, w = train_ids.shape
    write_png(formats.semantic_result_path(out, stem), labels.train_to_label[train_ids],
              params=LABEL_PNG_PARAMS)
    txt = formats.instance_txt_path(out, stem)
    if txt.exists():  # redoing an image: drop masks of the previous attempt
        for old in glob.glob(glob.escape(str(txt.parent / formats.MASKS_SUBDIR / stem))
                             + "_*.png"):
            os.unlink(old)
    bboxes = segment_bboxes(result.panoptic_ids, [s.id for s in result.segments])
    if instance_format in ("coco", "both"):
        things = result.instances
        boxes = np.array([bboxes[s.id] for s in things], dtype=np.int64).reshape(-1, 4)
        union = None
        if len(boxes):  # only the box holding every instance is scanned
            x0, y0 = boxes[:, :2].min(axis=0)
            x1, y1 = (boxes[:, :2] + boxes[:, 2:]).max(axis=0)
            union = (int(x0), int(y0), int(x1 - x0), int(y1 - y0))
        write_json(coco_sidecar_path(out, stem),
                   coco_io.results_entries(stem, result.instance_ids,
                                                  [s.label_id for s in things],
                                                  [round(s.score, 6) for s in things],
                                                  [s.instance for s in things], union),
                   indent=None)
    lines = []
    inst = result.instance_ids
    for k, seg in enumerate(result.instances if instance_format != "coco" else ()):
        rel = formats.instance_mask_relpath(stem, k)
        x, y, bw, bh = bboxes[seg.id]
        mask = np.zeros((h, w), dtype=np.uint8)
        mask[y:y + bh, x:x + bw] = (inst[y:y + bh, x:x + bw] == seg.instance) * np.uint8(255)
        write_png(txt.parent / rel, mask, params=LABEL_PNG_PARAMS)
        lines.append(f"{rel} {seg.label_id} {seg.score:.6f}")
    if instance_format != "coco":
        write_text(txt, "".join(line + "\n" for line in lines))
    png_name = formats.panoptic_png_path(out, stem).name
    write_png(formats.panoptic_png_path(out, stem), _panoptic_rgb(result.panoptic_ids),
              params=UP_PNG_PARAMS)
    annotation = {"image_id": stem, "file_name": png_name, "width": w, "height": h,
                  "segments_info": [{"id": s.id, "category_id": s.label_id, "area": s.area,
                                     "bbox": bboxes[s.id], "iscrowd": 0}
                                    for s in result.segments]}
    write_json(sidecar_path(out, stem), annotation, indent=None)
    return annotation


def is_done(out: PathLike, stem: str) -> bool:
    return sidecar_path(out, stem).is_file()


# --- per-image workers ---------------------------------------------------------------------

def _process_maps(path: str, *, out: str, config: PostprocessConfig,
                  instance_format: str = "both",
                  labels: LabelSpace = CITYSCAPES) -> tuple[str, int]:
    stem = formats.stem_of_maps(path)
    maps = formats.read_maps(path, labels.num_classes)
    result = derive_panoptic(maps["train_ids"], maps["confidence"], maps["contour_prob"],
                             maps["offset_yx"], config, labels)
    write_result(out, stem, maps["train_ids"], result, instance_format, labels)
    return stem, len(result.instances)


def oracle_maps(root: PathLike | None, split: str, targets: PathLike, stem: str,
                labels: LabelSpace = CITYSCAPES) -> dict[str, np.ndarray]:
    """:func:`sample_oracle_maps` of the image ``stem`` of a dataset's split (``root``: any
    form :func:`panoptool.io.datasets.open_dataset` takes)."""
    from panoptool.io.cityscapes import Sample, resolve_root
    from panoptool.io.datasets import CityscapesDataset, open_dataset

    dataset = open_dataset(root)
    if isinstance(dataset, CityscapesDataset):  # no listing of the split for one image
        sample = Sample(resolve_root(dataset.root), split, formats.city_of(stem), stem)
    else:
        found = [s for s in dataset.samples(split) if s.stem == stem]
        if not found:
            raise InputError(dataset.root, f"no image {stem!r} in split {split!r}")
        sample = found[0]
    return sample_oracle_maps(sample, targets, labels)


def sample_oracle_maps(sample, targets: PathLike, labels: LabelSpace = CITYSCAPES
                       ) -> dict[str, np.ndarray]:
    """Prediction maps built from the ground truth of one sample (a Cityscapes or COCO
    sample of :mod:`panoptool.io.datasets`): semantic = its label ids as train ids of
    ``labels``, confidence 1, contour probability = the make-targets contour (0/1), offsets =
    the targets' decoded offsets (0 off thing instances)."""
    label_ids, _ = sample.read_ground_truth()
    tg = formats.read_targets(targets, sample.split, sample.stem)
    if tg["contour"].shape != label_ids.shape:
        raise InputError(formats.target_paths(targets, sample.split, sample.stem)["contour"],
                         f"size {tg['contour'].shape} differs from the ground truth "
                         f"{label_ids.shape}")
    return {"train_ids": labels.label_to_train[label_ids],
            "confidence": np.ones(label_ids.shape, dtype=np.float32),
            "contour_prob": tg["contour"].astype(np.float32),
            "offset_yx": tg["offset_yx"]}


def _process_oracle(sample, *, targets: str, out: str, config: PostprocessConfig,
                    instance_format: str = "both",
                    labels: LabelSpace = CITYSCAPES) -> tuple[str, int]:
    maps = sample_oracle_maps(sample, targets, labels)
    result = derive_panoptic(maps["train_ids"], maps["confidence"], maps["contour_prob"],
                             maps["offset_yx"], config, labels)
    write_result(out, sample.stem, maps["train_ids"], result, instance_format, labels)
    return sample.stem, len(result.instances)


# --- the output folder ---------------------------------------------------------------------

_RESULT_GLOBS = (f"{formats.SEMANTIC_DIR}/*_pred_labelIds.png",
                 f"{formats.INSTANCE_DIR}/*_pred.txt",
                 f"{formats.INSTANCE_DIR}/{formats.MASKS_SUBDIR}/*.png",
                 f"{formats.PANOPTIC_DIR}/*_panoptic.png",
                 f"{formats.PANOPTIC_DIR}/*{SIDECAR_SUFFIX}",
                 formats.PANOPTIC_JSON, formats.CONFIG_JSON,
                 f"{coco_io.SIDECAR_DIR}/*{coco_io.SIDECAR_SUFFIX}",
                 coco_io.INSTANCES_JSON)


def _result_files(out: Path) -> list[Path]:
    found: list[Path] = []
    for pattern in _RESULT_GLOBS:
        found.extend(out.glob(pattern))
    return found


def prepare_output(out: PathLike, config_json: dict, overwrite: bool) -> None:
    """Check (and with ``overwrite`` clear) the output folder; see the module docstring.

    Raises
    ------
    OutputError
        If the folder holds finished results, results of other settings, or result files
        without a ``config.json``, and ``overwrite`` is False.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a folder")
    if not out.exists():
        return
    remove_stale_temporaries(out)
    files = _result_files(out)
    if not files:
        return
    if overwrite:
        for f in files:
            f.unlink()
        return
    hint = "; pass --overwrite to replace them or choose another --out"
    if formats.panoptic_json_path(out).exists():
        raise OutputError(f"{out}: already holds results ({formats.PANOPTIC_JSON}){hint}")
    config_path = out / formats.CONFIG_JSON
    if not config_path.exists():
        raise OutputError(f"{out}: holds result files but no {formats.CONFIG_JSON}{hint}")
    old = read_json(config_path)
    if not isinstance(old, dict) or _comparable(old) != _comparable(config_json):
        diff = _differences(old if isinstance(old, dict) else {}, config_json)
        raise OutputError(f"{out}: holds an unfinished run made with other settings "
                          f"({diff}){hint}")


def _comparable(config: dict) -> dict:
    return {k: v for k, v in config.items() if k != "panoptool_version"}


def _differences(old: dict, new: dict) -> str:
    a, b = formats.flatten_config(old), formats.flatten_config(new)
    keys = [k for k in dict.fromkeys([*a, *b]) if a.get(k) != b.get(k)]
    return ", ".join(f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in keys[:3]) or "settings"


def assemble_panoptic_json(out: PathLike, stems: list[str],
                           labels: LabelSpace = CITYSCAPES,
                           file_names: dict[str, str] | None = None) -> None:
    """Write ``panoptic.json`` from the per-image sidecars, in ``stems`` order, atomically;
    its ``categories`` are those of ``labels``; ``images[].file_name`` is the image's file
    name from ``file_names`` (stem -> name), else Cityscapes' ``<stem>_leftImg8bit.png``
    for the Cityscapes label space and the bare stem for any other (the maps do not say).

    The file is written entry by entry (each sidecar is read twice: once for ``images``, once
    for ``annotations``), so memory does not grow with the number of images; the bytes are
    those of ``json.dump`` of the whole object (``write_json(..., indent=None)``).
    """
    import json

    from panoptool.io.files import atomic_path

    def image_name(stem: str) -> str:
        if file_names and stem in file_names:
            return file_names[stem]
        return f"{stem}_leftImg8bit.png" if labels == CITYSCAPES else stem

    def image(stem: str) -> dict:
        ann = read_json(sidecar_path(out, stem))
        return {"id": stem, "file_name": image_name(stem),
                "width": ann.get("width"), "height": ann.get("height")}

    def annotation(stem: str) -> dict:
        ann = read_json(sidecar_path(out, stem))
        return {"image_id": ann["image_id"], "file_name": ann["file_name"],
                "segments_info": ann["segments_info"]}

    with atomic_path(formats.panoptic_json_path(out)) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            for key, entry in (("images", image), ("annotations", annotation)):
                fh.write(f'{{"{key}": [' if key == "images" else f'], "{key}": [')
                for k, stem in enumerate(stems):
                    fh.write((", " if k else "") + json.dumps(entry(stem)))
            fh.write('], "categories": ' + json.dumps(coco_categories(labels)) + "}\n")


def assemble_instances_json(out: PathLike, stems: list[str]) -> list[dict]:
    """Write ``instances.json`` (COCO results) from the per-image sidecars, in ``stems``
    order."""
    entries: list[dict] = []
    for stem in stems:
        entries.extend(read_json(coco_sidecar_path(out, stem)))
    coco_io.write_results(Path(out) / coco_io.INSTANCES_JSON, entries)
    return entries


def _run(items: list, stems: list[str], func, out: Path, config_json: dict, *,
         workers: int | None, overwrite: bool, show_progress: bool,
         labels: LabelSpace = CITYSCAPES,
         file_names: dict[str, str] | None = None) -> PostprocessSummary:
    from panoptool.runtime.guard import output_lock
    from panoptool.runtime.pool import run_parallel

    start = time.perf_counter()
    seen: dict[str, object] = {}
    for stem, item in zip(stems, items):
        item = getattr(item, "image_path", item)  # a sample: name its image
        if stem in seen:
            raise InputError(item, f"same image {stem!r} as {seen[stem]}; results would "
                                   f"overwrite each other")
        seen[stem] = item
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a folder")
    with output_lock(out, "postprocess"):
        remove_stale_temporaries(out)
        if not overwrite and _finished_with(out, config_json, stems):
            summary = PostprocessSummary(out=str(out), images=len(items), skipped=len(items),
                                         already_done=True)
            summary.seconds = time.perf_counter() - start
            return summary
        prepare_output(out, config_json, overwrite)
        write_json(out / formats.CONFIG_JSON, config_json)
        summary = PostprocessSummary(out=str(out), images=len(items))
        todo = [item for stem, item in zip(stems, items) if not is_done(out, stem)]
        coco = config_json["settings"].get("instance_format", "both") != "cityscapes"
        if todo and coco:
            coco_io.kernels().warm_up()  # loaded once here; forked workers inherit them
        summary.skipped = len(items) - len(todo)
        for _, n_instances in run_parallel(func, todo, workers=workers,
                                           description="postprocess",
                                           show_progress=show_progress):
            summary.done += 1
            summary.instances += n_instances
        assemble_panoptic_json(out, sorted(stems), labels, file_names)
        if coco:
            assemble_instances_json(out, sorted(stems))
    summary.seconds = time.perf_counter() - start
    return summary


def _check_format(instance_format: str) -> str:
    if instance_format not in INSTANCE_FORMATS:
        raise ConfigError(f"instance format must be one of {', '.join(INSTANCE_FORMATS)}, "
                          f"got {instance_format!r}")
    return instance_format
def _finished_with(out: Path, config_json: dict, stems: list[str]) -> bool:
    """True if ``out`` holds finished results (``panoptic.json``) of these settings and of
    exactly these images: re-running is then a no-op."""
    config_path = out / formats.CONFIG_JSON
    if not (formats.panoptic_json_path(out).is_file() and config_path.is_file()):
        return False
    try:
        old = read_json(config_path)
    except InputError:
        return False
    if not isinstance(old, dict) or _comparable(old) != _comparable(config_json):
        return False
    return all(is_done(out, stem) for stem in stems)


def _label_space(given: LabelSpace | None, upstream: dict | None, upstream_path: Path
                 ) -> LabelSpace:
    """The label space of the input: the one its ``config.json`` records (Cityscapes where
    none is recorded); a ``given`` one must equal a recorded one."""
    recorded = labels_of_config(upstream)
    if given is not None and recorded is not None:
        require_same(given, recorded, "the label space given", str(upstream_path))
    return given or recorded or CITYSCAPES


def postprocess_maps(maps: PathLike, out: PathLike,
                     config: PostprocessConfig = PostprocessConfig(), *,
                     workers: int | None = 0, overwrite: bool = False,
                     show_progress: bool = True, instance_format: str = "both",
                     labels: LabelSpace | None = None) -> PostprocessSummary:
    """Post-process every ``*_maps.npz`` below ``maps`` into ``out``.

    Parameters
    ----------
    maps : folder of prediction maps (searched recursively, :func:`formats.find_maps`).
    out : results folder.
    config : the method's settings.
    workers : worker processes (0 or None = all cores); results do not depend on it.
    overwrite : replace results already in ``out``.
    labels : the label space of the maps' train ids; default: the one the maps'
        ``config.json`` chain records (:func:`~panoptool.labels.labels_of_config`), else
        Cityscapes'. Given, it must equal a recorded one.

    Raises
    ------
    InputError
        No maps, or a maps file that is unreadable or invalid (named).
    ConfigError
        ``labels`` differs from the label space the maps record.
    OutputError
        ``out`` already holds results (see the module docstring).
    """
    maps_root = Path(maps)
    paths = formats.find_maps(maps_root)
    upstream_path = maps_root / formats.CONFIG_JSON
    upstream = read_json(upstream_path) if upstream_path.is_file() else None
    labels = _label_space(labels, upstream, upstream_path)
    settings = {**config.to_dict(), "source": "maps", "maps": str(maps_root.resolve()),
                "instance_format": _check_format(instance_format),
                LABELS_KEY: labels.to_dict()}
    config_json = formats.stage_config("postprocess", settings, upstream)
    func = partial(_process_maps, out=str(out), config=config,
                   instance_format=instance_format, labels=labels)
    return _run([str(p) for p in paths], [formats.stem_of_maps(p) for p in paths], func,
                Path(out), config_json, workers=workers, overwrite=overwrite,
                show_progress=show_progress, labels=labels)


def postprocess_oracle(root: PathLike | None, split: str, targets: PathLike, out: PathLike,
                       config: PostprocessConfig = PostprocessConfig(), *,
                       workers: int | None = 0, overwrite: bool = False,
                       show_progress: bool = True, instance_format: str = "both",
                       labels: LabelSpace | None = None) -> PostprocessSummary:
    """The same method on ground-truth maps (:func:`sample_oracle_maps`) of every image of a
    split: the upper bound of the contour method for the targets' dilation rate.

    ``root``: a Cityscapes root or a COCO-panoptic dataset
    (:func:`panoptool.io.datasets.open_dataset`). The label space is the dataset's; the
    targets' ``config.json`` must record the same one (targets without one are
    Cityscapes'). ``labels``, if given, must equal it too. ``upstream`` in ``config.json``
    is the targets' ``config.json``.

    Raises
    ------
    ConfigError
        The targets (or ``labels``) have another label space than the dataset.
    """
    from panoptool.io.datasets import open_dataset

    dataset = open_dataset(root)
    samples = dataset.samples(split)
    targets = Path(targets)
    if not targets.is_dir():
        raise InputError(targets, "targets folder not found")
    upstream_path = targets / formats.CONFIG_JSON
    upstream = read_json(upstream_path) if upstream_path.is_file() else None
    space = dataset.label_space(split)
    require_same(space, labels_of_config(upstream, CITYSCAPES), f"the dataset {dataset.root}",
                 f"the targets ({upstream_path})")
    if labels is not None:
        require_same(space, labels, f"the dataset {dataset.root}", "the label space given")
    settings = {**config.to_dict(), "source": "oracle", "root": str(dataset.root.resolve()),
                "dataset_split": split, "targets": str(targets.resolve()),
                "instance_format": _check_format(instance_format),
                LABELS_KEY: space.to_dict()}
    config_json = formats.stage_config("postprocess", settings, upstream)
    stems = [s.stem for s in samples]
    func = partial(_process_oracle, targets=str(targets), out=str(out), config=config,
                   instance_format=instance_format, labels=space)
    return _run(samples, stems, func, Path(out), config_json, workers=workers,
                overwrite=overwrite, show_progress=show_progress, labels=space,
                file_names={s.stem: s.file_name for s in samples})
