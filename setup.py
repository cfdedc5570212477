import re
from pathlib import Path

from setuptools import find_packages, setup

# The version is written once, in mempamal/__init__.py (read, not imported: numpy may not be installed yet).
VERSION = re.search(r'^__version__ = "([^"]+)"$', Path(__file__).with_name("mempamal").joinpath("__init__.py")
                    .read_text(encoding="utf-8"), re.MULTILINE).group(1)

setup(
    name="mempamal",
    version=VERSION,
    description="Means for EMbarrassingly PArallel MAchine Learning: "
    "scikit-learn nested cross-validation as files and commands",
    long_description=open("README.rst", encoding="utf-8").read(),
    long_description_content_type="text/x-rst",
    license="BSD-3-Clause",
    packages=find_packages(include=["mempamal", "mempamal.*"]),
    python_requires=">=3.11",  # -P in task commands (3.10: end of life, Oct. 2026)
    install_requires=[
        "numpy>=1.23",
        "scipy>=1.9",
        "scikit-learn>=1.4",
        "joblib>=1.2",
        "threadpoolctl>=3.1",
        "tqdm>=4.60",
        "soma-workflow>=3.3",
    ],
    extras_require={
        "dask": ["dask[distributed]>=2023.1"],
        # Soma-Workflow's client-server mode (a remote resource over ssh) needs paramiko on the client.
        "remote": ["paramiko>=2.9"],
        "slurm": ["dask[distributed]>=2023.1", "dask-jobqueue>=0.8"],
        # Results.to_frame(), Results.plot(), `mempamal report`.
        "plot": ["matplotlib>=3.6", "pandas>=1.5"],
        # Progress bars as widgets in Jupyter, and the figures.
        "notebook": ["ipywidgets>=8", "matplotlib>=3.6", "pandas>=1.5"],
        # DataFrames as X (kept as DataFrames, stored as Arrow IPC files).
        "tabular": ["pandas>=1.5", "pyarrow>=12"],
        # Reference tools the benchmarks compare against (benchmarks/columns.py: himalaya's RidgeCV), and psutil for
        # its peak memory.
        "benchmark": ["himalaya>=0.4", "psutil>=5"],
        # The documentation: python -m sphinx -W --keep-going -b html docs docs/_build/html
        "docs": ["sphinx>=7", "pydata-sphinx-theme>=0.15", "numpydoc>=1.6", "sphinx-gallery>=0.16",
                 "matplotlib>=3.6", "pandas>=1.5", "pyarrow>=12", "imbalanced-learn>=0.12"],
        "test": ["pytest>=7", "dask[distributed]>=2023.1", "matplotlib>=3.6", "pandas>=1.5", "pyarrow>=12", "nbclient>=0.7",
                 "nbformat>=5.7", "ipykernel>=6", "ipywidgets>=8", "imbalanced-learn>=0.12",
                 "dask-jobqueue>=0.8", "paramiko>=2.9",
                 # The browser tests drive Debian's chromium (no browser download): tests/test_browser.py.
                 "playwright>=1.40"],
    },
    entry_points={"console_scripts": ["mempamal = mempamal.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
