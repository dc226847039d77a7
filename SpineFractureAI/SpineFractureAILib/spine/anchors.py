"""Names for the bodies found along the canal, counted from an anchor that is in the scan.

The sacrum (the block below the last disc whose alae spread sideways) is the first anchor: the body
above it is L5 and the count goes up. A "sacrum" that would put ribs on L2 or L3 is none (the end of
a chest or thoracolumbar CT): it goes back to the bodies. The ribs give two more anchors: the first
rib-bearing vertebra under two without ribs is T1 (a chest or neck CT), the last rib-bearing
vertebra is T12 in most people. Where the sacrum is not in the scan the count starts at the first
rib, else at the last; where two anchors are seen they must agree, and when they do not (11 or 13
rib pairs, a sixth lumbar vertebra, a lumbarised S1) the names are counted from the sacrum (else the
first rib), marked "uncertain (±1)" and a warning says why. A last rib with only one body after it
before the scan ends names the levels "uncertain (±1)" (a short twelfth rib may be missed there; not
where that body is a sliver cut by the scan's end). A last body that spreads almost as wide as a
sacrum (bodies.PROBABLE_SACRUM_MM) is taken for one only where no rib names the levels, and the
names counted from it are "uncertain (±1)". A lumbar scan stopping above the sacrum is counted from
the iliac crests, which light up the rib test's window beside L4-L5: the disc nearest where they
begin is L4-L5 (crest_lit, l5_by_crest_top, "uncertain (±1)"). Without any
anchor the names are counted from C2 where one of the first two bodies is much higher than the neck
bodies below it (C2_HEIGHT_RATIO), else a best guess from the bodies' spacing against typical adult
sizes, a rib cage in view kept inside T1-T12; either is "uncertain", the guess with the span a body's
size allows where that is wider than ±1. The rows say which anchor was used."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..levels import LEVELS, level_index
from .bodies import FoundBody, SpineBodies
from .ribs import crest_top_u, rib_bearing

BODY_LEVELS = LEVELS[1:-1]  # C2..L5
# Typical adult body height + disc height (mm) at C2, C7, T1, T12, L1, L5 (interpolated between):
# Gilad & Nissan 1986, Panjabi et al. 1991/1992, Zhou et al. 2000.
_SPACING_KNOTS = [(1, 19.0), (6, 19.5), (7, 20.5), (18, 31.0), (19, 34.0), (21, 38.0), (23, 38.0)]
FIT_TOLERANCE = 0.006  # per measured body: about an 8 % spacing error
REGION_MIDDLES = ("C4", "T7", "L3")
# C2 is the one neck body much higher than those below it (its body ~23 mm at the front, C3-C6
# ~14-15 mm, each with a ~4 mm disc); two bodies joined by a missed disc are twice as high.
C2_HEIGHT_RATIO, NECK_SPACING_MM = (1.18, 1.6), 21.0
# Lumbar disc-to-disc spacings are 34-38 mm in adults (±15 %); C7-T2 ~20 mm, T10-T12 ~28-31 mm.
LUMBAR_SPACING_MM = 29.0
RIB_CAGE_RUN = 3  # rib-bearing bodies in a row: a rib cage (the iliac crests light up two at most)
_THORACIC = (level_index("T1"), level_index("T12"))
# Every vertebra from T2 to T10 bears a rib pair whose necks the rib test sees, none from L1 to L3
# does (T1 may have its rib at the scan's top, T11-T12 short floating ribs; the iliac crests light
# up L4-L5): a placement that contradicts the rib test is none (1101004, L1-L4 ending above L5 with
# lumbar spacings of 30 mm, was named T8-T11: four bodies without ribs inside the rib cage).
_ALWAYS_RIBS = (level_index("T2"), level_index("T10"))
_NEVER_RIBS = (level_index("L1"), level_index("L3"))


def typical_spacing(name: str) -> float:
    xs, ys = zip(*_SPACING_KNOTS)
    return float(np.interp(level_index(name), xs, ys))


@dataclass
class Naming:
    names: list[str | None]  # per body, head first; "C1" marks a piece of the atlas above C2
    anchor: str  # "sacrum" | "sacrum and last rib" | "first rib (T1)" | "first and last rib" |
    # "last rib (T12)" | "probable sacrum" | "iliac crests (L5)" | "C2 (its height)" | "none"
    uncertain: bool
    plausible: list[tuple[str, str]] | None = None  # without an anchor: per body, the levels its spacing allows
    warning: str | None = None  # the anchors disagree: transitional anatomy

    def row_fields(self, k: int | None = None) -> dict:
        """Body k's level fields. Without an anchor, "±1" only where the spacing allows no more:
        bodies with no whole spacing measured (a short scan cut at both ends) get the span their
        size allows, "uncertain (C2-L4)", not a false "±1"."""
        certainty = "uncertain (±1)" if self.uncertain else "counted from the anchor"
        if self.uncertain and self.plausible and k is not None and self.names[k] in LEVELS:
            (lo, hi), at = self.plausible[k], level_index(self.names[k])
            if max(at - level_index(lo), level_index(hi) - at) > 1:
                certainty = f"uncertain ({lo}-{hi})"
        return {"level_anchor": self.anchor, "level_certainty": certainty}


def last_rib(ribs: list[bool | None] | None) -> int | None:
    """The last rib-bearing body (head first): two rib-bearing bodies followed by two without
    (a single hit is no rib cage: the iliac crests beside L4-L5 light up the same place)."""
    for k in range(1, len(ribs or ()) - 2):
        if ribs[k - 1] is True and ribs[k] is True and ribs[k + 1] is False and ribs[k + 2] is False:
            return k
    return None


def first_rib(ribs: list[bool | None] | None) -> int | None:
    """The first rib-bearing body (head first), T1: two rib-bearing bodies under two without, and
    no rib above them (a chest or neck CT that reaches C6)."""
    ribs = list(ribs or ())
    for k in range(2, len(ribs) - 1):
        if ribs[k] is True and ribs[k + 1] is True and ribs[k - 1] is False and ribs[k - 2] is False:
            return k if True not in ribs[:k] else None
    return None


def last_rib_at_end(ribs: list[bool | None] | None) -> int | None:
    """A last rib-bearing body with one body without ribs after it, and then the scan's end."""
    ribs = list(ribs or ())
    n = len(ribs)
    if n >= 3 and ribs[-3] is True and ribs[-2] is True and ribs[-1] is False:
        return n - 2
    return None


