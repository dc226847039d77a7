"""What a real CT holds besides the spine, drawn at random (domain randomisation): the trunk with
its fat, the CT table and mattress, the arms beside the body, the aorta and vena cava (with or
without contrast), the kidneys, bowel gas and oral contrast, the iliac wings and femoral heads; then
the scanner's side: reconstruction kernel, noise, beam-hardening streaks. None of it is labelled:
everything here is what a spine model must learn to ignore. CT only (the MR models train on real
exams)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from ..levels import level_index
from .anatomy import Vertebra
from .render import AIR, CANCELLOUS, CORTICAL, SOFT, Canvas

# Tissue codes after render's (0-9); their HU per case come from Surroundings.hu.
FAT, BLOOD, KIDNEY, BOWEL_CONTRAST, TABLE, FOAM = range(10, 16)
DEFAULT_HU = {FAT: -100.0, BLOOD: 40.0, KIDNEY: 35.0, BOWEL_CONTRAST: 40.0, TABLE: 400.0, FOAM: -800.0}


@dataclass
class Surroundings:
    """One patient and one scanner, drawn from a seed."""
    trunk_rx: float  # trunk half-width at the abdomen, mm
    trunk_ry: float  # trunk half-depth, mm
    fat_mm: float  # subcutaneous fat
    arms: str  # "beside" | "above" (out of a trunk scan's field)
    table_gap_mm: float  # mattress between the back and the table
    hu: dict = field(default_factory=dict)  # per tissue code
    kernel: str = "soft"  # "soft" | "standard" | "sharp"
    noise_hu: float = 15.0
    streaks: int = 0
    gas_pockets: int = 10
    crest: float = 0.5  # the iliac crests' top: L5's centre 0, L4's 1 (the L4-L5 disc ~0.5)

    @classmethod
    def draw(cls, rng: np.random.Generator) -> "Surroundings":
        habitus = rng.uniform(0, 1)  # thin .. obese
        contrast = rng.random() < 0.6
        hu = dict(DEFAULT_HU)
        hu[FAT] = rng.uniform(-120, -80)
        hu[BLOOD] = rng.uniform(150, 400) if contrast else rng.uniform(30, 55)
        hu[KIDNEY] = rng.uniform(120, 250) if contrast else rng.uniform(25, 40)
        hu[BOWEL_CONTRAST] = rng.uniform(150, 500) if rng.random() < 0.3 else rng.uniform(10, 40)
        hu[TABLE] = rng.uniform(150, 700)
        hu[FOAM] = rng.uniform(-950, -600)
        # A child stream: the crest joined the phantom later, and every earlier draw keeps its value.
        # The line across the crests' tops crosses between L4's lower third and L5's upper third in
        # 80 % of adults, L4-L5 in the median, from L4's upper third to L5's middle in all (Kim et
        # al. 2003, 690 MRI; a North Cyprus series of 296 radiographs): about N(0.5, 0.3) here.
        crest = float(np.clip(rng.spawn(1)[0].normal(0.5, 0.3), -0.15, 1.35))
        return cls(crest=crest, trunk_rx=110 + 90 * habitus + rng.uniform(-10, 10), trunk_ry=85 + 75 * habitus,
                   fat_mm=5 + 40 * habitus * rng.uniform(0.5, 1.0),
                   arms="beside" if rng.random() < 0.65 else "above", table_gap_mm=rng.uniform(0, 25), hu=hu,
                   kernel=str(rng.choice(["soft", "standard", "sharp"], p=[0.3, 0.4, 0.3])),
                   noise_hu=float(rng.uniform(6, 45)), streaks=int(rng.integers(0, 4)),
                   gas_pockets=int(rng.integers(0, 25)))


def field_half_width(s: Surroundings) -> float:
    """The grid's half-width beside the spine so the trunk and, when beside it, the arms fit."""
    return s.trunk_rx + (95.0 if s.arms == "beside" else 15.0)


