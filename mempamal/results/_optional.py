"""Optional third-party packages of the results (pandas, matplotlib), imported when first needed."""
from __future__ import annotations

import importlib
from types import ModuleType


def require(module: str, what: str) -> ModuleType:
    """``module`` imported, or an ImportError saying that ``what`` needs it and how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(f"{what} needs {module}, which is not installed: "
                          f"pip install 'mempamal[plot]' (or pip install {module})") from None
