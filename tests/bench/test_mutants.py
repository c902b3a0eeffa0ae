"""bench/mutants.py: every curated laterality mutant still applies to the tree (its patch text is found exactly once,
the files it names exist), and the runner kills one end to end in a temporary copy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
import mutants  # noqa: E402


@pytest.mark.parametrize("m", mutants.MUTANTS, ids=lambda m: m.name)
def test_every_mutant_applies_and_names_existing_tests(m):
    text = (ROOT / m.path).read_text(encoding="utf-8")
    assert mutants.stale_patches(m, text) == [], f"{m.name} is stale: update its patch to the code it targets"
    assert mutants.mutate(m, text) != text
    assert m.tests and all((ROOT / t).is_file() for t in m.tests)


def test_names_are_unique():
    names = [m.name for m in mutants.MUTANTS]
    assert len(names) == len(set(names))


def test_the_runner_kills_a_mutant_in_a_copy_and_leaves_the_tree_alone():
    before = (ROOT / "brain3d/anatomy/rules.py").read_bytes()
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "mutants.py"), "--only", "side-rule-swapped",
                           "--no-baseline"], cwd=ROOT, capture_output=True, text=True, encoding="utf-8", timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "| side-rule-swapped | `brain3d/anatomy/rules.py` |" in proc.stdout
    assert "| killed | `tests/anatomy/test_rules.py::test_side_from_shares[" in proc.stdout
    assert (ROOT / "brain3d/anatomy/rules.py").read_bytes() == before
