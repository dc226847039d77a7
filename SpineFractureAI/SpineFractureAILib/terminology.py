"""Segment names, colours and standard codes (SNOMED CT, as Slicer's terminologies use)."""
from __future__ import annotations

from .results import Segment

_SCT = "SCT"
# name -> (colour, category code, type code); codes as (scheme, value, meaning)
_TABLE = {
    # Per-level vertebra codes (DICOM CID 7603, e.g. C1 vertebra SCT 14806007) come with levels.
    "vertebral body": ((0.95, 0.85, 0.57), None, None),
    "wedge": ((0.90, 0.45, 0.10), (_SCT, "49755003", "Morphologically Altered Structure"),
              (_SCT, "125605004", "Fracture of bone")),
    "biconcave": ((0.85, 0.20, 0.55), (_SCT, "49755003", "Morphologically Altered Structure"),
                  (_SCT, "125605004", "Fracture of bone")),
    "crush": ((0.85, 0.10, 0.10), (_SCT, "49755003", "Morphologically Altered Structure"),
              (_SCT, "125605004", "Fracture of bone")),
}


def segment_name(class_name: str) -> str:
    return "Vertebral body" if class_name == "vertebral body" else f"{class_name.capitalize()} fracture"


def segment_for_class(class_name: str, value: int) -> Segment:
    colour, category, kind = _TABLE.get(class_name, ((0.5, 0.5, 0.5), None, None))
    code = {"category": category, "type": kind} if category else None
    return Segment(value, segment_name(class_name), colour, code)


def terminology_entry(segment: Segment) -> str:
    """Slicer's TerminologyEntry tag string for a segment (empty when it has no code)."""
    if not segment.code:
        return ""
    cat, typ = segment.code["category"], segment.code["type"]
    return (f"Segmentation category and type - 3D Slicer General Anatomy list~{cat[0]}^{cat[1]}^{cat[2]}"
            f"~{typ[0]}^{typ[1]}^{typ[2]}~^^~Anatomic codes - DICOM master list~^^~^^")