def _spine_line(spine: list[Vertebra]):
    """Body centre R and A as functions of S (held constant beyond the ends), and each vertebra's S."""
    centres = np.array([v.center for v in spine])
    order = np.argsort(centres[:, 2])
    c = centres[order]
    return (lambda s: (np.interp(s, c[:, 2], c[:, 0]), np.interp(s, c[:, 2], c[:, 1]))), \
        {v.level: float(v.center[2]) for v in spine}


def _level_s(levels_s: dict, spine: list[Vertebra], level: str) -> float:
    """A level's height, extrapolated at ~30 mm a level when the phantom does not hold it."""
    if level in levels_s:
        return levels_s[level]
    from_idx = {v.index: float(v.center[2]) for v in spine}
    target = level_index(level)
    nearest = min(from_idx, key=lambda i: abs(i - target))
    return from_idx[nearest] - 30.0 * (target - nearest)


def draw(cv: Canvas, spine: list[Vertebra], s: Surroundings, rng: np.random.Generator, chunk: int = 16) -> None:
    """Paint the surroundings into the canvas before the spine is drawn over them."""
    line, levels_s = _spine_line(spine)
    l = {name: _level_s(levels_s, spine, name) for name in ("C7", "T1", "T12", "L1", "L2", "L4", "L5", "S1")}
    depth = np.mean([v.depth for v in spine])
    # how far forward the spine leans per mm up at the L4-L5 disc: the pelvis sits in its frame there
    lordosis = float((line(l["L4"])[1] - line(l["L5"])[1]) / max(l["L4"] - l["L5"], 1.0))
    posterior = max(v.depth / 2 + 60.0 for v in spine)  # body centre to the skin of the back
    bowel = [(rng.uniform(-0.7, 0.7), rng.uniform(0.35, 0.85), rng.uniform(l["S1"] - 60, l["T12"]),
              rng.uniform(6, 22)) for _ in range(s.gas_pockets)]
    contrast_loops = [(rng.uniform(-0.6, 0.6), rng.uniform(0.3, 0.8), rng.uniform(l["S1"] - 40, l["L1"]),
                       rng.uniform(8, 18)) for _ in range(int(rng.integers(0, 6)))]
    # the table is flat: the back rests on it where it lies lowest (the lordosis leaves a gap)
    table_top = min(float(v.center[1]) for v in spine) - posterior - s.table_gap_mm
    nk = cv.tissue.shape[0]
    jj, ii = np.meshgrid(np.arange(cv.tissue.shape[1]), np.arange(cv.tissue.shape[2]), indexing="ij")
    for k0 in range(0, nk, chunk):
        k = np.arange(k0, min(nk, k0 + chunk))[:, None, None]
        a = cv.ijk_to_ras
        x = a[0, 0] * ii + a[0, 1] * jj + a[0, 2] * k + a[0, 3]
        y = a[1, 0] * ii + a[1, 1] * jj + a[1, 2] * k + a[1, 3]
        z = a[2, 0] * ii + a[2, 1] * jj + a[2, 2] * k + a[2, 3]
        xc, yc = line(z)
        dx, dy = x - xc, y - yc
        tissue = cv.tissue[k0:k0 + len(k)]
        # the trunk: a neck above T1, the chest and abdomen, the pelvis below (wider at the hips)
        neck = np.clip((z - l["T1"]) / 40.0, 0, 1)
        hips = np.clip((l["S1"] - z) / 80.0, 0, 1)
        rx = s.trunk_rx * (1 - 0.55 * neck) * (1 + 0.12 * hips)
        ry = s.trunk_ry * (1 - 0.4 * neck)
        back = -posterior * (1 - 0.3 * neck)
        cy = back + ry  # the back of the trunk lies on the skin behind the spinous processes
        r = np.sqrt((dx / rx) ** 2 + ((dy - cy) / ry) ** 2)
        tissue[:] = np.where(r > 1, AIR, np.where(r > 1 - s.fat_mm / np.minimum(rx, ry), FAT, SOFT))
        # mattress and table (two carbon-fibre skins round a foam core) under the back
        tissue[(dy < back) & (y >= table_top) & (r > 1) & (np.abs(dx) < rx)] = FOAM
        tissue[(y < table_top) & (y >= table_top - 4)] = TABLE
        tissue[(y < table_top - 4) & (y >= table_top - 30)] = FOAM
        tissue[(y < table_top - 30) & (y >= table_top - 34)] = TABLE
        if s.arms == "beside":
            _arms(tissue, dx, dy - cy * 0.6, z, rx, l)
        _vessels_and_kidneys(tissue, dx, dy, z, depth, l, r)
        for fx, fy, fz, rad in bowel:
            gas = ((dx - fx * rx) ** 2 + (dy - cy - fy * ry * 0.8) ** 2 + (z - fz) ** 2 <= rad ** 2) & (r < 0.85)
            tissue[gas] = AIR
        for fx, fy, fz, rad in contrast_loops:
            loop = ((dx - fx * rx) ** 2 + (dy - cy - fy * ry * 0.8) ** 2 + ((z - fz) / 1.8) ** 2 <= rad ** 2) & (r < 0.85)
            tissue[loop] = BOWEL_CONTRAST
        _pelvis(tissue, dx, dy, z, l, s.crest, lordosis)


