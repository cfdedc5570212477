"""manifest.json: the size, modification time and SHA-256 of the inputs write() wrote.

Every task reads the data, the folds and experiment.json, and trusts that they are
what ``write()`` wrote: the outputs record the fingerprint computed then. A file
edited by hand afterwards would silently give results of other data under the old
fingerprint. ``run()`` therefore compares each file's size and modification time
with the manifest (a ``stat`` per file: free) and refuses to start when one
differs; ``mempamal verify`` recomputes the hashes to tell a changed content from
a mere new time (``touch``, a copy that did not keep times), and ``--update``
records the new times of files whose content is unchanged.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..exceptions import DataChangedError, InputFileError
from .files import read_json, write_json
from .layout import MANIFEST, MANIFEST_FORMAT as FORMAT
from .paths import Workdir
OK, CHANGED, MISSING = "ok", "changed", "missing"
_CHUNK = 1 << 20


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _entry(path: Path) -> dict:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": _sha256(path)}


def write_manifest(workdir: str | os.PathLike, files: list[str]) -> None:
    """Record the size, mtime and hash of ``files`` (relative to ``workdir``) in manifest.json, atomically."""
    paths = Workdir.of(workdir)
    write_json(paths.manifest_json, {"format": FORMAT, "files": {name: _entry(paths.path(name)) for name in files}})


def read_manifest(workdir: str | os.PathLike) -> dict | None:
    """The manifest's ``files`` (name to size, mtime_ns, sha256); None without a manifest (an older workdir)."""
    path = Workdir.of(workdir).manifest_json
    try:
        doc = read_json(path)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise InputFileError(f"{path}: unreadable ({e}); write the experiment again (Experiment.write or "
                             "`mempamal generate`)") from e
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("files"), dict):
        raise InputFileError(f"{path}: not a manifest of this version of mempamal ({FORMAT}); write the "
                             "experiment again (Experiment.write or `mempamal generate`)")
    return doc["files"]


def quick_changes(workdir: str | os.PathLike, only: list[str] | None = None) -> dict[str, str]:
    """Files (of ``only``, default all) whose size or modification time differ from the manifest's.

    One ``stat`` per file, no reading; {} when nothing differs or there is no manifest.
    """
    paths = Workdir.of(workdir)
    files = read_manifest(paths) or {}
    changes = {}
    for name, entry in files.items():
        if only is not None and name not in only:
            continue
        try:
            st = paths.path(name).stat()
        except FileNotFoundError:
            changes[name] = "missing"
            continue
        if st.st_size != entry["size"]:
            changes[name] = f"its size changed ({entry['size']} bytes, now {st.st_size})"
        elif st.st_mtime_ns != entry["mtime_ns"]:
            changes[name] = "modified (same size, new modification time)"
    return changes


def check_unchanged(workdir: str | os.PathLike, only: list[str] | None = None) -> None:
    """Refuse inputs (of ``only``, default all) changed since write(), by size and modification time (cheap).

    Raises
    ------
    DataChangedError
        Naming each file that changed and the fix.
    """
    workdir = Path(workdir)
    changes = quick_changes(workdir, only)
    if changes:
        raise changed_error(workdir, changes)


def changed_error(workdir: Path, changes: dict[str, str]) -> DataChangedError:
    """The error naming each changed input (file to what changed, as :func:`quick_changes` says) and the fix."""
    lines = [f"{workdir / name}: {what} since the experiment was written" for name, what in changes.items()]
    fix = ("tasks would compute with other inputs than those of experiment.json's fingerprint; write the "
           "experiment again (Experiment.write or `mempamal generate`: the same experiment restores its files "
           "and keeps finished results; other data needs overwrite=True / --overwrite)")
    if all(what.startswith("modified") for what in changes.values()):
        fix += (f"; if only the times changed (touch, a copy that did not keep them), `mempamal verify --update "
                f"{workdir}` checks the contents against their hashes and records the new times")
    else:
        fix += f"; `mempamal verify {workdir}` checks every file's content"
    return DataChangedError("\n".join(lines) + "\n" + fix)


@dataclass
class Verification:
    """What ``mempamal verify`` found.

    Attributes
    ----------
    workdir : pathlib.Path
    states : dict of str to str
        File (relative to the workdir) to "ok", "changed" or "missing"; empty without a manifest.
    has_manifest : bool
        False for a workdir written by a mempamal without manifests: nothing to verify.
    updated : list of str
        Files whose content was unchanged and whose new size/time the manifest now records (``update=True``).
    """

    workdir: Path
    states: dict[str, str] = field(default_factory=dict)
    has_manifest: bool = True
    updated: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.has_manifest and all(s == OK for s in self.states.values())

    def __str__(self) -> str:
        if not self.has_manifest:
            return (f"{self.workdir}: no {MANIFEST} (written by an older mempamal): nothing to verify against; "
                    "write the experiment again to record one")
        lines = [f"{state:8}{self.workdir / name}" + (" (new time recorded)" if name in self.updated else "")
                 for name, state in self.states.items()]
        if self.ok:
            lines.append(f"{self.workdir}: every input is as written")
        else:
            lines.append(f"{self.workdir}: inputs changed since the experiment was written; write it again "
                         "(Experiment.write or `mempamal generate`)")
        return "\n".join(lines)


def verify(workdir: str | os.PathLike, *, update: bool = False) -> Verification:
    """Compare every input's SHA-256 with the manifest's.

    Parameters
    ----------
    workdir : path
        A directory written by :meth:`mempamal.Experiment.write`.
    update : bool, default=False
        Record the new size and modification time of files whose content is unchanged
        (so that ``run`` accepts them again); a changed file is never accepted.

    Returns
    -------
    verification : Verification
    """
    workdir = Path(workdir).resolve()
    if not workdir.is_dir():
        raise FileNotFoundError(f"{workdir}: no such workdir")
    files = read_manifest(workdir)
    if files is None:
        return Verification(workdir, has_manifest=False)
    result = Verification(workdir)
    for name, entry in files.items():
        path = workdir / name
        if not path.exists():
            result.states[name] = MISSING
            continue
        now = _entry(path)
        result.states[name] = OK if now["sha256"] == entry["sha256"] else CHANGED
        if update and result.states[name] == OK and (now["size"], now["mtime_ns"]) != (entry["size"],
                                                                                       entry["mtime_ns"]):
            files[name] = now
            result.updated.append(name)
    if result.updated:
        write_json(Workdir.of(workdir).manifest_json, {"format": FORMAT, "files": files})
    return result
