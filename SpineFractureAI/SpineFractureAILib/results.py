"""Plain-data results: what every writer (files, MRML scene, report) consumes. No Slicer types."""
from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import asdict, dataclass, field

import numpy as np

SCHEMA_VERSION = "1.1"  # of findings.json: Resources/findings.schema.json; changes when a named field does


def shown_level(level: str | None, certainty: str | None = None) -> str:
    """A level as a reader sees it: "L3", or "L3 (uncertain ±1)" when no anchor in the scan fixed it,
    "L3 (uncertain: C2-L4)" where the body's size allows a wider span (the spine prior's rows and
    findings say which: `level_certainty`)."""
    if not level:
        return ""
    certainty = certainty or ""
    if certainty.startswith("uncertain (") and certainty != "uncertain (±1)":
        return f"{level} (uncertain: {certainty[len('uncertain ('):-1]})"
    return f"{level} (uncertain ±1)" if certainty.startswith("uncertain") else level


def shown_label(label: str, extra: dict) -> str:
    """A finding's label as a reader sees it: a disc no detector found, placed between two bodies
    (lumbar MR, `placed`), says so."""
    return f"{label} (placed between the bodies: not detected)" if extra.get("placed") else label


@dataclass
class Roi:
    """A box aligned to the input volume's axes, in RAS millimetres."""
    center_ras: list[float]
    size_mm: list[float]
    axes_ras: list[list[float]]  # three unit vectors (rows): the ROI's x, y, z axes in RAS

    def extent_ras(self) -> np.ndarray:
        """How far the box reaches along R, A and S (mm), whatever its axes."""
        return np.abs(np.asarray(self.axes_ras)).T @ np.asarray(self.size_mm)

    def contains(self, ras, tolerance_mm: float = 0.0) -> bool:
        d = np.asarray(ras, float) - np.asarray(self.center_ras)
        local = np.asarray(self.axes_ras) @ d
        return bool(np.all(np.abs(local) <= np.asarray(self.size_mm) / 2 + tolerance_mm))


@dataclass
class Finding:
    kind: str  # "fracture" | "vertebra" | "disc"
    label: str  # e.g. "wedge", "vertebral body"
    confidence: float
    roi: Roi
    level: str | None = None
    segment_value: int = 0  # label value in the result labelmap (0: none)
    source: list[str] = field(default_factory=list)  # which bundle(s) found it
    slices: list[int] = field(default_factory=list)  # the analysed slices it spans
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        d = {"kind": self.kind, "label": self.label, "level": self.level,
             "confidence": round(float(self.confidence), 4), "roi": asdict(self.roi),
             "source": self.source, "segment_value": self.segment_value}
        d.update(self.extra)
        return d


@dataclass
class Segment:
    value: int
    name: str
    color: tuple[float, float, float]
    code: dict | None = None  # terminology: {"category": (scheme, value, meaning), "type": (...)}


@dataclass
class VertebraRow(MutableMapping):
    """One row of findings.json `vertebrae`. The name shown (`level`), the rank the morphometry saw
    before levels were named (`position`) and how the row was made (`method`) are fields; the rest
    (the measurement's status, heights, grade; the ROI; where the level came from) is `data`.
    Reads and writes like its JSON (row["genant_grade"]), so writers and tests see one shape."""
    method: str
    level: str | None = None
    position: str | int | None = None
    data: dict = field(default_factory=dict)
    kind: str = "vertebra"

    NAMED = ("kind", "level", "position", "method")

    @classmethod
    def from_json(cls, flat: dict) -> "VertebraRow":
        flat = dict(flat)
        return cls(**{k: flat.pop(k) for k in cls.NAMED if k in flat}, data=flat)

    def to_json(self) -> dict:
        named = {"kind": self.kind, "level": self.level, "position": self.position, "method": self.method}
        return {**{k: v for k, v in named.items() if v is not None or k == "level"}, **self.data}

    def __getitem__(self, key):
        return self.to_json()[key]

    def __setitem__(self, key, value) -> None:
        if key in self.NAMED:
            setattr(self, key, value)
        else:
            self.data[key] = value

    def __delitem__(self, key) -> None:
        if key in self.NAMED:
            raise KeyError(f"{key} is a field of every row")
        del self.data[key]

    def __iter__(self):
        return iter(self.to_json())

    def __len__(self) -> int:
        return len(self.to_json())


@dataclass
class Results:
    """What one analysis of one volume wrote: every writer (files, scene, report, DICOM) reads only
    this. The stages' working state lives in run_state.RunState, which turns into a Results."""
    case: str
    labelmap: np.ndarray  # [k, j, i] uint8 segment values, on the input volume's grid
    ijk_to_ras: np.ndarray
    segments: list[Segment]
    findings: list[Finding]
    timing_s: dict = field(default_factory=dict)
    bundles: list[dict] = field(default_factory=list)  # name, version, clinical_use of each bundle run
    warnings: list[str] = field(default_factory=list)
    modality: str = "unknown"
    vertebrae: list[VertebraRow] = field(default_factory=list)  # one per vertebra (morphometry, level)
    patient: dict | None = None  # RSNA 2022-style per-level and overall fracture probability
    levels_check: dict | None = None  # how the level classifier and the body count agreed
    lumbar: dict | None = None  # which sagittal slices the lumbar MR models analysed
    spine_prior: dict | None = None  # the spinal canal found on CT and what it ruled out
    dicom_series: dict | None = None  # which series of a multi-series DICOM folder was analysed, and why
    radiograph: dict | None = None  # a radiograph's spacing, view, how its levels were named

    def to_json(self) -> dict:
        return {"schema_version": SCHEMA_VERSION, "case": self.case, "modality": self.modality,
                "findings": [f.to_json() for f in self.findings],
                "vertebrae": [r.to_json() for r in self.vertebrae],
                **({"patient": self.patient} if self.patient else {}),
                **({"levels_check": self.levels_check} if self.levels_check else {}),
                **({"lumbar": self.lumbar} if self.lumbar else {}),
                **({"spine_prior": self.spine_prior} if self.spine_prior else {}),
                **({"dicom_series": self.dicom_series} if self.dicom_series else {}),
                **({"radiograph": self.radiograph} if self.radiograph else {}),
                "segments": [{"value": s.value, "name": s.name} for s in self.segments],
                "bundles": self.bundles, "warnings": self.warnings,
                "timing_s": {k: round(float(v), 4) for k, v in self.timing_s.items()}}
