"""Small scenes that sit on the edge of every rule of the official Cityscapes evaluators.

Each scene is a ground-truth image (label ids + instance ids) and a prediction in the three
official result formats, painted pixel by pixel so that a rule's threshold is met exactly,
just missed or just passed. The rules, as read in cityscapesscripts:

* panoptic (``evalPanopticSemanticLabeling.pq_compute_single_core``, ground truth from
  ``createPanopticImgs``): a match needs IoU > 0.5, the union without the prediction's pixels
  on VOID; an unmatched predicted segment is a false positive unless *more than* half of it
  lies on VOID plus the crowd region of *its own* category; crowd segments are never false
  negatives; instance ids >= 1000 are segments, < 1000 of a thing class are crowd; labels
  ignored in evaluation (also the one encoded in instance id 1000, ego vehicle) are VOID; a
  predicted segment may have id 0 when it is listed; a predicted segment's ``iscrowd`` is not
  read.
* instance (``evalInstanceLevelSemanticLabeling``): valid instances have id >= 1000 and at
  least 100 pixels; a match needs IoU > t (t = 0.50 ... 0.95 as ``np.arange`` makes them);
  the best-scored match is the true positive, the others false positives; an unmatched
  prediction is a false positive unless its pixels on void (instance-id *values* of ignored
  labels: not id 1000, not caravan 29001), on groups and on small instances (a small group
  twice) make up more than t of it (``<= t`` counts); the AP curve has one point per unique
  confidence (ties share it), closed at (recall 0, precision 1); AP is 0 for a class with
  ground truth but no prediction anywhere, NaN without valid ground truth; masks are read
  through PIL's ``convert("L")`` (an RGB pixel (1, 0, 0) is not part of a mask); a mask listed
  twice in ``_pred.txt`` (also as ``./masks/...``) counts once, with its last line's values;
  a label id is read as ``int(float(text))`` (26.7 is car).
* semantic (``evalPixelLevelSemanticLabeling``): predictions on ignored ground truth are no
  false positives; predictions of ignored ids on evaluated ground truth are false negatives;
  a class absent from the ground truth but predicted has IoU 0; iIoU counts instances with
  id > 1000 (26000 is one) of evaluated thing classes, weighted by ``avgClassSize`` / size.

:func:`write_edge_dataset` writes three such images and their results; the tests compare
panoptool with the official evaluators on them (``tests/evaluation/test_metrics_rule_edges.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from panoptool.io import formats
from panoptool.io.files import write_json, write_png

CITY = "edge"
SPLIT = "val"
H, W = 128, 256

ROAD, SIDEWALK, WALL = 7, 8, 12
PERSON, CAR, TRUCK, BUS, TRAIN, MOTORCYCLE, BICYCLE, CARAVAN = 24, 26, 27, 28, 31, 32, 33, 29


def rect(y: int, x: int, h: int, w: int) -> np.ndarray:
    """bool (H, W): the rectangle of rows y..y+h-1, columns x..x+w-1."""
    m = np.zeros((H, W), bool)
    m[y:y + h, x:x + w] = True
    return m


def blob(y: int, x: int, n: int, w: int = 10) -> np.ndarray:
    """bool (H, W): the first ``n`` pixels, row by row, of a block ``w`` wide at (y, x)."""
    m = np.zeros((H, W), bool)
    rows = -(-n // w)
    block = np.zeros(rows * w, bool)
    block[:n] = True
    m[y:y + rows, x:x + w] = block.reshape(rows, w)
    return m


def _label_of(inst: np.ndarray) -> np.ndarray:
    return np.where(inst >= 1000, inst // 1000, inst).astype(np.uint8)


@dataclass
class Scene:
    """Ground truth and prediction of one image, painted region by region."""

    stem: str
    inst: np.ndarray = field(default_factory=lambda: np.full((H, W), ROAD, np.int32))
    sem: np.ndarray | None = None  # predicted label ids; ground truth if never set
    instances: list = field(default_factory=list)  # (mask or rgb mask, label, conf, name)
    pan: np.ndarray = field(default_factory=lambda: np.zeros((H, W), np.int64))
    segments: dict = field(default_factory=dict)  # predicted segment id -> category id
    crowd_flagged: set = field(default_factory=set)  # predicted ids written with iscrowd 1

    def gt(self, inst_id: int, mask: np.ndarray) -> np.ndarray:
        assert not (self.inst[mask] != ROAD).any(), f"{self.stem}: {inst_id} overlaps"
        self.inst[mask] = inst_id
        return mask

    def segment(self, seg_id: int, category: int, mask: np.ndarray) -> None:
        self.pan[mask] = seg_id
        self.segments[seg_id] = category

    def instance(self, mask: np.ndarray, label, conf, name: str | None = None) -> None:
        """A line of ``_pred.txt``; ``name``: the mask's file name (default: numbered)."""
        self.instances.append((mask, str(label), str(conf), name))


