"""Synthetic street scenes in the Cityscapes layout and encodings (or as COCO panoptic).

A scene is painted as a map of *segments* (one segment = one part of one object with one
colour); three lookup tables turn the segment map into the RGB image, the ``labelIds`` map
and the ``instanceIds`` map, so the three always agree exactly and painting costs one OpenCV
call per object part.

Every scene holds the hard cases of real street scenes:

- stuff: sky, buildings, vegetation, road with lane marks, sidewalks, terrain, fence, wall,
  poles, traffic signs and lights;
- things: cars seen from behind and from the side, persons, riders on bicycles, trucks,
  buses, motorcycles; nearer objects occlude farther ones (painted far to near);
- a row of parked cars that touch and overlap (same class, adjacent instances), a pair of
  overlapping pedestrians, a rider overlapping his bicycle;
- a thin pole standing in front of a car and cutting it in two;
- crowd regions (a group of persons, sometimes a car park) labelled with the class but
  without instance ids (``instanceIds`` value = label id);
- void: an ego-vehicle band at the bottom and an out-of-roi border, a static object;
- small far objects near the horizon.

Each instance gets its own shade of its class colour, alternating darker/lighter among the
instances of a class, so the contour between two touching instances is visible; a class-
dependent texture amplitude keeps classes learnable without drowning them in noise.

Encodings are the official ones: ``labelIds`` uint8, ``instanceIds`` uint16 with
``label_id * 1000 + k`` for thing instances and ``label_id`` for stuff and crowd, RGB uint8.
The same scenes can be written as a COCO-panoptic dataset in COCO's layout
(:func:`make_dataset` with ``format="coco-panoptic"``), converted by createPanopticImgs'
rules.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import cv2
import numpy as np

from panoptool.errors import ConfigError
from panoptool.io.formats import stage_config
from panoptool.io.files import LABEL_PNG_PARAMS, UP_PNG_PARAMS, write_json, write_png

PathLike = str | os.PathLike

#: City names used in the stems; images alternate between them.
CITIES = ("synthcity", "synthtown")

#: Base RGB colour of each label id used by the generator.
BASE_COLORS = {
    1: (40, 40, 46), 3: (12, 12, 12), 4: (120, 95, 70), 6: (95, 85, 80),
    7: (100, 96, 112), 8: (175, 140, 165), 11: (125, 115, 105), 12: (160, 155, 120),
    13: (185, 165, 120), 17: (165, 165, 55), 19: (240, 160, 30), 20: (225, 225, 0),
    21: (60, 135, 40), 22: (150, 205, 110), 23: (115, 165, 230),
    24: (205, 40, 65), 25: (245, 95, 20), 26: (35, 45, 160), 27: (20, 90, 95),
    28: (0, 120, 140), 32: (80, 20, 230), 33: (135, 25, 45),
}
#: Texture (noise) amplitude of each label id, in grey levels; default 8.
TEXTURE = {23: 3, 7: 6, 8: 8, 11: 12, 21: 28, 22: 18, 26: 6, 27: 6, 28: 6, 1: 4, 3: 2}
#: Colours of object parts shared by all classes.
WHEEL, WINDOW, SKIN, LAMP = (22, 22, 24), (45, 60, 75), (225, 180, 150), (200, 20, 20)

_TILE = 32  # side of the texture tile (repeats, so PNGs of the images stay cheap to write)


@dataclass(frozen=True)
class SynthConfig:
    """Settings of a synthetic dataset.

    Parameters
    ----------
    n : number of images (>= 1).
    height, width : image size in pixels (each >= 32).
    seed : random seed (>= 0); image ``i`` is drawn from the seed sequence ``(seed, i)``,
        so a dataset does not depend on the number of worker processes.
    split : the split folder name (``train``, ``val``, ...).
    """

    # defaults and metadata["help"]: those of the `panoptool synth` options made from them
    n: int = dataclasses.field(default=20, metadata={"help": "Number of images."})
    height: int = dataclasses.field(default=256, metadata={
        "help": "Image height in pixels (Cityscapes: 1024)."})
    width: int = dataclasses.field(default=512, metadata={
        "help": "Image width in pixels (Cityscapes: 2048)."})
    seed: int = dataclasses.field(default=0, metadata={
        "help": "Random seed; the same seed gives the same images, whatever --workers."})
    split: str = dataclasses.field(default="val", metadata={
        "help": "Split folder to write (below leftImg8bit/ and gtFine/; with --format "
                "coco-panoptic the images folder <split>/ and annotations/panoptic_<split>)."})

    def __post_init__(self):
        for name in ("n", "height", "width", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ConfigError(f"synth {name} must be an integer, got {value!r}")
        if self.n < 1:
            raise ConfigError(f"synth n must be >= 1, got {self.n}")
        if self.height < 32 or self.width < 32:
            raise ConfigError(f"synth image size must be at least 32x32, got "
                              f"{self.height}x{self.width}")
        if self.seed < 0:
            raise ConfigError(f"synth seed must be >= 0, got {self.seed}")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", self.split or ""):
            raise ConfigError(f"synth split must be a plain folder name, got {self.split!r}")


def stem_of(index: int) -> str:
    """Cityscapes-style stem ``<city>_<sequence>_<frame>`` of image ``index``.

    >>> stem_of(7)
    'synthtown_000000_000007'
    """
    return f"{CITIES[index % len(CITIES)]}_{0:06d}_{index:06d}"


# --- painting ------------------------------------------------------------------------------

class _Painter:
    """Segment map plus per-segment tables (label id, instance id, colour, texture)."""

    def __init__(self, height: int, width: int, rng: np.random.Generator):
        self.h, self.w, self.rng = height, width, rng
        self.seg = np.zeros((height, width), dtype=np.uint16)
        self.label: list[int] = []
        self.inst: list[int] = []
        self.color: list[tuple[int, int, int]] = []
        self.amp: list[int] = []
        self.count: dict[int, int] = {}

    # segments
    def segment(self, label: int, color, inst: int | None = None, amp: int | None = None) -> int:
        self.label.append(label)
        self.inst.append(label if inst is None else inst)
        self.color.append(tuple(np.clip(np.asarray(color, dtype=np.float64), 0, 255)
                                .astype(np.uint8).tolist()))
        self.amp.append(TEXTURE.get(label, 8) if amp is None else amp)
        return len(self.label) - 1

    def instance(self, label: int) -> tuple[int, int]:
        """A new instance id of ``label`` and its index k among the instances of the class."""
        k = self.count.get(label, 0)
        self.count[label] = k + 1
        return label * 1000 + k, k

    def shade(self, label: int, k: int, spread: int = 30) -> np.ndarray:
        """Class colour varied per instance; consecutive instances alternate dark/light."""
        sign = 1 if k % 2 else -1
        delta = sign * self.rng.uniform(12, spread) + self.rng.integers(-14, 15, 3)
        return np.asarray(BASE_COLORS[label]) + delta

    # shapes (coordinates in pixels, floats welcome)
    def poly(self, s: int, pts) -> None:
        cv2.fillPoly(self.seg, [np.round(np.asarray(pts, dtype=np.float64)).astype(np.int32)], s)

    def rect(self, s: int, x0, y0, x1, y1) -> None:
        self.poly(s, [(x0, y0), (x1, y0), (x1, y1), (x0, y1)])

    def ellipse(self, s: int, cx, cy, ax, ay, thickness: int = -1) -> None:
        cv2.ellipse(self.seg, (int(round(cx)), int(round(cy))),
                    (max(1, int(round(ax))), max(1, int(round(ay)))), 0, 0, 360, s, thickness)

    def line(self, s: int, p0, p1, thickness: float) -> None:
        cv2.line(self.seg, tuple(int(round(v)) for v in p0), tuple(int(round(v)) for v in p1),
                 s, max(1, int(round(thickness))))

    # rendering
    def render(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = len(self.label)
        label_lut = np.asarray(self.label, dtype=np.uint8)
        inst_lut = np.asarray(self.inst, dtype=np.uint16)
        color_lut = np.asarray(self.color, dtype=np.uint8)
        amp_lut = np.asarray(self.amp, dtype=np.uint8)
        if n <= 256:
            seg8 = self.seg.astype(np.uint8)
            pad = 256 - n
            label_ids = cv2.LUT(seg8, np.pad(label_lut, (0, pad)))
            color = cv2.LUT(cv2.merge([seg8, seg8, seg8]),
                            np.pad(color_lut, ((0, pad), (0, 0))).reshape(256, 1, 3))
            amp = cv2.LUT(seg8, np.pad(amp_lut, (0, pad)))
        else:  # many segments: plain gathers (slower, same result)
            label_ids = label_lut[self.seg]
            color = color_lut[self.seg]
            amp = amp_lut[self.seg]
        instance_ids = inst_lut[self.seg]
        # texture: a random tile repeated over the image, scaled by the class amplitude
        tile = self.rng.integers(0, 256, (_TILE, _TILE), dtype=np.uint8)
        reps = (-(-self.h // _TILE), -(-self.w // _TILE))
        noise = np.tile(tile, reps)[: self.h, : self.w]
        noise = cv2.multiply(noise, amp, scale=1.0 / 255.0)  # 0..amp
        half = cv2.multiply(amp, 0.5)
        noise3 = cv2.merge([noise, noise, noise])
        half3 = cv2.merge([half, half, half])
        image = cv2.subtract(cv2.add(color, noise3), half3)
        return image, label_ids, instance_ids


# --- objects -------------------------------------------------------------------------------

def _car(p: _Painter, x0: float, yb: float, w: float, side: bool, *, crowd: bool = False,
         label: int = 26) -> None:
    """A car (or, with ``crowd``, one member of a car crowd) with its left edge at ``x0``,
    standing on row ``yb``, ``w`` pixels wide; ``side`` = seen from the side."""
    if crowd:
        inst, k = label, int(p.rng.integers(0, 2))
    else:
        inst, k = p.instance(label)
    body = p.segment(label, p.shade(label, k), inst)
    cabin = p.segment(label, np.asarray(p.color[body]) + 18, inst)
    glass = p.segment(label, WINDOW, inst, amp=4)
    wheel = p.segment(label, WHEEL, inst, amp=4)
    x1 = x0 + w
    if side:
        h = 0.42 * w
        p.rect(body, x0, yb - 0.68 * h, x1, yb - 0.18 * h)
        p.poly(cabin, [(x0 + 0.14 * w, yb - 0.66 * h), (x0 + 0.86 * w, yb - 0.66 * h),
                       (x0 + 0.70 * w, yb - h), (x0 + 0.27 * w, yb - h)])
        p.poly(glass, [(x0 + 0.22 * w, yb - 0.70 * h), (x0 + 0.78 * w, yb - 0.70 * h),
                       (x0 + 0.67 * w, yb - 0.93 * h), (x0 + 0.30 * w, yb - 0.93 * h)])
        for cx in (x0 + 0.2 * w, x0 + 0.8 * w):
            p.ellipse(wheel, cx, yb - 0.18 * h, 0.18 * h, 0.18 * h)
    else:
        h = 0.8 * w
        lamp = p.segment(label, LAMP, inst, amp=4)
        p.rect(wheel, x0 + 0.04 * w, yb - 0.2 * h, x0 + 0.2 * w, yb)
        p.rect(wheel, x1 - 0.2 * w, yb - 0.2 * h, x1 - 0.04 * w, yb)
        p.rect(body, x0, yb - 0.62 * h, x1, yb - 0.12 * h)
        p.poly(cabin, [(x0 + 0.06 * w, yb - 0.6 * h), (x1 - 0.06 * w, yb - 0.6 * h),
                       (x1 - 0.2 * w, yb - h), (x0 + 0.2 * w, yb - h)])
        p.poly(glass, [(x0 + 0.14 * w, yb - 0.64 * h), (x1 - 0.14 * w, yb - 0.64 * h),
                       (x1 - 0.24 * w, yb - 0.94 * h), (x0 + 0.24 * w, yb - 0.94 * h)])
        p.rect(lamp, x0 + 0.03 * w, yb - 0.55 * h, x0 + 0.16 * w, yb - 0.47 * h)
        p.rect(lamp, x1 - 0.16 * w, yb - 0.55 * h, x1 - 0.03 * w, yb - 0.47 * h)


def _person(p: _Painter, cx: float, yb: float, h: float, *, label: int = 24,
            crowd: bool = False) -> None:
    """A pedestrian (or rider's upper body with ``label=25``) of height ``h`` standing at
    column ``cx`` on row ``yb``."""
    if crowd:
        inst, k = label, int(p.rng.integers(0, 2))
    else:
        inst, k = p.instance(label)
    torso = p.segment(label, p.shade(label, k, 40), inst)
    legs = p.segment(label, np.asarray(p.color[torso]) * 0.45, inst)
    head = p.segment(label, SKIN, inst, amp=4)
    p.rect(legs, cx - 0.11 * h, yb - 0.47 * h, cx - 0.015 * h, yb)
    p.rect(legs, cx + 0.015 * h, yb - 0.47 * h, cx + 0.11 * h, yb)
    p.poly(torso, [(cx - 0.14 * h, yb - 0.45 * h), (cx + 0.14 * h, yb - 0.45 * h),
                   (cx + 0.12 * h, yb - 0.84 * h), (cx - 0.12 * h, yb - 0.84 * h)])
    p.ellipse(head, cx, yb - 0.915 * h, 0.065 * h, 0.08 * h)


def _rider(p: _Painter, cx: float, yb: float, h: float, motor: bool) -> None:
    """A bicycle (or motorcycle) with its rider; the rider overlaps the vehicle."""
    label = 32 if motor else 33
    inst, k = p.instance(label)
    frame = p.segment(label, p.shade(label, k), inst)
    wheel = p.segment(label, WHEEL, inst, amp=4)
    r = 0.19 * h
    thick = max(1.0, 0.045 * h)
    for wx in (cx - 0.32 * h, cx + 0.32 * h):
        p.ellipse(wheel, wx, yb - r, r, r, thickness=max(1, int(round(thick))))
    if motor:
        p.poly(frame, [(cx - 0.3 * h, yb - r), (cx + 0.3 * h, yb - r),
                       (cx + 0.25 * h, yb - 0.45 * h), (cx - 0.2 * h, yb - 0.42 * h)])
    else:
        for a, b in (((cx - 0.32 * h, yb - r), (cx, yb - r)), ((cx, yb - r), (cx + 0.2 * h, yb - 0.5 * h)),
                     ((cx - 0.32 * h, yb - r), (cx - 0.05 * h, yb - 0.5 * h)),
                     ((cx - 0.05 * h, yb - 0.5 * h), (cx + 0.2 * h, yb - 0.5 * h)),
                     ((cx + 0.2 * h, yb - 0.5 * h), (cx + 0.32 * h, yb - r))):
            p.line(frame, a, b, thick)
    _person(p, cx - 0.03 * h, yb - 0.38 * h, 0.85 * h, label=25)


def _big_vehicle(p: _Painter, x0: float, yb: float, w: float, label: int) -> None:
    """A truck (27, cab + cargo box) or a bus (28, long box with a window band), side view."""
    inst, k = p.instance(label)
    body = p.segment(label, p.shade(label, k), inst)
    glass = p.segment(label, WINDOW, inst, amp=4)
    wheel = p.segment(label, WHEEL, inst, amp=4)
    h = 0.36 * w
    if label == 28:
        p.rect(body, x0, yb - h, x0 + w, yb - 0.12 * h)
        p.rect(glass, x0 + 0.04 * w, yb - 0.88 * h, x0 + 0.96 * w, yb - 0.58 * h)
        wheels = (x0 + 0.15 * w, x0 + 0.82 * w)
    else:
        cargo = p.segment(label, np.asarray(p.color[body]) + 45, inst)
        p.rect(cargo, x0, yb - h, x0 + 0.72 * w, yb - 0.15 * h)
        p.poly(body, [(x0 + 0.72 * w, yb - 0.15 * h), (x0 + w, yb - 0.15 * h),
                      (x0 + w, yb - 0.45 * h), (x0 + 0.9 * w, yb - 0.72 * h),
                      (x0 + 0.72 * w, yb - 0.72 * h)])
        p.rect(glass, x0 + 0.76 * w, yb - 0.66 * h, x0 + 0.9 * w, yb - 0.48 * h)
        wheels = (x0 + 0.15 * w, x0 + 0.58 * w, x0 + 0.86 * w)
    for cx in wheels:
        p.ellipse(wheel, cx, yb - 0.13 * h, 0.13 * h, 0.13 * h)


def _pole(p: _Painter, cx: float, yb: float, top: float, width: float, *,
          sign: bool = False, light: bool = False) -> None:
    """A thin vertical pole (stuff) from row ``top`` to ``yb``; optionally a sign or light."""
    s = p.segment(17, np.asarray(BASE_COLORS[17]) + p.rng.integers(-15, 16, 3), amp=4)
    p.rect(s, cx - width / 2, top, cx + width / 2, yb)
    if sign:
        t = p.segment(20, BASE_COLORS[20], amp=4)
        size = 5 * width
        p.rect(t, cx - size, top - 0.2 * size, cx + size, top + 1.6 * size)
    if light:
        t = p.segment(19, BASE_COLORS[19], amp=4)
        p.rect(t, cx - 2 * width, top, cx + 2 * width, top + 6 * width)


# --- the scene -----------------------------------------------------------------------------

@dataclass(frozen=True)
class _Ground:
    """Perspective of the ground plane: image size ``H`` x ``W`` (floats), horizon row ``yh``,
    vanishing-point column ``vx`` and the road's edges ``road_l``, ``road_r`` on the bottom
    row."""

    H: float
    W: float
    yh: float
    vx: float
    road_l: float
    road_r: float

    def row(self, f: float) -> float:
        """Row of the ground at depth factor f in (0, 1] (1 = bottom of the image)."""
        return self.yh + f * (self.H - self.yh)

    def road_x(self, y: float, t: float) -> float:
        """Column at fraction t across the road on row y."""
        W, yh, vx = self.W, self.yh, self.vx
        a = (y - yh) / (self.H - yh)
        left = vx - 0.03 * W + a * (self.road_l - vx + 0.03 * W)
        right = vx + 0.03 * W + a * (self.road_r - vx - 0.03 * W)
        return left + t * (right - left)


class _PaintQueue:
    """Objects waiting to be painted far to near: sorted by the row where they touch the
    ground, ties in the order they were added."""

    def __init__(self, p: _Painter):
        self.p = p
        self.jobs: list[tuple[float, int, object]] = []  # (row of the ground contact, order, paint)

    def add(self, yb: float, fn, *args, **kwargs) -> None:
        self.jobs.append((yb, len(self.jobs), partial(fn, self.p, *args, **kwargs)))

    def paint(self) -> None:
        for _, _, paint in sorted(self.jobs, key=lambda j: (j[0], j[1])):
            paint()


# background: sky, buildings, vegetation, ground, road (painted first, in this order)

def _paint_buildings(p: _Painter, H: float, W: float, yh: float) -> None:
    """A row of buildings (a few walls) of random widths and heights up to the horizon."""
    rng, u = p.rng, p.rng.uniform
    x = -W * u(0, 0.05)
    k = 0
    while x < W:
        bw = W * u(0.06, 0.16)
        label = 12 if rng.random() < 0.1 else 11
        shade = np.asarray(BASE_COLORS[label]) + (1 if k % 2 else -1) * u(10, 30) \
            + rng.integers(-12, 13, 3)
        p.rect(p.segment(label, shade), x, H * u(0.04, 0.3), x + bw, yh + 2)
        x += bw
        k += 1


def _paint_trees(p: _Painter, W: float, yh: float) -> None:
    """One to three trees (vegetation ellipses) on the horizon."""
    rng, u = p.rng, p.rng.uniform
    for _ in range(int(rng.integers(1, 4))):
        cx, r = W * u(0, 1), W * u(0.04, 0.1)
        p.ellipse(p.segment(21, np.asarray(BASE_COLORS[21]) + rng.integers(-15, 16, 3)),
                  cx, yh - r * u(0.2, 0.8), r, r * u(0.6, 1.0))


def _paint_sidewalk(p: _Painter, H: float, W: float, yh: float) -> None:
    """Sidewalk below the horizon, with a strip of terrain at one side (70 % of scenes)."""
    rng = p.rng
    ground = p.segment(8, BASE_COLORS[8])
    p.rect(ground, 0, yh, W, H)
    terrain_left = rng.random() < 0.5
    if rng.random() < 0.7:
        tx = (0, W * 0.12) if terrain_left else (W * 0.88, W)
        p.poly(p.segment(22, BASE_COLORS[22]), [(tx[0], H), (tx[1], H), (tx[1], yh + 0.25 * (H - yh)),
                                                (tx[0], yh + 0.25 * (H - yh))])


def _paint_road(p: _Painter, g: _Ground) -> None:
    """The road towards the vanishing point, its dashed centre line in perspective and, in
    half of the scenes, a fence along the far sidewalk."""
    rng, u = p.rng, p.rng.uniform
    H, W, yh, vx = g.H, g.W, g.yh, g.vx
    road = p.segment(7, np.asarray(BASE_COLORS[7]) + rng.integers(-8, 9, 3))
    p.poly(road, [(g.road_l, H), (g.road_r, H), (vx + 0.03 * W, yh), (vx - 0.03 * W, yh)])
    mark = p.segment(7, (225, 225, 215), amp=4)
    bottom = H
    for t0 in np.arange(0.05, 1.0, 0.2):  # dashed centre line in perspective
        t1 = t0 + 0.1
        y0, y1 = yh + t0 ** 2 * (bottom - yh), yh + t1 ** 2 * (bottom - yh)
        hw0, hw1 = 0.006 * W * t0 ** 2 + 0.5, 0.006 * W * t1 ** 2 + 0.5
        xm0, xm1 = vx + (W / 2 - vx) * t0 ** 2, vx + (W / 2 - vx) * t1 ** 2
        p.poly(mark, [(xm0 - hw0, y0), (xm0 + hw0, y0), (xm1 + hw1, y1), (xm1 - hw1, y1)])
    if rng.random() < 0.5:  # a fence along the far sidewalk
        fx = W * u(0.6, 0.8)
        p.rect(p.segment(13, BASE_COLORS[13]), fx, yh - 0.05 * H, fx + W * u(0.1, 0.2), yh + 2)


def _paint_background(p: _Painter, H: float, W: float) -> _Ground:
    """Paint sky, buildings, trees, sidewalk and road; return the ground's perspective."""
    rng, u = p.rng, p.rng.uniform
    p.segment(23, np.asarray(BASE_COLORS[23]) + rng.integers(-10, 11, 3))  # segment 0 = sky
    yh = H * u(0.38, 0.46)  # horizon
    vx = W * u(0.4, 0.6)  # vanishing point column
    _paint_buildings(p, H, W, yh)
    _paint_trees(p, W, yh)
    _paint_sidewalk(p, H, W, yh)
    road_l, road_r = W * u(-0.25, 0.12), W * u(0.88, 1.25)
    g = _Ground(H, W, yh, vx, road_l, road_r)
    _paint_road(p, g)
    return g


# things and poles: queued, then painted far to near

def _add_traffic(q: _PaintQueue, g: _Ground) -> list[tuple[float, float, float]]:
    """Two to four cars seen from behind on the road; returns their (x0, yb, w)."""
    rng, u = q.p.rng, q.p.rng.uniform
    cars: list[tuple[float, float, float]] = []
    for _ in range(int(rng.integers(2, 5))):
        f = u(0.12, 0.8)
        yb = g.row(f)
        w = 0.3 * g.W * f
        x0 = g.road_x(yb, u(0.1, 0.9)) - w / 2
        q.add(yb, _car, x0, yb, w, False)
        cars.append((x0, yb, w))
    return cars


def _add_parked_row(q: _PaintQueue, g: _Ground) -> None:
    """A row of parked side-view cars at one road edge: the first two touch, then they
    overlap."""
    rng, u = q.p.rng, q.p.rng.uniform
    f = u(0.35, 0.6)
    on_left = rng.random() < 0.5
    n_row = int(rng.integers(3, 6))
    w = 0.45 * g.W * f
    x0 = g.road_x(g.row(f), 0.0) - (n_row * 0.8 * w if on_left else -0.1 * w)
    for i in range(n_row):
        yb = g.row(f) + i * 0.01 * g.H * (1 if on_left else -1)
        q.add(yb, _car, x0, yb, w, True)
        x0 += w * (1.0 if i == 0 else u(0.6, 0.9))  # first two touch, then overlap


def _add_far_vehicles(q: _PaintQueue, g: _Ground) -> None:
    """Three to six small far cars near the horizon, then up to two trucks or buses."""
    rng, u = q.p.rng, q.p.rng.uniform
    for _ in range(int(rng.integers(3, 7))):  # small far cars
        f = u(0.02, 0.08)
        yb = g.row(f)
        q.add(yb, _car, g.road_x(yb, u(-0.5, 1.5)), yb, 0.3 * g.W * f, rng.random() < 0.5)
    for _ in range(int(rng.integers(0, 3))):  # trucks and buses
        f = u(0.15, 0.5)
        yb = g.row(f)
        w = 0.8 * g.W * f
        q.add(yb, _big_vehicle, g.road_x(yb, u(0.0, 1.0)) - w / 2, yb, w,
              27 if rng.random() < 0.5 else 28)


def _sidewalk_x(rng: np.random.Generator, g: _Ground):
    """Choose a sidewalk (left or right of the road); return ``side_x(y)``, a random column
    on it at row y (one draw per call)."""
    if rng.random() < 0.5:
        return lambda y: g.road_x(y, rng.uniform(-0.6, -0.05))
    return lambda y: g.road_x(y, rng.uniform(1.05, 1.6))


def _add_people(q: _PaintQueue, g: _Ground, side_x) -> None:
    """Pedestrians on the sidewalk (one overlapping pair among them), then one or two riders
    on bicycles or motorcycles on the road."""
    rng, u, H = q.p.rng, q.p.rng.uniform, g.H
    for _ in range(int(rng.integers(2, 5))):  # pedestrians on the sidewalks
        f = u(0.1, 0.75)
        yb = g.row(f)
        q.add(yb, _person, side_x(yb), yb, 0.6 * H * f)
    f = u(0.3, 0.7)  # an overlapping pair of pedestrians
    yb = g.row(f)
    cx = side_x(yb)
    q.add(yb, _person, cx, yb, 0.6 * H * f)
    q.add(yb + 1, _person, cx + 0.1 * H * f, yb + 1, 0.58 * H * f)
    for _ in range(int(rng.integers(1, 3))):  # riders on bicycles / motorcycles
        f = u(0.15, 0.7)
        yb = g.row(f)
        q.add(yb, _rider, g.road_x(yb, u(0.05, 0.95)), yb, 0.5 * H * f, rng.random() < 0.3)


def _add_crowds(q: _PaintQueue, g: _Ground, side_x) -> None:
    """A crowd of persons on the sidewalk and, in half of the scenes, a far car park (a car
    crowd); crowd members carry no instance ids."""
    rng, u = q.p.rng, q.p.rng.uniform
    f = u(0.05, 0.15)  # a crowd of persons (no instance ids)
    yb = g.row(f)
    cx = side_x(yb)
    for _ in range(int(rng.integers(5, 10))):
        q.add(yb, _person, cx + u(-0.6, 0.6) * g.H * f, yb + u(-2, 2),
              0.6 * g.H * f * u(0.85, 1.1), crowd=True)
    if rng.random() < 0.5:  # a car park far away: a car crowd
        f = u(0.04, 0.1)
        yb = g.row(f)
        cx = g.road_x(yb, 1.3 if rng.random() < 0.5 else -0.6)
        for _ in range(int(rng.integers(3, 6))):
            q.add(yb, _car, cx + u(-0.3, 0.3) * g.W * f, yb + u(-1, 1), 0.3 * g.W * f, False,
                  crowd=True)


def _add_poles(q: _PaintQueue, g: _Ground, side_x, cars: list[tuple[float, float, float]]) -> None:
    """One to three poles (some with a sign or a light) along the sidewalk, and one in front
    of the largest car of ``cars``, cutting it in two."""
    rng, u = q.p.rng, q.p.rng.uniform
    H, W, yh = g.H, g.W, g.yh
    pole_w = max(2.0, 0.005 * W)
    for _ in range(int(rng.integers(1, 4))):  # poles along the sidewalks
        f = u(0.1, 0.8)
        yb = g.row(f)
        q.add(yb, _pole, side_x(yb), yb, yh - (0.35 + 0.1 * f) * H * f * 2, pole_w * max(f, 0.4),
              sign=rng.random() < 0.5, light=rng.random() < 0.3)
    if cars:  # a pole in front of the largest car, cutting it in two
        x0, yb, w = max(cars, key=lambda c: c[2])
        q.add(yb + 0.5, _pole, x0 + w * u(0.4, 0.6), yb + 0.02 * H, yb - w * 1.2, pole_w,
              sign=rng.random() < 0.5)


def _static_object(p: _Painter, cx: float, yb: float, s: float) -> None:
    """A static void object (label 4), a square of side ``s`` standing on row ``yb``."""
    p.rect(p.segment(4, BASE_COLORS[4]), cx - s, yb - s, cx + s, yb)


def _add_static(q: _PaintQueue, g: _Ground, side_x) -> None:
    """In half of the scenes, a static void object on the sidewalk."""
    rng, u = q.p.rng, q.p.rng.uniform
    if rng.random() < 0.5:
        f = u(0.2, 0.6)
        yb = g.row(f)
        sx = side_x(yb)
        q.add(yb, _static_object, sx, yb, 0.05 * g.W * f)


def _paint_void(p: _Painter, H: float, W: float) -> None:
    """Void on top of everything: the ego vehicle at the bottom and the out-of-roi border."""
    ego = p.segment(1, BASE_COLORS[1])
    p.ellipse(ego, W / 2, H + 0.02 * H, 0.75 * W, H * p.rng.uniform(0.07, 0.11))
    border = p.segment(3, BASE_COLORS[3])
    b = max(1.0, round(0.004 * W))
    for x0, y0, x1, y1 in ((0, 0, b - 1, H), (W - b, 0, W, H), (0, H - b, W, H), (0, 0, W, b - 1)):
        p.rect(border, x0, y0, x1, y1)


def make_scene(rng: np.random.Generator | int | tuple[int, ...], height: int,
               width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Paint one synthetic street scene.

    The random draws happen in a fixed order (background, then the objects in the order
    queued below, then the void), so a seed always gives the same scene.

    Parameters
    ----------
    rng : a numpy Generator, or a seed (int or tuple of ints) for one.
    height, width : image size in pixels (each >= 32).

    Returns
    -------
    image : uint8 (H, W, 3), RGB.
    label_ids : uint8 (H, W), Cityscapes label ids.
    instance_ids : uint16 (H, W), ``label_id * 1000 + k`` for thing instances, ``label_id``
        for stuff and crowd regions.

    Examples
    --------
    >>> image, label_ids, instance_ids = make_scene(0, 64, 128)
    >>> image.shape, label_ids.dtype.name, instance_ids.dtype.name
    ((64, 128, 3), 'uint8', 'uint16')
    >>> bool((instance_ids[instance_ids >= 1000] // 1000 == label_ids[instance_ids >= 1000]).all())
    True
    """
    if not isinstance(rng, np.random.Generator):
        rng = np.random.default_rng(rng)
    if height < 32 or width < 32:
        raise ConfigError(f"scene size must be at least 32x32, got {height}x{width}")
    p = _Painter(height, width, rng)
    g = _paint_background(p, float(height), float(width))
    q = _PaintQueue(p)
    cars = _add_traffic(q, g)
    _add_parked_row(q, g)
    _add_far_vehicles(q, g)
    side_x = _sidewalk_x(rng, g)
    _add_people(q, g, side_x)
    _add_crowds(q, g, side_x)
    _add_poles(q, g, side_x, cars)
    _add_static(q, g, side_x)
    q.paint()
    _paint_void(p, g.H, g.W)
    return p.render()


# --- datasets ------------------------------------------------------------------------------

#: The layouts :func:`make_dataset` writes (``format``): Cityscapes' and COCO panoptic's.
FORMATS = ("cityscapes", "coco-panoptic")


def _write_one(index: int, *, out_root: str, config: SynthConfig) -> str:
    from panoptool.io.cityscapes import Sample  # local import keeps this module light for workers

    stem = stem_of(index)
    image, label_ids, instance_ids = make_scene((config.seed, index), config.height, config.width)
    sample = Sample(Path(out_root), config.split, stem.rsplit("_", 2)[0], stem)
    write_png(sample.image_path, image, params=UP_PNG_PARAMS)
    write_png(sample.label_ids_path, label_ids, params=LABEL_PNG_PARAMS)
    write_png(sample.instance_ids_path, instance_ids, params=UP_PNG_PARAMS)
    return stem


def coco_paths(out_root: PathLike, split: str) -> dict[str, Path]:
    """Where the COCO-panoptic form of a split lies, in COCO's own layout (the one
    :func:`panoptool.io.datasets.open_dataset` reads): ``images`` = ``<out>/<split>/``,
    ``panoptic_json`` = ``<out>/annotations/panoptic_<split>.json``, ``panoptic_dir`` = the
    JSON's path without ``.json``."""
    out_root = Path(out_root)
    json_path = out_root / "annotations" / f"panoptic_{split}.json"
    return {"images": out_root / split, "panoptic_json": json_path,
            "panoptic_dir": json_path.with_suffix("")}


def _write_one_coco(index: int, *, out_root: str, config: SynthConfig) -> tuple[dict, dict]:
    """Paint image ``index`` and write it as COCO panoptic: the RGB image and the panoptic
    PNG; return its ``images`` and ``annotations`` entries."""
    from panoptool.io.cityscapes_panoptic import gt_to_panoptic

    stem = stem_of(index)
    image, _, instance_ids = make_scene((config.seed, index), config.height, config.width)
    rgb, segments = gt_to_panoptic(instance_ids)  # createPanopticImgs' rules, label-id categories
    paths = coco_paths(out_root, config.split)
    name = f"{stem}.png"
    write_png(paths["images"] / name, image, params=UP_PNG_PARAMS)
    write_png(paths["panoptic_dir"] / name, rgb, params=LABEL_PNG_PARAMS)
    return ({"id": stem, "file_name": name, "height": config.height, "width": config.width},
            {"image_id": stem, "file_name": name, "segments_info": segments})


def config_filename(split: str) -> str:
    """Name of the settings file synth writes in the dataset root for a split."""
    return f"synth-{split}.json"


def make_dataset(out_root: PathLike, config: SynthConfig, workers: int | None = 1,
                 show_progress: bool = True, *, format: str = "cityscapes") -> list[str]:
    """Write a synthetic dataset in the Cityscapes layout or as COCO panoptic.

    ``format="cityscapes"``: ``leftImg8bit/<split>/<city>/<stem>_leftImg8bit.png`` (RGB),
    ``gtFine/<split>/<city>/<stem>_gtFine_labelIds.png`` (uint8) and
    ``..._gtFine_instanceIds.png`` (uint16).

    ``format="coco-panoptic"``: the same scenes in COCO's layout (:func:`coco_paths`):
    ``<split>/<stem>.png`` (RGB, the stems of the Cityscapes form),
    ``annotations/panoptic_<split>/<stem>.png`` (segment id = R + 256 G + 256^2 B) and
    ``annotations/panoptic_<split>.json`` (written last). The ground truth is converted by
    createPanopticImgs' rules (:func:`panoptool.io.cityscapes_panoptic.gt_to_panoptic`):
    ``categories`` are the 19 evaluated Cityscapes classes with their label ids as ids (id,
    name, isthing, color, supercategory), segment id = Cityscapes instance id, crowd regions
    are ``iscrowd`` 1 segments, and the labels Cityscapes does not evaluate (the ego vehicle,
    the out-of-roi border, static objects) are void (0). Image ids are the stems.

    Every file is written atomically, plus ``<out_root>/synth-<split>.json`` with the
    settings (:func:`formats.stage_config`; with ``"format"`` for the COCO form).

    Parameters
    ----------
    out_root : dataset root to create or add to.
    config : the dataset's settings.
    workers : worker processes (0 or None = all cores); the result does not depend on it.
    show_progress : show a progress bar on stderr.
    format : one of :data:`FORMATS`.

    Returns
    -------
    list of str, the stems written, in index order.
    """
    from panoptool.runtime.pool import run_parallel

    from panoptool.runtime.guard import output_lock
    from panoptool.io.files import remove_stale_temporaries

    if format not in FORMATS:
        raise ConfigError(f"synth format must be one of {', '.join(FORMATS)}, got {format!r}")
    out_root = Path(out_root)
    coco = format == "coco-panoptic"
    settings = dataclasses.asdict(config)
    if coco:
        from panoptool.io.cityscapes_panoptic import gt_to_panoptic

        gt_to_panoptic(np.zeros((1, 1), np.uint16))  # compiles the box kernel before the fork
        settings["format"] = format
    func = partial(_write_one_coco if coco else _write_one, out_root=str(out_root),
                   config=config)
    with output_lock(out_root, "synth"):
        remove_stale_temporaries(out_root)
        results = list(run_parallel(func, list(range(config.n)), workers=workers,
                                    description=f"synth {config.split}",
                                    show_progress=show_progress))
        if coco:
            from panoptool.io.cityscapes_panoptic import panoptic_categories

            write_json(coco_paths(out_root, config.split)["panoptic_json"],
                       {"images": [r[0] for r in results],
                        "annotations": [r[1] for r in results],
                        "categories": panoptic_categories()}, indent=None)
            stems = [r[0]["id"] for r in results]
        else:
            stems = results
        write_json(out_root / config_filename(config.split), stage_config("synth", settings))
    return stems
