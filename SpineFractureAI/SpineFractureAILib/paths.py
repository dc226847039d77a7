"""Where Resources/ is: top level of the source tree, or where the extension installed it.

Slicer's resourcePath() only looks beside the module file; our Resources/ is the project's
top-level folder, which CMake installs one level above the scripted module.
"""
from __future__ import annotations

from pathlib import Path

_LIB = Path(__file__).resolve().parent


def resources_dir() -> Path:
    candidates = [_LIB.parent / "Resources",  # copied beside the module file
                  _LIB.parent.parent / "Resources"]  # source tree, or installed ../Resources
    for candidate in candidates:
        if (candidate / "UI").is_dir() or (candidate / "Models").is_dir():
            return candidate
    return candidates[-1]


def resource(*parts: str) -> Path:
    return resources_dir().joinpath(*parts)
