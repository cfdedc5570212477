"""Store a compiled experiment in its workdir: the last step of ``Experiment.write`` (validate, compile, store).

Every file is written atomically (a temporary file renamed), the inputs before the
document that describes them, the manifest after them, workflow.json last: its
presence marks a completely written workdir. Writing the same experiment again
(the same fingerprint) keeps the finished outputs and rewrites nothing, unless an
input was edited since; a different experiment replaces the old one only when asked.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from ..workdir.data import save_array, save_data
from ..workdir.files import InputFileError, write_json
from ..workdir.folds import save_folds
from ..workdir.layout import EXPERIMENT, GENERATED, PERMUTATIONS, WORKFLOW
from ..workdir.manifest import quick_changes, read_manifest, write_manifest
from ..workdir.workflow import build_workflow, save_workflow
from .compile import Compiled


def store(compiled: Compiled, workdir: str | os.PathLike, *, python: str, overwrite: bool = False) -> Path:
    """Write a compiled experiment's files in ``workdir``, unless it holds this experiment already.

    Parameters
    ----------
    compiled : Compiled
        What :func:`~mempamal.experiment.compile.compile_experiment` returned.
    workdir : path
        Created if needed.
    python : str
        Interpreter of the task commands.
    overwrite : bool, default=False
        Replace a different experiment already written in ``workdir`` (and its results).

    Returns
    -------
    workdir : pathlib.Path
    """
    workdir = Path(workdir)
    previous = _read_previous(workdir)
    same = (previous is not None and previous.get("fingerprint") == compiled.doc["fingerprint"]
            and (workdir / WORKFLOW).exists())
    if same and _inputs_intact(workdir):
        return workdir  # the same experiment: keep its finished outputs
    if previous is not None and not same and not overwrite:
        raise FileExistsError(
            f"{workdir}: holds a different experiment; use another workdir, or "
            "overwrite=True (--overwrite) to replace it and its results"
        )
    if not same:
        _clear(workdir)
    # else: the same experiment, its inputs edited since (or never recorded in a manifest):
    # write them again, keeping the finished outputs, which match them.
    _check_writable(workdir)
    doc = {**compiled.doc, "data": save_data(workdir, compiled.X, compiled.y, compiled.groups, compiled.params)}
    inputs = [f for f in doc["data"].values() if f] + [save_folds(workdir, compiled.folds)]
    if compiled.permutations is not None:
        save_array(workdir / PERMUTATIONS, compiled.permutations)
        inputs += [PERMUTATIONS] + [save_folds(workdir, arrays, path) for path, arrays in
                                    compiled.permuted_folds.items()]
    write_json(workdir / EXPERIMENT, doc)
    # After the files it describes: run() refuses inputs edited since.
    write_manifest(workdir, inputs + [EXPERIMENT])
    # workflow.json last: its presence marks a completely written workdir.
    save_workflow(workdir, build_workflow(doc, python))
    return workdir


def _check_writable(workdir: Path) -> None:
    """Create ``workdir`` and check a file can be made there, before anything is written."""
    try:
        workdir.mkdir(parents=True, exist_ok=True)
        probe = workdir / ".mempamal-write-test"
        probe.touch()
        probe.unlink()
    except OSError as e:
        raise PermissionError(f"workdir {str(workdir)!r} cannot be written ({e.strerror}); "
                              "choose a directory you can create and write") from e


def _read_previous(workdir: Path) -> dict | None:
    """The experiment.json already in ``workdir`` (None: none; {}: unreadable, so a different one)."""
    path = workdir / EXPERIMENT
    if not path.exists():
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except ValueError:
        return {}


def _inputs_intact(workdir: Path) -> bool:
    """Whether the manifest exists and the inputs it lists still have its sizes and times."""
    try:
        return read_manifest(workdir) is not None and not quick_changes(workdir)
    except InputFileError:  # an unreadable manifest: write the inputs again
        return False


def _clear(workdir: Path) -> None:
    """Remove what write() and the runs made (and nothing of the user's)."""
    for name in GENERATED:
        path = workdir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
