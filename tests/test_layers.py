"""The layering rule of DESIGN.md, checked on the source: a stage imports only from the stages
before it and from the shared layer (errors, labels, io, runtime), never from a later stage."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "panoptool"

#: The shared layer first (each part may use the parts before it), then the stages in data-flow
#: order. A module may import from its own package and from any package earlier in this list.
ORDER = ("errors", "labels", "io", "runtime",
         "synth", "targets", "model", "training", "inference", "postprocess", "evaluation",
         "convert", "visualize", "predict", "jobs", "bench")
RANK = {name: i for i, name in enumerate(ORDER)}


def _module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, root: Path = PACKAGE) -> list[tuple[int, str]]:
    """(line, absolute dotted name) of every panoptool module imported anywhere in ``path``,
    function-level imports included; relative imports resolved."""
    name = _module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # `from panoptool.x import y` may import the module panoptool.x.y
            found += [(node.lineno, f"{module}.{a.name}") for a in node.names]
    return [(line, mod) for line, mod in found if mod.split(".")[0] == "panoptool"]


def stage_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in RANK else None


def layer_violations(package: Path = PACKAGE) -> list[str]:
    bad = []
    for path in sorted(package.rglob("*.py")):
        own = stage_of(_module_name(path, package))
        for line, module in imported_modules(path, package):
            other = stage_of(module)
            if own is None or other is None or other == own:
                continue
            if RANK[other] > RANK[own]:
                bad.append(f"{path.relative_to(package.parent)}:{line}: {own} imports {module} "
                           f"(a later stage: {other})")
    return bad


def test_every_top_level_entry_is_a_known_stage():
    entries = {p.stem for p in PACKAGE.iterdir()
               if (p.suffix == ".py" or (p / "__init__.py").exists()) and p.name != "__init__.py"}
    assert entries == set(ORDER), entries ^ set(ORDER)


def test_no_stage_imports_a_later_stage():
    bad = layer_violations()
    assert not bad, "\n".join(bad)


def test_the_check_sees_a_backward_import(tmp_path):
    """The rule is not vacuous: a postprocess module that imports the evaluation is reported,
    a relative one too, and an import of an earlier stage is not."""
    pkg = tmp_path / "panoptool"
    for stage in ("postprocess", "evaluation", "targets"):
        (pkg / stage).mkdir(parents=True)
        (pkg / stage / "__init__.py").write_text("")
    (pkg / "postprocess" / "bad.py").write_text(
        "def f():\n    from panoptool.evaluation import runner\n")
    (pkg / "postprocess" / "bad_rel.py").write_text("from ..evaluation.runner import evaluate\n")
    (pkg / "postprocess" / "good.py").write_text("from ..targets import core\nfrom . import bad\n")
    bad = layer_violations(pkg)
    assert len(bad) == 2 and all("evaluation" in b for b in bad), bad
    assert {b.split(":")[0] for b in bad} == {"panoptool/postprocess/bad.py",
                                               "panoptool/postprocess/bad_rel.py"}


def test_old_flat_module_paths_still_import_as_the_same_modules():
    import importlib
    import warnings

    import panoptool

    for old, new in panoptool.MOVED_MODULES.items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            module = importlib.import_module(old)
        assert module is importlib.import_module(new), old
    from panoptool.metrics.gt import GroundTruth  # a submodule of a moved package
    from panoptool.evaluation.metrics.gt import GroundTruth as same
    assert GroundTruth is same
    with pytest.warns(DeprecationWarning, match="panoptool.evaluate moved to"):
        import sys
        sys.modules.pop("panoptool.evaluate", None)
        importlib.import_module("panoptool.evaluate")


def test_a_config_import_loads_neither_numba_nor_torch():
    """The packages' re-exports are lazy: the CLI's --help reads config dataclasses without
    paying for the compiled kernels or torch."""
    import subprocess
    import sys

    code = ("import sys; import panoptool.postprocess.config, panoptool.predict.config, "
            "panoptool.synth, panoptool.targets.core, panoptool.training.config, "
            "panoptool.model.config, panoptool_cli.train; "
            "from panoptool.postprocess import PostprocessConfig; "
            "from panoptool.model import NetworkConfig; "
            "print(sorted(m for m in ('numba', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=PACKAGE.parent)
    assert out.stdout.strip() == "[]", out.stdout
