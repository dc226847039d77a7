"""The last rib as a level anchor next to a kidney with contrast (spine/ribs.py); the aorta kept
off L4 where it ends (spine/bodies.py); a wide last block with ribs is no probable sacrum, a sacrum
under a rib cage is none, the first rib names a neck or chest CT (spine/anchors.py)."""
from __future__ import annotations

import numpy as np
import pytest

from SpineFractureAILib.phantom import make_phantom
from SpineFractureAILib.results import shown_level
from SpineFractureAILib.spine.anchors import name_bodies, name_in_volume
from SpineFractureAILib.spine.bodies import FoundBody, SpineBodies, find_bodies
from SpineFractureAILib.spine.canal import find_canal
from SpineFractureAILib.spine.ribs import rib_bearing
from SpineFractureAILib.spine.straighten import SpineFrame, spine_frame, straighten
from SpineFractureAILib.volume import cut_below, read_volume


def test_a_kidney_with_contrast_beside_l1_is_no_rib():
    """Seed 950006 (never used before session 13's benchmark): kidneys at ~250 HU in 37 HU noise put
    a third of their voxels over the rib threshold, L1 read rib-bearing and all 23 names were one
    level off (2.2358 mm slices, sacrum missed). Every body named must sit on its true level."""
    case = make_phantom("C1-S1", "ct", [], [], seed=950006, spacing=(1.0, 1.0, 2.24), orientation="axial",
                        surroundings=True)
    assert case.truth["surroundings"]["contrast_blood_hu"] > 200
    volume = case.image
    frame = spine_frame(find_canal(volume))
    found = find_bodies(straighten(volume, frame), frame)
    naming = name_bodies(found, rib_bearing(volume, found))
    # Whether or not the sacrum is found too, the last rib must agree with it (no "11 or 13 rib pairs?").
    assert "last rib" in naming.anchor and naming.warning is None and not naming.uncertain
    truth = {v["level"]: np.array(v["center_ras"]) for v in case.truth["vertebrae"] if v["has_body"]}
    named = 0
    for body, name in zip(found.bodies, naming.names):
        if name in (None, "C1"):  # the atlas has no body in the truth
            continue
        centre = np.array(body.centre_ras)
        nearest = min(truth, key=lambda lv: np.linalg.norm(truth[lv] - centre))
        assert nearest == name, (name, nearest)
        named += 1
    assert named >= 21 and "T12" in naming.names and "L1" in naming.names
    # The aorta ends at its bifurcation in L4's rows (through the L2-L3 and L3-L4 discs, not L4-L5):
    # it must not join L4 (it had, 20 mm deep in front: L4 59 mm deep, its ROI 9.6 mm off centre).
    l3, l4 = (found.bodies[naming.names.index(level)] for level in ("L3", "L4"))
    assert l4.depth_mm <= l3.depth_mm + 6.0 and np.linalg.norm(l4.centre_ras - truth["L4"]) < 2.0


def test_one_bright_row_at_a_disc_is_no_rib():
    """Seed 990006 (T9-L4, 1.02 mm slices, a never-used range): one straightened row at the T12-L1
    disc held bone and cortex beside L1 on both sides, L1 read rib-bearing and the count from the
    last rib named every body one level too high. A rib is several millimetres high."""
    case = make_phantom("T9-L4", "ct", [], [], seed=990006, spacing=(1.0, 1.0, 1.0234), orientation="axial",
                        surroundings=True)
    volume = case.image
    frame = spine_frame(find_canal(volume))
    found = find_bodies(straighten(volume, frame), frame)
    ribs = rib_bearing(volume, found)
    naming = name_bodies(found, ribs)
    assert naming.anchor == "last rib (T12)" and found.sacrum is None
    truth = {v["level"]: np.array(v["center_ras"]) for v in case.truth["vertebrae"] if v["has_body"]}
    nearest = [min(truth, key=lambda lv: np.linalg.norm(truth[lv] - np.array(b.centre_ras))) for b in found.bodies]
    assert nearest == list(truth) == naming.names  # T9..L4, each on its own body
    assert ribs[nearest.index("T12")] is True and ribs[nearest.index("L1")] is False


