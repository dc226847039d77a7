"""Studies from a DICOMweb server (a PACS, Orthanc, ...): which series to analyse, fetched to a
folder; results (DICOM SEG + SR) stored back into the same study.

Series rule (recorded per case): CT first — the axial or sagittal CT series with the thinnest
slices, ties to the most images; else MR — a sagittal T2 series (description names T2), ties to
the most images, else the sagittal MR series with the most images. SEG, SR, localisers and series
of fewer than MIN_IMAGES images are never chosen."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pydicom
import requests
from dicomweb_client.api import DICOMwebClient

from .atomic import staged

MIN_IMAGES = 10
SERIES_RULE = ("CT: the axial or sagittal series with the thinnest slices (ties: most images); else MR: a sagittal "
               "T2 series (ties: most images), else the sagittal MR series with most images; at least "
               f"{MIN_IMAGES} images; SEG/SR/localisers never")
_TAG = {"modality": "00080060", "series_uid": "0020000E", "description": "0008103E", "count": "00201209",
        "thickness": "00180050", "orientation": "00200037", "study_uid": "0020000D"}


class DicomwebError(ValueError):
    """The server could not be reached or has nothing to analyse."""


def connect(url: str, token: str | None = None, user: str | None = None, password: str | None = None,
            ca_bundle: str | None = None) -> DICOMwebClient:
    """A client with bearer-token or basic auth; `ca_bundle`: the CA file that signs the server's TLS certificate."""
    session = requests.Session()
    if user is not None:
        session.auth = (user, password or "")
    if token:
        session.headers["Authorization"] = f"Bearer {token}"
    if ca_bundle:
        session.verify = ca_bundle
    return DICOMwebClient(url, session=session, timeout=120)


def _value(item: dict, key: str, default=None):
    values = item.get(_TAG[key], {}).get("Value")
    return values[0] if values else default


def _values(item: dict, key: str) -> list:
    return item.get(_TAG[key], {}).get("Value") or []


def study_uids(client: DICOMwebClient, wanted: list[str] | None = None) -> list[str]:
    if wanted:
        return list(wanted)
    try:
        return [_value(s, "study_uid") for s in client.search_for_studies(get_remaining=True)]
    except requests.RequestException as err:
        raise DicomwebError(f"{client.base_url}: cannot list studies ({err})") from None


def _plane(orientation: list) -> str:
    if len(orientation) != 6:
        return "unknown"
    normal = np.abs(np.cross(np.asarray(orientation[:3], float), np.asarray(orientation[3:], float)))
    return ("sagittal", "coronal", "axial")[int(np.argmax(normal))]


def choose_series(client: DICOMwebClient, study_uid: str) -> dict:
    """{"series_uid", "modality", "rule", "candidates"} for one study, by SERIES_RULE."""
    candidates = []
    for s in client.search_for_series(study_uid, get_remaining=True):
        modality, uid = _value(s, "modality", ""), _value(s, "series_uid")
        if modality not in ("CT", "MR"):
            continue
        first = client.search_for_instances(study_uid, uid, limit=1, fields=[_TAG["thickness"], _TAG["orientation"]])
        count = _value(s, "count") or len(client.search_for_instances(study_uid, uid, get_remaining=True))
        description = str(_value(s, "description", "") or "")
        candidates.append({"series_uid": uid, "modality": modality, "images": int(count),
                           "description": description,
                           "slice_mm": float(_value(first[0], "thickness", 0) or 0) if first else 0.0,
                           "plane": _plane(_values(first[0], "orientation")) if first else "unknown"})
    usable = [c for c in candidates if c["images"] >= MIN_IMAGES and "LOCALI" not in c["description"].upper()]
    ct = [c for c in usable if c["modality"] == "CT" and c["plane"] in ("axial", "sagittal")]
    mr = [c for c in usable if c["modality"] == "MR" and c["plane"] == "sagittal"]
    t2 = [c for c in mr if re.search(r"\bT2", c["description"].upper())]
    if ct:
        chosen = min(ct, key=lambda c: (c["slice_mm"] or 99, -c["images"]))
    elif t2 or mr:
        chosen = max(t2 or mr, key=lambda c: c["images"])
    else:
        raise DicomwebError(f"study {study_uid}: no CT or sagittal MR series of at least {MIN_IMAGES} images")
    return {"series_uid": chosen["series_uid"], "modality": chosen["modality"], "rule": SERIES_RULE,
            "candidates": candidates}


def fetch_series(client: DICOMwebClient, study_uid: str, series_uid: str, folder: Path) -> list[Path]:
    """The series' instances as files in `folder` (each written atomically)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for ds in client.retrieve_series(study_uid, series_uid):
        path = folder / f"{ds.SOPInstanceUID}.dcm"
        with staged(path) as tmp:
            ds.save_as(tmp, enforce_file_format=True)
        written.append(path)
    if not written:
        raise DicomwebError(f"series {series_uid}: the server returned no instances")
    return written


def push(client: DICOMwebClient, files: list[str | Path], study_uid: str) -> None:
    """Store the DICOM SEG/SR (and a re-identified source copy, when one was made) in the study."""
    client.store_instances([pydicom.dcmread(f) for f in files], study_instance_uid=study_uid)
