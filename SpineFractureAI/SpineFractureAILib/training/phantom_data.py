"""Random phantom cases for training and held-out benchmarks (seeds name the split)."""
from __future__ import annotations

import numpy as np

from ..levels import LEVELS
from ..phantom import make_phantom
from ..phantom.anatomy import FRACTURE_TYPES

# Seeds: training uses [base, base + n); benchmarks and done-when checks use other bases.
TRAIN_SEED_BASE = 10_000
VAL_SEED_BASE = 20_000
BENCH_SEED_BASE = 90_000


def random_case_args(seed: int, modality: str = "ct", regions: str = "all", from_c1: bool = False) -> dict:
    """A varied but reproducible phantom request: levels, fractures, grid. from_c1 lets a case start
    at the atlas (the level classifier must see C1; the older datasets start at C2 at the earliest)."""
    rng = np.random.default_rng(seed + 7)
    first_allowed = {"all": 1, "thoracolumbar": 7, "cervical": 1, "lumbar": 17}[regions]
    first_allowed = 0 if from_c1 and first_allowed == 1 else first_allowed
    last_allowed = {"all": 24, "thoracolumbar": 24, "cervical": 8, "lumbar": 24}[regions]
    length = int(rng.integers(4, 10))
    start = int(rng.integers(first_allowed, max(first_allowed + 1, last_allowed - length + 2)))
    names = LEVELS[start: min(start + length, last_allowed + 1)]
    bodies = [n for n in names if n not in ("C1", "S1")]
    fractures = []
    for level in rng.choice(bodies, size=min(len(bodies), int(rng.integers(0, 3))), replace=False):
        kind = FRACTURE_TYPES[int(rng.integers(0, 3))]
        grade = int(rng.choice([1, 2, 3], p=[0.2, 0.4, 0.4]))
        fractures.append(f"{level}:{kind}:{grade}")
    orientation = str(rng.choice(["axial", "sagittal", "coronal", "oblique"], p=[0.55, 0.15, 0.1, 0.2]))
    inplane = float(rng.uniform(0.6, 1.2))
    through = float(rng.uniform(0.8, 3.0))
    spacing = (inplane, inplane, through)
    return {"levels": names, "modality": modality, "fractures": fractures, "seed": seed,
            "orientation": orientation, "spacing": spacing}


def randomised_case_args(seed: int) -> dict:
    """Domain randomisation (CT): any stretch from 4 levels to the whole spine, 0.6-5 mm slices,
    and the surroundings of a real CT (trunk, table, arms, vessels, bowel, pelvis, a random
    scanner) in seven cases of ten. Its own random stream: random_case_args' draws stay as they were."""
    args = random_case_args(seed, "ct")
    rng = np.random.default_rng([seed, 13])
    draw = rng.random()
    if draw < 0.3:  # long stretches up to the whole spine
        length = int(rng.integers(10, 26))
        start = int(rng.integers(0, max(1, 26 - length)))
        args["levels"] = LEVELS[start:start + length]
    elif draw < 0.7:  # abdomen and pelvis scans: the stretch ends between L2 and S1 (seeds 000, 003)
        end = int(rng.integers(LEVELS.index("L2"), LEVELS.index("S1") + 1))
        args["levels"] = LEVELS[max(0, end - int(rng.integers(4, 11))):end + 1]
    if draw < 0.7:  # fractures on the new stretch: none to three, most at grade 2-3
        bodies = [n for n in args["levels"] if n not in ("C1", "S1")]
        levels = rng.choice(bodies, size=min(len(bodies), int(rng.integers(0, 4))), replace=False)
        args["fractures"] = [f"{level}:{FRACTURE_TYPES[int(rng.integers(0, 3))]}:"
                             f"{int(rng.choice([1, 2, 3], p=[0.2, 0.4, 0.4]))}" for level in levels]
    args["surroundings"] = bool(rng.random() < 0.7)
    inplane = float(rng.uniform(0.8, 1.3) if args["surroundings"] else args["spacing"][0])
    args["spacing"] = (inplane, inplane, float(np.exp(rng.uniform(np.log(0.6), np.log(5.0)))))
    return args


def random_case(seed: int, modality: str = "ct", regions: str = "all", from_c1: bool = False,
                randomised: bool = False):
    """A phantom and its request; randomised: randomised_case_args (CT)."""
    args = randomised_case_args(seed) if randomised else random_case_args(seed, modality, regions, from_c1)
    return make_phantom(**args), args