def test_a_wide_last_block_that_bears_ribs_is_no_probable_sacrum():
    """The probable sacrum (a last block spreading 75-85 mm, taken where no rib names the levels)
    is no anchor when that block bears ribs: a chest CT ending at T12 spreads that wide with them."""
    frame = SpineFrame.__new__(SpineFrame)
    blocks = [FoundBody(30.0 * k, 30.0 * (k + 1), False) for k in range(4)]
    found = SpineBodies(frame, [30, 60, 90], list(blocks), None, probable_sacrum=True)
    naming = name_bodies(found, [True, True, True, True])
    assert naming.anchor == "none" and found.sacrum is None and len(found.bodies) == 4
    found = SpineBodies(frame, [30, 60, 90], list(blocks), None, probable_sacrum=True)
    naming = name_bodies(found, [False, False, False, False])
    assert naming.anchor == "probable sacrum" and naming.names == ["L3", "L4", "L5"] and len(found.bodies) == 3


def _named_as_truth(case, found, naming) -> int:
    """How many bodies carry the level of the truth body they sit on; fails on any other name."""
    truth = {v["level"]: np.array(v["center_ras"]) for v in case.truth["vertebrae"] if v["has_body"]}
    named = 0
    for body, name in zip(found.bodies, naming.names):
        nearest = min(truth, key=lambda lv: np.linalg.norm(truth[lv] - np.array(body.centre_ras)))
        if name == "C1" and nearest == "C2":  # a piece of the atlas above C2 (no body in the truth)
            continue
        assert name == nearest, (name, nearest)
        named += 1
    return named


def _found(volume):
    frame = spine_frame(find_canal(volume))
    return find_bodies(straighten(volume, frame), frame)


def _prior(case):
    return _found(case.image)


@pytest.mark.parametrize("levels,seed,slice_mm,orientation,anchor,named", [
    # 1055006: L1 at the scan's end spread like a sacrum; counted up from it T12 became "L5", every
    # name five levels off, though the three bodies above bore ribs.
    ("C6-L1", 1055006, 2.67507576632184, "oblique", "first and last rib", 15),
    # 1084008 (never used before session 19's benchmark): L2 at the scan's end taken for the sacrum,
    # T12 (ribs) "L4", every name four levels off, certain; L1 bore no rib, so the old guard (the
    # last three bodies bear ribs) let it pass. A rib on "L2" or "L3" is no anatomy.
    ("T6-L2", 1084008, 2.179556577420099, "coronal", "last rib (T12)", 9),
])
def test_a_sacrum_that_would_put_ribs_on_l2_or_l3_is_none(levels, seed, slice_mm, orientation, anchor, named):
    """Phantoms in a trunk whose last vertebra, whole at the scan's end, the finder takes for the
    sacrum: the block goes back to the bodies and the ribs name them."""
    case = make_phantom(levels, "ct", [], [], seed=seed, spacing=(1.0, 1.0, slice_mm),
                        orientation=orientation, surroundings=True)
    found = _prior(case)
    assert found.sacrum is not None  # what the finder takes for one: the guard is in the naming
    naming = name_in_volume(case.image, found)
    assert found.sacrum is None and naming.anchor == anchor and not naming.uncertain
    assert _named_as_truth(case, found, naming) == named and naming.names[-1] == levels.split("-")[1]


def test_iliac_crests_lit_beside_l4_l5_keep_a_true_sacrum():
    """The iliac crests light up the rib test beside L4-L5: a true sacrum keeps its count."""
    frame = SpineFrame.__new__(SpineFrame)
    bodies = [FoundBody(30.0 * k, 30.0 * (k + 1), False) for k in range(8)]
    crests = name_bodies(SpineBodies(frame, [], list(bodies), FoundBody(240.0, 300.0, False)),
                         [True, True, True, False, False, False, True, True])
    assert crests.anchor == "sacrum and last rib" and crests.names[-1] == "L5" and crests.names[2] == "T12"


