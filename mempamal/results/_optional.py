"""Optional dependencies of the results (pandas for tables, matplotlib for figures), imported
when asked for, with the install command when missing."""
from __future__ import annotations

import importlib
from types import ModuleType


def require(module: str, what: str) -> ModuleType:
    """Import ``module``, or fail naming ``what`` needs it and how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(f"{what} needs {module}, which is not installed: "
                          f"pip install 'mempamal[plot]' (or pip install {module})") from None
