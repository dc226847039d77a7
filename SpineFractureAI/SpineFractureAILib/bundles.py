"""Model bundles: a folder with manifest.json and weight files, verified before loading."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from .safe_weights import SAFE_SUFFIX

REQUIRED = ("name", "version", "task", "architecture", "modalities", "plane", "input_size",
            "preprocessing", "classes", "weights")
NOT_CLINICAL = "NOT FOR CLINICAL USE"
# The manifest fields the loader and the runners read, and their JSON types (lists: of strings).
TYPES = {"name": str, "version": str, "task": str, "architecture": str, "modalities": list, "plane": str,
         "input_size": int, "preprocessing": dict, "classes": list, "weights": list, "thresholds": dict,
         "stages": dict, "clinical_use": str}


class BundleError(ValueError):
    """A bundle that cannot be used; the message names the file and the problem."""


def first_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class Bundle:
    path: Path
    manifest: dict

    @property
    def name(self) -> str:
        return self.manifest["name"]

    @property
    def task(self) -> str:
        return self.manifest["task"]

    @property
    def classes(self) -> list[str]:
        return list(self.manifest["classes"])

    @property
    def thresholds(self) -> dict:
        return dict(self.manifest.get("thresholds", {}))

    def fits(self, modality: str) -> bool:
        return modality in self.manifest["modalities"]

    def weight_path(self, file: str) -> Path:
        """A weight file of this bundle, checked before anything reads it: a safetensors file (a
        pickle can run code), inside the bundle folder, and matching the manifest's sha256."""
        entry = next((e for e in self.manifest["weights"] if e["file"] == file), None)
        if entry is None:
            raise BundleError(f"bundle {self.name}: {file} is not listed among its weights")
        folder = self.path.resolve()
        path = (folder / file).resolve()
        if not path.is_relative_to(folder):
            raise BundleError(f"bundle {self.name}: weight file {file} lies outside the bundle folder: refusing it")
        if path.suffix != SAFE_SUFFIX:
            raise BundleError(f"bundle {self.name}: weight file {file} is not {SAFE_SUFFIX} "
                              "(pickled weights can run code): refusing to load it")
        if not path.is_file():
            raise BundleError(f"bundle {self.name}: weight file {file} is missing")
        digest = sha256_of(path)
        if digest != entry["sha256"]:
            raise BundleError(f"bundle {self.name}: {file} sha256 mismatch "
                              f"(manifest {entry['sha256'][:12]}..., file {digest[:12]}...): refusing to load it")
        return path

    def weight_files(self) -> list[Path]:
        """Every weight file, each checked by weight_path."""
        return [self.weight_path(entry["file"]) for entry in self.manifest["weights"]]

    def summary(self) -> dict:
        prov = self.manifest.get("provenance", {})
        return {"name": self.name, "version": self.manifest["version"], "task": self.task,
                "clinical_use": self.manifest.get("clinical_use", ""),
                "trained_on": prov.get("training_data", "unknown")}


def _is(value, kind, strings_only: bool) -> bool:
    """JSON type check: bools are not ints; lists hold strings (except the weights list)."""
    if isinstance(value, bool) or not isinstance(value, kind):
        return False
    return not (kind is list and strings_only) or all(isinstance(v, str) for v in value)


def load_bundle(path: str | Path) -> Bundle:
    path = Path(path)
    manifest_path = path / "manifest.json" if path.is_dir() else path
    if not manifest_path.is_file():
        raise BundleError(f"{path}: not a model bundle (no manifest.json)")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BundleError(f"{manifest_path}: manifest is not valid JSON ({err})") from None
    if not isinstance(manifest, dict):
        raise BundleError(f"{manifest_path}: manifest must be a JSON object")
    missing = [k for k in REQUIRED if k not in manifest]
    if missing:
        raise BundleError(f"{manifest_path}: manifest lacks {', '.join(missing)}")
    wrong = [k for k, kind in TYPES.items() if k in manifest and not _is(manifest[k], kind, k != "weights")]
    if wrong:
        raise BundleError(f"{manifest_path}: wrong type for {', '.join(wrong)}")
    for entry in manifest["weights"]:
        if not isinstance(entry, dict) or not {"file", "sha256"} <= set(entry) or not isinstance(entry["file"], str):
            raise BundleError(f"{manifest_path}: every weight needs a file and its sha256")
    return Bundle(manifest_path.parent, manifest)


