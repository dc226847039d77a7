"""Levels of bodies from per-slice probabilities checked by counting (issue 5), detector fusion,
per-level segments and the patient-level output, on hand-built profiles and bodies."""
from __future__ import annotations

import numpy as np
import pytest

from SpineFractureAILib.assembly import assemble_results
from SpineFractureAILib.level_assignment import LevelProfile, assign_body_levels
from SpineFractureAILib.levels import LEVELS
from SpineFractureAILib.results import Finding, Roi, VertebraRow
from SpineFractureAILib.run_state import Body, RunState
from SpineFractureAILib.terminology import terminology_entry

SLICE_MM = 3.0


def _stack_to_ras(top_s: float = 0.0) -> np.ndarray:
    m = np.eye(4)
    m[:3, :3] = np.diag([-1.0, -1.0, -SLICE_MM])  # slice 0 most superior
    m[2, 3] = top_s
    return m


def _spine(levels: list[str], gap_mm: float = 24.0):
    """Body centres along S (head up) and a profile whose slices show the nearest body's level."""
    centres = [[0.0, 0.0, -30.0 - n * gap_mm] for n in range(len(levels))]
    n_slices = int((30 + len(levels) * gap_mm + 30) / SLICE_MM)
    probs = np.full((n_slices, len(LEVELS)), 0.02)
    for s in range(n_slices):
        depth = -s * SLICE_MM
        nearest = int(np.argmin([abs(c[2] - depth) for c in centres]))
        if abs(centres[nearest][2] - depth) < gap_mm / 2:
            probs[s, LEVELS.index(levels[nearest])] = 0.9
    return centres, LevelProfile(list(LEVELS), probs, _stack_to_ras())


def test_clear_profile_names_every_body():
    levels = ["C3", "C4", "C5", "C6", "C7", "T1"]
    centres, profile = _spine(levels)
    shuffled = [3, 0, 5, 1, 4, 2]
    names, check = assign_body_levels(profile, [centres[i] for i in shuffled])
    assert names == [levels[i] for i in shuffled] and check["agreement"] == 1.0


def test_counting_overrules_a_classifier_slip_in_the_middle():
    levels = ["T9", "T10", "T11", "T12", "L1", "L2"]
    centres, profile = _spine(levels)
    # the classifier calls T11 "T10" on every slice (similar thoracic bodies): counting from the
    # clear ends puts it back
    c10, c11 = LEVELS.index("T10"), LEVELS.index("T11")
    rows = profile.probabilities[:, c11] > 0.5
    profile.probabilities[rows, c10], profile.probabilities[rows, c11] = 0.9, 0.3
    names, check = assign_body_levels(profile, centres)
    assert names == levels
    assert check["classifier_alone"][2] == "T10" and check["agreement"] == pytest.approx(5 / 6, abs=1e-3)


def test_a_missing_body_is_skipped_where_the_gap_is():
    levels = ["L1", "L2", "L3", "L4", "L5"]
    centres, profile = _spine(levels, gap_mm=32.0)
    # L3 was not segmented; flatten the classifier so only the gap can tell
    kept = [0, 1, 3, 4]
    profile.probabilities[:, [LEVELS.index(n) for n in ("L2", "L3", "L4")]] = 0.4
    names, _ = assign_body_levels(profile, [centres[i] for i in kept])
    assert names == ["L1", "L2", "L4", "L5"]


def _box_roi(centre, size=(30.0, 30.0, 20.0)) -> Roi:
    return Roi(list(centre), list(size), np.eye(3).tolist())


def _results_with_bodies(levels, fractured: dict[str, str]):
    centres, profile = _spine(levels)
    shape = (60, 20, 20)
    instances = np.zeros(shape, np.uint16)
    results = RunState("case", np.zeros(shape, np.uint8), np.eye(4), [], [], modality="ct")
    for n, (level, c) in enumerate(zip(levels, centres)):
        instances[n * 8:n * 8 + 5, 5:15, 5:15] = n + 1
        row = VertebraRow("mask", f"#{n + 1} from top", data={"status": "measured"})
        results.vertebrae.append(row)
        body = Body(n + 1, fractured.get(level, "vertebral body"), _box_roi(c), 0.05, row)
        if level in fractured:
            body.finding = Finding("fracture", fractured[level], 0.8, body.roi, source=["fracture-seg-demo"])
            results.findings.append(body.finding)
        results.bodies.append(body)
    results.body_instances = ((slice(0, 60), slice(0, 20), slice(0, 20)), instances)
    results.level_profile = profile
    results.bundles = [{"name": "fracture-seg-demo", "task": "fracture-seg"}]
    return results, centres