def write_scene(root: Path, results: Path, scene: Scene) -> dict:
    """Write a scene's ground truth under ``root`` and its results under ``results``;
    return its panoptic annotation."""
    gt_dir = root / "gtFine" / SPLIT / CITY
    write_png(gt_dir / f"{scene.stem}_gtFine_labelIds.png", _label_of(scene.inst))
    write_png(gt_dir / f"{scene.stem}_gtFine_instanceIds.png", scene.inst.astype(np.uint16))
    sem = _label_of(scene.inst) if scene.sem is None else scene.sem
    write_png(formats.semantic_result_path(results, scene.stem), sem.astype(np.uint8))
    lines = []
    for k, (mask, label, conf, name) in enumerate(scene.instances):
        rel = formats.instance_mask_relpath(scene.stem, k) if name is None else name
        image = mask if mask.ndim == 3 else mask.astype(np.uint8) * np.uint8(255)
        write_png(results / formats.INSTANCE_DIR / rel, image)
        lines.append(f"{rel} {label} {conf}")
    txt = formats.instance_txt_path(results, scene.stem)
    txt.parent.mkdir(parents=True, exist_ok=True)
    txt.write_text("".join(line + "\n" for line in lines))
    present = set(np.unique(scene.pan).tolist())
    segments = [{"id": int(i), "category_id": int(c), "iscrowd": int(i in scene.crowd_flagged)}
                for i, c in scene.segments.items() if i in present]
    write_png(formats.panoptic_png_path(results, scene.stem),
              formats.panoptic_id_to_rgb(scene.pan))
    return {"image_id": scene.stem, "file_name": f"{scene.stem}_panoptic.png",
            "segments_info": segments}


# --- scene A: the panoptic rules -----------------------------------------------------------

#: Rows of a 20x5 test segment that lie on a band of rows 0..19, for 45, 50, 55, 60, 65 %.
ON_BAND_ROWS = (9, 10, 11, 12, 13)


def _straddle(x: int, rows_on_band: int) -> np.ndarray:
    """A 100-pixel segment (20 rows x 5 columns) with ``rows_on_band`` rows on rows 0..19."""
    return rect(20 - rows_on_band, x, 20, 5)


