"""Spine level names, order and label numbering shared by every stage."""
from __future__ import annotations

import re

LEVELS = ([f"C{i}" for i in range(1, 8)] + [f"T{i}" for i in range(1, 13)]
          + [f"L{i}" for i in range(1, 6)] + ["S1"])

# VerSe numbering: 1-7 C1-C7, 8-19 T1-T12, 20-25 L1-L6, 26 sacrum, 28 T13.
VERSE_ID = {name: i + 1 for i, name in enumerate(LEVELS[:-1])}
VERSE_ID["S1"] = 26
VERSE_ID["L6"] = 25
VERSE_ID["T13"] = 28
VERSE_NAME = {v: k for k, v in VERSE_ID.items()}

# TotalSegmentator v2 "total" task: vertebrae_S1 = 26, L5 = 27 ... C1 = 50.
TOTALSEG_ID = {"S1": 26, **{f"L{i}": 32 - i for i in range(1, 6)},
               **{f"T{i}": 44 - i for i in range(1, 13)},
               **{f"C{i}": 51 - i for i in range(1, 8)}}
TOTALSEG_NAME = {v: k for k, v in TOTALSEG_ID.items()}


def level_index(name: str) -> int:
    return LEVELS.index(name)


def level_range(spec: str) -> list[str]:
    """'T10-L3' -> ['T10', 'T11', 'T12', 'L1', 'L2', 'L3']."""
    m = re.fullmatch(r"\s*([CTLS]\d+)\s*(?:-\s*([CTLS]\d+))?\s*", spec.upper())
    if not m or m.group(1) not in LEVELS or (m.group(2) or m.group(1)) not in LEVELS:
        raise ValueError(f"not a level range: {spec!r} (expected e.g. T10-L3, levels C1..S1)")
    a, b = level_index(m.group(1)), level_index(m.group(2) or m.group(1))
    if b < a:
        raise ValueError(f"level range goes upwards: {spec!r}")
    return LEVELS[a: b + 1]


def disc_name(upper: str) -> str:
    return f"{upper}-{LEVELS[level_index(upper) + 1]}"
