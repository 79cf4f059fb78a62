"""panoptool: panoptic segmentation from instance contours on Cityscapes-format data.

One subpackage per stage, in data-flow order (each imports only from the stages before it and
from the shared layer ``errors``, ``labels``, ``io``, ``runtime``; ``tests/test_layers.py``
checks it)::

    synth -> targets -> model -> training -> inference -> postprocess -> evaluation -> convert
          -> visualize -> predict -> jobs -> bench
"""

import importlib
import importlib.machinery
import sys
import warnings

__version__ = "0.1.0"

#: Version of the file formats written between panoptool's own stages (targets, maps).
FORMAT_VERSION = 1

#: Module paths of panoptool 0.1's flat layout -> where that module lives now. Importing an old
#: path still works for this version (it is the same module object, with a DeprecationWarning).
MOVED_MODULES = {
    "panoptool.formats": "panoptool.io.formats",
    "panoptool.dataset": "panoptool.io.cityscapes",
    "panoptool.coco_kernels": "panoptool.io.rle_kernels",
    "panoptool.guard": "panoptool.runtime.guard",
    "panoptool.runner": "panoptool.runtime.pool",
    "panoptool.sharding": "panoptool.runtime.sharding",
    "panoptool.data_torch": "panoptool.training.data",
    "panoptool.losses": "panoptool.training.losses",
    "panoptool.backends": "panoptool.inference.backends",
    "panoptool.onnx_backend": "panoptool.inference.onnx",
    "panoptool.evaluate": "panoptool.evaluation.runner",
    "panoptool.metrics": "panoptool.evaluation.metrics",
    "panoptool.official": "panoptool.evaluation.official",
    "panoptool.tables": "panoptool.evaluation.tables",
    "panoptool.ablation": "panoptool.evaluation.compare",
    "panoptool.coco_instances": "panoptool.evaluation.coco",
    "panoptool.contour_score": "panoptool.evaluation.contour_score",
    "panoptool.coco_panoptic": "panoptool.convert.panoptic",
    "panoptool.pipeline": "panoptool.jobs.pipeline",
    "panoptool.benchmarks": "panoptool.bench",
}


def lazy_exports(package: str, exports: dict[str, tuple[str, ...]]):
    """``(__getattr__, __dir__)`` for a stage package that re-exports names of its modules
    without importing them (PEP 562): ``from panoptool.postprocess import PostprocessConfig``
    imports ``postprocess.config`` alone, so ``--help`` and light commands do not load
    numba or torch through a package's ``__init__``."""
    where = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name: str):
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__():
        return sorted(set(where) | set(vars(sys.modules[package])))

    return __getattr__, __dir__


def _moved_target(name: str) -> str | None:
    for old, new in MOVED_MODULES.items():
        if new and (name == old or name.startswith(old + ".")):
            return new + name[len(old):]
    return None


class _MovedModules:
    """Resolves an old flat module path to the module at its new place (same object).

    A meta path finder and loader by protocol (``find_spec``, ``create_module``,
    ``exec_module``); not derived from ``importlib.abc``, whose import costs ~6 ms of every
    start-up."""

    def find_spec(self, fullname, path=None, target=None):
        if not fullname.startswith("panoptool.") or _moved_target(fullname) is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec):
        new = _moved_target(spec.name)
        warnings.warn(f"{spec.name} moved to {new}; the old path goes in panoptool 0.2",
                      DeprecationWarning, stacklevel=3)
        return importlib.import_module(new)

    def exec_module(self, module):
        pass


if not any(isinstance(f, _MovedModules) for f in sys.meta_path):
    # first: a submodule of a moved package (panoptool.metrics.gt) must resolve to the module
    # at its new place, not be found again through the package's path as a second copy
    sys.meta_path.insert(0, _MovedModules())
