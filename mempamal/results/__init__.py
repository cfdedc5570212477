"""The results of a finished workdir: :func:`load_results`, tables, plots and the HTML report."""
from .results import Results, load_results

__all__ = ["Results", "load_results"]
