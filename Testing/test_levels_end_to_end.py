"""Seed 001 end to end with the shipped demo bundles: a C5 fracture is reported at C5 and an L1 wedge
at L1 (the issue's done-when), the cervical detector fused with the fracture model, levels checked
by counting bodies, per-level segments, rows and the patient output. How often the demo classifier
names every body right on other scans is measured in bench/levels_bench.py (docs/results.md)."""
from __future__ import annotations

import json

import pytest

from SpineFractureAILib.bundles import builtin_bundles
from SpineFractureAILib.cli import main
from SpineFractureAILib.levels import LEVELS
from SpineFractureAILib.phantom import make_phantom, write_phantom
from SpineFractureAILib.results import Roi


def _analyze(tmp_path, levels, fracture, seed, orientation="axial", analyses=("--analyses", "fractures,levels")):
    case = make_phantom(levels, "ct", [fracture], [], seed=seed, orientation=orientation)
    paths = write_phantom(case, tmp_path / "case.nii.gz")
    assert main(["analyze", paths["image"], "--out", str(tmp_path / "out"), *analyses]) == 0
    report = json.loads((tmp_path / "out" / "case" / "findings.json").read_text())
    markups = json.loads((tmp_path / "out" / "case" / "findings.mrk.json").read_text())
    return case, report, markups


def _centre(case, level):
    return next(v["center_ras"] for v in case.truth["vertebrae"] if v["level"] == level)


def test_level_and_detector_bundles_are_shipped_small():
    bundles = {b.task: b for b in builtin_bundles()}
    for task in ("vertebra-levels", "fracture-detect"):
        (weights,) = bundles[task].weight_files()
        assert weights.stat().st_size < 20 * 2**20 and "NOT FOR CLINICAL USE" in bundles[task].manifest["clinical_use"]
    assert bundles["vertebra-levels"].manifest["plane"] == "axial"
    assert bundles["vertebra-levels"].manifest.get("run_by_default", True)  # levels run on every CT
    assert bundles["fracture-detect"].classes == ["fracture"]


@pytest.mark.parametrize("seed,orientation", [(3101, "axial"), (3102, "oblique")])
def test_cervical_fracture_fused_counted_and_reported_per_level(tmp_path, seed, orientation):
    case, report, markups = _analyze(tmp_path, "C1-C7", "C5:wedge:3", seed, orientation)
    c5 = [f for f in report["findings"] if f["kind"] == "fracture" and Roi(**f["roi"]).contains(_centre(case, "C5"))]
    assert len(c5) == 1 and c5[0]["level"] == "C5" and c5[0]["label"] == "wedge"
    assert c5[0]["source"] == ["fracture-seg-demo", "fracture-detect-demo"]
    assert any(m["name"].startswith("C5 ") and "wedge" in m["name"] for m in markups["markups"])
    assert report["spine_prior"]["level_anchor"] == "C2 (its height)"  # no rib, no sacrum in a C1-C7 scan
    measured = [r for r in report["vertebrae"] if r.get("label") is not None]
    assert [r["level"] for r in measured] == LEVELS[1:7]
    # the only other rows: levels the classifier alone located beyond the bodies (the atlas)
    assert {r["level"] for r in report["vertebrae"]} - set(LEVELS[1:7]) <= {"C1"}
    row = next(r for r in measured if r["level"] == c5[0]["level"])
    assert row["fracture_probability"] == pytest.approx(c5[0]["confidence"], abs=1e-3)
    patient = report["patient"]
    assert set(LEVELS[:7]) <= set(patient) and patient["patient_overall"] == pytest.approx(
        max(v for v in patient["per_level"].values() if v is not None))
    names = [s["name"] for s in report["segments"]]
    assert names == [f"{lv} vertebral body" for lv in LEVELS[1:4]] + ["C5 wedge fracture"] + [
        f"{lv} vertebral body" for lv in LEVELS[5:7]]


def test_thoracolumbar_wedge_says_l1_by_default(tmp_path):
    case, report, markups = _analyze(tmp_path, "T10-L3", "L1:wedge:3", 3103, analyses=())  # levels run by default
    wedges = [f for f in report["findings"] if f["label"] == "wedge"]
    assert len(wedges) == 1 and Roi(**wedges[0]["roi"]).contains(_centre(case, "L1")) and wedges[0]["level"] == "L1"
    assert any(m["name"].startswith("L1 ") and "wedge" in m["name"] for m in markups["markups"])
    assert report["levels_check"]["bodies"] == 6
    measured = [r["level"] for r in report["vertebrae"] if r.get("status") == "measured"]
    assert measured == ["T10", "T11", "T12", "L1", "L2", "L3"]
