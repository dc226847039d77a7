"""The requirement list Slicer installs from equals pyproject's, and the check sees what is missing."""
from __future__ import annotations

import tomllib
from pathlib import Path

from SpineFractureAILib.slicer.dependencies import REQUIREMENTS, describe, missing_requirements

REPO = Path(__file__).resolve().parents[1]


def test_requirements_match_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert sorted(REQUIREMENTS) == sorted(project["dependencies"])


def test_missing_requirements_are_named():
    assert missing_requirements() == []  # this environment has them all
    missing = missing_requirements(["surely-not-installed-pkg==1.0", "numpy>=1.26"])
    assert missing == [("surely-not-installed-pkg", "surely-not-installed-pkg==1.0", None)]
    assert "surely-not-installed-pkg==1.0" in describe(missing)
