"""Label spaces: the classes of a dataset as data (:class:`LabelSpace`), and Cityscapes'.

:data:`CITYSCAPES` is built from the official table, ``cityscapesscripts.helpers.labels``, at
import; nothing is a hand copy. Every stage takes a ``labels: LabelSpace = CITYSCAPES``
argument, so another label space (one read from a COCO panoptic JSON's ``categories``,
Mapillary's, a subset) plugs in without touching the metrics or the derivation. The
module-level names (:data:`NUM_CLASSES`, :data:`LABEL_TO_TRAIN`, ...) are the fields of
:data:`CITYSCAPES`, kept for the code that reads them.

Encodings
---------
label_ids : uint8, the dataset's category ids (Cityscapes: the official ids 0..33, as in
    ``*_gtFine_labelIds.png``; COCO panoptic: ``category_id``).
train_ids : uint8, 0..K-1 for the K evaluated classes, 255 (``IGNORE``) for everything else.
instance_ids : int32/uint16, ``label_id * 1000 + k`` for thing instances, ``label_id`` for
    stuff and for crowd regions (as in ``*_gtFine_instanceIds.png``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from functools import cached_property

import numpy as np
from cityscapesscripts.helpers.labels import labels as _CS_LABELS

from panoptool.errors import ConfigError

IGNORE = 255
#: Instance ids fit in 16 bits (Cityscapes stores them so); thing ids are label * 1000 + k.
MAX_INSTANCE_ID = 1 << 16


@dataclass(frozen=True)
class Category:
    """One class of a label space: a row of cityscapesscripts' table, or a COCO category.

    Attributes
    ----------
    id : label id (the value in label-id maps; COCO's ``category_id``), 0..255.
    name : class name.
    train_id : 0..K-1 for an evaluated class, :data:`IGNORE` for the others.
    supercategory, supercategory_id : the group (Cityscapes' ``category`` / ``categoryId``,
        COCO's ``supercategory``; its id may be 0 where the source has none).
    has_instances : the annotation separates its instances (Cityscapes' ``hasInstances``;
        COCO's ``isthing``).
    ignore_in_eval : not evaluated (Cityscapes' ``ignoreInEval``); such a class has no train
        id and its pixels are void in the metrics.
    color : (R, G, B) 0..255.

    A *thing* class is evaluated and has instances (:attr:`isthing`); every other evaluated
    class is *stuff*.
    """

    id: int
    name: str
    train_id: int
    supercategory: str
    supercategory_id: int
    has_instances: bool
    ignore_in_eval: bool
    color: tuple[int, int, int]

    def __post_init__(self):
        try:  # plain Python values (from numpy, JSON), so that spaces compare and hash
            for name, kind in (("id", int), ("name", str), ("train_id", int),
                               ("supercategory", str), ("supercategory_id", int),
                               ("has_instances", bool), ("ignore_in_eval", bool)):
                object.__setattr__(self, name, kind(getattr(self, name)))
            object.__setattr__(self, "color", tuple(int(v) for v in self.color))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"category {self.name!r}: {exc}") from None

    @property
    def isthing(self) -> bool:
        return self.has_instances and not self.ignore_in_eval

    def to_dict(self) -> dict:
        return {**asdict(self), "color": list(self.color)}


def _lut(size: int, dtype, fill, pairs) -> np.ndarray:
    """A read-only table of ``size`` entries, ``fill`` except at the given (index, value)."""
    table = np.full(size, fill, dtype=dtype)
    for index, value in pairs:
        table[index] = value
    table.flags.writeable = False
    return table


@dataclass(frozen=True)
class LabelSpace:
    """The classes of a dataset and every table derived from them.

    Parameters
    ----------
    name : what the space is (``cityscapes``).
    categories : the classes, in the order of the source table (the official evaluation
        order of the instance classes); ids unique, train ids of the evaluated classes
        exactly 0..K-1, one each.
    ignore : the train id of everything that is not a class (255).

    The look-up tables (``label_to_train``, ``is_thing_train``, ...) are computed once per
    label space, on first use, and are read-only. Two label spaces are equal if their
    fields are; :meth:`to_dict` / :meth:`from_dict` give the JSON form.

    Examples
    --------
    A space of two stuff classes and one thing class, with other ids than Cityscapes':

    >>> space = LabelSpace("toy", (
    ...     Category(3, "ground", 0, "flat", 1, False, False, (90, 90, 90)),
    ...     Category(5, "sky", 1, "sky", 2, False, False, (0, 0, 255)),
    ...     Category(9, "cow", 2, "animal", 3, True, False, (200, 0, 0))))
    >>> space.num_classes, space.thing_label_ids, space.label_to_train[[3, 5, 9, 0]].tolist()
    (3, (9,), [0, 1, 2, 255])
    >>> LabelSpace.from_dict(space.to_dict()) == space
    True
    """

    name: str
    categories: tuple[Category, ...]
    ignore: int = IGNORE

    def __post_init__(self):
        cats = tuple(c if isinstance(c, Category) else Category(**c) for c in self.categories)
        object.__setattr__(self, "categories", cats)
        if not 0 <= self.ignore < 256:
            raise ConfigError(f"label space {self.name!r}: ignore must lie in 0..255, got "
                              f"{self.ignore}")
        ids = [c.id for c in cats]
        if len(set(ids)) != len(ids) or not all(0 <= i < 256 for i in ids):
            raise ConfigError(f"label space {self.name!r}: label ids must be distinct and lie "
                              f"in 0..255, got {ids}")
        for c in cats:
            if c.ignore_in_eval != (c.train_id == self.ignore):
                raise ConfigError(f"label space {self.name!r}: class {c.name!r} must have a "
                                  f"train id if and only if it is evaluated, got train id "
                                  f"{c.train_id} with ignore_in_eval={c.ignore_in_eval}")
            if len(c.color) != 3 or not all(0 <= v < 256 for v in c.color):
                raise ConfigError(f"label space {self.name!r}: class {c.name!r} has colour "
                                  f"{c.color}, expected (R, G, B) in 0..255")
        train = sorted(c.train_id for c in cats if not c.ignore_in_eval)
        if train != list(range(len(train))) or len(train) >= self.ignore:
            raise ConfigError(f"label space {self.name!r}: the train ids of the evaluated "
                              f"classes must be 0..K-1 (K < ignore {self.ignore}), one each, "
                              f"got {train}")

    @classmethod
    def cityscapes(cls) -> "LabelSpace":
        """The official Cityscapes table (labels with an id; drops 'license plate', id -1)."""
        return cls("cityscapes", tuple(
            Category(int(lab.id), lab.name, int(lab.trainId), lab.category,
                     int(lab.categoryId), bool(lab.hasInstances), bool(lab.ignoreInEval),
                     tuple(int(v) for v in lab.color))
            for lab in _CS_LABELS if lab.id >= 0))

    # --- JSON -------------------------------------------------------------------------------

    def to_dict(self) -> dict:
        """A JSON-able dict: ``name``, ``ignore`` and ``categories`` (one dict per class)."""
        return {"name": self.name, "ignore": self.ignore,
                "categories": [c.to_dict() for c in self.categories]}

    @classmethod
    def from_dict(cls, data: dict) -> "LabelSpace":
        """Inverse of :meth:`to_dict`; ConfigError naming what is missing or wrong."""
        names = [f.name for f in fields(Category)]
        try:
            cats = tuple(Category(**{k: c[k] for k in names}) for c in data["categories"])
            return cls(str(data["name"]), cats, int(data.get("ignore", IGNORE)))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"not a label space ({type(exc).__name__}: {exc}); expected "
                              f"name and categories with {', '.join(names)}") from None

    def __reduce__(self):
        # workers receive the fields only; Cityscapes comes back as the module's instance,
        # with its tables already built
        return (_restore, (self.name, self.categories, self.ignore))

    # --- classes ----------------------------------------------------------------------------

    @cached_property
    def num_classes(self) -> int:
        """K, the number of evaluated classes (train ids 0..K-1)."""
        return sum(not c.ignore_in_eval for c in self.categories)

    @cached_property
    def n_labels(self) -> int:
        """Size of the tables indexed by label id in the metrics: the largest id + 1."""
        return max(c.id for c in self.categories) + 1

    @cached_property
    def by_train_id(self) -> tuple[Category, ...]:
        """The evaluated classes, indexed by train id (length K)."""
        return tuple(sorted((c for c in self.categories if not c.ignore_in_eval),
                            key=lambda c: c.train_id))

    @cached_property
    def class_names(self) -> tuple[str, ...]:
        """Class names indexed by train id (length K)."""
        return tuple(c.name for c in self.by_train_id)

    @cached_property
    def class_colors(self) -> np.ndarray:
        """RGB colours indexed by train id, uint8 (K, 3)."""
        colors = np.array([c.color for c in self.by_train_id], dtype=np.uint8).reshape(-1, 3)
        colors.flags.writeable = False
        return colors

    @cached_property
    def label_names(self) -> dict[int, str]:
        """Name of each label id."""
        return {c.id: c.name for c in self.categories}

    @cached_property
    def label_of_name(self) -> dict[str, int]:
        """Label id of each class name (the first class of a name)."""
        out: dict[str, int] = {}
        for c in self.categories:
            out.setdefault(c.name, c.id)
        return out

    @cached_property
    def thing_label_ids(self) -> tuple[int, ...]:
        """Label ids of the thing classes (evaluated, with instances), in table order."""
        return tuple(c.id for c in self.categories if c.isthing)

    @cached_property
    def thing_train_ids(self) -> tuple[int, ...]:
        """Train ids of the thing classes, ascending."""
        return tuple(c.train_id for c in self.by_train_id if c.isthing)

    @cached_property
    def stuff_train_ids(self) -> tuple[int, ...]:
        """Train ids of the stuff classes, ascending."""
        return tuple(c.train_id for c in self.by_train_id if not c.isthing)

    @cached_property
    def evaluated_label_ids(self) -> tuple[int, ...]:
        """Label ids of the evaluated classes (the panoptic categories), in table order."""
        return tuple(c.id for c in self.categories if not c.ignore_in_eval)

    @cached_property
    def eval_label_ids(self) -> np.ndarray:
        """int64 (K,), the label id of each train id."""
        return self.train_to_label[:self.num_classes].astype(np.int64)

    # --- look-up tables (256 entries, read-only) ---------------------------------------------

    @cached_property
    def label_to_train(self) -> np.ndarray:
        """uint8 (256,) ``label_id -> train_id`` (unknown ids -> ignore)."""
        return _lut(256, np.uint8, self.ignore,
                    ((c.id, c.train_id) for c in self.categories))

    @cached_property
    def train_to_label(self) -> np.ndarray:
        """uint8 (256,) ``train_id -> label_id``; everything else -> 0 (Cityscapes'
        'unlabeled', COCO's VOID)."""
        return _lut(256, np.uint8, 0, ((c.train_id, c.id) for c in self.by_train_id))

    @cached_property
    def known_label(self) -> np.ndarray:
        """bool (256,) over label ids: True for the ids of the table."""
        return _lut(256, bool, False, ((c.id, True) for c in self.categories))

    @cached_property
    def is_thing_train(self) -> np.ndarray:
        """bool (256,) over train ids: True for thing classes."""
        return _lut(256, bool, False, ((t, True) for t in self.thing_train_ids))

    @cached_property
    def is_thing_label(self) -> np.ndarray:
        """bool (256,) over label ids: True for thing classes."""
        return _lut(256, bool, False, ((i, True) for i in self.thing_label_ids))

    @cached_property
    def has_instances_label(self) -> np.ndarray:
        """bool (256,) over label ids: True for classes with instances, evaluated or not
        (Cityscapes: incl. caravan, trailer)."""
        return _lut(256, bool, False, ((c.id, True) for c in self.categories
                                       if c.has_instances))

    @cached_property
    def is_evaluated_label(self) -> np.ndarray:
        """bool (256,) over label ids: True for evaluated classes."""
        return _lut(256, bool, False, ((i, True) for i in self.evaluated_label_ids))

    @cached_property
    def is_void_label(self) -> np.ndarray:
        """bool (256,) over label ids: True for the classes of the table that are not
        evaluated (unknown ids are not void)."""
        return _lut(256, bool, False, ((c.id, True) for c in self.categories
                                       if c.ignore_in_eval))

    @cached_property
    def thing_index_of_train(self) -> np.ndarray:
        """intp (256,) over train ids: position in :attr:`thing_train_ids`, -1 for others."""
        return _lut(256, np.intp, -1, ((t, k) for k, t in enumerate(self.thing_train_ids)))

    @cached_property
    def thing_index_of_label(self) -> np.ndarray:
        """int64 (256,) over label ids: position in :attr:`thing_label_ids` (the instance
        evaluation's class index), -1 for others."""
        return _lut(256, np.int64, -1, ((i, k) for k, i in enumerate(self.thing_label_ids)))

    @cached_property
    def stuff_train_to_label(self) -> np.ndarray:
        """int32 (256,) over train ids: the label id of a stuff class (its panoptic segment
        id), 0 for thing classes and non-classes."""
        return _lut(256, np.int32, 0, ((t, self.train_to_label[t])
                                       for t in self.stuff_train_ids))

    @cached_property
    def is_thing_instance_id(self) -> np.ndarray:
        """bool (65536,) over 16-bit instance ids (a Cityscapes PNG's): the first entries of
        :attr:`is_thing_any_instance_id`."""
        return self.is_thing_any_instance_id[:MAX_INSTANCE_ID]

    @cached_property
    def is_thing_any_instance_id(self) -> np.ndarray:
        """bool (256000,) over every instance id ``label_id * 1000 + k`` (label 0..255,
        k < 1000): True for the ids of non-crowd thing instances (a thing label, k any)."""
        table = np.zeros(256 * 1000, dtype=bool)
        for label in self.thing_label_ids:
            table[label * 1000: label * 1000 + 1000] = True
        table.flags.writeable = False
        return table

    # --- conversions -------------------------------------------------------------------------

    def label_ids_to_train_ids(self, label_ids: np.ndarray) -> np.ndarray:
        """uint8 label ids (any shape) -> train ids (unknown ids -> ignore)."""
        return self.label_to_train[np.asarray(label_ids, dtype=np.uint8)]

    def train_ids_to_label_ids(self, train_ids: np.ndarray) -> np.ndarray:
        """uint8 train ids (any shape) -> label ids (ignore and unknown -> 0)."""
        return self.train_to_label[np.asarray(train_ids, dtype=np.uint8)]


def require_same(expected: LabelSpace, found: LabelSpace, expected_from: str,
                 found_from: str) -> None:
    """Refuse two different label spaces with one line naming both and where each comes
    from (e.g. the checkpoint's and the dataset's).

    >>> require_same(CITYSCAPES, CITYSCAPES, "a", "b")
    """
    if expected == found:
        return
    detail = ""
    mine = {c.id: c for c in expected.categories}
    theirs = {c.id: c for c in found.categories}
    for cid in sorted(set(mine) | set(theirs)):
        if mine.get(cid) != theirs.get(cid):
            a, b = mine.get(cid), theirs.get(cid)
            detail = (f"; first difference at label id {cid}: "
                      f"{a.name if a else 'absent'} vs {b.name if b else 'absent'}")
            break
    raise ConfigError(f"label spaces differ: {expected_from} has {expected.name!r} "
                      f"({expected.num_classes} classes, {len(expected.thing_train_ids)} "
                      f"things), {found_from} has {found.name!r} ({found.num_classes} classes, "
                      f"{len(found.thing_train_ids)} things){detail}")


#: Key of the label space in a stage's ``config.json`` settings and in a checkpoint.
LABELS_KEY = "labels"


def labels_of_config(config: dict | None, default: "LabelSpace | None" = None
                     ) -> "LabelSpace | None":
    """The label space a stage's ``config.json`` chain records: the ``labels`` setting of
    the stage or, failing that, of the nearest upstream stage; ``default`` where none does
    (outputs of panoptool before label spaces were recorded are Cityscapes').

    >>> from panoptool.io.formats import stage_config
    >>> labels_of_config(stage_config("infer", {}, stage_config("make-targets",
    ...     {"labels": CITYSCAPES.to_dict()}))) is CITYSCAPES
    True
    """
    while isinstance(config, dict):
        settings = config.get("settings")
        if isinstance(settings, dict) and isinstance(settings.get(LABELS_KEY), dict):
            space = LabelSpace.from_dict(settings[LABELS_KEY])
            return _restore(space.name, space.categories, space.ignore)
        config = config.get("upstream")
    return default


def _restore(name: str, categories: tuple, ignore: int) -> LabelSpace:
    if (name, categories, ignore) == (CITYSCAPES.name, CITYSCAPES.categories, CITYSCAPES.ignore):
        return CITYSCAPES
    return LabelSpace(name, categories, ignore)


#: The Cityscapes label space (cityscapesscripts' table).
CITYSCAPES = LabelSpace.cityscapes()

# --- the fields of CITYSCAPES under their historical names -----------------------------------

NUM_CLASSES = CITYSCAPES.num_classes
#: Official labels with a valid id (drops 'license plate', id -1), cityscapesscripts' tuples.
LABELS = tuple(lab for lab in _CS_LABELS if lab.id >= 0)
#: uint8 lookup table ``label_id -> train_id`` of length 256 (unknown ids -> IGNORE).
LABEL_TO_TRAIN = CITYSCAPES.label_to_train
#: uint8 lookup table ``train_id -> label_id`` of length 256; IGNORE maps to 0 ('unlabeled').
TRAIN_TO_LABEL = CITYSCAPES.train_to_label
#: Boolean table over label ids 0..255: True for the ids of the official label table.
KNOWN_LABEL_ID = CITYSCAPES.known_label
#: Class names indexed by train id (length 19).
CLASS_NAMES = CITYSCAPES.class_names
#: RGB colours indexed by train id, shape (19, 3) uint8.
CLASS_COLORS = CITYSCAPES.class_colors
#: Label ids of thing classes: hasInstances and not ignoreInEval (person ... bicycle).
THING_LABEL_IDS = CITYSCAPES.thing_label_ids
#: Train ids of thing classes (11..18).
THING_TRAIN_IDS = CITYSCAPES.thing_train_ids
#: Train ids of stuff classes (0..10).
STUFF_TRAIN_IDS = CITYSCAPES.stuff_train_ids
#: Boolean table over train ids 0..255: True for thing classes.
IS_THING_TRAIN = CITYSCAPES.is_thing_train
#: Boolean table over label ids 0..255: True for labels with instances (incl. caravan,
#: trailer, which are ignored in evaluation).
HAS_INSTANCES_LABEL = CITYSCAPES.has_instances_label
#: Name of each label id (dict).
LABEL_NAMES = CITYSCAPES.label_names


def label_ids_to_train_ids(label_ids: np.ndarray) -> np.ndarray:
    """Map official label ids to train ids.

    Parameters
    ----------
    label_ids : ndarray of uint8, any shape

    Returns
    -------
    ndarray of uint8, same shape, 0..18 or 255.

    Examples
    --------
    >>> label_ids_to_train_ids(np.array([7, 26, 0, 255], dtype=np.uint8)).tolist()
    [0, 13, 255, 255]
    """
    return CITYSCAPES.label_ids_to_train_ids(label_ids)


def train_ids_to_label_ids(train_ids: np.ndarray) -> np.ndarray:
    """Map train ids back to official label ids (IGNORE -> 0, 'unlabeled').

    >>> train_ids_to_label_ids(np.array([0, 13, 255], dtype=np.uint8)).tolist()
    [7, 26, 0]
    """
    return CITYSCAPES.train_ids_to_label_ids(train_ids)