def test_the_first_rib_names_a_neck_and_upper_chest_ct():
    """Seed 1055004 (C3-T5 stored sagittal, 2.74 mm): no sacrum, no last rib; the names were a guess
    from the spacing, every one a level high. The first rib-bearing body under two without is T1."""
    case = make_phantom("C3-T5", "ct", [], [], seed=1055004, spacing=(1.0, 1.0, 2.741548770381747),
                        orientation="sagittal", surroundings=True)
    found = _prior(case)
    naming = name_in_volume(case.image, found)
    assert naming.anchor == "first rib (T1)" and not naming.uncertain
    assert _named_as_truth(case, found, naming) == 10 and naming.names[0] == "C3"


def test_rib_anchors_agree_or_say_so():
    """The first rib is T1, the last T12: twelve rib-bearing bodies agree; eleven are counted from the
    first rib and flagged; a last rib one body from the scan's end names the levels, uncertain."""
    frame = SpineFrame.__new__(SpineFrame)

    def found(n: int) -> SpineBodies:
        return SpineBodies(frame, [], [FoundBody(30.0 * k, 30.0 * (k + 1), False) for k in range(n)], None)

    naming = name_bodies(found(16), [False, False] + [True] * 12 + [False, False])
    assert naming.anchor == "first and last rib" and not naming.uncertain and naming.warning is None
    assert naming.names[:3] == ["C6", "C7", "T1"] and naming.names[-3:] == ["T12", "L1", "L2"]
    naming = name_bodies(found(15), [False, False] + [True] * 11 + [False, False])
    assert naming.anchor == "first rib (T1)" and naming.uncertain and "T11, not T12" in naming.warning
    assert naming.names[2] == "T1"
    naming = name_bodies(found(5), [False, False, True, True, None])
    assert naming.anchor == "first rib (T1)" and not naming.uncertain and naming.names == ["C6", "C7", "T1", "T2", "T3"]
    naming = name_bodies(found(4), [True, True, True, False])
    assert naming.anchor == "last rib (T12)" and naming.uncertain and naming.names == ["T10", "T11", "T12", "L1"]
    # ... but not where that body is a sliver cut by the scan's end (the windowed 1087003: T2-T6 named T8-T12)
    sliver = SpineBodies(frame, [], [FoundBody(30.0 * k, 30.0 * (k + 1), False) for k in range(3)] + [FoundBody(90.0, 96.0, True)], None)
    assert name_bodies(sliver, [True, True, True, False]).anchor == "none"
    naming = name_bodies(found(4), [True, True, True, True])  # nothing to count from
    assert naming.anchor == "none" and naming.uncertain


def test_without_anchor_or_a_whole_spacing_the_level_says_what_its_size_allows():
    """example_ct_dicom (20 slices of 2 mm, ribs all round: about T11-T12) showed its two cut
    bodies as "L3 (uncertain ±1)" and "L4": with no whole body between two discs the spacing allows
    any level, and "±1" was false. Bodies with a spacing measured keep "±1"."""
    frame = SpineFrame.__new__(SpineFrame)
    cut = SpineBodies(frame, [49], [FoundBody(26.0, 49.0, True), FoundBody(49.0, 58.0, True)], None)
    naming = name_bodies(cut, [None, None])
    rows = [naming.row_fields(k) for k in range(2)]
    assert naming.anchor == "none" and [r["level_certainty"] for r in rows] == ["uncertain (C2-L4)", "uncertain (C3-L5)"]
    assert shown_level(naming.names[0], rows[0]["level_certainty"]) == f"{naming.names[0]} (uncertain: C2-L4)"
    assert "the names are a guess from the bodies' sizes, which allow C2-L5" in naming.warning
    lumbar = [FoundBody(25.0 + 38 * k, 63.0 + 38 * k, False) for k in range(5)]  # five whole, lumbar-sized
    naming = name_bodies(SpineBodies(frame, [25 + 38 * k for k in range(6)], lumbar, None), [None] * 5)
    assert {naming.row_fields(k)["level_certainty"] for k in range(5)} == {"uncertain (±1)"} and naming.warning is None
    assert shown_level(naming.names[1], naming.row_fields(1)["level_certainty"]) == "L2 (uncertain ±1)"
    # four with one cut: the first could be T12-L2, named L2: "±1" would be false
    naming = name_bodies(SpineBodies(frame, [25, 63, 101, 139], [FoundBody(0.0, 25.0, True)] + lumbar[:3], None), [None] * 4)
    assert naming.names[0] == "L2" and naming.row_fields(0)["level_certainty"] == "uncertain (T12-L2)"


