"""The example notebooks run as written (nbclient, one kernel each), on smaller problems.

Each notebook reads MEMPAMAL_EXAMPLE_SMALL=1 to shrink its data, folds and grid,
and MEMPAMAL_EXAMPLE_WORKDIR for where to write. The five run two at a time (a
kernel's start-up is mostly one core's work), once for all the tests here.
"""
import asyncio
import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
NOTEBOOKS = ["first_example.ipynb", "second_example.ipynb", "third_example.ipynb", "fourth_example.ipynb",
             "fifth_example.ipynb"]
WIDGET = "application/vnd.jupyter.widget-view+json"


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """Notebook name to its code cells' outputs, or to the exception that stopped it."""
    base = tmp_path_factory.mktemp("notebooks")
    limit = asyncio.Semaphore(2)

    async def execute(name):
        env = dict(os.environ, MEMPAMAL_EXAMPLE_SMALL="1", MEMPAMAL_EXAMPLE_WORKDIR=str(base / name),
                   PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
        nb = nbformat.read(EXAMPLES / name, as_version=4)
        async with limit:
            try:
                await NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(EXAMPLES)}}).async_execute(env=env)
            except Exception as e:  # reported by that notebook's test
                return e
        return [output for cell in nb.cells if cell.cell_type == "code" for output in cell.outputs]

    async def execute_all():
        return dict(zip(NOTEBOOKS, await asyncio.gather(*map(execute, NOTEBOOKS))))

    return asyncio.run(execute_all())


def mimetypes(outputs):
    return {m for o in outputs for m in o.get("data", {})}


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs(name, executed):
    outputs = executed[name]
    if isinstance(outputs, Exception):
        raise outputs
    html = "".join(o["data"].get("text/html", "") for o in outputs if "data" in o)
    assert "mempamal-summary" in html  # the results table, shown as HTML
    if name != "first_example.ipynb":
        assert "image/png" in mimetypes(outputs)  # the figure
    pytest.importorskip("ipywidgets")
    assert WIDGET in mimetypes(outputs)  # the progress bar is a widget in Jupyter
