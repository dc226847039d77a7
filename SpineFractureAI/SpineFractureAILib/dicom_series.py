"""Which series of a DICOM folder is analysed. The rule (documented, recorded in findings.json and
warned whenever a folder holds more than one series): the series with the most images; between
equally large series, the one whose neighbouring slices correlate most (anatomy, not noise or a
blank localiser). `--series UID` picks another."""
from __future__ import annotations

from pathlib import Path

import numpy as np

RULE = ("the series with the most images; ties go to the one whose neighbouring slices correlate most "
        "(anatomy, not noise); --series UID picks another")


class SeriesError(ValueError):
    """No usable series, or the one asked for is not there."""


def _slice_coherence(files: list[str]) -> float:
    """Correlation of two neighbouring middle slices: anatomy is smooth across slices, noise is not."""
    import SimpleITK as sitk

    if len(files) < 2:
        return 0.0
    mid = len(files) // 2
    a, b = (sitk.GetArrayFromImage(sitk.ReadImage(f)).astype(np.float64).ravel() for f in files[mid - 1: mid + 1])
    if a.shape != b.shape or a.std() == 0 or b.std() == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def choose_series(folder: Path, wanted: str | None = None) -> tuple[list[str], dict | None]:
    """(the chosen series' files, the choice to record, None when the folder holds one series)."""
    import SimpleITK as sitk

    ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
    if not ids:
        raise SeriesError(f"{folder}: no DICOM series in this folder")
    files = {s: list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), s)) for s in ids}
    if wanted is not None:
        if wanted not in files:
            raise SeriesError(f"{folder}: no series {wanted}; it holds {', '.join(sorted(files))}")
        chosen, rule = wanted, "chosen with --series"
    else:
        most = max(len(f) for f in files.values())
        tied = sorted(s for s in ids if len(files[s]) == most)
        chosen = max(tied, key=lambda s: _slice_coherence(files[s])) if len(tied) > 1 else tied[0]
        rule = RULE
    if len(files) == 1:
        return files[chosen], None
    return files[chosen], {"series_uid": chosen, "images": len(files[chosen]), "rule": rule,
                           "other_series": [{"series_uid": s, "images": len(f)} for s, f in sorted(files.items())
                                            if s != chosen]}
