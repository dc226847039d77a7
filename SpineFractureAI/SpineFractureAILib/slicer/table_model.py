"""The panel's results table without Qt: rows, cells, jump targets and accept/reject reviews.

Reviews are stored as an attribute on the finding's ROI node, so they are saved with the scene
and read back by the training-label export."""
from __future__ import annotations

from dataclasses import dataclass

from ..results import shown_label, shown_level

REVIEW_ATTRIBUTE = "SpineFractureAI.Review"
COLUMNS = ("level", "finding", "type", "Genant grade", "confidence", "review")


@dataclass
class Row:
    kind: str
    level: str
    finding: str
    type: str
    grade: str
    confidence: str
    center_ras: list
    roi_node: object = None

    @property
    def review(self) -> str:
        return (self.roi_node.GetAttribute(REVIEW_ATTRIBUTE) or "") if self.roi_node is not None else ""


class ResultsTable:
    def __init__(self, outputs, results):
        # Warnings first: a run that could not analyse what was asked must not read as a clean scan.
        self.rows: list[Row] = [Row("warning", "", f"warning: {w}", "", "", "", None) for w in results.warnings]
        for finding, roi in zip(results.findings, outputs.rois):
            if finding.kind == "disc":  # lumbar MR: herniated or not, with its probability
                self.rows.append(Row("disc", finding.level or "", shown_label(finding.label, finding.extra), "", "",
                                     f"{finding.extra.get('probability', finding.confidence):.2f}",
                                     finding.roi.center_ras, roi))
                continue
            morph = finding.extra.get("morphometry") or {}
            age = f" ({finding.extra['age']}, p fresh {finding.extra['age_probability']:.2f})" \
                if finding.extra.get("age") else ""  # a radiograph's fracture age
            level = shown_level(finding.level, finding.extra.get("level_certainty"))
            self.rows.append(Row("fracture", level, f"{finding.label} fracture{age}", morph.get("type") or "",
                                 "" if morph.get("genant_grade") is None else str(morph["genant_grade"]),
                                 f"{finding.confidence:.2f}", finding.roi.center_ras, roi))
        for v in results.vertebrae:
            kps = v.get("keypoints_ras") or []
            centre = v.get("center_ras") or (v.get("roi") or {}).get("center_ras") or ([sum(p[i] for p in kps) / len(kps) for i in range(3)]
                                                                 if kps else None)
            finding = "measured" if v["status"] == "measured" else v["status"]
            p = v.get("fracture_probability")  # seed 001's per-vertebra output, when levels ran
            level = shown_level(v["level"], v.get("level_certainty")) or f"#{v.get('position', '')}"
            self.rows.append(Row("vertebra", level, finding, v.get("type") or "",
                                 "" if v.get("genant_grade") is None else str(v["genant_grade"]),
                                 "" if p is None else f"{p:.2f}", centre))

    def cell(self, r: int, c: int) -> str:
        row = self.rows[r]
        return (row.level, row.finding, row.type, row.grade, row.confidence, row.review)[c]

    def target(self, r: int):
        """(RAS point to centre the slice views on, the ROI node to select or None)."""
        return self.rows[r].center_ras, self.rows[r].roi_node

    def set_review(self, r: int, choice: str) -> None:
        if choice not in ("accepted", "rejected", ""):
            raise ValueError(f"review must be accepted or rejected, not {choice!r}")
        if self.rows[r].roi_node is None:
            raise ValueError("only findings can be accepted or rejected")
        self.rows[r].roi_node.SetAttribute(REVIEW_ATTRIBUTE, choice)


def status_text(results, elapsed_s: float) -> str:
    """The panel's one line after a run: the findings and, when any, that warnings need reading."""
    text = f"{len(results.findings)} finding(s) in {elapsed_s:.1f} s"
    if results.warnings:
        text += f"; {len(results.warnings)} warning(s), read them first: {results.warnings[0]}"
    return text
