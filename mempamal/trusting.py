"""``mempamal trust WORKDIR``: show what a workdir will import and run, then sign it with your key.

For a workdir you did not write with your key (sent to you, or written before
signatures existed): its inputs are hashed against its manifest, then everything
that decides what its tasks do is listed from its files, without importing
anything, and, once confirmed, the workdir is signed (:mod:`mempamal.workdir.trust`).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from .experiment.allowlist import _SAFE_BUILTINS, DEFAULT_PACKAGES, refusal
from .experiment.encoding import references_of
from .workdir.files import read_json
from .workdir.layout import EXPERIMENT
from .workdir.manifest import read_manifest, verify
from .workdir.trust import is_trusted, key_path, sign
from .workdir.workflow import load_workflow, task_command


def trust_command(workdir: str | os.PathLike, *, yes: bool = False) -> None:
    """Verify the inputs, print what the workdir imports and runs, and sign it once confirmed.

    Parameters
    ----------
    workdir : path
    yes : bool, default=False
        Sign without asking; without it, ask on the terminal (and refuse when stdin is not one).

    Exits (``SystemExit`` with the message) when the inputs do not match the manifest or the
    signature is not confirmed: nothing is signed then.
    """
    workdir = Path(workdir).resolve()
    verification = verify(workdir)  # every input hashed: what is signed is what the manifest says
    if not verification.ok:
        sys.exit(f"{verification}\nmempamal: {workdir} not signed: its inputs do not match its manifest")
    print(describe(workdir))
    if is_trusted(workdir):
        print(f"mempamal: {workdir} is already signed with your key ({key_path()})")
        return
    if not yes:
        if not sys.stdin.isatty():
            sys.exit("mempamal: not signed: stdin is not a terminal; after reviewing the above, run again "
                     "with --yes")
        answer = input(f"Sign {workdir} with your key, so that its tasks run as you? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            sys.exit("mempamal: not signed")
    sign(workdir)
    print(f"mempamal: signed {workdir} with your key ({key_path()})")


def describe(workdir: Path) -> str:
    """What a workdir's tasks import and run, read from its files without importing anything.

    The packages beyond the defaults, every class and function path (marked when the
    allow-list refuses it), the inputs with their size and hash, and the interpreter of the
    commands, with any command that is not a mempamal task command.
    """
    doc = read_json(workdir / EXPERIMENT)
    packages = doc.get("packages") if isinstance(doc, dict) else None
    if not isinstance(packages, list) or not all(isinstance(p, str) for p in packages):
        raise ValueError(f"{workdir / EXPERIMENT}: 'packages' must be a list of names, not {packages!r:.80}")
    allowed = DEFAULT_PACKAGES | set(packages)

    def marked(name: str, why: str | None) -> str:
        return f"{name}  (REFUSED: {why})" if why else name

    extra = [marked(p, refusal(p, allowed)) for p in sorted(set(packages) - DEFAULT_PACKAGES)]
    lines = [f"{workdir}", f"  packages its tasks may import (beyond {', '.join(sorted(DEFAULT_PACKAGES))}): "
             + (", ".join(extra) or "none"), "  classes and functions it imports:"]
    for dotted in sorted(references_of(doc)):
        lines.append("    " + marked(dotted, None if dotted in _SAFE_BUILTINS else refusal(dotted.split(".")[0],
                                                                                         allowed)))
    lines.append("  inputs (as in the manifest, checked):")
    for name, entry in sorted((read_manifest(workdir) or {}).items()):
        lines.append(f"    {name}  {entry['size']} bytes  sha256 {entry['sha256'][:16]}")
    workflow = load_workflow(workdir)
    lines.append(f"  commands: {len(workflow.tasks)} tasks, run as "
                 f"`{' '.join(task_command(workflow.python, workflow.tasks[0].id)[:2])} -m mempamal task ...`")
    for t in workflow.tasks:
        if t.command != task_command(workflow.python, t.id):
            lines.append(f"    NOT a mempamal task command: {t.name}: {t.shell_command()}")
    return "\n".join(lines)
