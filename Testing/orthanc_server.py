"""A real Orthanc (Debian's `orthanc` + `orthanc-dicomweb`, installed by .ci/run) on localhost with a
throw-away storage folder and basic auth, started for a test and stopped after it."""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import requests

PLUGIN_DIRS = ["/usr/share/orthanc/plugins", "/usr/lib/orthanc"]
USER, PASSWORD = "radiology", "s3cret"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dicomweb_plugin() -> str:
    for folder in PLUGIN_DIRS:
        for path in sorted(Path(folder).glob("libOrthancDicomWeb.so*")):
            return str(path)
    raise AssertionError("the Orthanc DICOMweb plugin is not installed (apt-get install orthanc-dicomweb; .ci/run does)")


@contextmanager
def orthanc(folder: Path):
    """Yields (base URL, DICOMweb URL, auth)."""
    binary = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
    assert Path(binary).exists(), "Orthanc is not installed (apt-get install orthanc; .ci/run does)"
    http, dicom = _free_port(), _free_port()
    storage = folder / "orthanc-storage"
    storage.mkdir(parents=True)
    config = {"Name": "SpineFractureAITest", "StorageDirectory": str(storage), "IndexDirectory": str(storage),
              "HttpPort": http, "DicomPort": dicom, "RemoteAccessAllowed": False, "AuthenticationEnabled": True,
              "RegisteredUsers": {USER: PASSWORD}, "Plugins": [_dicomweb_plugin()],
              "DicomWeb": {"Enable": True, "Root": "/dicom-web/"}, "StableAge": 1}
    (folder / "orthanc.json").write_text(json.dumps(config))
    log = open(folder / "orthanc.log", "w")
    process = subprocess.Popen([binary, str(folder / "orthanc.json")], stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{http}"
    try:
        for _ in range(200):
            if process.poll() is not None:
                raise AssertionError(f"Orthanc exited: {(folder / 'orthanc.log').read_text()[-2000:]}")
            try:
                if requests.get(f"{base}/system", auth=(USER, PASSWORD), timeout=1).ok:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        else:
            raise AssertionError("Orthanc did not answer within 20 s")
        yield base, f"{base}/dicom-web", (USER, PASSWORD)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
