"""The documentation's code runs: the docstring examples of the public API and the
doctest blocks of docs/*.rst, each in a scratch directory (their workdirs are relative)."""
import doctest
import importlib
import os
import sys
import tempfile
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
sys.path.insert(0, str(DOCS / "_ext"))
from generated_pages import PUBLIC_MODULES, public_names  # noqa: E402

sys.path.remove(str(DOCS / "_ext"))

FLAGS = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS


def _public_objects():
    seen = set()
    for module_name in PUBLIC_MODULES:
        names = public_names(module_name)
        module = importlib.import_module(module_name) if names is not None else None
        for name in names or []:
            obj = getattr(module, name)
            if callable(obj) and id(obj) not in seen:
                seen.add(id(obj))
                yield f"{module_name}.{name}", obj


PUBLIC = dict(_public_objects())
WITH_EXAMPLES = {name: obj for name, obj in PUBLIC.items() if ">>>" in (obj.__doc__ or "")}
RST_WITH_DOCTESTS = sorted(str(p.relative_to(DOCS)) for p in DOCS.rglob("*.rst")
                           if "_build" not in p.parts and "\n>>> " in p.read_text(encoding="utf-8"))


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    """A scratch directory, and what an example may change restored after it (it sets the signing key's
    or the cache's variable, puts its own modules on sys.path, registers a back-end or an export format)."""
    from mempamal import backends, export
    from mempamal.workdir.trust import KEY_ENV

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MEMPAMAL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv(KEY_ENV, os.environ[KEY_ENV])  # set by conftest.py: restored if an example changes it
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # an example's mkdtemp() is removed with the rest
    registries = [(backends._BACKENDS, dict(backends._BACKENDS)), (export.EXPORTERS, dict(export.EXPORTERS))]
    with warnings.catch_warnings():
        yield tmp_path
    for registry, saved in registries:  # in place: other modules hold these dicts
        registry.clear()
        registry.update(saved)


def test_the_main_entry_points_have_examples():
    for name in ["mempamal.Experiment", "mempamal.run", "mempamal.load_results",
                 "mempamal.model_selection.cross_validate", "mempamal.model_selection.permutation_test_score"]:
        assert name in WITH_EXAMPLES, f"{name}: its docstring needs an Examples section"


def test_every_public_name_has_an_example():
    assert sorted(set(PUBLIC) - set(WITH_EXAMPLES)) == [], "these docstrings need an Examples section"


@pytest.mark.parametrize("name", sorted(WITH_EXAMPLES))
def test_docstring_examples_run(name, scratch):
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner(optionflags=FLAGS)
    for test in finder.find(WITH_EXAMPLES[name], name):
        runner.run(test)
    assert runner.failures == 0, f"{name}: {runner.failures} of {runner.tries} examples failed (output above)"


@pytest.mark.parametrize("page", RST_WITH_DOCTESTS)
def test_user_guide_doctests_run(page, scratch):
    result = doctest.testfile(str(DOCS / page), module_relative=False, optionflags=FLAGS)
    assert result.failed == 0, f"docs/{page}: {result.failed} of {result.attempted} examples failed"


def test_there_are_user_guide_doctests():
    pages = ["getting_started.rst"] + [f"user_guide/{name}.rst" for name in
                                       ["experiment", "permutations", "results", "stacking", "tabular", "workdir",
                                        "reliability"]]
    assert sorted(set(pages) - set(RST_WITH_DOCTESTS)) == [], "these pages lost their doctest blocks"


def test_readme_is_short_and_its_links_resolve():
    import re

    text = (ROOT / "README.rst").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250, "README.rst: keep it to what a newcomer needs; the rest goes to docs/"
    targets = re.findall(r"`[^`<]*<([^>]+)>`_", text) + re.findall(r"^\.\. image:: (\S+)", text, re.M)
    local = [t for t in targets if "://" not in t]
    assert local, "README.rst should point into docs/"
    missing = [t for t in local if not (ROOT / t.split("#")[0]).exists()]
    assert not missing, f"README.rst links to missing files: {missing}"
