"""One place that loads model bundles once and serves every analysis in this process: the CLI's
`analyze` over many files, each batch worker, the Slicer worker. Weights are loaded the first time
a modality needs them and kept; `weight_loads` counts the bundles loaded (the batch benchmark
checks it equals workers x bundles, never cases x bundles)."""
from __future__ import annotations

from .bundles import BundleError, bundles_for
from .pipeline import Analyzer


class ModelHost:
    def __init__(self, bundle_paths=None, analyses=None, device: str = "auto", thresholds: dict | None = None):
        """analyses: keys of bundles.ANALYSES (None: the defaults); thresholds: overrides of the
        manifests' (the panel's fracture confidence)."""
        self.bundle_paths, self.analyses, self.device = bundle_paths, analyses, device
        self.thresholds = thresholds or {}
        self._analyzers: dict[str, Analyzer] = {}

    def analyzer(self, modality: str, source: str = "") -> Analyzer:
        """The analyzer for a modality (bundles chosen and checked once; weights loaded on first use)."""
        if modality not in self._analyzers:
            bundles = bundles_for(modality, self.bundle_paths, self.analyses)
            if not bundles:
                raise BundleError(f"{source + ': ' if source else ''}no model bundle for modality {modality!r}"
                                  " (pass --modality or --bundle)")
            self._analyzers[modality] = Analyzer(bundles, self.device, self.thresholds)
        return self._analyzers[modality]

    @property
    def weight_loads(self) -> int:
        return sum(len(a.loaded) for a in self._analyzers.values())
