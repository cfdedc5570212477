"""The package's imports: light where a task starts, one way between folders, no cycle.

Read from the source (ast) and from real subprocesses; no timing is asserted: what a
command imports is compared by module name.
"""
import ast
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import mempamal
from mempamal import exceptions

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "mempamal"
# Third-party packages a task or `import mempamal` must not pay for unless it uses them.
HEAVY = ("sklearn", "scipy", "pandas", "pyarrow", "dask", "distributed", "dask_jobqueue", "soma_workflow",
         "matplotlib", "joblib", "tqdm")
# Each folder (or top-level module) may import its own floor and those below, never above.
FLOORS = {
    "mempamal": 0, "mempamal.exceptions": 0, "mempamal._moved": 0,
    "mempamal.workdir": 1,
    "mempamal.experiment": 2,
    "mempamal.tasks": 3,
    "mempamal.backends": 4, "mempamal.export": 4, "mempamal.results": 4,
    "mempamal.running": 5, "mempamal.submission": 5, "mempamal.model_selection": 5, "mempamal.trusting": 5,
    "mempamal.cli": 6,
    "mempamal.__main__": 7,
}
# Where mempamal's own modules are imported at the top only (lazy imports: heavy third-party only).
TOP_ONLY = ("mempamal.cli", "mempamal.running", "mempamal.trusting", "mempamal.backends", "mempamal.export",
            "mempamal.workdir")


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> list[tuple[str, bool]]:
    """(mempamal module imported, whether at the top of the module) for each import of ``name``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    top = set(map(id, tree.body))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # `from .pkg import mod` imports the module pkg.mod; `from .mod import name` the module mod.
            targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in MODULES else module for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in MODULES and target.startswith("mempamal."):
                target = target.rpartition(".")[0]  # `import mempamal.workdir.files.x`: the module
            if target in MODULES and target != name:
                out.append((target, id(node) in top))
    return out


GRAPH = {name: sorted({t for t, _ in _imports(name, path)}) for name, path in MODULES.items()}


def _floor(name: str) -> int | None:
    """The floor of a module: its own, or its folder's (None: a module the table does not place)."""
    parts = name.split(".")
    for k in range(len(parts), 1, -1):  # the module, then its folders up to mempamal.<folder>
        if ".".join(parts[:k]) in FLOORS:
            return FLOORS[".".join(parts[:k])]
    return FLOORS.get(name)  # mempamal itself


def test_every_module_has_a_floor():
    assert not [name for name in MODULES if name != "mempamal" and _floor(name) is None]


def _cycle(graph: dict[str, list[str]]) -> list[str] | None:
    """One cycle of ``graph`` (its modules in order), or None."""
    state: dict[str, int] = {}  # 1: on the path being explored, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for child in graph.get(node, ()):
            if state.get(child) == 1:
                return path[path.index(child):] + [child]
            if child not in state:
                found = visit(child)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_graph_is_read():
    assert "mempamal.workdir.files" in GRAPH["mempamal.workdir.data"]
    assert "mempamal.export.soma_workflow" in GRAPH["mempamal.backends.soma_workflow"]
    assert _cycle({"a": ["b"], "b": ["c"], "c": ["a"]}) == ["a", "b", "c", "a"]


def test_no_import_cycle():
    assert _cycle(GRAPH) is None, " -> ".join(_cycle(GRAPH))


def test_imports_go_down_the_floors():
    up = [f"{a} -> {b}" for a, targets in GRAPH.items() for b in targets
          if _floor(a) is not None and _floor(b) is not None and _floor(b) > _floor(a)]
    assert not up, "imports going up: " + "; ".join(up)


def test_exporters_never_import_backends():
    # Back-ends may use the exports' translations (Soma-Workflow, sacct), never the other way.
    wrong = [f"{a} -> {b}" for a, targets in GRAPH.items() if a.startswith("mempamal.export")
             for b in targets if b.startswith("mempamal.backends")]
    assert not wrong, wrong


@pytest.mark.parametrize("area", TOP_ONLY)
def test_own_modules_imported_at_the_top(area):
    lazy = [f"{name} imports {target} inside a function" for name, path in MODULES.items()
            if name == area or name.startswith(area + ".")
            for target, at_top in _imports(name, path) if not at_top]
    assert not lazy, lazy