def test_c2_by_its_height_names_a_neck_ct_without_ribs():
    """Seed 1090006 (C1-C7 stored coronal, 2.98 mm, in a trunk): no rib and no sacrum in view, the
    atlas's piece at the scan's top was counted as a body and named C2, every name one level low.
    C2 is the one neck body much higher than those below it: counted from it, the atlas is C1."""
    case = make_phantom("C1-C7", "ct", [], [], seed=1090006, spacing=(1.0, 1.0, 2.983475529129096),
                        orientation="coronal", surroundings=True)
    found = _prior(case)
    naming = name_in_volume(case.image, found)
    assert naming.anchor == "C2 (its height)" and naming.uncertain and "C2 recognised by its height" in naming.warning
    assert naming.names[:2] == ["C1", "C2"] and _named_as_truth(case, found, naming) == 6
    # Synthetic chains: a piece cut by the scan's top, C2 22 mm high, five neck bodies of 17 mm.
    frame = SpineFrame.__new__(SpineFrame)
    tops = [20.0, 42.0] + [42.0 + 17 * k for k in range(1, 6)]

    def chain(tops: list[float], first_cut: bool) -> SpineBodies:
        bodies = [FoundBody(0.0 if first_cut else 10.0, tops[0], first_cut)]
        bodies += [FoundBody(a, b, False) for a, b in zip(tops, tops[1:])]
        discs = ([] if first_cut else [10]) + [int(t) for t in tops]
        return SpineBodies(frame, discs, bodies, None)

    assert name_bodies(chain(tops, True), [None] * 7).names[:3] == ["C1", "C2", "C3"]
    # a first body with a disc above it is a body, not the atlas: no C2 under it
    assert name_bodies(chain(tops, False), [None] * 7).anchor == "none"
    # two neck bodies joined by a missed disc (34 mm) are no C2
    joined = [20.0, 54.0] + [54.0 + 17 * k for k in range(1, 6)]
    assert name_bodies(chain(joined, True), [None] * 7).anchor == "none"
    # one body in a short window (the windowed benchmark's 1087000 crashed here)
    assert name_bodies(SpineBodies(frame, [20], [FoundBody(20.0, 42.0, False)], None), [None]).anchor == "none"


def test_a_rib_cage_in_view_keeps_the_guess_inside_t1_t12():
    """Seed 1089110 (T1-T12 stored oblique, 2.21 mm, in a trunk): T1 at the scan's top reads no rib
    and T12 at its end has nothing below, so no anchor; the spacing guess named the bodies T2-L1, a
    rib on "L1". A run of three or more rib-bearing bodies stays inside T1-T12."""
    case = make_phantom("T1-T12", "ct", [], [], seed=1089110, spacing=(1.0, 1.0, 2.20544406401765),
                        orientation="oblique", surroundings=True)
    found = _prior(case)
    naming = name_in_volume(case.image, found)
    assert naming.anchor == "none" and naming.uncertain
    assert _named_as_truth(case, found, naming) == 12 and naming.names[-1] == "T12"
    # Synthetic: twelve thoracic-sized bodies, the first without a rib reading
    frame = SpineFrame.__new__(SpineFrame)
    tops = [10.0 + 24.0 * k for k in range(13)]
    chest = SpineBodies(frame, [int(t) for t in tops], [FoundBody(a, b, False) for a, b in zip(tops, tops[1:])], None)
    assert name_bodies(chest, [None] + [True] * 11).names == [f"T{i}" for i in range(1, 13)]
    # two lit bodies are no rib cage (the iliac crests): the guess is left to the spacing
    lumbar = [FoundBody(25.0 + 38 * k, 63.0 + 38 * k, False) for k in range(5)]
    lit = name_bodies(SpineBodies(frame, [25 + 38 * k for k in range(6)], lumbar, None), [None, None, None, True, True])
    assert lit.names == ["L1", "L2", "L3", "L4", "L5"]