def _sliver(last: FoundBody, above: FoundBody) -> bool:
    """A body cut by the scan's end to less than half the height of the one above it (1087003: a
    6 mm piece of T7 under T6 read "no rib", and T6 was taken for T12)."""
    return last.cut and (last.bottom_u - last.top_u) < 0.5 * (above.bottom_u - above.top_u)


def _counted(n: int, k: int, level: str) -> list[str | None]:
    """Names of n bodies, head first, when body k is `level`."""
    at = level_index(level)
    return [LEVELS[at + j - k] if 0 <= at + j - k <= level_index("L5") else None for j in range(n)]


def _rib_cage_above(ribs: list[bool | None] | None) -> bool:
    """A body that the count up from the sacrum would name L2 or L3 bears ribs: what lies below is
    no sacrum but a body at the end of the scan (the iliac crests light up the rib test beside L4-L5
    only; a thirteenth rib sits on "L1")."""
    return any(r is True for r in list(ribs or ())[-4:-2])


def name_bodies(found: SpineBodies, ribs: list[bool | None] | None = None,
                sacrum_ribs: bool | None = None, crest_top: float | None = None) -> Naming:
    """ribs: per body, whether it bears ribs (spine/ribs.py; None: unknown); sacrum_ribs: the same
    for found.sacrum; crest_top: where the iliac crests begin (ribs.crest_top_u), if measured.
    Where a probable sacrum is the only anchor it moves from found.bodies to found.sacrum; a
    sacrum under a rib cage moves back to found.bodies (and ribs)."""
    ribs = None if ribs is None else list(ribs)
    if found.sacrum is not None and _rib_cage_above(ribs):
        found.bodies.append(found.sacrum)
        found.sacrum = None
        ribs.append(sacrum_ribs)
    n = len(found.bodies)
    if not n:
        return Naming([], "none", True)
    rib = last_rib(ribs)
    # a wide last block that bears ribs is a T12 or T11 at the end of a chest CT, no sacrum
    if found.sacrum is None and found.probable_sacrum and rib is None and n >= 2 and not (ribs and ribs[-1]):
        found.sacrum, found.probable_sacrum = found.bodies.pop(), False
        return Naming(_counted(n - 1, n - 2, "L5"), "probable sacrum", True, warning=(
            "levels: the last block spreads almost as wide as a sacrum and no rib is in view: names "
            "counted from it as the sacrum, uncertain (±1); check the count"))
    if found.sacrum is not None:
        names = _counted(n, n - 1, "L5")
        if rib is None:
            return Naming(names, "sacrum", False)
        if names[rib] == "T12":
            return Naming(names, "sacrum and last rib", False)
        return Naming(names, "sacrum", True, warning=(
            f"levels: counted up from the sacrum the last rib-bearing vertebra is {names[rib]}, not T12 "
            "(11 or 13 rib pairs, a sixth lumbar vertebra or a lumbarised S1?): names counted from the "
            "sacrum, uncertain (±1); check the count"))
    first, at_end = first_rib(ribs), None if rib is not None else last_rib_at_end(ribs)
    crest = crest_lit(found, ribs)
    if crest is not None and crest_top is not None:
        crest = l5_by_crest_top(found, crest_top, crest)
    elif crest == n:  # nothing lit and no crest seen below the rib test's rows: no crest
        crest = None
    if crest is not None:  # lit at the end under lumbar-sized bodies: the crests, no first rib
        first = None
    if at_end is not None and _sliver(found.bodies[-1], found.bodies[-2]):
        at_end = None  # a sliver at the scan's end reads "no rib" for want of rib in view
    if first is not None:
        names, last = _counted(n, first, "T1"), rib if rib is not None else at_end
        if last is None:
            return Naming(names, "first rib (T1)", False)
        if names[last] == "T12":
            return Naming(names, "first and last rib", False)
        return Naming(names, "first rib (T1)", True, warning=(
            f"levels: counted down from the first rib the last rib-bearing vertebra is {names[last]}, not "
            "T12 (11 or 13 rib pairs, a cervical or lumbar rib?): names counted from the first rib, "
            "uncertain (±1); check the count"))
    if rib is not None:
        return Naming(_counted(n, rib, "T12"), "last rib (T12)", False)
    if at_end is not None:
        return Naming(_counted(n, at_end, "T12"), "last rib (T12)", True, warning=(
            "levels: the last rib-bearing vertebra is one body from the scan's end: names counted from "
            "it as T12, uncertain (±1); check the count"))
    if crest is not None:
        return Naming(_counted(n, crest, "L5"), "iliac crests (L5)", True, warning=(
            "levels: no sacrum and no last rib in view: the disc nearest the top of the iliac crests is "
            "taken for L4-L5 (in most adults it lies between L4's lower third and L5's upper third), "
            "names counted from it, uncertain (±1); check the count"))
    axis = c2_by_height(found)
    if axis is not None:
        return Naming(_counted(n, axis, "C2"), "C2 (its height)", True, warning=(
            "levels: no sacrum and no rib in view: C2 recognised by its height (higher than the neck "
            "bodies below it), names counted from it, uncertain (±1); check on a scan that reaches the "
            "first rib"))
    names, plausible = guess_from_spacing(found, ribs)
    naming = Naming(names, "none", True, plausible)
    spans = {naming.row_fields(k)["level_certainty"] for k in range(n)} - {"uncertain (±1)"}
    if spans:
        naming.warning = (f"levels: no anchor in the scan (no sacrum, no first or last rib): the names are a "
                          f"guess from the bodies' sizes, which allow {plausible[0][0]}-{plausible[-1][1]} "
                          "(each row says its span); check the level on a longer scan or a scout")
    return naming


