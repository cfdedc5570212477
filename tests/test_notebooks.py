"""The example notebooks are their scripts' cells, and run as written (nbclient, one kernel each), on smaller
problems.

Each notebook reads MEMPAMAL_EXAMPLE_SMALL=1 to shrink its data, folds and grid,
and MEMPAMAL_EXAMPLE_WORKDIR for where to write. The five run two at a time (a
kernel's start-up is mostly one core's work), once for all the tests here.
"""
import asyncio
import os
import subprocess
import sys
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


def test_notebooks_are_their_scripts_cells():
    out = subprocess.run([sys.executable, str(EXAMPLES / "make_notebooks.py"), "--check"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_script_only_cells_stay_out_of_notebooks_and_notebook_only_cells_in(tmp_path):
    sys.path.insert(0, str(EXAMPLES))
    try:
        from make_notebooks import cells_of
    finally:
        sys.path.remove(str(EXAMPLES))
    script = tmp_path / "example.py"
    script.write_text('''"""The docstring: the script's only."""
# %% [markdown]
# # A title
#
# Some *text*.

# %% active="py"
import argparse

# %% active="ipynb"
# import os
#
# small = os.environ.get("SMALL") == "1"

# %%
x = 1
''')
    assert cells_of(script) == [("markdown", "# A title\n\nSome *text*."),
                                ("code", "import os\n\nsmall = os.environ.get(\"SMALL\") == \"1\""),
                                ("code", "x = 1")]
    script.write_text("# %% [code]\nx = 1\n")
    with pytest.raises(ValueError, match="example.py:1: unknown cell marker"):
        cells_of(script)
    script.write_text("# %% [markdown]\nnot a comment\n")
    with pytest.raises(ValueError, match="example.py:2: expected '# ' or '#'"):
        cells_of(script)


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
