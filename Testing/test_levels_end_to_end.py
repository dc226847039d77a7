"""Seed 001 end to end with the shipped demo bundles: levels on cervical and thoracolumbar phantoms,
the cervical detector fused with the fracture model, per-level segments and the patient output."""
from __future__ import annotations

import json

import pytest

from SpineFractureAILib.bundles import builtin_bundles
from SpineFractureAILib.cli import main
from SpineFractureAILib.phantom import make_phantom, write_phantom
from SpineFractureAILib.results import Roi


def _analyze(tmp_path, levels, fracture, seed, orientation="axial"):
    case = make_phantom(levels, "ct", [fracture], [], seed=seed, orientation=orientation)
    paths = write_phantom(case, tmp_path / "case.nii.gz")
    assert main(["analyze", paths["image"], "--out", str(tmp_path / "out")]) == 0
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
    assert bundles["fracture-detect"].classes == ["fracture"]


@pytest.mark.parametrize("seed,orientation", [(3101, "axial"), (3102, "oblique")])
def test_cervical_c5_fracture_is_named_c5(tmp_path, seed, orientation):
    case, report, markups = _analyze(tmp_path, "C1-C7", "C5:wedge:3", seed, orientation)
    c5 = [f for f in report["findings"] if f["kind"] == "fracture" and f["level"] == "C5"]
    assert c5 and Roi(**c5[0]["roi"]).contains(_centre(case, "C5")), report["findings"]
    assert any(m["name"].startswith("C5 ") for m in markups["markups"])
    patient = report["patient"]
    assert patient["C5"] >= 0.5 and patient["patient_overall"] == max(v for k, v in patient["per_level"].items() if v is not None)
    rows = {r["level"]: r for r in report["vertebrae"]}
    assert {"C2", "C3", "C4", "C5", "C6", "C7"} <= set(rows)
    assert rows["C5"]["fracture_probability"] >= 0.5 > rows["C3"]["fracture_probability"]
    names = [s["name"] for s in report["segments"]]
    assert "C3 vertebral body" in names and any(n.startswith("C5 ") and "fracture" in n for n in names)


def test_thoracolumbar_l1_wedge_says_l1(tmp_path):
    case, report, _ = _analyze(tmp_path, "T10-L3", "L1:wedge:3", 3103)
    wedges = [f for f in report["findings"] if f["label"] == "wedge"]
    assert wedges and wedges[0]["level"] == "L1" and Roi(**wedges[0]["roi"]).contains(_centre(case, "L1"))
    assert report["levels_check"]["bodies"] == 6
    assert [r["level"] for r in report["vertebrae"] if r.get("status") == "measured"] == \
        ["T10", "T11", "T12", "L1", "L2", "L3"]
