"""The run lock: one ``run()`` at a time per workdir, and whether a process is still alive.

``run.lock`` is a small JSON document naming its holder: host, pid, the process's
start (in clock ticks since boot, from ``/proc``, so that a pid reused by another
process does not pass for the holder), the wall-clock time it was taken, and a
random token that makes each lock distinct. It is written to a temporary file and
hard-linked into place, which fails if a lock exists (as ``O_CREAT | O_EXCL``
does, but the lock is never seen half-written).

A lock whose holder is a dead process of this host is taken over, under an
``flock`` of the stale file itself: the first process to get it checks that the
path still names that very file, removes it and creates its own; any other
process that judged the same lock stale then finds the path changed and starts
over (it sees the new, live lock). A lock of another host cannot be checked from
here: it is reported with the file to delete once that run is known to be over.
"""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from ..exceptions import LockError, StaleLockWarning
from .paths import Workdir

POLL = 0.5       # seconds between looks at a held lock, with wait=True
_SETTLE = 2.0    # seconds an unreadable lock may stay so (a holder without hard links writes it in place)


def this_host() -> str:
    return socket.gethostname()


def process_start(pid: int) -> int | None:
    """When process ``pid`` started, in clock ticks since boot (Linux); None when unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            # Fields after the command name (which may hold spaces and parentheses).
            fields = f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[19]) if fields[0] != b"Z" else None


def pid_alive(pid: int, start: int | None = None) -> bool:
    """Whether process ``pid`` of this host is alive and, when ``start`` is given, the same process.

    A zombie (dead, not yet reaped) counts as dead; so does a live process whose start
    differs from ``start`` (its pid was reused).
    """
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        pass
    except OSError:
        return False
    now = process_start(pid)
    if now is None:
        # No /proc (not Linux): trust the pid; on Linux, gone since os.kill or a zombie.
        return not os.path.exists(f"/proc/{pid}")
    return start is None or now == start


@dataclass(frozen=True)
class Holder:
    """Who holds a lock (the content of ``run.lock``)."""

    host: str
    pid: int
    started: float
    pid_start: int | None = None
    token: str = ""

    @classmethod
    def me(cls) -> "Holder":
        return cls(this_host(), os.getpid(), time.time(), process_start(os.getpid()), secrets.token_hex(8))

    @classmethod
    def from_json(cls, doc: dict) -> "Holder":
        return cls(str(doc["host"]), int(doc["pid"]), float(doc["started"]), doc.get("pid_start"),
                   str(doc.get("token", "")))

    def to_json(self) -> dict:
        return {"host": self.host, "pid": self.pid, "started": self.started, "pid_start": self.pid_start,
                "token": self.token}

    def alive(self) -> bool | None:
        """True or False on this host; None for another host's process (cannot be checked from here)."""
        if self.host != this_host():
            return None
        return pid_alive(self.pid, self.pid_start)

    def __str__(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started))
        return f"host {self.host}, pid {self.pid}, started {when}"


def _parse(text: bytes) -> Holder | None:
    try:
        return Holder.from_json(json.loads(text))
    except (ValueError, KeyError, TypeError):
        return None


def _create(path: Path, holder: Holder) -> bool:
    """Create the lock naming ``holder`` unless one exists; whether it was created."""
    tmp = path.with_name(f".{path.name}.tmp-{holder.pid}-{holder.token}")
    tmp.write_text(json.dumps(holder.to_json()) + "\n")
    try:
        os.link(tmp, path)  # atomic, and fails if the lock exists: complete or absent
        return True
    except FileExistsError:
        return False
    except OSError:  # a filesystem without hard links: exclusive create, then write in place
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            f.write(tmp.read_text())
        return True
    finally:
        tmp.unlink(missing_ok=True)


def _take_over(path: Path, f) -> bool:
    """Remove the stale lock at ``path`` if it is still the file open as ``f``; race-safe.

    The file is flocked: of the processes that found it stale, the first removes it, and the
    others, getting the flock after, see that ``path`` no longer names it. Each keeps it open
    from the reading that judged it stale, so its inode cannot be reused by a new lock meanwhile.
    """
    import fcntl

    fcntl.flock(f.fileno(), fcntl.LOCK_EX)
    mine = os.fstat(f.fileno())
    try:
        now = os.stat(path)
    except FileNotFoundError:
        return False
    if (mine.st_ino, mine.st_dev) != (now.st_ino, now.st_dev):
        return False
    os.unlink(path)
    return True


def _held_message(path: Path, holder: Holder) -> str:
    return (f"{path.parent}: another run is in progress ({holder}; its lock is {path}); wait for it to "
            "end (mempamal run --wait, run(..., wait=True) queue behind it), or stop it first")


def _elsewhere_message(path: Path, holder: Holder) -> str:
    return (f"{path.parent}: locked by a run on another host ({holder}), which cannot be checked from "
            f"{this_host()}; if that run is over (it was killed, or its node was lost), delete {path} "
            "and run again")


@contextlib.contextmanager
def run_lock(workdir: str | os.PathLike, *, wait: bool = False,
             on_wait: Callable[[str], None] | None = None) -> Iterator[Holder]:
    """Hold the run lock of ``workdir`` for the duration, released whatever happens.

    Parameters
    ----------
    workdir : path
    wait : bool, default=False
        Wait while another live run (or another host's run) holds it, instead of raising.
    on_wait : callable, optional
        Called once with a message when waiting starts.

    Raises
    ------
    LockError
        When another run holds the lock (without ``wait``), naming its host, pid and start.

    Warns
    -----
    StaleLockWarning
        When the lock of a dead process of this host is taken over.
    """
    path = Workdir.of(workdir).lock
    me = Holder.me()
    waiting = False
    unreadable_since = None
    while True:
        if _create(path, me):
            break
        try:
            f = open(path, "rb")
        except FileNotFoundError:  # released meanwhile: try again at once
            continue
        with f:
            holder = _parse(f.read())
            if holder is None:  # being written in place, or garbled
                unreadable_since = unreadable_since or time.monotonic()
                if time.monotonic() - unreadable_since < _SETTLE:
                    time.sleep(0.05)
                    continue
                raise LockError(f"{path}: an unreadable run lock; if no run is going on in {path.parent}, "
                                "delete it and run again")
            unreadable_since = None
            alive = holder.alive()
            if alive is False:
                if _take_over(path, f):
                    warnings.warn(f"{path}: took over the lock of a run that is no longer alive ({holder})",
                                  StaleLockWarning, stacklevel=3)
                continue
        message = _held_message(path, holder) if alive else _elsewhere_message(path, holder)
        if not wait:
            raise LockError(message)
        if not waiting and on_wait is not None:
            on_wait(f"waiting for the run holding {path} ({holder})")
        waiting = True
        time.sleep(POLL)
    try:
        yield me
    finally:
        _release(path, me)


def _release(path: Path, me: Holder) -> None:
    """Remove the lock if it is still ours (a user may have deleted it and another run taken it)."""
    try:
        holder = _parse(path.read_bytes())
    except FileNotFoundError:
        return
    if holder is not None and holder.token == me.token:
        path.unlink(missing_ok=True)


def print_to_stderr(message: str) -> None:
    print(f"mempamal: {message}", file=sys.stderr, flush=True)
