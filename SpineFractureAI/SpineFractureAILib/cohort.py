"""The cohort table of a batch: one row per vertebra and per finding of every finished case
(Parquet and CSV), and a summary (cases, failures, prevalence of grade >= 2 fractures)."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .atomic import staged, write_text

COLUMNS = ["case", "row", "kind", "level", "label", "genant_grade", "type", "fracture_probability", "confidence",
           "herniated", "herniation_probability", "warnings", "seconds"]


def case_rows(case: str, findings: dict) -> list[dict]:
    warnings = " | ".join(findings.get("warnings", []))
    seconds = round(sum(v for k, v in findings.get("timing_s", {}).items() if k != "slices"), 3)
    base = {"case": case, "warnings": warnings, "seconds": seconds}
    rows = []
    for v in findings.get("vertebrae", []):
        rows.append({**base, "row": "vertebra", "kind": "vertebra", "level": v.get("level"), "label": v.get("status"),
                     "genant_grade": v.get("genant_grade"), "type": v.get("type"),
                     "fracture_probability": v.get("fracture_probability")})
    for f in findings.get("findings", []):
        disc = f.get("kind") == "disc"
        morph = f.get("morphometry") or {}
        rows.append({**base, "row": "finding", "kind": f.get("kind"), "level": f.get("level"), "label": f.get("label"),
                     "genant_grade": morph.get("genant_grade"), "type": f.get("label") if f.get("kind") == "fracture"
                     else None, "confidence": f.get("confidence"),
                     "herniated": f.get("herniated") if disc else None,
                     "herniation_probability": f.get("probability") if disc else None})
    if not rows:  # a case with nothing found still has its row: it was analysed
        rows.append({**base, "row": "case", "kind": None, "label": "no vertebra or finding"})
    return [{c: r.get(c) for c in COLUMNS} for r in rows]


def summarise(out_dir: Path, cases: list[str], failures: dict[str, str]) -> tuple[list[dict], dict]:
    rows, analysed, fractured = [], 0, 0
    for case in cases:
        path = out_dir / case / "findings.json"
        if not path.exists():
            continue
        findings = json.loads(path.read_text(encoding="utf-8"))
        analysed += 1
        grades = [v.get("genant_grade") or 0 for v in findings.get("vertebrae", [])]
        grades += [(f.get("morphometry") or {}).get("genant_grade") or 0 for f in findings.get("findings", [])
                   if f.get("kind") == "fracture"]
        fractured += max(grades, default=0) >= 2
        rows += case_rows(case, findings)
    summary = {"cases": len(cases), "analysed": analysed, "failed": len(failures), "failures": failures,
               "vertebra_rows": sum(r["row"] == "vertebra" for r in rows),
               "finding_rows": sum(r["row"] == "finding" for r in rows),
               "cases_with_grade_2_3_fracture": fractured,
               "prevalence_grade_2_3": round(fractured / analysed, 4) if analysed else None}
    return rows, summary


def write_cohort(out_dir: Path, rows: list[dict], summary: dict) -> dict[str, str]:
    """cohort.parquet, cohort.csv and summary.json, each written atomically."""
    paths = {"parquet": out_dir / "cohort.parquet", "csv": out_dir / "cohort.csv", "summary": out_dir / "summary.json"}
    table = pa.Table.from_pylist(rows, schema=pa.schema([
        ("case", pa.string()), ("row", pa.string()), ("kind", pa.string()), ("level", pa.string()),
        ("label", pa.string()), ("genant_grade", pa.int64()), ("type", pa.string()),
        ("fracture_probability", pa.float64()), ("confidence", pa.float64()), ("herniated", pa.bool_()),
        ("herniation_probability", pa.float64()), ("warnings", pa.string()), ("seconds", pa.float64())]))
    with staged(paths["parquet"]) as tmp:
        pq.write_table(table, tmp)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    write_text(paths["csv"], text.getvalue())
    write_text(paths["summary"], json.dumps(summary, indent=1))
    return {k: str(v) for k, v in paths.items()}
