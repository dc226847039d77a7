"""The shipped lumbar MR bundle on real held-out exams (never trained on): the fastcleverseg copies
of ivd 11 (five disc masks) and vb2 05 (seven body masks, T11-L5), a cervical MR that must be said
to be unsupported, and an MR asked for fractures only."""
from __future__ import annotations

import json

import numpy as np
from scipy import ndimage

from SpineFractureAILib.bundles import builtin_bundles
from SpineFractureAILib.cli import main
from SpineFractureAILib.results import Roi
from SpineFractureAILib.training.lumbar_real import ANY, BODY, exam_split, slice_targets, structures_head_first
from SpineFractureAILib.volume import read_volume


def _analyze(tmp_path, capsys, src, *extra):
    assert main(["analyze", str(src), "--out", str(tmp_path), *extra]) == 0
    err = capsys.readouterr().err
    return json.loads((tmp_path / src.name.replace(".nii.gz", "") / "findings.json").read_text()), err


def _centres(label_path):
    labels = read_volume(label_path, "labelmap")
    order = structures_head_first(labels.voxels)
    return [labels.ijk_to_ras_points(np.array(ndimage.center_of_mass(labels.voxels == v))[None, ::-1])[0]
            for v in order]


def test_the_test_exams_were_held_out():
    bundle = next(b for b in builtin_bundles() if b.task == "lumbar-mr")
    held_out = bundle.manifest["provenance"]["held_out_exams"]
    assert {"ivd_11", "vb2_05"} <= set(held_out) and all(exam_split(e) == "test" for e in held_out)


def test_real_discs_found_named_and_not_herniated(tmp_path, capsys, realdata):
    report, _ = _analyze(tmp_path, capsys, realdata / "fastcleverseg" / "fcs_ivd_img.nii.gz")
    discs = {f["level"]: f for f in report["findings"] if f["kind"] == "disc"}
    truth = dict(zip(["L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1"],
                     _centres(realdata / "fastcleverseg" / "fcs_ivd_lab.nii.gz")))
    for level, centre in truth.items():
        assert level in discs, (level, sorted(discs))
        assert Roi(**discs[level]["roi"]).contains(centre), level
    assert sum(d["herniated"] for d in discs.values()) <= 1  # an asymptomatic volunteer
    assert all("synthetic herniations" in d["herniation_model"] for d in discs.values())


def test_real_bodies_found_and_named_from_the_sacrum(tmp_path, capsys, realdata):
    report, _ = _analyze(tmp_path, capsys, realdata / "fastcleverseg" / "fcs_vb2_05_img.nii.gz")
    truth = dict(zip(["T11", "T12", "L1", "L2", "L3", "L4", "L5"],
                     _centres(realdata / "fastcleverseg" / "fcs_vb2_05_vb.nii.gz")))
    rows = [r for r in report["vertebrae"] if r.get("roi")]
    found = {level: [r for r in rows if Roi(**r["roi"]).contains(centre, 2.0)] for level, centre in truth.items()}
    assert all(found.values()), {level: len(h) for level, h in found.items()}  # each body's ROI holds its centre
    for level, holders in found.items():  # never a wrong name: every body found is named right
        assert all(h["level"] == level and "sacrum" in h["level_anchor"] for h in holders), (level, holders)
    # A disc between every two bodies; T11-T12 lies above the lumbar region the detector looks in:
    # placed in the gap between T11 and T12, between their true centres.
    discs = {f["level"]: f for f in report["findings"] if f["kind"] == "disc"}
    assert {"T11-T12", "T12-L1", "L1-L2", "L2-L3", "L3-L4", "L4-L5"} <= set(discs), sorted(discs)
    assert "missed" in discs["T11-T12"]["placed"]
    assert truth["T12"][2] < discs["T11-T12"]["roi"]["center_ras"][2] < truth["T11"][2]
    assert len([f for f in report["findings"] if f["kind"] == "fracture"]) <= 1  # healthy: at most one flag


def test_cervical_mr_says_not_supported(tmp_path, capsys, realdata):
    report, err = _analyze(tmp_path, capsys, realdata / "tptbox" / "sub-mri_label-6_T2w.nii.gz", "--modality", "mr")
    assert any("not supported by the lumbar model" in w for w in report["warnings"]), report["warnings"]
    assert "spinefracture: warning:" in err and "not supported" in err
    assert not [f for f in report["findings"] if f["kind"] == "disc"]


def test_mr_asked_for_fractures_runs(tmp_path, capsys, realdata):
    report, _ = _analyze(tmp_path, capsys, realdata / "fastcleverseg" / "fcs_vb2_05_img.nii.gz",
                         "--analyses", "fractures,levels")
    assert [b["task"] for b in report["bundles"]] == ["lumbar-mr"]
    assert any(r.get("status") == "measured" for r in report["vertebrae"])
    assert any("levels: asked for, but no bundle for MR" in w for w in report["warnings"])


def test_fluid_sensitive_series_from_their_description():
    from SpineFractureAILib.lumbar_bodies import fluid_sensitive
    from SpineFractureAILib.volume import Volume

    def series(**meta):
        return Volume(np.zeros((2, 2, 2)), np.eye(4), "mr", "x", metadata=meta)

    assert fluid_sensitive(series(SeriesDescription="T2 TSE FS sag")) is True
    assert fluid_sensitive(series(SeriesDescription="sag STIR")) is True
    assert fluid_sensitive(series(SeriesDescription="T2 FAT SAT")) is True
    assert fluid_sensitive(series(SeriesDescription="T2 FSE sag")) is False  # fast spin echo, not fat-sat
    assert fluid_sensitive(series()) is None
    assert fluid_sensitive(series(SeriesDescription="T1", mr_sequence="stir")) is True  # the flag wins


def test_body_exam_targets_leave_the_unlabelled_bodies_above_open():
    """A body-mask exam labels L1-L5 (or T11-L5): rows above its highest labelled body may be any
    class (T12 is a body there, unlabelled), rows between and below are 'not a body' unless labelled."""
    lab = np.zeros((120, 60), np.uint8)
    lab[30:50, 10:40], lab[60:80, 10:40] = 3, 7  # two bodies; label values not in anatomical order
    allowed, _, discs = slice_targets(lab, [3, 7], ["L4", "L5"], "vb3")
    assert (allowed[:30] == ANY).all()  # above the highest mask: unlabelled bodies may be there
    assert (allowed[30:50, 10:40] == BODY).all() and (allowed[60:80, 10:40] == BODY).all()
    assert not (allowed[52:58] & BODY).any() and not (allowed[90:] & BODY).any()  # the disc, the sacrum
    assert len(discs) == 1