def builtin_bundle_dir() -> Path:
    from .paths import resource

    return resource("Models")


def builtin_bundles() -> list[Bundle]:
    root = builtin_bundle_dir()
    return [load_bundle(p.parent) for p in sorted(root.glob("*/manifest.json"))]


def select_bundles(modality: str, paths: list[str] | None = None) -> list[Bundle]:
    """The bundles named, or every built-in bundle whose manifest fits the modality."""
    if paths:
        return [load_bundle(p) for p in paths]
    # Opt-in bundles (e.g. the keypoint model, which repeats what the fracture model's masks give)
    # run only when named.
    return [b for b in builtin_bundles() if b.fits(modality) and b.manifest.get("run_by_default", True)]


# The analyses a user picks (panel, --analyses) and the bundle tasks that make them; each runs where
# its bundle fits the modality.
# On MR the lumbar bundle makes the fractures too (six-point morphometry on its body segmentation).
# On a radiograph one bundle makes fractures (with their age), levels and keypoints.
ANALYSES = {"fractures": ("fracture-seg", "fracture-detect", "lumbar-mr", "radiograph-fracture"),
            "levels": ("vertebra-levels", "radiograph-fracture"), "lumbar": ("lumbar-mr",),
            "keypoints": ("vertebra-pose", "radiograph-fracture")}


def parse_analyses(analyses) -> tuple[str, ...]:
    """Analyses as a tuple of ANALYSES keys, from "fractures,levels" or a sequence of names."""
    names = tuple(a.strip() for a in (analyses.split(",") if isinstance(analyses, str) else analyses) if a.strip())
    unknown = set(names) - set(ANALYSES)
    if unknown:
        raise ValueError(f"unknown analyses {sorted(unknown)}; choose from {sorted(ANALYSES)}")
    return names


def bundles_for(modality: str, paths: list[str] | None = None,
                analyses: tuple[str, ...] | None = None) -> list[Bundle]:
    """The bundles to run: named ones or the built-ins, kept to the chosen analyses (keys of
    ANALYSES, the one vocabulary of the CLI, panel and logic; chosen opt-in built-ins run too)."""
    if analyses is not None:
        wanted = {task for a in analyses for task in ANALYSES[a]}
        pool = select_bundles(modality, paths) if paths else [b for b in builtin_bundles() if b.fits(modality)]
        return [b for b in pool if b.task in wanted]
    return select_bundles(modality, paths)


def analyses_not_run(analyses: tuple[str, ...] | None, bundles: list[Bundle], modality: str) -> list[str]:
    """A warning for each analysis asked for that none of the chosen bundles makes."""
    tasks = {b.task for b in bundles}
    return [f"{a}: asked for, but no bundle for {modality.upper()} makes it: not run"
            for a in (analyses or ()) if not tasks & set(ANALYSES[a])]


def describe_bundles(path: str = "") -> str:
    """One line per bundle the panel would use: name, version, what it was trained on."""
    try:
        bundles = [load_bundle(path)] if path else builtin_bundles()
    except BundleError as err:
        return str(err)
    return "\n".join(f"{b.name} {b.manifest['version']} ({', '.join(b.manifest['modalities'])}): "
                     f"{b.summary()['trained_on']}. {b.manifest.get('clinical_use', '')}" for b in bundles)


def available_devices() -> str:
    try:
        import torch
    except ImportError:
        return "PyTorch not installed yet"
    found = ["cpu"] + (["cuda: " + torch.cuda.get_device_name(0)] if torch.cuda.is_available() else [])
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        found.append("mps")
    return "found: " + ", ".join(found)


def choose_device(preference: str = "auto"):
    """CUDA when available, else MPS, else CPU; an explicit choice must exist."""
    import torch

    if preference == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if preference.startswith("cuda"):
        if not torch.cuda.is_available():
            raise BundleError(f"device {preference} was asked for, but no CUDA GPU is available")
        try:
            device = torch.device(preference)
        except RuntimeError:
            raise BundleError(f"device {preference!r}: not a device name (auto, cpu, cuda, cuda:N, mps)") from None
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise BundleError(f"device {preference}: only {torch.cuda.device_count()} CUDA GPU(s) here")
        return device
    if preference == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise BundleError("device mps was asked for, but Apple's MPS is not available here")
        return torch.device("mps")
    if preference == "cpu":
        return torch.device("cpu")
    raise BundleError(f"device {preference!r}: not a device name (auto, cpu, cuda, cuda:N, mps)")