def scene_panoptic() -> Scene:
    s = Scene("edge_000000_000000")
    s.gt(0, rect(0, 0, 20, 96))                 # VOID band
    s.gt(CAR, rect(0, 96, 20, 96))              # car crowd band
    s.gt(PERSON, rect(0, 192, 20, 64))          # person crowd band
    s.gt(1, rect(100, 0, 28, 64))               # ego vehicle, id 1
    s.gt(1000, rect(100, 64, 28, 64))           # ego vehicle with id 1000 exactly
    s.gt(SIDEWALK, rect(100, 128, 28, 128))
    cars = [s.gt(26000, rect(40, 0, 10, 10)),   # k = 0
            s.gt(26001, rect(40, 20, 10, 10)),
            s.gt(26002, rect(40, 40, 10, 10)),
            s.gt(26003, rect(40, 60, 10, 10))]
    s.gt(24000, rect(40, 200, 20, 10))          # person, k = 0

    # prediction: stuff and the person perfect, test segments painted over
    s.segment(256, ROAD, s.inst == ROAD)
    s.segment(65536, SIDEWALK, s.inst == SIDEWALK)
    s.segment(16777215, PERSON, s.inst == 24000)
    # IoU exactly 0.5 (no match) and 0.51 (match)
    s.segment(1000, CAR, blob(40, 0, 50))
    s.segment(26000, CAR, blob(40, 20, 51))
    # IoU 55/145 = 0.38 with VOID in the union, 55/100 without: a match
    s.segment(3, CAR, blob(40, 40, 55) | rect(10, 40, 9, 5))
    # car 26003 predicted as truck (an FN and an FP)
    s.segment(4, TRUCK, cars[3])
    # unmatched cars with 45 .. 65 % on VOID, on the car crowd, on the person crowd
    for k, rows in enumerate(ON_BAND_ROWS):
        s.segment(10 + k, CAR, _straddle(5 * k, rows))
        s.segment(20 + k, CAR, _straddle(100 + 5 * k, rows))
        s.segment(30 + k, CAR, _straddle(192 + 5 * k, rows))
        s.segment(40 + k, PERSON, _straddle(220 + 5 * k, rows))
    s.crowd_flagged = {10, 40}  # a prediction's iscrowd is not read (official: neither)
    # 25 % VOID + 30 % car crowd: 55 % ignored in all (each alone is under half)
    s.segment(50, CAR, rect(0, 90, 5, 5) | rect(0, 130, 6, 5) | rect(60, 90, 9, 5))
    # on ego vehicle id 1 and id 1000 (both VOID here), 60 % of 100 px
    s.segment(51, CAR, rect(100, 0, 6, 10) | rect(96, 0, 4, 10))
    s.segment(52, CAR, rect(100, 64, 6, 10) | rect(96, 64, 4, 10))
    # a stuff segment at 55 % on VOID (ignored) and a truck on sidewalk (FP, no truck GT)
    s.segment(53, WALL, _straddle(60, 11))
    s.segment(54, TRUCK, rect(110, 200, 10, 10))

    # semantic: VOID predicted as road (no FP), road as unlabeled / caravan (FN), wall on
    # road (IoU 0 for a class absent from the ground truth), ego vehicle 1000 as car
    sem = _label_of(s.inst)
    sem[0:20, 0:96] = ROAD
    sem[60:70, 100:120] = 0
    sem[70:80, 100:120] = CARAVAN
    sem[80:90, 100:120] = WALL
    sem[100:128, 64:128] = CAR
    sem[40:45, 40:50] = ROAD
    s.sem = sem

    # instances on the same ground truth: car 26000 (k = 0) found, 1000-id region as car
    s.instance(cars[0], CAR, 0.9)
    s.instance(rect(100, 64, 10, 10), CAR, 0.8)        # on id 1000: not void, an FP
    s.instance(rect(100, 0, 10, 10), CAR, 0.8)         # on id 1: void, ignored
    return s


# --- scene B: the instance rules -----------------------------------------------------------