def name_in_volume(volume, found: SpineBodies) -> Naming:
    """name_bodies with the rib tests it needs: each body's, and the sacrum's (used where a rib cage
    above says it is none and it goes back to the bodies)."""
    sacrum_ribs = rib_bearing(volume, found, [found.sacrum])[0] if found.sacrum else None
    ribs = rib_bearing(volume, found)
    first_lit = None if found.sacrum is not None else crest_lit(found, ribs)
    top = None if first_lit is None else crest_top_u(volume, found, max(first_lit - 1, 0))
    return name_bodies(found, ribs, sacrum_ribs, crest_top=top)


def _whole_spacings(found: SpineBodies) -> list[float | None]:
    """Per body, its spacing where a disc was found above and below it (else None: cut or unsure)."""
    discs = set(found.discs_u)
    return [b.bottom_u - b.top_u if b.top_u in discs and b.bottom_u in discs else None for b in found.bodies]


def crest_lit(found: SpineBodies, ribs: list[bool | None] | None) -> int | None:
    """Where the iliac crests may be, at the scan's lower end: after two bodies without ribs, none,
    one or two bodies that light up the rib test (the posterior iliac crests lie 55-85 mm beside L5,
    beside its upper half when the crest is at L4-L5 or higher), all lumbar-sized
    (LUMBAR_SPACING_MM: a neck or chest scan ending at T1 or T2 lights up the same way). Returns
    the first lit body (len(ribs) when none is lit). example_ct cut above its sacrum: L5 lit, no
    rib, every name two levels high."""
    ribs = list(ribs or ())
    lit = next((k for k, r in enumerate(reversed(ribs)) if r is not True), len(ribs))  # lit at the end
    if lit > 2 or len(ribs) < lit + 2 or ribs[-lit - 1] is not False or ribs[-lit - 2] is not False:
        return None
    spacings = [s for s in _whole_spacings(found) if s is not None]
    if not spacings or float(np.median(spacings)) < LUMBAR_SPACING_MM:
        return None
    return len(ribs) - lit


