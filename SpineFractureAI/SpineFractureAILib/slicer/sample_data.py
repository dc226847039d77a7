"""The self-test's sample: a phantom with a known L1 wedge, written locally and registered with
Slicer's SampleData module through a file:// URI and its checksum (no network)."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

from ..bundles import sha256_of
from ..phantom import make_phantom, write_phantom

SAMPLE_NAME = "SpinePhantomL1Wedge"
SAMPLE_ARGS = dict(levels="T10-L3", modality="ct", fractures=["L1:wedge:3"], herniations=[], seed=4242)


def phantom_sample(folder: str | Path | None = None) -> tuple[Path, dict]:
    """(image path, truth) of the sample phantom, written once into folder (default: temp dir)."""
    folder = Path(folder or Path(tempfile.gettempdir()) / "SpineFractureAI-sample")
    image = folder / f"{SAMPLE_NAME}.nii.gz"
    truth_path = folder / f"{SAMPLE_NAME}.truth.json"
    if not (image.exists() and truth_path.exists()):
        write_phantom(make_phantom(**SAMPLE_ARGS), image)
    truth = json.loads(truth_path.read_text())
    truth["sha256"] = sha256_of(image)
    return image, truth


def register_sample(sample_data_module, folder=None) -> dict:
    """Register the phantom with SampleData; returns its truth (with the file's checksum)."""
    image, truth = phantom_sample(folder)
    sample_data_module.SampleDataLogic.registerCustomSampleDataSource(
        category="SpineFractureAI", sampleName=SAMPLE_NAME, uris=image.resolve().as_uri(),
        fileNames=f"{SAMPLE_NAME}.nii.gz", nodeNames=SAMPLE_NAME, loadFileType="VolumeFile",
        checksums=f"SHA256:{truth['sha256']}")
    return truth
