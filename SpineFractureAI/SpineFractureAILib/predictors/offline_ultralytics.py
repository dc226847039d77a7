"""Import ultralytics without it reaching the network (no hub, no font or package downloads).

Every module of ours that touches ultralytics imports it through `ultralytics_offline()`,
so the CLI, the tests and Slicer all get the same quiet, offline behaviour.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def _config_dir_with_font() -> Path:
    """A config dir whose Ultralytics/Arial.ttf exists, so plotting never downloads a font."""
    base = Path(os.environ.get("YOLO_CONFIG_DIR") or Path(tempfile.gettempdir()) / "spinefracture-yolo")
    font = base / "Ultralytics" / "Arial.ttf"
    if not font.exists():
        font.parent.mkdir(parents=True, exist_ok=True)
        try:
            import matplotlib

            source = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
            shutil.copyfile(source, font)
        except (ImportError, OSError):
            pass  # plots are off in our training; a missing font only matters to plotting
    return base


def ultralytics_offline():
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_AUTOINSTALL"] = "0"
    os.environ.setdefault("YOLO_VERBOSE", "False")
    os.environ["YOLO_CONFIG_DIR"] = str(_config_dir_with_font())
    import ultralytics  # noqa: F401  (after the environment is set)
    from ultralytics.utils import SETTINGS

    off = {k: False for k in ("sync", "hub") if SETTINGS.get(k)}
    if off:  # no analytics or hub calls, whatever an earlier user configured
        SETTINGS.update(off)
    return ultralytics
