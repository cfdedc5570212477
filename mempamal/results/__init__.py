"""The results of a finished workdir: :func:`load_results`, tables, plots and the HTML report."""
from .loading import load_results
from .results import Results

__all__ = ["Results", "load_results"]
