"""A full disk: `analyze`, `phantom` and `morphometry` end with a one-line error (exit 2) and leave
nothing half-written. A real tmpfs of a few KiB is mounted for each test (CI runs as root)."""
from __future__ import annotations

import subprocess

import pytest

from SpineFractureAILib.cli import main
from SpineFractureAILib.phantom import make_phantom, write_phantom


@pytest.fixture()
def tiny_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48k", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def _errors(capsys):
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("spinefracture: error:")]


def test_analyze_on_a_full_disk(tmp_path, tiny_disk, capsys):
    paths = write_phantom(make_phantom("L1-L2", "ct", [], [], seed=11, spacing=(1.5, 1.5, 2.0)), tmp_path / "ct.nii.gz")
    code = main(["analyze", paths["image"], "--out", str(tiny_disk / "out")])
    errors = _errors(capsys)
    assert code == 2 and len(errors) == 1 and "No space left" in errors[0]
    assert [p.name for p in tiny_disk.rglob("*") if p.is_file()] == []  # no partial file, no staging left


def test_phantom_on_a_full_disk(tiny_disk, capsys):
    code = main(["phantom", str(tiny_disk / "p.nii.gz"), "--levels", "T10-L3"])
    assert code == 2 and "No space left" in _errors(capsys)[0]
    assert list(tiny_disk.iterdir()) == []  # no 0-byte image, no image without its labels and truth
