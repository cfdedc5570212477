"""Every exception and warning mempamal raises, in one place.

Each error is a :class:`MempamalError` (catch them all with one ``except``) and
keeps the built-in base it had before this module existed (``ValueError``,
``RuntimeError``), so that code catching those goes on working. The modules that
raise them import them from here, and re-export them under their old names
(``mempamal.workdir.lock.LockError`` is ``mempamal.exceptions.LockError``).

This module imports nothing of mempamal's: any module may use it.
"""
from __future__ import annotations

__all__ = [
    "MempamalError", "MempamalWarning",
    "ConfigError", "EncodingError", "DecodingError",
    "InputFileError", "TaskInputError", "DataChangedError",
    "LockError", "StaleLockWarning", "WorkflowError",
    "UntrustedWorkdirError", "KeyFileError",
]


class MempamalError(Exception):
    """The base of every error mempamal raises on purpose."""


class MempamalWarning(UserWarning):
    """The base of every warning mempamal issues."""


# -- writing an experiment --------------------------------------------------------------

class ConfigError(MempamalError, ValueError):
    """A config module is missing, fails to run, or lacks what it must define."""


class EncodingError(MempamalError, ValueError):
    """A value cannot be stored; the message names its path and the fix."""


class DecodingError(MempamalError, ValueError):
    """A document names something that cannot or may not be loaded."""


# -- reading a workdir ------------------------------------------------------------------

class InputFileError(MempamalError, RuntimeError):
    """A file a task needs is missing, unreadable, or belongs to another experiment."""


# What a task raises for a missing or foreign input: the same error, under the name the task
# command catches.
TaskInputError = InputFileError


class DataChangedError(InputFileError):
    """An input written by write() has changed since (or is missing)."""


# -- trusting a workdir (mempamal.workdir.trust) ------------------------------------------

class UntrustedWorkdirError(MempamalError):
    """A workdir not signed by the key this user holds, or changed since: nothing in it is imported or run."""


class KeyFileError(MempamalError, PermissionError):
    """The signing key is unreadable, malformed, or readable by others."""


# -- running a workflow -----------------------------------------------------------------

class LockError(MempamalError, RuntimeError):
    """The workdir is locked by another run (or by a lock that cannot be checked from this host)."""


class StaleLockWarning(MempamalWarning):
    """A lock left by a dead run of this host was taken over."""


class WorkflowError(MempamalError, RuntimeError):
    """Some tasks failed; the message names each, with its command and log file.

    Parameters
    ----------
    report : RunReport
        What the run did (:class:`mempamal.backends.RunReport`), kept as ``report``.
    workflow : Workflow
        The workdir's workflow, for each failed task's command and log.
    """

    def __init__(self, report, workflow) -> None:
        self.report = report
        super().__init__(report.failure_message(workflow))
