"""No traceback, ever: random manifests, image headers and command lines end in a one-line error
(exit 2) or a normal result, within a bounded number of examples."""
from __future__ import annotations

import contextlib
import json
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from SpineFractureAILib.bundles import BundleError, bundles_for, load_bundle
from SpineFractureAILib.cli import main
from SpineFractureAILib.file_checks import FileCheckError
from SpineFractureAILib.volume import VolumeError, read_volume

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                    max_leaves=8)
KEYS = ["name", "version", "task", "architecture", "modalities", "plane", "input_size", "preprocessing",
        "classes", "weights", "thresholds", "stages", "clinical_use"]


@SETTINGS
@given(st.dictionaries(st.sampled_from(KEYS), JSON, min_size=6))
def test_random_manifests_give_bundle_errors_only(tmp_path_factory, manifest):
    folder = tmp_path_factory.mktemp("b")
    (folder / "manifest.json").write_text(json.dumps(manifest))
    try:
        bundle = load_bundle(folder)
        bundle.weight_files()
        bundles_for("ct", [str(folder)], None)
    except BundleError:
        pass


@SETTINGS
@given(st.binary(max_size=600), st.sampled_from([".nii.gz", ".nii", ".nrrd", ".mha"]))
def test_random_image_bytes_give_volume_errors_only(tmp_path_factory, data, suffix):
    path = tmp_path_factory.mktemp("i") / f"x{suffix}"
    path.write_bytes(data)
    try:
        read_volume(path)
    except (VolumeError, FileCheckError):
        pass


ARGS = st.lists(st.sampled_from(["analyze", "phantom", "bundle", "train", "morphometry", "demo", "--out",
                                 "--modality", "ct", "mr", "gpu0", "--device", "mps", "--spacing", "0", "1,1",
                                 "--levels", "Q9-Z1", "C1-S1", "--fracture", "L1:wedge:9", "--seed", "-1",
                                 "--bundle", "/nonexistent", "--analyses", "bogus", "x.nii.gz"]), max_size=6)


@SETTINGS
@given(ARGS)
def test_random_command_lines_never_trace_back(tmp_path_factory, capsys, argv):
    folder = tmp_path_factory.mktemp("cli")
    argv = [str(folder / a) if a in ("x.nii.gz",) else a for a in argv]
    if argv[:1] in (["demo"], ["train"]):
        argv = argv[:1] + ["--help"]  # these would train or run the demo: their parsing is enough
    try:
        with contextlib.chdir(folder):  # whatever a random command line writes lands here
            code = main(argv)
    except SystemExit as stop:  # argparse: usage errors exit 2, --help exits 0
        assert stop.code in (0, 2)
        return
    finally:
        capsys.readouterr()
    assert code in (0, 1, 2)
