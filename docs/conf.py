"""Sphinx configuration of mempamal's documentation.

Build (the one documented command, from the repository's root, after ``pip install ".[docs]"``)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

Everything the site shows is made by the build: the API reference from the public modules'
``__all__``, the command-line page from the parser, the gallery by running the example scripts at
their small size (in a scratch directory), the benchmark figure from the measured table. No network
(intersphinx is off) and no home directory: ``HOME`` points at a scratch directory for the build, so
that Soma-Workflow, matplotlib and mempamal's cache write nothing of yours.
"""
from __future__ import annotations

import os
import sys
import tempfile
import warnings
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(DOCS / "_ext"))
sys.path.insert(0, str(ROOT))  # this checkout's mempamal, installed or not

SCRATCH = Path(tempfile.mkdtemp(prefix="mempamal-docs-"))
os.environ["HOME"] = str(SCRATCH / "home")  # Soma-Workflow's light-mode database, matplotlib's cache...
os.environ["MEMPAMAL_CACHE_DIR"] = str(SCRATCH / "cache")
os.environ["MPLBACKEND"] = "agg"
(SCRATCH / "home").mkdir()
# The example tasks run in other processes, which import mempamal and the examples' own modules.
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))

import generated_pages  # noqa: E402
import gallery_sources  # noqa: E402

import mempamal  # noqa: E402

generated_pages.write_cli_page(DOCS / "generated" / "cli_help.rst")
generated_pages.write_api_page(DOCS / "api.rst")
gallery_sources.write_gallery_sources(DOCS / "_build" / "gallery_src", (DOCS / "gallery_header.rst").read_text())

project = "mempamal"
author = "the mempamal developers"
copyright = "the mempamal developers, BSD-3-Clause"
version = release = mempamal.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.doctest",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "matplotlib.sphinxext.plot_directive",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "_templates", "gallery_header.rst", "generated/cli_help.rst",
                    "**/*.examples", "auto_examples/*.ipynb", "auto_examples/*.py", "auto_examples/*.zip"]
root_doc = "index"
default_role = "literal"
# sphinx-gallery's configuration holds functions (the scraper, the argv): Sphinx cannot cache it, and says so.
suppress_warnings = ["config.cache"]  # `x` in a docstring is code, as in scikit-learn's

# -- API reference --------------------------------------------------------------------------------
autosummary_generate = True
autodoc_typehints = "none"  # the numpydoc Parameters sections say the types
autodoc_default_options = {"members": False}
numpydoc_show_class_members = False
numpydoc_xref_param_type = False
numpydoc_validation_checks = {
    "GL08",  # an object without a docstring
    "SS01", "SS02", "SS03",  # a one-line summary, starting with a capital, ending with a period
    "PR01", "PR02",  # every parameter documented, and only real ones
    "RT01",  # a Returns section
}
# Validate the public API only: what its pages show (private helpers stay free).
# An Enum's signature is its metaclass's (value, names, module...): nothing of ours to document.
numpydoc_validation_exclude = {r"\._[a-z]", r"\.__[a-z]+__$", r"\.Status$"}

# -- Gallery: the examples, run at their small size in a scratch directory ----------------------------


def _gallery_argv(gallery_conf, script_vars):
    """Each example's command line: a workdir of its own under the scratch directory, and --small."""
    name = Path(script_vars["src_file"]).stem
    return [str(SCRATCH / "runs" / name), "--small"]


sphinx_gallery_conf = {
    "examples_dirs": [str(DOCS / "_build" / "gallery_src")],
    "gallery_dirs": ["auto_examples"],
    "filename_pattern": r"_example\.py$",
    "ignore_pattern": r"elastic_net\.py$",
    "within_subsection_order": "FileNameSortKey",
    "reset_argv": _gallery_argv,
    "image_scrapers": (gallery_sources.figure_scraper, "matplotlib"),
    "capture_repr": ("_repr_html_", "__repr__"),
    "backreferences_dir": "generated",
    "doc_module": ("mempamal",),
    "abort_on_example_error": True,
    "download_all_examples": False,
    "remove_config_comments": True,
    "show_memory": False,
    # Its sg_execution_times pages load jQuery and DataTables from CDNs: broken offline (uncaught
    # exception), and linked from nowhere; the build's log still gives each example's time.
    "write_computation_times": False,
}

# -- Figures drawn by the build (the benchmark plot) -------------------------------------------------
plot_include_source = False
plot_html_show_source_link = False
plot_html_show_formats = False
plot_formats = [("png", 100)]

# -- HTML ------------------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"mempamal {release}"
html_static_path = ["_static"]
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_sidebars = {"index": [], "changelog": []}
# Without it, a first visit (empty localStorage) logs a console error: "Got invalid theme mode: ."
html_context = {"default_mode": "auto"}
html_show_sourcelink = False

# The examples run tasks in worker processes; their progress bars and warnings are noise here.
warnings.filterwarnings("ignore", message="Matplotlib is currently using agg")
