"""The HTML report opened in a real headless browser (Debian's chromium, installed by .ci/run):
the demo report shows the disclaimer, the warnings and the outlines; a failed real-scan report shows
the disclaimer and its warnings in red."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np

from SpineFractureAILib.cli import main

WARN_BGR = np.array([0, 0, 176])  # .warn{color:#b00000}


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    assert path, "chromium is not installed (apt-get install chromium; .ci/run does)"
    return path


def _open(report: Path, tmp: Path) -> tuple[str, np.ndarray]:
    """(the DOM after rendering, a full-page screenshot as BGR)."""
    flags = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             f"--user-data-dir={tmp / 'chromium-profile'}", "--window-size=1400,5000"]
    dom = subprocess.run([_chromium(), *flags, "--dump-dom", report.as_uri()], capture_output=True, text=True, encoding="utf-8",
                         timeout=120, check=True).stdout
    shot = tmp / f"{report.parent.name}.png"
    subprocess.run([_chromium(), *flags, f"--screenshot={shot}", report.as_uri()], capture_output=True,
                   timeout=120, check=True)
    return dom, cv2.imread(str(shot))


def _near(image: np.ndarray, bgr, tolerance: int = 40) -> int:
    return int((np.abs(image.astype(int) - np.asarray(bgr)).max(axis=2) <= tolerance).sum())


def test_demo_report_in_a_browser_shows_disclaimer_warnings_and_outlines(tmp_path):
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 0
    report = next((tmp_path / "demo" / "results").glob("*/report.html"))
    dom, shot = _open(report, tmp_path)
    assert "NOT FOR CLINICAL USE" in dom
    assert "L1" in dom and "wedge" in dom
    assert shot is not None and shot.shape[0] > 500
    assert _near(shot, WARN_BGR, 30) > 200  # the red disclaimer text is rendered
    # Key images with outlines: red (the fracture) and green (other bodies) pixels in the screenshot.
    red = _near(shot, (0, 0, 255), 60)
    green = _near(shot, (0, 255, 0), 80)
    assert red > 100 and green > 100, (red, green)


def test_failed_real_scan_report_in_a_browser_shows_its_warnings_in_red(realdata, tmp_path):
    assert main(["analyze", str(realdata / "totalsegmentator" / "example_ct_dicom"), "--out", str(tmp_path)]) == 0
    dom, shot = _open(tmp_path / "example_ct_dicom" / "report.html", tmp_path)
    assert "NOT FOR CLINICAL USE" in dom
    assert "Warnings: read before the findings" in dom and "new UIDs" in dom
    assert _near(shot, WARN_BGR, 30) > 500  # disclaimer and warnings in red
