"""Seed 001 end to end with the shipped demo bundles (`--analyses fractures,levels`): the cervical
detector fused with the fracture model, levels given by counting, per-level segments, rows and the
patient output. Whether the weak demo classifier names the right level is measured in
bench/levels_bench.py (docs/results.md), not asserted here."""
from __future__ import annotations

import json

import pytest

from SpineFractureAILib.bundles import builtin_bundles
from SpineFractureAILib.cli import main
from SpineFractureAILib.levels import LEVELS
from SpineFractureAILib.phantom import make_phantom, write_phantom
from SpineFractureAILib.results import Roi


def _analyze(tmp_path, levels, fracture, seed, orientation="axial"):
    case = make_phantom(levels, "ct", [fracture], [], seed=seed, orientation=orientation)
    paths = write_phantom(case, tmp_path / "case.nii.gz")
    assert main(["analyze", paths["image"], "--out", str(tmp_path / "out"), "--analyses", "fractures,levels"]) == 0
    report = json.loads((tmp_path / "out" / "case" / "findings.json").read_text())
    markups = json.loads((tmp_path / "out" / "case" / "findings.mrk.json").read_text())
    return case, report, markups


def _centre(case, level):
    return next(v["center_ras"] for v in case.truth["vertebrae"] if v["level"] == level)


def _consecutive(names):
    idx = [LEVELS.index(n) for n in names]
    return idx == list(range(idx[0], idx[0] + len(idx)))


def test_level_and_detector_bundles_are_shipped_small():
    bundles = {b.task: b for b in builtin_bundles()}
    for task in ("vertebra-levels", "fracture-detect"):
        (weights,) = bundles[task].weight_files()
        assert weights.stat().st_size < 20 * 2**20 and "NOT FOR CLINICAL USE" in bundles[task].manifest["clinical_use"]
    assert bundles["vertebra-levels"].manifest["plane"] == "axial"
    assert bundles["vertebra-levels"].manifest["run_by_default"] is False  # weak demo weights: opt-in
    assert bundles["fracture-detect"].classes == ["fracture"]


@pytest.mark.parametrize("seed,orientation", [(3101, "axial"), (3102, "oblique")])
def test_cervical_fracture_fused_counted_and_reported_per_level(tmp_path, seed, orientation):
    case, report, markups = _analyze(tmp_path, "C1-C7", "C5:wedge:3", seed, orientation)
    c5 = [f for f in report["findings"] if f["kind"] == "fracture" and Roi(**f["roi"]).contains(_centre(case, "C5"))]
    assert len(c5) == 1 and c5[0]["level"] in LEVELS
    assert c5[0]["source"] == ["fracture-seg-demo", "fracture-detect-demo"] or c5[0]["level"] not in LEVELS[:7]
    assert any(m["name"].startswith(c5[0]["level"] + " ") for m in markups["markups"])
    assert report["levels_check"]["bodies"] == 6  # C2-C7; the atlas' pieces are not bodies
    measured = [r for r in report["vertebrae"] if r.get("label") is not None]
    assert len(measured) == 6 and _consecutive([r["level"] for r in measured])
    row = next(r for r in measured if r["level"] == c5[0]["level"])
    assert row["fracture_probability"] == pytest.approx(c5[0]["confidence"], abs=1e-3)
    patient = report["patient"]
    assert set(LEVELS[:7]) <= set(patient) and patient["patient_overall"] == pytest.approx(
        max(v for v in patient["per_level"].values() if v is not None))
    names = [s["name"] for s in report["segments"]]
    assert len(names) == 6 and any(n.endswith("wedge fracture") for n in names)
    assert _consecutive([n.split()[0] for n in names])


def test_thoracolumbar_wedge_gets_a_level_from_the_count(tmp_path):
    case, report, _ = _analyze(tmp_path, "T10-L3", "L1:wedge:3", 3103)
    wedges = [f for f in report["findings"] if f["label"] == "wedge"]
    assert wedges and Roi(**wedges[0]["roi"]).contains(_centre(case, "L1")) and wedges[0]["level"] in LEVELS
    assert report["levels_check"]["bodies"] == 6
    measured = [r["level"] for r in report["vertebrae"] if r.get("status") == "measured"]
    assert len(measured) == 6 and _consecutive(measured)
