"""The gallery's sources, made at build time from the example scripts of examples/.

The scripts are the one source of the examples (examples/make_notebooks.py
writes the notebooks from their cells); this module writes what sphinx-gallery
reads from the same cells, so the gallery cannot drift from the scripts:

- the docstring, its first line as the page title, its usage lines as a literal block;
- ``# %% [markdown]`` cells as text blocks (markdown's inline code and links in rST);
- ``# %%`` and ``# %% active="py"`` cells as code, run as the script runs them
  (its arguments come from sphinx-gallery's ``reset_argv``: a scratch workdir and ``--small``);
- ``# %% active="ipynb"`` cells only when they show what the script does not print
  (a figure, a table), uncommented; a trailing ``res.plot()`` becomes ``fig = res.plot()``,
  which :func:`figure_scraper` then shows.

The other files of examples/ (``elastic_net.py``, which the third example imports) are copied beside them.
"""
from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SCRIPTS = ["first_example", "second_example", "third_example", "fourth_example", "fifth_example",
           "tabular_example"]
HELPERS = ["elastic_net.py"]

_INLINE_CODE = re.compile(r"(?<!`)`([^`]+)`(?!`)")
_LINK = re.compile(r"\[([^\]]+)\]\(([^)]+)\)")
_PLOT = re.compile(r"^(\w+)\.plot\((.*)\)$")


def markdown_to_rst(text: str) -> str:
    """The little markdown the example cells use, as rST: ``code``, links, headings dropped."""
    lines = []
    for line in text.splitlines():
        if line.startswith("#"):
            continue  # the notebook's heading: the page has the docstring's title
        line = _LINK.sub(r"`\1 <\2>`__", line)
        lines.append(_INLINE_CODE.sub(r"``\1``", line))
    return "\n".join(lines).strip("\n")


def _docstring_block(docstring: str) -> str:
    """The script's docstring as the gallery page's header: title, usage as a literal block."""
    title, _, rest = docstring.strip().partition("\n")
    title = title.rstrip(".")
    rest = re.sub(r"\n\n(    python [^\n]+)", r"\n\nFrom a shell::\n\n\1", "\n" + rest.rstrip())
    return f'"""\n{title}\n{"=" * len(title)}\n{rest}\n"""\n'


def _comment(text: str) -> str:
    return "\n".join(f"# {line}" if line else "#" for line in text.splitlines())


def _shown_cell(source: str) -> str | None:
    """A notebook-only cell, as the gallery shows it, or None when the script already shows it."""
    if "MEMPAMAL_EXAMPLE_" in source or not (".plot(" in source or "DataFrame(" in source):
        return None
    lines = [line for line in source.splitlines() if not line.startswith("%")]  # IPython magics
    match = _PLOT.match(lines[-1]) if lines else None
    if match:
        lines[-1] = f"fig = {lines[-1]}"
    return "\n".join(lines).strip("\n")


def gallery_source(script: Path, copy: Path) -> str:
    """The sphinx-gallery source of one example ``script``, to be written at ``copy``."""
    sys.path.insert(0, str(EXAMPLES))
    try:
        from make_notebooks import _MARKER, _uncomment
    finally:
        sys.path.remove(str(EXAMPLES))
    text = script.read_text(encoding="utf-8")
    docstring = re.match(r'\s*"""(.*?)"""\n', text, re.S)
    body = text[docstring.end():]
    blocks = [_docstring_block(docstring[1])]
    if "\n# %%" not in "\n" + body:
        return blocks[0] + body  # a script without cells (tabular_example): one code block
    for chunk in re.split(r"^(?=# %%)", body, flags=re.M):
        if not chunk.startswith("# %%"):
            continue
        marker, _, source = chunk.partition("\n")
        match = _MARKER.match(marker)
        if match["kind"] == "markdown":
            source = "\n".join(_uncomment(line, script.name) if line.strip() else "" for line in source.splitlines())
            blocks.append(f"# %%\n{_comment(markdown_to_rst(source))}\n")
        elif match["active"] == "ipynb":
            source = "\n".join(_uncomment(line, script.name) if line.strip() else ""
                               for line in source.strip("\n").splitlines())
            shown = _shown_cell(source)
            if shown:
                blocks.append(f"# %%\n{shown}\n")
        else:
            blocks.append(f"# %%\n{_with_file(source.strip(chr(10)), copy)}\n")
    return "\n".join(blocks)


def _with_file(source: str, copy: Path) -> str:
    """sphinx-gallery runs a script without ``__file__``: set it, hidden, where the script reads it."""
    lines = source.splitlines()
    first = next((i for i, line in enumerate(lines) if "__file__" in line), None)
    if first is None:
        return source
    # Not at the block's start: a block starting with comments would be a text block.
    hidden = ["# sphinx_gallery_start_ignore", f"__file__ = {str(copy)!r}  # the gallery's copy",
              "# sphinx_gallery_end_ignore"]
    return "\n".join(lines[:first] + hidden + lines[first:])


def write_gallery_sources(target: Path, header: str) -> None:
    """Write every example's gallery source and its helpers into ``target`` (replaced whole)."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    (target / "GALLERY_HEADER.rst").write_text(header, encoding="utf-8")
    for name in SCRIPTS:
        (target / f"{name}.py").write_text(gallery_source(EXAMPLES / f"{name}.py", target / f"{name}.py"), encoding="utf-8")
    for name in HELPERS:
        shutil.copy2(EXAMPLES / name, target / name)


_SHOWN: dict[int, object] = {}


def figure_scraper(block, block_vars, gallery_conf, **kwargs) -> str:
    """sphinx-gallery scraper: the matplotlib Figures the block left in the example's globals.

    mempamal's plots are ``matplotlib.figure.Figure`` objects made without pyplot (no global
    state in a library), which sphinx-gallery's own matplotlib scraper does not see.
    """
    from matplotlib.figure import Figure
    from sphinx_gallery.scrapers import figure_rst

    paths = []
    for value in list(block_vars["example_globals"].values()):
        if isinstance(value, Figure) and id(value) not in _SHOWN:
            _SHOWN[id(value)] = value  # kept alive, so that its id is never another figure's
            path = next(block_vars["image_path_iterator"])
            value.savefig(path, dpi=80)
            paths.append(path)
    return figure_rst(paths, gallery_conf["src_dir"])
