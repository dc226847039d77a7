"""The phantom: deterministic, level-specific, and its truth agrees with its own voxels."""
from __future__ import annotations

import json

import numpy as np
import pytest

from SpineFractureAILib.cli import main
from SpineFractureAILib.phantom import make_phantom
from SpineFractureAILib.morphometry import genant_grade


def _label_at(case, ras):
    ijk = np.rint(case.labels.ras_to_ijk_points(ras)).astype(int)
    out = []
    for i, j, k in ijk:
        inside = 0 <= i < case.labels.voxels.shape[2] and 0 <= j < case.labels.voxels.shape[1] \
            and 0 <= k < case.labels.voxels.shape[0]
        out.append(int(case.labels.voxels[k, j, i]) if inside else -1)
    return out


def test_same_seed_same_phantom():
    a = make_phantom("L1-L3", "ct", ["L2:crush:2"], [], seed=7)
    b = make_phantom("L1-L3", "ct", ["L2:crush:2"], [], seed=7)
    np.testing.assert_array_equal(a.image.voxels, b.image.voxels)
    assert a.truth == b.truth
    assert not np.array_equal(a.image.voxels, make_phantom("L1-L3", "ct", [], [], seed=8).image.voxels)


@pytest.mark.parametrize("orientation", ["axial", "sagittal", "oblique"])
def test_truth_keypoints_lie_on_the_body_surface(orientation):
    case = make_phantom("T12-L2", "ct", ["L1:wedge:3"], [], seed=11, orientation=orientation, spacing=(0.8, 0.8, 0.8))
    for v in case.truth["vertebrae"]:
        kp = np.array(v["keypoints_ras"])
        up = np.array(v["superior_axis_ras"])
        inward = np.concatenate([kp[:3] - 1.6 * up, kp[3:] + 1.6 * up])
        outward = np.concatenate([kp[:3] + 1.6 * up, kp[3:] - 1.6 * up])
        assert _label_at(case, inward) == [v["label"]] * 6, v["level"]
        assert v["label"] not in _label_at(case, outward), v["level"]
        assert _label_at(case, [v["center_ras"]]) == [v["label"]]


@pytest.mark.parametrize("kind,grade", [("wedge", 1), ("wedge", 3), ("biconcave", 2), ("crush", 3)])
def test_fracture_heights_match_the_genant_grade(kind, grade):
    case = make_phantom("T12-L2", "ct", [f"L1:{kind}:{grade}"], [], seed=grade)
    t = {v["level"]: v for v in case.truth["vertebrae"]}
    l1, h = t["L1"], t["L1"]["heights_mm"]
    assert l1["fracture"] == kind and l1["genant_grade"] == grade
    if kind == "wedge":
        loss = 1 - h["anterior"] / h["posterior"]
    elif kind == "biconcave":
        loss = 1 - h["middle"] / h["posterior"]
    else:
        neighbours = (t["T12"]["heights_mm"]["posterior"] + t["L2"]["heights_mm"]["posterior"]) / 2
        loss = 1 - h["posterior"] / neighbours
    assert genant_grade(loss) == grade
    assert t["T12"]["genant_grade"] == 0 and t["T12"]["fracture"] is None


def test_level_specific_anatomy():
    cerv = make_phantom("C1-C4", "ct", [], [], seed=2)
    assert [v["has_body"] for v in cerv.truth["vertebrae"]] == [False, True, True, True]
    assert "C1-C2 disc" not in cerv.truth["labels"].values()  # no disc between atlas and axis
    thor = make_phantom("T11-L2", "ct", [], [], seed=2)
    assert "ribs" in thor.truth["labels"].values() and (thor.labels.voxels == 70).any()
    lumb = make_phantom("L3-S1", "mr", [], ["L4-L5"], seed=2)
    assert "ribs" not in lumb.truth["labels"].values()
    discs = {d["level"]: d["herniated"] for d in lumb.truth["discs"]}
    assert discs == {"L3-L4": False, "L4-L5": True, "L5-S1": False}
    heights = [v["heights_mm"]["posterior"] for v in thor.truth["vertebrae"]]
    assert heights == sorted(heights)  # bodies grow caudally


def test_phantom_cli_writes_volume_labels_and_truth(tmp_path):
    assert main(["phantom", str(tmp_path / "ph.nii.gz"), "--levels", "L1-L3", "--fracture", "L2:biconcave:2",
                 "--seed", "4", "--spacing", "1,1,2", "--orientation", "oblique"]) == 0
    truth = json.loads((tmp_path / "ph.truth.json").read_text())
    assert [v["level"] for v in truth["vertebrae"]] == ["L1", "L2", "L3"]
    assert (tmp_path / "ph.labels.nii.gz").exists()
    assert main(["phantom", str(tmp_path / "bad.nii.gz"), "--fracture", "L9:wedge:3"]) == 2
    assert not (tmp_path / "bad.nii.gz").exists()


def test_surroundings_add_unlabelled_trunk_table_arms_and_pelvis_and_leave_the_spine_as_it_was(tmp_path):
    """`phantom --surroundings`: what a real CT holds besides the spine, none of it labelled."""
    assert main(["phantom", str(tmp_path / "p.nii.gz"), "--levels", "L3-S1", "--seed", "5", "--spacing", "2",
                 "--surroundings"]) == 0
    truth = json.loads((tmp_path / "p.truth.json").read_text(encoding="utf-8"))
    case = make_phantom("L3-S1", "ct", [], [], seed=5, spacing=(2.0, 2.0, 2.0), surroundings=True)
    plain = make_phantom("L3-S1", "ct", [], [], seed=5, spacing=(2.0, 2.0, 2.0))
    assert truth["surroundings"] == case.truth["surroundings"]
    # the same spine, in a wider field: every label is the spine's, at the same places
    assert set(np.unique(case.labels.voxels)) == set(np.unique(plain.labels.voxels))
    for v in plain.truth["vertebrae"]:
        assert _label_at(case, [v["center_ras"]]) == _label_at(plain, [v["center_ras"]])
    hu, ras = case.image.voxels, case.image.ijk_to_ras
    kk, jj, ii = np.nonzero(hu > 300)
    bone = np.c_[ii, jj, kk] @ ras[:3, :3].T + ras[:3, 3]
    s1 = next(v for v in case.truth["vertebrae"] if v["level"] == "S1")["center_ras"]
    centre_x = s1[0]
    beside = np.abs(bone[:, 0] - centre_x)
    assert (beside > 70).sum() > 500  # iliac wings and femoral heads (and arms when beside the body)
    back_y = min(v["center_ras"][1] for v in case.truth["vertebrae"]) - 40
    assert (bone[:, 1] < back_y - 40).sum() > 100  # the table's carbon skins behind the back
    assert (hu < -900).sum() > 1000 and (case.labels.voxels[hu < -900] == 0).all()  # air and gas, unlabelled
