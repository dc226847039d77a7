"""The bottom of the house: how an analysis reports progress and how it is cancelled. Imports nothing
of ours, so every stage can use it without a cycle."""
from __future__ import annotations

from typing import Callable

Progress = Callable[[str, float], None]  # (stage, fraction 0..1)


class Cancelled(Exception):
    """Raised between stages when the caller's cancel flag is set."""
