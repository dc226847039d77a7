"""A self-contained HTML report per case: key sagittal images with findings outlined and the
six-point heights drawn, the findings and vertebrae tables, bundle versions and timing."""
from __future__ import annotations

import base64
import html
from pathlib import Path

import cv2
import numpy as np

from .bundles import NOT_CLINICAL
from .radiograph.report_image import radiograph_figure
from .results import Results, shown_label, shown_level
from .slicing import Intensity, SliceStack, make_stack, plan_stack, sample_labels
from .volume import Volume

COLOURS = {"wedge": (0, 140, 255), "biconcave": (180, 60, 220), "crush": (40, 40, 230)}


def key_slices(volume: Volume, results: Results, size: int = 384) -> list[tuple[str, np.ndarray]]:
    """One sagittal image per finding (through its ROI centre), or the mid-sagittal slice."""
    window = Intensity("ct_window", -250, 1250) if volume.modality == "ct" else Intensity("percentile", 1, 99.5)
    m, n, pixel, slice_mm = plan_stack(volume, "sagittal", size, 1.0)
    planned = SliceStack(np.zeros((n, 1, 1), np.uint8), m, "sagittal", pixel, slice_mm)  # geometry only
    labels = Volume(results.labelmap, results.ijk_to_ras)
    wanted = [(f"{f.level or ''} {f.label} {f.confidence:.2f}".strip(), f.roi.center_ras, f.segment_value)
              for f in results.findings]
    names = [(r["level"], r["roi"]["center_ras"]) for r in results.vertebrae if r.get("roi") and r.get("level")]
    names += [(f.level, f.roi.center_ras) for f in results.findings if f.kind == "disc" and f.level]
    if not wanted:
        centre = volume.ijk_to_ras_points(np.array(volume.shape_ijk) / 2)[0]
        wanted = [("mid-sagittal", centre, 0)]
    images = []
    for title, centre, value in wanted[:6]:
        s = int(np.clip(np.rint(planned.from_ras([centre])[0][2]), 0, n - 1))
        stack = make_stack(volume, "sagittal", size, window, slice_mm=1.0, slices=range(s, s + 1))
        img = cv2.cvtColor(stack.images[0], cv2.COLOR_GRAY2BGR)
        seg = sample_labels(labels, stack)[0]
        for v in np.unique(seg[seg > 0]):
            contours, _ = cv2.findContours((seg == v).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            colour = (0, 255, 0) if v != value else (0, 0, 255)
            cv2.drawContours(img, contours, -1, colour, 1)
        for row in results.vertebrae:
            kps = row.get("keypoints_ras") or []
            if len(kps) != 6:
                continue
            px = stack.from_ras(np.array(kps))
            if np.abs(px[:, 2]).max() * stack.slice_mm > 8:
                continue  # this body's mid-plane is not on this slice
            for k in range(3):
                a, b = px[k, :2].astype(int), px[k + 3, :2].astype(int)
                cv2.line(img, tuple(a), tuple(b), (255, 200, 0), 1)
        for name, centre in names:  # level labels in front of (anterior to) each body and disc
            col, row, depth = stack.from_ras([centre])[0]
            if abs(depth) * stack.slice_mm <= 15 and 0 <= row < size:
                cv2.putText(img, name, (int(max(col - 45, 0)), int(row) + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.35,
                            (0, 255, 255), 1, cv2.LINE_AA)
        images.append((title, img))
    return images


COUNTS = ("slices",)  # timing_s also counts slices: not seconds


def _mm(value) -> str:
    return f"{value:.1f}" if isinstance(value, (int, float)) else ""


def _or_blank(value) -> str:
    return "" if value is None else str(value)


def _grade(row: dict) -> str:
    """The Genant grade, and the grades its height uncertainty allows when they differ (coarse voxels)."""
    grade, allowed = row.get("genant_grade"), row.get("genant_grade_range")
    return _or_blank(grade) + (f" (could be {allowed[0]}-{allowed[1]})" if allowed else "")


def _age(extra: dict) -> str:
    """A radiograph fracture's age call and its probability of being fresh (blank elsewhere)."""
    return f"{extra['age']} ({extra['age_probability']:.2f})" if extra.get("age") else ""


def _png(img: np.ndarray) -> str:
    ok, buf = cv2.imencode(".png", img)
    return base64.b64encode(buf.tobytes()).decode()


def write_report(volume: Volume, results: Results, path: str | Path) -> Path:
    e = html.escape
    rows = "".join(f"<tr><td>{e(f.kind)}</td><td>{e(shown_level(f.level, f.extra.get('level_certainty')))}</td>"
                   f"<td>{e(shown_label(f.label, f.extra))}</td>"
                   f"<td>{f.confidence:.2f}</td><td>{e(', '.join(f.source))}</td>"
                   f"<td>{e(str(f.extra.get('morphometry', {}).get('genant_grade', '')))}</td>"
                   f"<td>{e(_age(f.extra))}</td></tr>"
                   for f in results.findings) or "<tr><td colspan=7>no findings</td></tr>"
    vrows = "".join(f"<tr><td>{e(shown_level(v['level'], v.get('level_certainty')) or '#' + str(v.get('position', '')))}</td>"
                    f"<td>{e(v['status'])}</td>"
                    + "".join(f"<td>{_mm((v.get('heights_mm') or {}).get(k))}</td>" for k in ("anterior", "middle", "posterior"))
                    + f"<td>{_mm(v.get('height_uncertainty_mm'))}</td>"
                    + f"<td>{e(_grade(v))}</td><td>{e(str(v.get('type') or ''))}</td>"
                    f"<td>{_or_blank(v.get('fracture_probability'))}</td></tr>"
                    for v in results.vertebrae)
    figures = "".join(f"<figure><img src='data:image/png;base64,{_png(img)}'><figcaption>{e(t)}</figcaption></figure>"
                      for t, img in (radiograph_figure(volume, results) if volume.modality == "xr"
                                     else key_slices(volume, results)))
    bundles = "".join(f"<li>{e(b['name'])} {e(b['version'])}: {e(b.get('clinical_use', ''))}</li>" for b in results.bundles)
    timing = ", ".join(f"{k} {v:.2f}" for k, v in results.timing_s.items() if k not in COUNTS)
    demo = any(NOT_CLINICAL in b.get("clinical_use", "") for b in results.bundles)
    banner = f"<p class='warn'><b>{NOT_CLINICAL}</b>: demo model weights ran.</p>" if demo else ""
    warnings = "".join(f"<li>{e(w)}</li>" for w in results.warnings)
    warnings = f"<div class='warn'><b>Warnings: read before the findings</b><ul>{warnings}</ul></div>" if warnings else ""
    caveats = sorted({f.extra["herniation_model"] for f in results.findings if "herniation_model" in f.extra})
    caveats = "".join(f"<p>Herniation model: {e(c)}.</p>" for c in caveats)
    page = f"""<!doctype html><html><head><meta charset='utf-8'><title>{e(results.case)} spine findings</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px}}
figure{{display:inline-block;margin:0 1em 1em 0}}.warn{{color:#b00000}}</style></head><body>
{banner}
<h1>{e(results.case)}: spine findings ({e(results.modality.upper())})</h1>
{warnings}
<p><b>Decision support only.</b> Findings outlined in red, other vertebral bodies in green, the six-point heights in blue.</p>
{figures}
<h2>Findings</h2><table><tr><th>kind</th><th>level</th><th>finding</th><th>confidence</th><th>source</th><th>Genant grade</th><th>age (p fresh)</th></tr>{rows}</table>
{caveats}
<h2>Vertebrae</h2><table><tr><th>vertebra</th><th>status</th><th>Ha mm</th><th>Hm mm</th><th>Hp mm</th><th>± mm</th><th>grade</th><th>type</th><th>fracture probability</th></tr>{vrows}</table>
<h2>Models</h2><ul>{bundles}</ul><p>Timing (s): {e(timing)}</p></body></html>"""
    path = Path(path)
    path.write_text(page, encoding="utf-8")  # the page declares utf-8; the locale may be ASCII
    return path
