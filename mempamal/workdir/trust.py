"""The trust root: a workdir runs only if signed with a key that lives outside it.

What a workdir runs is decided by files in it: experiment.json (the classes and
functions tasks import, the packages they may import from), workflow.json (the
interpreter and commands of the tasks) and the data the functions are applied to.
Whoever can write the workdir (on a cluster, often a whole group) can edit them,
and the manifest beside them. So ``write()`` signs them, as Jupyter signs trusted
notebooks: an HMAC-SHA256, with a key kept in the user's own configuration
directory, over the SHA-256 of experiment.json and of workflow.json and the hashes
the manifest records for the data, folds and permutations. Every entry point that
runs tasks calls :func:`check_trusted` before decoding anything, and refuses a
workdir that is not signed by the key it holds; ``mempamal trust WORKDIR`` shows
what a workdir will import and run, then signs it.

The check is cheap, for every task: two small files hashed, the manifest read, one
``stat`` per data file (their size and time against the signed manifest; a data
file is hashed only when its time differs, as in a copy that did not keep times).

The key: ``$MEMPAMAL_KEY_FILE`` if set, else ``$XDG_CONFIG_HOME/mempamal/key`` or
``~/.config/mempamal/key``; 32 random bytes in hex, created on first signature,
mode 0600, refused when others may read or write it.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import socket
from pathlib import Path

from ..exceptions import InputFileError, KeyFileError, UntrustedWorkdirError
from .files import read_json, write_json
from .layout import EXPERIMENT, MANIFEST, SIGNATURE, SIGNATURE_FORMAT, WORKFLOW
from .manifest import changed_error, read_manifest

__all__ = ["KEY_ENV", "KeyFileError", "UntrustedWorkdirError", "check_trusted", "ensure_key", "is_trusted", "key_path",
           "sign"]

KEY_ENV = "MEMPAMAL_KEY_FILE"
FORMAT = SIGNATURE_FORMAT
_KEY_BYTES = 32


# --------------------------------------------------------------------------- the key
def key_path() -> Path:
    """Where this user's signing key is: ``$MEMPAMAL_KEY_FILE``, else the user's config directory."""
    if os.environ.get(KEY_ENV):
        return Path(os.environ[KEY_ENV]).expanduser()
    config = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(config) / "mempamal" / "key"


def _read_key(path: Path) -> bytes:
    st = path.stat()
    if os.name == "posix" and st.st_mode & 0o077:
        raise KeyFileError(f"{path}: the signing key may be read or written by others (mode "
                           f"{st.st_mode & 0o777:o}): they could sign workdirs that run their code as you; "
                           f"`chmod 600 {path}`, or remove it to make a new one (then trust your workdirs again)")
    try:
        key = bytes.fromhex(path.read_text().strip())
    except (ValueError, UnicodeDecodeError):
        key = b""
    if len(key) < _KEY_BYTES:
        raise KeyFileError(f"{path}: not a mempamal signing key ({_KEY_BYTES} bytes in hex); remove it to make "
                           "a new one (then trust your workdirs again)")
    return key


def _create_key(path: Path) -> None:
    """Write a new key, never replacing one another process wrote meanwhile (link fails if it exists)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{socket.gethostname()}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(_KEY_BYTES) + "\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process made it first: use that one
        except OSError:  # a filesystem without hard links: create it in place, failing if it exists
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(tmp.read_text())
    finally:
        tmp.unlink(missing_ok=True)


def _key(create: bool) -> bytes | None:
    """This user's key; created if missing and ``create``, else None when missing."""
    path = key_path()
    try:
        return _read_key(path)
    except FileNotFoundError:
        if not create:
            return None
    try:
        _create_key(path)
    except OSError as e:
        raise KeyFileError(f"{path}: cannot create the signing key ({e.strerror or e}); set {KEY_ENV} to a file "
                           "path of your own") from e
    return _read_key(path)