def _bone_tube(tissue, d2, radius, wall=2.5, where=None):
    """A long bone: cortex ring and marrow inside (d2: squared distance to its axis)."""
    inside = d2 <= radius ** 2
    if where is not None:
        inside &= where
    tissue[inside] = CORTICAL
    tissue[inside & (d2 <= (radius - wall) ** 2)] = CANCELLOUS


def _arms(tissue, dx, dy, z, rx, l) -> None:
    """Upper arms from the shoulder to the elbow (one bone), forearms below (two)."""
    elbow = l["L2"]
    for side in (-1, 1):
        ax = side * (rx + 45.0)
        d2 = (dx - ax) ** 2 + dy ** 2
        limb = (d2 <= 42.0 ** 2) & (z <= l["T1"] + 30)
        tissue[limb & (tissue == 0)] = SOFT  # only where the trunk left air
        tissue[limb & (d2 > 36.0 ** 2) & (tissue == SOFT)] = FAT
        _bone_tube(tissue, d2, 11.0, where=limb & (z > elbow))
        for offset in (-12.0, 12.0):
            _bone_tube(tissue, (dx - ax - offset) ** 2 + dy ** 2, 7.0, where=limb & (z <= elbow))


def _vessels_and_kidneys(tissue, dx, dy, z, depth, l, r) -> None:
    front = depth / 2 + 14.0
    aorta = (dx + 18.0) ** 2 + (dy - front) ** 2 <= 11.0 ** 2
    ivc = (dx - 24.0) ** 2 + (dy - front) ** 2 <= 10.0 ** 2
    span = (z <= l["T1"] - 60) & (z >= l["L4"])
    tissue[(aorta | ivc) & span & (r < 1)] = BLOOD
    for side, shift in ((-1, 10.0), (1, -5.0)):  # the left kidney sits a little higher
        kidney = ((dx - side * 62.0) / 28.0) ** 2 + ((dy - 5.0) / 24.0) ** 2 + ((z - l["L1"] - shift) / 55.0) ** 2 <= 1
        tissue[kidney & (r < 1)] = KIDNEY


