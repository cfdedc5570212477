"""Config modules: an experiment described in a plain Python file.

A config module defines ``experiment`` (a :class:`mempamal.Experiment`) and
``load_data()`` returning ``(X, y)`` or ``(X, y, groups)``;
``mempamal generate CONFIG.py WORKDIR`` writes the workdir from it.
"""
from __future__ import annotations

import importlib.util
import os
import sys
import traceback
from pathlib import Path

from ..exceptions import ConfigError
from .encoding import EncodingError
from .experiment import Experiment


_MODULE = "mempamal_config"  # never put in sys.modules: nothing may import the config back


def load_config(path: str | os.PathLike):
    """Run a config module and return ``(experiment, (X, y, groups))``.

    Parameters
    ----------
    path : path
        A Python file defining ``experiment`` and ``load_data()``.

    Raises
    ------
    ConfigError
        Naming the file (and its line when its code raised) and what to fix.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config: {path} is not a file (expected a Python file defining "
                          "`experiment` and `load_data()`)")
    spec = importlib.util.spec_from_file_location(_MODULE, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"config: {path} cannot be loaded as a Python module (is it a .py file?)")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except EncodingError as e:
        hint = ""
        if _MODULE in str(e):
            hint = (f"; an estimator or function defined in {path.name} itself cannot be imported by the "
                    "tasks: put it in an importable module (an installed package, or a .py file in a "
                    "directory on PYTHONPATH) and import it from the config")
        raise ConfigError(f"config: {path}{_where(path)}: {e}{hint}") from None
    except ModuleNotFoundError as e:
        raise ConfigError(f"config: {path}{_where(path)}: {e}; the modules a config imports must be "
                          "importable (installed, or on PYTHONPATH), and by the tasks as well") from None
    except Exception as e:
        raise ConfigError(f"config: {path}{_where(path)}: {type(e).__name__}: {e}") from None

    experiment = getattr(module, "experiment", None)
    if not isinstance(experiment, Experiment):
        raise ConfigError(f"config: {path} must define `experiment = mempamal.Experiment(...)`, "
                          f"found {type(experiment).__name__ if experiment is not None else 'nothing'}")
    load_data = getattr(module, "load_data", None)
    if not callable(load_data):
        raise ConfigError(f"config: {path} must define a function `load_data()` returning (X, y) or (X, y, groups)")
    try:
        data = load_data()
    except Exception as e:
        raise ConfigError(f"config: {path}{_where(path)}: load_data() raised {type(e).__name__}: {e}") from None
    if not isinstance(data, tuple) or len(data) not in (2, 3):
        raise ConfigError(f"config: {path}: load_data() must return (X, y) or (X, y, groups), "
                          f"got {type(data).__name__}" + (f" of length {len(data)}" if isinstance(data, tuple) else ""))
    X, y, groups = data if len(data) == 3 else (*data, None)
    return experiment, (X, y, groups)


def _where(path: Path) -> str:
    """", line N" of the innermost frame of the exception being handled that is in ``path``."""
    frames = traceback.extract_tb(sys.exc_info()[2])
    lines = [f.lineno for f in frames if Path(f.filename) == path or f.filename == str(path)]
    return f", line {lines[-1]}" if lines else ""


def generate(config: str | os.PathLike, workdir: str | os.PathLike, *, overwrite: bool = False,
             python: str | None = None) -> Path:
    """Write the workdir of a config module (what ``mempamal generate`` does).

    Returns
    -------
    workdir : pathlib.Path
    """
    experiment, (X, y, groups) = load_config(config)
    return experiment.write(X, y, workdir, groups=groups, python=python, overwrite=overwrite)