def ensure_key() -> Path:
    """This user's signing key file, created if missing (to copy it to a host that does not share home)."""
    _key(create=True)
    return key_path()


def _key_id(key: bytes) -> str:
    """A name of the key that reveals nothing of it, to tell "another key" from "changed since signed"."""
    return hmac.new(key, b"mempamal key id", hashlib.sha256).hexdigest()[:16]


# --------------------------------------------------------------------------- signing
def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _contents(workdir: Path, inputs: dict | None = None) -> dict:
    """What the signature covers: the hashes of the files that decide what runs, as they are now.

    ``inputs``: the manifest's entries (read here if None). Raises FileNotFoundError naming the file
    when experiment.json, workflow.json or the manifest is missing.
    """
    if inputs is None:
        inputs = read_manifest(workdir)
    if inputs is None:
        raise FileNotFoundError(f"no {MANIFEST}")
    return {EXPERIMENT: _sha256(workdir / EXPERIMENT), WORKFLOW: _sha256(workdir / WORKFLOW),
            # sha256 only: a touch, or `mempamal verify --update`, changes times, not what runs
            MANIFEST: {name: entry.get("sha256") for name, entry in sorted(inputs.items())}}


def _mac(key: bytes, contents: dict) -> str:
    message = json.dumps({"format": FORMAT, **contents}, sort_keys=True, separators=(",", ":"))
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def sign(workdir: str | os.PathLike) -> Path:
    """Sign a workdir with this user's key (created on first use): tasks will run it.

    Parameters
    ----------
    workdir : path
        A directory written by :meth:`mempamal.Experiment.write`; sign only what you
        wrote or reviewed (``mempamal trust`` shows what it imports and runs).

    Returns
    -------
    signature : pathlib.Path
        The signature file written (atomically) in the workdir.
    """
    workdir = Path(workdir)
    key = _key(create=True)
    contents = _contents(workdir)
    path = workdir / SIGNATURE
    write_json(path, {"format": FORMAT, "key_id": _key_id(key), "signed": contents, "hmac": _mac(key, contents)})
    return path


def _why_untrusted(workdir: Path, inputs: dict | None = None) -> str | None:
    """Why this user's key does not vouch for the workdir as it is now; None if it does.

    ``inputs``: the manifest's entries, read once by the caller, who then relies on them.
    """
    try:
        doc = read_json(workdir / SIGNATURE)
    except FileNotFoundError:
        return (f"it has no {SIGNATURE}: it was written by a mempamal without signatures, or not by "
                "Experiment.write with your key")
    except (OSError, ValueError) as e:
        return f"its {SIGNATURE} is unreadable ({e})"
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("hmac"), str):
        return f"its {SIGNATURE} is not a signature of this version of mempamal ({FORMAT})"
    key = _key(create=False)
    if key is None:
        return (f"there is no signing key at {key_path()} on this host ({socket.gethostname()}), where it "
                f"was signed with key {doc.get('key_id')!r}: copy your key file here (mode 600) or set "
                f"{KEY_ENV} to a path this host sees")
    try:
        contents = _contents(workdir, inputs)
    except (OSError, ValueError, RuntimeError, AttributeError, TypeError) as e:  # a garbled manifest
        return f"a file it signs cannot be read ({e})"
    if hmac.compare_digest(_mac(key, contents).encode(), doc["hmac"].encode()):  # bytes: any str compares
        return None
    if doc.get("key_id") != _key_id(key):
        return (f"it was signed with another key ({doc.get('key_id')!r}) than yours ({_key_id(key)!r}, "
                f"{key_path()}): another user's, or yours from a host that does not share this one's "
                f"home (copy your key file there, or set {KEY_ENV})")
    signed = doc.get("signed") if isinstance(doc.get("signed"), dict) else {}
    changed = [name for name in (EXPERIMENT, WORKFLOW) if signed.get(name) != contents[name]]
    old, new = signed.get(MANIFEST) or {}, contents[MANIFEST]
    if old != new and isinstance(old, dict):
        changed += [f"{MANIFEST} ({name})" for name in sorted(set(old) | set(new)) if old.get(name) != new.get(name)]
    if changed:
        return f"{', '.join(changed)} changed since it was signed"
    return f"its {SIGNATURE} does not match its contents (forged, or copied from another workdir)"


