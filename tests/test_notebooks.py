"""The example notebooks run as written (nbclient, one kernel each), on smaller problems.

Each notebook reads MEMPAMAL_EXAMPLE_SMALL=1 to shrink its data, folds and grid,
and MEMPAMAL_EXAMPLE_WORKDIR for where to write.
"""
import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
WIDGET = "application/vnd.jupyter.widget-view+json"


def execute(name, tmp_path, monkeypatch):
    monkeypatch.setenv("MEMPAMAL_EXAMPLE_SMALL", "1")
    monkeypatch.setenv("MEMPAMAL_EXAMPLE_WORKDIR", str(tmp_path / "run"))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    nb = nbformat.read(EXAMPLES / name, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(EXAMPLES)}}).execute()
    return [output for cell in nb.cells if cell.cell_type == "code" for output in cell.outputs]


def mimetypes(outputs):
    return {m for o in outputs for m in o.get("data", {})}


@pytest.mark.parametrize("name", ["first_example.ipynb", "second_example.ipynb", "third_example.ipynb",
                                  "fourth_example.ipynb"])
def test_notebook_runs(name, tmp_path, monkeypatch):
    outputs = execute(name, tmp_path, monkeypatch)
    html = "".join(o["data"].get("text/html", "") for o in outputs if "data" in o)
    assert "mempamal-summary" in html  # the results table, shown as HTML
    pytest.importorskip("ipywidgets")
    assert WIDGET in mimetypes(outputs)  # the progress bar is a widget in Jupyter
    if name != "first_example.ipynb":
        assert "image/png" in mimetypes(outputs)  # the figure
    assert not [o for o in outputs if o.get("output_type") == "error"]
