"""Shared helpers for the benchmark scripts (they print JSON; they are not timed tests)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "SpineFractureAI"))


def emit(result: dict) -> None:
    print(json.dumps(result, indent=1))


def demo_bundle(name: str = "fracture-seg-demo") -> Path:
    return REPO / "Resources" / "Models" / name