@pytest.mark.parametrize("z_mm", [222.0, 235.0])
def test_the_iliac_crests_name_l5_on_a_real_ct_cut_above_its_sacrum(realdata, z_mm):
    """example_ct (real, 3 mm) cut above its sacrum, as a lumbar CT stopping at L5: no sacrum, no rib,
    and the spacing guess named every body two levels high (L5 "L3"). The posterior iliac crests
    light up the rib test beside L5: counted from there, each body keeps the name the whole scan
    (sacrum anchor) gives it."""
    whole = read_volume(realdata / "totalsegmentator" / "example_ct.nii.gz")
    whole.modality = "ct"
    found = _found(whole)
    named = {round(float(b.centre_ras[2])): name for b, name in zip(found.bodies, name_in_volume(whole, found).names)}
    cut = cut_below(whole, z_mm)
    found = _found(cut)
    naming = name_in_volume(cut, found)
    assert found.sacrum is None and naming.anchor == "iliac crests (L5)" and naming.uncertain
    assert naming.names[-1] == "L5" and len(found.bodies) >= 5
    for body, name in zip(found.bodies, naming.names):
        z = min(named, key=lambda z: abs(z - body.centre_ras[2]))  # the same body in the whole scan
        if abs(z - body.centre_ras[2]) < 8:
            assert named[z] == name, (z, named[z], name)


def test_only_lumbar_bodies_lit_at_the_scan_end_are_the_crests():
    frame = SpineFrame.__new__(SpineFrame)

    def chain(spacing: float, n: int) -> SpineBodies:
        tops = [10.0 + spacing * k for k in range(n + 1)]
        return SpineBodies(frame, [int(t) for t in tops], [FoundBody(a, b, False) for a, b in zip(tops, tops[1:])], None)

    assert name_bodies(chain(36.0, 5), [False, False, False, True, True]).names == ["L2", "L3", "L4", "L5", None]
    assert name_bodies(chain(36.0, 4), [False, False, False, True]).anchor == "iliac crests (L5)"
    # a neck CT ending at T1 lights up the same way: neck-sized, no crest
    assert name_bodies(chain(20.0, 5), [False, False, False, False, True]).anchor == "none"
    # three lit bodies are a rib cage, one lit under one unlit is too little to tell
    assert name_bodies(chain(36.0, 5), [False, False, True, True, True]).anchor != "iliac crests (L5)"
    assert name_bodies(chain(36.0, 2), [False, True]).anchor == "none"


def test_the_disc_nearest_the_crests_top_is_l4_l5():
    """Where the crests begin (ribs.crest_top_u) says which lit body is L5: a top in a body's upper
    half makes it L5, in its lower half L4 (a high crest lights L4's rib test too); never more than
    one body below L5, never more than one body from the first lit."""
    frame = SpineFrame.__new__(SpineFrame)
    tops = [10.0 + 36.0 * k for k in range(6)]  # bodies 10-46, 46-82, 82-118, 118-154, 154-190

    def names(crest_top):
        found = SpineBodies(frame, [int(t) for t in tops], [FoundBody(a, b, False) for a, b in zip(tops, tops[1:])], None)
        naming = name_bodies(found, [False, False, False, True, True], crest_top=crest_top)
        assert naming.anchor == "iliac crests (L5)" and naming.uncertain
        return naming.names

    first_lit_is_l5 = ["L2", "L3", "L4", "L5", None]
    assert names(None) == names(125.0) == names(105.0) == first_lit_is_l5
    assert names(140.0) == ["L1", "L2", "L3", "L4", "L5"]  # the top beside L4's lower half
    assert names(95.0) == names(20.0) == first_lit_is_l5  # no second body below L5
    # a low crest lights no rib test (it stays beside L5's lower half): seen only by where it begins
    found = SpineBodies(frame, [int(t) for t in tops], [FoundBody(a, b, False) for a, b in zip(tops, tops[1:])], None)
    assert name_bodies(found, [False] * 5).anchor == "none"
    naming = name_bodies(found, [False] * 5, crest_top=165.0)
    assert naming.anchor == "iliac crests (L5)" and naming.names == ["L1", "L2", "L3", "L4", "L5"]
