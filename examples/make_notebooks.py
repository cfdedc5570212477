"""Write the example notebooks (examples/*.ipynb, without outputs) from the example scripts' cells.

    python examples/make_notebooks.py [--check]

The scripts are the one source: each is in the percent format that jupytext,
VS Code, Spyder and PyCharm read as cells (jupytext can open them as notebooks
too). Here, the subset this script reads:

- ``# %%`` starts a code cell; ``# %% [markdown]`` a markdown cell, each of
  its lines ``# text`` (or a bare ``#`` for a blank line);
- ``# %% active="py"``: a code cell of the script only (its argparse, its
  prints), left out of the notebook;
- ``# %% active="ipynb"``: a code cell of the notebook only (where it reads
  MEMPAMAL_EXAMPLE_SMALL and MEMPAMAL_EXAMPLE_WORKDIR, what it displays),
  commented out in the script, uncommented here;
- what comes before the first ``# %%`` (the docstring) is the script's alone.

``--check``: write nothing; exit with status 1, naming them, if a notebook
differs from what its script gives (the tests run this).
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent
EXAMPLES = ["first_example", "second_example", "third_example", "fourth_example", "fifth_example"]

_MARKER = re.compile(r'^# %%(?: \[(?P<kind>markdown)\])?(?: active="(?P<active>py|ipynb)")?\s*$')


def _uncomment(line: str, where: str) -> str:
    """``# text`` -> ``text``, ``#`` -> ``""``; anything else is a mistake in the script."""
    if line == "#" or line.startswith("# "):
        return line[2:]
    raise ValueError(f"{where}: expected '# ' or '#' at the start of each line of this cell, got {line!r}")


def cells_of(script: Path) -> list[tuple[str, str]]:
    """The notebook cells of a percent-format script, as (``"markdown"`` or ``"code"``, source)."""
    cells, kind, active, lines = [], None, None, []

    def close():
        if kind is not None and active != "py":  # a script-only cell is left out
            source = "\n".join(lines).strip("\n")
            if source:
                cells.append((kind, source))

    for number, line in enumerate(script.read_text(encoding="utf-8").splitlines(), 1):
        if line.startswith("# %%"):
            match = _MARKER.match(line)
            if match is None:
                raise ValueError(f"{script.name}:{number}: unknown cell marker {line!r}; expected '# %%', "
                                 "'# %% [markdown]', '# %% active=\"py\"' or '# %% active=\"ipynb\"'")
            close()
            kind, active, lines = match["kind"] or "code", match["active"], []
            if kind == "markdown" and active:
                raise ValueError(f"{script.name}:{number}: a markdown cell is in both the script and the notebook")
        elif kind is None:
            continue  # before the first cell: the script's docstring
        elif kind == "markdown" or active == "ipynb":
            lines.append(_uncomment(line, f"{script.name}:{number}") if line.strip() else "")
        else:
            lines.append(line)
    close()
    return cells


def notebook_of(script: Path) -> nbformat.NotebookNode:
    """The notebook of an example script, without outputs; cell ids are the script's name and a number,
    so that writing it again changes nothing."""
    nb = new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                                "language_info": {"name": "python"}})
    for i, (kind, source) in enumerate(cells_of(script)):
        cell = new_markdown_cell(source) if kind == "markdown" else new_code_cell(source)
        cell.id = f"{script.stem}-{i}"
        nb.cells.append(cell)
    return nb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true",
                        help="write nothing, exit with status 1 if a notebook is not its script's")
    args = parser.parse_args(argv)
    stale = []
    for name in EXAMPLES:
        text = nbformat.writes(notebook_of(HERE / f"{name}.py"))
        text += "" if text.endswith("\n") else "\n"  # as nbformat.write ends a file
        target = HERE / f"{name}.ipynb"
        if target.exists() and target.read_text(encoding="utf-8") == text:
            continue
        stale.append(target.name)
        if not args.check:
            tmp = target.with_name(f".{target.name}.tmp")
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(target)  # atomic: a notebook open in Jupyter never sees half a file
    if args.check and stale:
        print(f"not up to date with their scripts: {', '.join(stale)}; run python examples/make_notebooks.py",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