def l5_by_crest_top(found: SpineBodies, crest_top: float, first_lit: int) -> int:
    """The body that is L5 by where the crests' top lies: the disc nearest to it is L4-L5 (the
    intercristal line crosses between L4's lower third and L5's upper third in 80 % of adults, at
    L4-L5 in the median; Kim et al. 2003, 690 MRI; radiopaedia "intercristal line"). So a top in a
    body's upper half (bodies run disc centre to disc centre) makes it L5, in its lower half L4. A
    high crest lights the rib test beside L4 too (session 21 phantoms: L4 taken for L5). Stays
    within one body of first_lit, the body the rib test saw first, with one body (a cut S1) at
    most below L5."""
    n = len(found.bodies)
    whole = [s for s in _whole_spacings(found) if s is not None]
    for k, body in enumerate(found.bodies):
        if body.top_u <= crest_top < body.bottom_u:
            # a body cut by the scan's end has its middle where a whole one's would be
            mid = body.top_u + float(np.median(whole)) / 2 if k == n - 1 and body.cut and whole \
                else (body.top_u + body.bottom_u) / 2
            l5 = k if crest_top < mid else k + 1
            return int(np.clip(l5, max(first_lit - 1, n - 2), min(first_lit + 1, n)))
    return first_lit


def c2_by_height(found: SpineBodies) -> int | None:
    """The body that is C2 by its height: one of the first two, whole (a disc above and below), with
    only a piece cut by the scan's top above it (the atlas), and C2_HEIGHT_RATIO times the median
    spacing of the three neck-sized bodies below it."""
    discs, whole = set(found.discs_u), _whole_spacings(found)
    for k in range(min(2, len(whole))):
        below = [s for s in whole[k + 1:k + 4] if s is not None]
        if whole[k] is None or len(below) < 3 or (k == 1 and found.bodies[0].top_u in discs):
            continue
        typical = float(np.median(below))
        if typical <= NECK_SPACING_MM and C2_HEIGHT_RATIO[0] <= whole[k] / typical <= C2_HEIGHT_RATIO[1]:
            return k
    return None