def _imported_by(code: str) -> set[str]:
    """The top-level names of the modules a fresh interpreter has imported after ``code``."""
    script = code + "\nimport json, sys\nprint('\\n@@' + json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    return set(json.loads(out.stdout.rpartition("\n@@")[2]))


def test_import_mempamal_is_light():
    assert not _imported_by("import mempamal") & set(HEAVY)


def test_task_help_is_light():
    # `python -m mempamal task --help`, as a task command starts (its parser is built whole).
    code = ("import runpy, sys\nsys.argv = ['mempamal', 'task', '--help']\n"
            "try:\n    runpy.run_module('mempamal', run_name='__main__', alter_sys=True)\n"
            "except SystemExit as e:\n    assert not e.code, e.code")
    imported = _imported_by(code)
    assert "mempamal" in imported
    assert not imported & set(HEAVY)


def test_task_help_runs():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    out = subprocess.run([sys.executable, "-m", "mempamal", "task", "--help"], capture_output=True, text=True,
                         env=env, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    for stage in ("map", "refit", "permute", "gather", "batch"):
        assert stage in out.stdout


def test_every_error_is_a_mempamal_error_and_keeps_its_builtin_base():
    builtin = {"ConfigError": ValueError, "EncodingError": ValueError, "DecodingError": ValueError,
               "InputFileError": RuntimeError, "TaskInputError": RuntimeError, "DataChangedError": RuntimeError,
               "LockError": RuntimeError, "WorkflowError": RuntimeError}
    for name, base in builtin.items():
        cls = getattr(exceptions, name)
        assert issubclass(cls, exceptions.MempamalError) and issubclass(cls, base), name
    assert issubclass(exceptions.StaleLockWarning, UserWarning)
    assert issubclass(exceptions.DataChangedError, exceptions.InputFileError)


def test_errors_are_defined_once():
    # Each old home gives the very class of mempamal.exceptions (`except` and isinstance keep working).
    from mempamal.backends import WorkflowError
    from mempamal.experiment.config import ConfigError
    from mempamal.experiment.encoding import DecodingError, EncodingError
    from mempamal.workdir.files import InputFileError
    from mempamal.workdir.lock import LockError, StaleLockWarning
    from mempamal.workdir.manifest import DataChangedError

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from mempamal.lock import LockError as OldLockError
    assert OldLockError is LockError is exceptions.LockError
    for cls in (WorkflowError, ConfigError, DecodingError, EncodingError, InputFileError, StaleLockWarning,
                DataChangedError):
        assert getattr(exceptions, cls.__name__) is cls
    defined = [f"{name}.{node.name}" for name, path in MODULES.items() if name != "mempamal.exceptions"
               for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
               if isinstance(node, ast.ClassDef) and any(
                   getattr(b, "id", getattr(b, "attr", "")).endswith(("Error", "Exception", "Warning"))
                   for b in node.bases)]
    assert not defined, f"exception classes outside mempamal.exceptions: {defined}"


def test_one_status_vocabulary():
    from mempamal.backends import DONE, FAILED, NOT_RUN
    from mempamal.workdir import status

    assert (DONE, FAILED, NOT_RUN) == (status.Status.DONE, status.Status.FAILED, status.Status.NOT_RUN)
    assert [str(s) for s in status.STATES] == ["done", "running", "pending", "failed", "lost"]
    assert f"{status.LOST}" == "lost" and json.dumps({status.DONE: status.NOT_RUN}) == '{"done": "not run"}'


def test_format_tags_live_in_layout():
    tagged = [f"{name}: {node.value}" for name, path in MODULES.items() if name != "mempamal.workdir.layout"
              for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
              if isinstance(node, ast.Constant) and isinstance(node.value, str)
              and node.value.startswith("mempamal/") and node.value[-1:].isdigit()]
    assert not tagged, tagged


def test_version_is_written_once():
    assert mempamal.__version__ and mempamal.__version__ in (PACKAGE / "__init__.py").read_text()
    assert mempamal.__version__ not in (ROOT / "setup.py").read_text()