def test_finish_names_findings_segments_rows_and_patient_output():
    levels = ["C3", "C4", "C5", "C6", "C7"]
    results, centres = _results_with_bodies(levels, {"C5": "wedge"})
    # the detector reports C5 too (fused) and C4 (a body the fracture model called intact)
    for level, conf in (("C5", 0.95), ("C4", 0.7)):
        c = centres[levels.index(level)]
        results.detections.append(Finding("fracture", "fracture", conf, _box_roi(np.add(c, [2, 1, 0]), (20, 20, 10)),
                                          source=["fracture-detect-demo"]))
    assemble_results(results)
    by_level = {f.level: f for f in results.findings}
    assert set(by_level) == {"C4", "C5"}
    c5 = by_level["C5"]
    assert c5.label == "wedge" and c5.confidence == pytest.approx(0.95)
    assert c5.source == ["fracture-seg-demo", "fracture-detect-demo"]
    assert by_level["C4"].label == "fracture" and by_level["C4"].roi.center_ras == centres[1]
    names = {s.value: s.name for s in results.segments}
    assert list(names.values()) == ["C3 vertebral body", "C4 fracture", "C5 wedge fracture",
                                    "C6 vertebral body", "C7 vertebral body"]
    # each body's voxels carry its own level's segment
    for n, level in enumerate(levels):
        values = np.unique(results.labelmap[n * 8:n * 8 + 5, 5:15, 5:15])
        assert [names[int(v)] .split()[0] for v in values] == [level]
    c3 = next(s for s in results.segments if s.name == "C3 vertebral body")
    assert "SCT^113205007^C3 vertebra" in terminology_entry(c3)
    wedge = next(s for s in results.segments if s.name == "C5 wedge fracture")
    assert "SCT^125605004^Fracture of bone" in terminology_entry(wedge) and "SCT^36978003^C5 vertebra" in terminology_entry(wedge)
    rows = {r["level"]: r for r in results.vertebrae}
    assert rows["C5"]["fracture_probability"] == pytest.approx(0.95) and rows["C5"]["position"] == "#3 from top"
    assert rows["C3"]["fracture_probability"] == pytest.approx(0.05)
    p = results.patient
    assert p["C5"] == pytest.approx(0.95) and p["C4"] == pytest.approx(0.7) and p["patient_overall"] == pytest.approx(0.95)
    assert p["C1"] is None  # not in the scan, not seen by the classifier


def test_detector_findings_outside_its_trained_levels_are_dropped():
    levels = ["T12", "L1", "L2"]
    results, centres = _results_with_bodies(levels, {})
    finding = Finding("fracture", "fracture", 0.9, _box_roi(centres[1]), source=["fracture-detect-demo"])
    finding.extra["levels_trained"] = [f"C{i}" for i in range(1, 8)]
    results.detections.append(finding)
    assemble_results(results)
    assert results.findings == [] and any("outside the levels it reports" in w for w in results.warnings)


def test_without_levels_the_class_segments_stay():
    levels = ["L1", "L2"]
    results, _ = _results_with_bodies(levels, {"L2": "crush"})
    results.level_profile = None
    assemble_results(results)
    assert [s.name for s in results.segments] == ["Vertebral body", "Wedge fracture", "Biconcave fracture",
                                                  "Crush fracture"]
    assert results.findings[0].segment_value == 4 and results.patient is None