def is_trusted(workdir: str | os.PathLike) -> bool:
    """Whether this user's key signed the workdir as it is now (its data files not checked)."""
    return _why_untrusted(Path(workdir)) is None


def check_trusted(workdir: str | os.PathLike) -> None:
    """Refuse a workdir that this user's key did not sign, or whose data changed since.

    Call it before anything of the workdir is decoded, imported or run.

    Raises
    ------
    UntrustedWorkdirError
        Naming the reason and how to trust the workdir after reviewing it.
    DataChangedError
        When a data, folds or permutations file is missing or its content is not the one signed.
    KeyFileError
        When the key is readable by others or malformed.
    FileNotFoundError
        When ``workdir`` holds no workflow.json (not a workdir, or one half written).
    """
    workdir = Path(workdir).resolve()  # the message names it for another shell (a task's is ".")
    if not (workdir / WORKFLOW).exists():  # written last: not a (complete) workdir, rather than untrusted
        raise FileNotFoundError(f"{workdir / WORKFLOW}: no workflow here; write the experiment first "
                                "(Experiment.write or `mempamal generate`)")
    identity = _identity(workdir)
    cached = _VERIFIED.get(workdir)
    if identity is not None and cached is not None and cached[0] == identity:
        inputs = cached[1]  # verified by this process, and not rewritten or replaced since
    else:
        try:
            inputs = read_manifest(workdir)
        except InputFileError:
            inputs = None  # an unreadable manifest: _why_untrusted says so
        why = _why_untrusted(workdir, inputs)
        if why is not None:
            raise UntrustedWorkdirError(
                f"{workdir}: not trusted: {why}. Nothing in it was imported or run. If you wrote it, write it "
                f"again (Experiment.write or `mempamal generate`); otherwise review what it will import and "
                f"run, then trust it: `mempamal trust {workdir}` shows them and signs it with your key")
        if identity is not None:
            _VERIFIED[workdir] = (identity, inputs)
    _check_inputs(workdir, inputs)


# Workdirs this process verified, with the identity of the files it verified (device, inode, size, mtime
# and ctime, which no user can set: a file rewritten, touched or replaced since has another): a batch, a
# warm worker or the task command after its CLI's check then only stats them.
_VERIFIED: dict[Path, tuple[tuple, dict]] = {}


def _identity(workdir: Path) -> tuple | None:
    out = []
    for path in (workdir / EXPERIMENT, workdir / WORKFLOW, workdir / MANIFEST, workdir / SIGNATURE, key_path()):
        try:
            st = path.stat()
        except OSError:
            return None
        out.append((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
    return tuple(out)


def _check_inputs(workdir: Path, inputs: dict) -> None:
    """The data, folds and permutations are those of the signed manifest: a ``stat`` each.

    A file of the recorded size and time passes; one of another time is hashed (a copy that did not
    keep times: a transfer to a cluster, ``cp`` without ``-p``) and passes if its content is the one
    signed. Replacing a file and forging its time passes too: data cannot run code (no pickle, the
    allow-list), so that can only change results, as editing the outputs (not signed) could.
    """
    changes = {}
    for name, entry in inputs.items():
        path = workdir / name
        try:
            st = path.stat()
        except FileNotFoundError:
            changes[name] = "missing"
            continue
        if st.st_size != entry.get("size"):
            changes[name] = f"its size changed ({entry.get('size')} bytes, now {st.st_size})"
        elif st.st_mtime_ns != entry.get("mtime_ns") and _sha256(path) != entry.get("sha256"):
            changes[name] = "its content changed (same size, new modification time)"
    if changes:
        raise changed_error(workdir, changes)