def scene_instance() -> Scene:
    s = Scene("edge_000000_000001")
    s.gt(0, rect(0, 0, 20, 128))                # void band
    small_group = s.gt(CAR, rect(0, 200, 4, 10))  # car group of 40 px (small)
    sizes = {26000: 95, 26001: 99, 26002: 100, 26003: 101, 26004: 105}
    cars = {i: s.gt(i, blob(30, 20 * k, n)) for k, (i, n) in enumerate(sizes.items())}
    for k, i in enumerate((26005, 26006, 26007, 26008)):
        cars[i] = s.gt(i, rect(60, 22 * k, 20, 20))
    bicycle = s.gt(33000, blob(90, 0, 99))      # the only bicycle: 99 px
    motorcycle = s.gt(32000, blob(90, 20, 100))  # the only motorcycle: 100 px
    s.gt(28001, rect(90, 200, 20, 20))           # bus: ground truth, never predicted
    s.gt(31001, rect(100, 160, 20, 20))          # train: predicted only in scene C
    caravan = s.gt(29001, rect(100, 60, 20, 20))  # caravan instance: not void
    s.gt(1000, rect(110, 120, 10, 10))           # ego vehicle id 1000: not void
    s.gt(1, rect(110, 140, 10, 10))              # ego vehicle id 1: void
    persons = [s.gt(24001 + k, rect(30, 110 + 22 * k, 20, 10)) for k in range(4)]

    # sizes 95 .. 105: 95 missed, the others found (99 is small: ignored, not a TP)
    s.instance(cars[26001], CAR, 0.8)
    s.instance(cars[26002], CAR, 0.8)
    rgb = np.zeros((H, W, 3), np.uint8)          # read as PIL's convert("L")
    rgb[cars[26003]] = 255
    rgb[rect(50, 0, 3, 50)] = (1, 0, 0)          # luma 0: not part of the mask
    rgb[rect(53, 0, 1, 30)] = (2, 1, 0)          # luma 1: part of it (an FP pixel row)
    s.instance(rgb, CAR, 0.6)
    s.instance(cars[26004], "26.7", 0.7)         # label written as a float: int(float())
    s.instance(bicycle, BICYCLE, 0.9)            # 99 px: bicycle has no valid instance
    s.instance(motorcycle, MOTORCYCLE, 0.9)      # 100 px: valid
    # duplicates: best score is the TP
    s.instance(cars[26005], CAR, 0.4)
    s.instance(cars[26005], CAR, 0.9)
    # IoU exactly 0.5 (no match at 0.5), 0.75 and 0.9 (np.arange's 0.75 and 0.9000000000000004)
    s.instance(rect(60, 22, 10, 20), CAR, 0.55)
    s.instance(rect(60, 44, 15, 20), CAR, 0.65)
    s.instance(rect(60, 66, 18, 20), CAR, 0.66)
    # unmatched cars with 50, 60, 70 % on the void band (ignored while the share > t)
    for k, rows in enumerate((10, 12, 14)):
        s.instance(_straddle(5 * k, rows), CAR, (0.5, 0.45, 0.35)[k])
    # 30 px on the small group (counted twice: 60 %) + 70 px of road
    s.instance((small_group & rect(0, 200, 3, 10)) | rect(10, 200, 7, 10), CAR, 0.5)
    s.instance(rect(100, 60, 5, 20), CAR, 0.3)   # on the caravan instance: an FP
    s.instance(caravan, CARAVAN, 0.9)            # caravan is not evaluated: dropped
    s.instance(rect(110, 120, 10, 10), CAR, 0.2)  # on id 1000: an FP
    s.instance(rect(110, 140, 10, 10), CAR, 0.2)  # on id 1: void, ignored
    # persons: ties at 0.5 and 0.7 between true and false positives; one person missed
    s.instance(persons[0], PERSON, 0.5)
    s.instance(persons[1], PERSON, 0.5)
    s.instance(rect(100, 100, 10, 20), PERSON, 0.5)
    s.instance(persons[2], PERSON, 0.7)
    s.instance(rect(100, 125, 10, 20), PERSON, 0.7)
    s.instance(np.zeros((H, W), bool), PERSON, 0.99)  # empty mask: dropped
    # a mask listed twice (once as ./masks/...): its last line counts (person, then car)
    twice = formats.instance_mask_relpath(s.stem, 100)
    s.instance(rect(40, 230, 10, 10), PERSON, 0.95, name=twice)
    s.instance(rect(40, 230, 10, 10), CAR, 0.25, name=f"./{twice}")

    # semantic: car 26002 half as road (iIoU), caravan as car (FP), ego 1000 as car (no FP)
    sem = _label_of(s.inst)
    sem[30:35, 40:50] = ROAD
    sem[caravan] = CAR
    sem[110:120, 120:130] = CAR
    s.sem = sem

    # panoptic: perfect, road listed with id 0 (so every other pixel is road)
    ids = np.unique(s.inst)
    for i in ids:
        lab = i // 1000 if i >= 1000 else i
        if i >= 1000 and lab in (PERSON, CAR, BICYCLE, MOTORCYCLE, BUS, TRAIN):
            s.segment(int(i), int(lab), s.inst == i)
    s.segment(0, ROAD, s.pan == 0)
    return s


# --- scene C: classes spread over images ------------------------------------------------------

def scene_spread() -> Scene:
    s = Scene("edge_000000_000002")
    s.gt(SIDEWALK, rect(0, 0, 64, 256))
    s.gt(26100, rect(80, 10, 20, 20))
    s.instance(rect(80, 10, 20, 20), CAR, 0.5)    # a TP tied with B's FPs at 0.5
    s.instance(rect(80, 100, 20, 20), TRAIN, 0.8)  # train: GT in B, an FP here
    s.instance(rect(80, 150, 20, 20), TRUCK, 0.8)  # truck: no ground truth anywhere
    s.segment(5, SIDEWALK, s.inst == SIDEWALK)
    s.segment(6, ROAD, s.inst == ROAD)
    s.segment(7, CAR, rect(80, 10, 20, 20))
    s.segment(8, BUS, rect(80, 200, 20, 20))       # bus: GT in B only; FP here
    return s


def write_edge_dataset(root: Path, results: Path) -> list[Scene]:
    """Write scenes A, B, C: ground truth under ``root``, results under ``results``."""
    scenes = [scene_panoptic(), scene_instance(), scene_spread()]
    annotations = []
    for scene in scenes:
        annotations.append(write_scene(root, results, scene))
    write_json(formats.panoptic_json_path(results), {"annotations": annotations})
    return scenes