def test_atlas_fragments_above_c2_are_named_c1_not_counted():
    levels = ["C1", "C2", "C3", "C4", "C5"]
    centres, profile = _spine(levels, gap_mm=18.0)
    # two pieces of the atlas (anterior arch and one lateral mass) at the C1 height
    fragments = [np.add(centres[0], [0, 0, 2]).tolist(), np.add(centres[0], [0, 0, -2]).tolist()]
    names, _ = assign_body_levels(profile, fragments + centres[1:])
    assert names == ["C1", "C1", "C2", "C3", "C4", "C5"]


def test_off_midline_objects_are_not_bodies():
    from SpineFractureAILib.tasks.fracture_seg import _off_midline

    rois = [_box_roi([0.0, 0.0, -20.0 * n], (20, 16, 14)) for n in range(6)]
    rois.append(_box_roi([18.0, 0.0, 5.0], (8, 10, 10)))   # a lateral mass beside the top body
    rois.append(_box_roi([0.0, -30.0, -10.0], (10, 8, 10)))  # something 30 mm behind the bodies
    assert _off_midline(rois) == {6, 7}


def test_without_levels_the_detector_only_confirms_the_fracture_model():
    levels = ["T12", "L1", "L2"]
    results, centres = _results_with_bodies(levels, {"L1": "wedge"})
    results.level_profile = None
    for n, conf in ((1, 0.9), (2, 0.8)):  # on the wedge body, and on an intact body
        det = Finding("fracture", "fracture", conf, _box_roi(centres[n]), source=["fracture-detect-demo"])
        det.extra["levels_trained"] = [f"C{i}" for i in range(1, 8)]
        results.detections.append(det)
    assemble_results(results)
    assert [(f.label, f.source) for f in results.findings] == [("wedge", ["fracture-seg-demo", "fracture-detect-demo"])]
    assert any("were not reported" in w for w in results.warnings)


def test_classifier_only_rows_continue_the_count_beyond_the_bodies():
    levels = ["C3", "C4", "C5", "C6"]
    results, centres = _results_with_bodies(levels, {})
    results.level_profile.size = 100  # the stack's middle 50 mm beside and behind the bodies
    probs = results.level_profile.probabilities
    # C2 above the top body and C7 below the bottom one: seen by the classifier, not segmented
    top_slice = int(round(results.level_profile.slice_of(centres[0]))) - 8
    probs[top_slice - 2:top_slice + 1, LEVELS.index("C2")] = 0.9
    probs[-8:-5, LEVELS.index("C7")] = 0.9
    # the classifier hesitating inside the counted stretch: no row of its own
    mid = int(round(results.level_profile.slice_of(centres[2])))
    probs[mid - 1:mid + 2, LEVELS.index("T4")] = 0.9
    # a run beyond the bodies but not continuing the count (a gap: C8 does not exist, T2 skips T1)
    probs[-4:-2, LEVELS.index("T2")] = 0.9
    assemble_results(results)
    rows = {r["level"]: r for r in results.vertebrae}
    assert list(rows) == ["C2", "C3", "C4", "C5", "C6", "C7"]
    assert rows["C2"]["status"] == "located by the level classifier" and rows["C3"]["status"] == "measured"
    assert rows["C2"]["center_ras"][2] > centres[0][2] > centres[-1][2] > rows["C7"]["center_ras"][2]
    # on the line of the bodies, not on the middle of the classifier's stack
    assert np.allclose(rows["C2"]["center_ras"][:2], centres[0][:2], atol=0.01)
    assert np.allclose(rows["C7"]["extent_ras"][0][:2], centres[-1][:2], atol=0.01)


def test_a_classifier_run_far_beyond_the_bodies_gets_no_row():
    """Seed 1040005: the classifier named slices 66 mm above the real atlas "C1" (the field beyond
    a neck), and the row was put there, on the stack's middle."""
    levels = ["C3", "C4", "C5", "C6"]
    results, centres = _results_with_bodies(levels, {})
    probs = results.level_profile.probabilities
    bottom = int(round(results.level_profile.slice_of(centres[-1])))
    probs[bottom + 4:, :] = 0.02
    probs[-3:, LEVELS.index("C7")] = 0.9  # ~48 mm below C6's centre: beyond 1.5 x the 24 mm spacing
    assemble_results(results)
    assert [r["level"] for r in results.vertebrae] == levels
