"""Segment names, colours and standard codes (SNOMED CT, as Slicer's terminologies use)."""
from __future__ import annotations

from .results import Segment

_SCT = "SCT"
# The fracture model's classes (seed 000's EVOSG types and the intact body), in its output order.
FRACTURE_SEG_CLASSES = ["vertebral body", "wedge", "biconcave", "crush"]
# name -> (colour, category code, type code); codes as (scheme, value, meaning)
# Codes are those pydicom ships (pydicom.sr.codedict), so DICOM SEG/SR readers know them.
VERTEBRA = (_SCT, "51282000", "Vertebra")  # no SNOMED CT "vertebral body" in pydicom's list
SPINAL_CANAL = (_SCT, "61853006", "Vertebral canal")
INTERVERTEBRAL_DISC = (_SCT, "360499006", "Intervertebral disc")
_TABLE = {
    # Bodies before their level is known; per-level segments: segment_for_body.
    "vertebral body": ((0.95, 0.85, 0.57), (_SCT, "123037004", "Anatomical Structure"), VERTEBRA),
    "wedge": ((0.90, 0.45, 0.10), (_SCT, "49755003", "Morphologically Altered Structure"),
              (_SCT, "125605004", "Fracture of bone")),
    "biconcave": ((0.85, 0.20, 0.55), (_SCT, "49755003", "Morphologically Altered Structure"),
                  (_SCT, "125605004", "Fracture of bone")),
    "crush": ((0.85, 0.10, 0.10), (_SCT, "49755003", "Morphologically Altered Structure"),
              (_SCT, "125605004", "Fracture of bone")),
}


# DICOM CID 7603-style anatomy codes per level, as Slicer's anchors and TotalSegmentator use them.
VERTEBRA_CODE = {
    "C1": "14806007", "C2": "39976000", "C3": "113205007", "C4": "5329002", "C5": "36978003",
    "C6": "36054005", "C7": "87391001", "T1": "64864005", "T2": "53733008", "T3": "1626008",
    "T4": "73071006", "T5": "56401006", "T6": "45296009", "T7": "62487009", "T8": "11068009",
    "T9": "82687006", "T10": "7610001", "T11": "12989004", "T12": "23215003", "L1": "66794005",
    "L2": "14293000", "L3": "36470004", "L4": "11994002", "L5": "49668003",
}
ANATOMICAL_STRUCTURE = (_SCT, "123037004", "Anatomical Structure")
FRACTURE_CODES = ((_SCT, "49755003", "Morphologically Altered Structure"), (_SCT, "125605004", "Fracture of bone"))
# Neighbouring levels alternate in brightness so adjacent bodies stay apart in the views.
_REGION_COLOUR = {"C": (0.55, 0.75, 0.95), "T": (0.60, 0.90, 0.60), "L": (0.95, 0.85, 0.50), "S": (0.80, 0.70, 0.90)}


def vertebra_code(level: str):
    if level == "S1":
        return (_SCT, "54735007", "Sacrum")
    return (_SCT, VERTEBRA_CODE[level], f"{level} vertebra")


def segment_for_body(level: str, label: str, value: int) -> Segment:
    """A vertebral body named by level: intact -> "L1 vertebral body" (anatomy code of L1);
    fractured -> "L1 wedge fracture" (fracture code, anatomic region L1)."""
    if label == "vertebral body":
        base = _REGION_COLOUR[level[0]]
        shade = 1.0 if int(level[1:]) % 2 else 0.8
        return Segment(value, f"{level} vertebral body", tuple(round(c * shade, 3) for c in base),
                       {"category": ANATOMICAL_STRUCTURE, "type": vertebra_code(level)})
    colour = _TABLE.get(label, ((0.9, 0.2, 0.2),))[0]
    name = f"{level} fracture" if label == "fracture" else f"{level} {label} fracture"
    return Segment(value, name, colour, {"category": FRACTURE_CODES[0], "type": FRACTURE_CODES[1],
                                         "region": vertebra_code(level)})


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
    region = "^".join(segment.code["region"]) if segment.code.get("region") else "^^"
    return (f"Segmentation category and type - 3D Slicer General Anatomy list~{cat[0]}^{cat[1]}^{cat[2]}"
            f"~{typ[0]}^{typ[1]}^{typ[2]}~^^~Anatomic codes - DICOM master list~{region}~^^")
