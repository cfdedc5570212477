"""Old module paths (before the package was split by stage) kept importable.

``import mempamal.lock`` gives the module now at ``mempamal.workdir.lock`` (the same
module object, so ``isinstance`` and ``except`` keep working), with a
DeprecationWarning naming the new path.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

MOVED = {
    "mempamal.encoding": "mempamal.experiment.encoding",
    "mempamal.scoring": "mempamal.experiment.scoring",
    "mempamal.routing": "mempamal.experiment.routing",
    "mempamal.folds": "mempamal.experiment.folds",
    "mempamal.permutations": "mempamal.experiment.permutations",
    "mempamal.config": "mempamal.experiment.config",
    "mempamal.layout": "mempamal.workdir.layout",
    "mempamal.files": "mempamal.workdir.files",
    "mempamal.data": "mempamal.workdir.data",
    "mempamal.tabular": "mempamal.workdir.tabular",
    "mempamal.manifest": "mempamal.workdir.manifest",
    "mempamal.workflow": "mempamal.workdir.workflow",
    "mempamal.batches": "mempamal.workdir.batches",
    "mempamal.lock": "mempamal.workdir.lock",
    "mempamal.status": "mempamal.workdir.status",
    "mempamal.pipeline_cache": "mempamal.tasks.pipeline_cache",
    "mempamal.progress": "mempamal.backends.progress",
    "mempamal.slurm": "mempamal.export.slurm",
    "mempamal.plots": "mempamal.results.plots",
    "mempamal.report": "mempamal.results.report",
}


class _MovedFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        if fullname in MOVED:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        warnings.warn(f"{spec.name} moved to {MOVED[spec.name]}; import it from there",
                      DeprecationWarning, stacklevel=2)
        return importlib.import_module(MOVED[spec.name])

    def exec_module(self, module):
        pass  # already executed under its new name


def install() -> None:
    if not any(isinstance(f, _MovedFinder) for f in sys.meta_path):
        # First: an editable install of an older checkout must not serve the old files.
        sys.meta_path.insert(0, _MovedFinder())