def rib_cage_run(ribs: list[bool | None] | None) -> list[int]:
    """The bodies of the longest run of RIB_CAGE_RUN or more rib-bearing bodies, else none."""
    best, run = [], []
    for k, r in enumerate(list(ribs or ()) + [None]):
        if r is True:
            run.append(k)
            continue
        best, run = max(best, run, key=len), []
    return best if len(best) >= RIB_CAGE_RUN else []


def _fits_ribs(found: SpineBodies, ribs: list[bool | None] | None, first: int) -> bool:
    """Whether naming the bodies from BODY_LEVELS[first] on agrees with their rib tests: no whole
    body without ribs in T2-T10 (a cut one may have its rib out of view), none with ribs in L1-L3."""
    for k, r in enumerate(list(ribs or ())[:len(found.bodies)]):
        at = level_index(BODY_LEVELS[first + k])
        if r is False and not found.bodies[k].cut and _ALWAYS_RIBS[0] <= at <= _ALWAYS_RIBS[1]:
            return False
        if r is True and _NEVER_RIBS[0] <= at <= _NEVER_RIBS[1]:
            return False
    return True


def guess_from_spacing(found: SpineBodies, ribs: list[bool | None] | None = None
                       ) -> tuple[list[str], list[tuple[str, str]]]:
    """Spacing tells the region (cervical, thoracic, lumbar), not the level within it: adult
    lumbar spacings vary by ±15 % between people while L2-L4 differ by a few percent. So among the
    placements that fit the measured disc-to-disc spacings about as well as the best one, the run
    is centred on the middle of its region (C4, T7, L3): a prior, flagged uncertain. A rib cage in
    view (rib_cage_run) keeps its bodies inside T1-T12 (1089110, T1-T12 with both rib ends at the
    scan's edges, was named T2-L1, a rib on "L1"), and no placement may contradict a body's rib test
    (_fits_ribs): of the fitting placements those the ribs allow, else the best that they allow.
    Also returns, per body, the first and last level those allow."""
    n = len(found.bodies)
    measured = [(k, s) for k, s in enumerate(_whole_spacings(found)) if s is not None]
    costs = []
    for first in range(len(BODY_LEVELS) - n + 1):
        costs.append(sum(np.log(s / typical_spacing(BODY_LEVELS[first + k])) ** 2 for k, s in measured))
    costs = np.array(costs, float)
    cage = rib_cage_run(ribs)
    allowed = np.array([all(_THORACIC[0] <= level_index(BODY_LEVELS[first + k]) <= _THORACIC[1] for k in cage)
                        and _fits_ribs(found, ribs, first) for first in range(len(costs))])
    tolerance = FIT_TOLERANCE * max(1, len(measured))
    near = np.flatnonzero(costs <= costs.min() + tolerance)
    if allowed.any():  # the fits the ribs allow, else the best of those they allow
        near = np.intersect1d(near, np.flatnonzero(allowed))
        if not len(near):
            costs[~allowed] = np.inf
            near = np.flatnonzero(costs <= costs.min() + tolerance)

    def off_centre(first: int) -> float:
        middle = level_index(BODY_LEVELS[first]) + (n - 1) / 2
        region = min(REGION_MIDDLES, key=lambda name: abs(level_index(name) - middle))
        return abs(middle - level_index(region))

    best = min(near, key=lambda first: (off_centre(first), costs[first]))
    plausible = [(BODY_LEVELS[near.min() + k], BODY_LEVELS[near.max() + k]) for k in range(n)]
    return BODY_LEVELS[best:best + n], plausible
