"""The mutation check (scripts/mutation_check.py): its list applies to today's code, and the
two mutations of issue 13 are killed. The whole list runs in ``panoptool bench --stage
mutation`` (minutes)."""

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "mutation_check.py"


@pytest.fixture(scope="module")
def mutation_check():
    spec = importlib.util.spec_from_file_location("mutation_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_every_mutation_applies_exactly_once(mutation_check):
    """When the metrics code changes, the list must follow (else mutants would be no-ops)."""
    assert mutation_check.check_applicable() == []
    assert len(mutation_check.MUTATIONS) >= 10
    for m in mutation_check.MUTATIONS:
        assert m.old != m.new and m.what


@pytest.mark.slow
@pytest.mark.parametrize("name", ["pq_void_share_60", "ap_min_size_90"])
def test_issue_13_mutations_are_killed(mutation_check, name, tmp_path):
    mutation = next(m for m in mutation_check.MUTATIONS if m.name == name)
    outcome = mutation_check.run_mutation(mutation, tmp_path)
    assert outcome.killed, f"{name} not killed: {outcome.by}"
    # killed by the comparison with the official evaluator, not by a crash or a setup error
    assert outcome.by.startswith("FAILED tests/evaluation/test_metrics_rule_edges.py::test_"), outcome.by
    assert "_edges_equal_official" in outcome.by
    assert not any(tmp_path.iterdir())  # the mutant's copy is removed


def test_copy_imports_itself(mutation_check, tmp_path):
    """Tests run in a copy test the copy's package (else no mutant would ever be tested)."""
    copy = mutation_check.make_copy(tmp_path / "copy")
    mutation_check.check_copy_imports_itself(copy)
