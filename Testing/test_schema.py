"""findings.json follows Resources/findings.schema.json for every modality, and the schema rejects what
it should (issue 12: one schema the analyses extend)."""
from __future__ import annotations

import copy
import json

import jsonschema
import numpy as np
import pytest

from SpineFractureAILib.cli import main
from SpineFractureAILib.paths import resource
from SpineFractureAILib.volume import Volume, write_volume

SCHEMA = json.loads(resource("findings.schema.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    """A CT phantom with an L1 wedge, a lateral radiograph, and an MR blob without a spine."""
    tmp = tmp_path_factory.mktemp("schema")
    assert main(["phantom", str(tmp / "ct.nii.gz"), "--levels", "T12-L2", "--fracture", "L1:wedge:3", "--seed", "5"]) == 0
    assert main(["phantom", str(tmp / "film.png"), "--modality", "xr", "--fracture", "L1:crush:3:old", "--seed", "5"]) == 0
    rng = np.random.default_rng(1)
    write_volume(Volume((rng.random((20, 96, 96)) * 300).astype(np.float32), np.diag([1.0, 1.0, 4.0, 1.0]), "mr"),
                 tmp / "mr.nii.gz")
    assert main(["analyze", str(tmp / "ct.nii.gz"), str(tmp / "film.png"), str(tmp / "mr.nii.gz"),
                 "--modality", "auto", "--out", str(tmp / "out")]) == 0
    return {name: json.loads((tmp / "out" / name / "findings.json").read_text(encoding="utf-8"))
            for name in ("ct", "film", "mr")}


def test_every_modality_writes_valid_findings(cases):
    for name, found in cases.items():
        jsonschema.validate(found, SCHEMA)
    assert {c["modality"] for c in cases.values()} == {"ct", "xr", "mr"}
    assert cases["ct"]["findings"] and cases["film"]["vertebrae"]  # not vacuous: rows were checked


@pytest.mark.parametrize("break_it", [
    lambda d: d.pop("warnings"),  # an analysis that could not say what it skipped
    lambda d: d.update(schema_version="0.9"),
    lambda d: d["findings"][0]["roi"].update(center_ras=[1.0, 2.0]),
    lambda d: d["findings"][0].update(confidence=1.5),
    lambda d: d.update(modality="radiograph"),
    lambda d: d["vertebrae"][0].update(level_certainty="uncertain (maybe)"),  # a span names two levels
])
def test_the_schema_rejects_broken_findings(cases, break_it):
    broken = copy.deepcopy(cases["ct"])
    break_it(broken)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, SCHEMA)


def test_a_level_span_is_a_valid_certainty(cases):
    """Without an anchor or a whole spacing to count by, a row says the span its size allows (1.1)."""
    spanned = copy.deepcopy(cases["ct"])
    spanned["vertebrae"][0]["level_certainty"] = "uncertain (C2-L4)"
    jsonschema.validate(spanned, SCHEMA)
