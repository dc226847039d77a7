"""Writes that never leave half a file: write beside the target, rename over it; on any failure the
temporary file is removed and the target is as it was."""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def staged(path: str | os.PathLike):
    """Yields a temporary path beside `path`; renamed onto it only if the block succeeds."""
    path = Path(path)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | os.PathLike, text: str) -> None:
    with staged(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