def _pelvis(tissue, dx, dy, z, l, crest_at: float, lordosis: float) -> None:
    """The iliac wings and the femoral heads and necks. In an axial slice each wing is a plate from
    the sacroiliac joint behind and beside the canal, bulging out and back, to the anterior superior
    spine in front and far to the side (the iliac fossa opens forward). Its crest is highest about
    100 mm out (`crest_at`: L5's centre 0, L4's 1; it varies between people) and falls
    towards both ends, so behind, 60-80 mm beside the canal, it lies at L5, as on the real CTs
    (example_ct: the crest 60-75 mm out at L5's centre, 80-125 mm at the L4-L5 disc). Heights are
    taken along the spine at the L4-L5 disc (`lordosis`: its forward lean there), so the crest lies
    at the same place beside L4 and L5 however far the lumbar spine is tilted."""
    top, s1 = l["L5"] + crest_at * (l["L4"] - l["L5"]), l["S1"]
    z_spine = z + lordosis * dy  # a point behind the body, level in the scan, lies lower along the spine
    t = np.clip((top - z_spine) / (top - s1 + 90.0), 0, 1)  # 0 at the crest's top, 1 at the acetabulum
    x0, a = 40.0 + 35.0 * t, 85.0 * (1 - 0.75 * t)  # the arc's medial end and its reach to the side
    y0, b = 15.0 + 15.0 * t, 75.0 * (1 - 0.6 * t)  # its front end and its reach backwards
    band = z_spine >= s1 - 90.0
    for side in (-1, 1):
        u, v = (dx * side - x0) / a, (dy - y0) / b
        theta = np.degrees(np.arctan2(u, -v))  # 0 behind (the sacroiliac joint), 90 in front
        shell = np.abs(np.sqrt(u ** 2 + v ** 2) - 1.0) * np.minimum(a, b)
        # ~15 mm lower behind (and the lordosis tilts it further down along the spine), ~20 in front
        crest = top - np.where(theta < 50.0, 0.006, 0.012) * (theta - 50.0) ** 2
        plate = band & (z_spine <= crest) & (shell <= 4.5) & (u >= 0) & (v <= 0)
        tissue[plate] = CORTICAL
        tissue[plate & (shell <= 2.5)] = CANCELLOUS
        head = (dx * side - 88.0) ** 2 + (dy - 45.0) ** 2 + (z - s1 + 110.0) ** 2
        tissue[head <= 26.0 ** 2] = CORTICAL
        tissue[head <= 23.5 ** 2] = CANCELLOUS
        # the neck and shaft run down and out from the head
        _bone_tube(tissue, (dx * side - 105.0 + (z - s1 + 110.0) * 0.5) ** 2 + (dy - 45.0) ** 2, 15.0,
                   where=z < s1 - 110.0)


def scanner(vox: np.ndarray, spacing_kji: np.ndarray, s: Surroundings, rng: np.random.Generator) -> np.ndarray:
    """Reconstruction kernel, beam-hardening streaks and noise on the HU image (float32, in place)."""
    sigma = {"soft": 0.9, "standard": 0.6, "sharp": 0.4}[s.kernel] / spacing_kji
    blurred = ndimage.gaussian_filter(vox, sigma=sigma)
    if s.kernel == "sharp":  # edge enhancement: overshoot at the cortex, as bone kernels do
        vox = blurred + 0.8 * (blurred - ndimage.gaussian_filter(blurred, sigma=1.2 / spacing_kji))
    else:
        vox = blurred
    h, w = vox.shape[1:]
    jj, ii = np.mgrid[0:h, 0:w]
    for _ in range(s.streaks):  # dark bands between dense bones, along one direction per streak
        angle = rng.uniform(0, np.pi)
        offset = rng.uniform(-0.2, 0.2) * min(h, w)
        dist = np.abs((ii - w / 2) * np.sin(angle) - (jj - h / 2) * np.cos(angle) - offset)
        vox -= (rng.uniform(20, 70) * np.exp(-(dist / rng.uniform(1.5, 4.0)) ** 2)).astype(np.float32)[None]
    noise = rng.normal(0, s.noise_hu, vox.shape).astype(np.float32)
    if s.kernel == "soft":
        noise = ndimage.gaussian_filter(noise, 0.7) * 1.8  # smoother, coarser grain
    return vox + noise
