"""The Slicer shell: the .ui has every widget the module names; CMake lists every file."""
from __future__ import annotations

import ast
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from SpineFractureAILib.paths import resources_dir

REPO = Path(__file__).resolve().parents[1]
MODULE = REPO / "SpineFractureAI" / "SpineFractureAI.py"


def test_every_widget_the_module_names_is_in_the_ui():
    names = {w.get("name") for w in ET.parse(REPO / "Resources/UI/SpineFractureAI.ui").iter("widget")}
    panel = (REPO / "SpineFractureAI" / "SpineFractureAILib" / "slicer" / "panel.py").read_text()
    used = set(re.findall(r"self\.ui\.(\w+)", MODULE.read_text() + panel))
    used |= set(re.findall(r'"(\w+CheckBox)"', panel))  # the analyses' boxes, named in a table
    assert used and used <= names, used - names


def test_cmake_lists_exist_and_cover_every_script():
    cmake = (REPO / "SpineFractureAI" / "CMakeLists.txt").read_text()
    listed = set(re.findall(r"^\s+([\w./${}-]+\.(?:py|ui|png|json|pt|safetensors|csv))\s*$", cmake, re.M))
    listed = {p.replace("${MODULE_NAME}", "SpineFractureAI") for p in listed}
    for rel in listed:
        assert (REPO / "SpineFractureAI" / rel).resolve().is_file(), rel
    scripts = {str(p.relative_to(REPO / "SpineFractureAI")) for p in (REPO / "SpineFractureAI").rglob("*.py")}
    assert scripts <= listed, scripts - listed
    resources = {"../" + str(p.relative_to(REPO)) for p in (REPO / "Resources").rglob("*") if p.is_file()}
    assert resources <= listed, resources - listed  # the installed extension ships every resource
    assert "slicerMacroBuildScriptedModule" in cmake and "slicer_add_python_unittest" in cmake
    assert "add_subdirectory(SpineFractureAI)" in (REPO / "CMakeLists.txt").read_text()


def test_module_file_is_thin_and_defines_the_four_classes():
    tree = ast.parse(MODULE.read_text())
    classes = {n.name for n in tree.body if isinstance(n, ast.ClassDef)}
    assert {"SpineFractureAI", "SpineFractureAIWidget", "SpineFractureAILogic", "SpineFractureAITest"} <= classes
    assert len(MODULE.read_text().splitlines()) < 120
    # importable before torch is installed: only pure-Python library modules at the top
    top = {n.module for n in tree.body if isinstance(n, ast.ImportFrom) and n.module}
    assert {m for m in top if m.startswith("SpineFractureAILib")} <= {
        "SpineFractureAILib.paths"}


def test_resources_resolve_in_source_tree_and_installed_layout(tmp_path, monkeypatch):
    assert resources_dir() == REPO / "Resources"
    # installed: qt-scripted-modules/SpineFractureAILib + ../Resources one level above the module
    import SpineFractureAILib.paths as paths

    lib = tmp_path / "lib" / "qt-scripted-modules" / "SpineFractureAILib"
    lib.mkdir(parents=True)
    (tmp_path / "lib" / "Resources" / "UI").mkdir(parents=True)
    monkeypatch.setattr(paths, "_LIB", lib)
    assert paths.resources_dir() == tmp_path / "lib" / "Resources"
