"""Back-ends and export formats added from outside mempamal: register_backend, register_exporter,
and the options every back-end declares (Backend.options)."""
import inspect
import os
import subprocess
import warnings

import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from mempamal import Experiment, run
from mempamal.backends import _BACKENDS, Backend, Option, available_backends, get_backend, register_backend
from mempamal.cli import main
from mempamal.export import EXPORTERS, export, register_exporter
from mempamal.workdir.workflow import load_workflow

from conftest import assert_same_results


def write_iris(workdir):
    """Nested 2 x 2 over 2 values of C: 4 maps, 2 refits, a gather."""
    X, y = load_iris(return_X_y=True)
    pipe = Pipeline([("scaler", StandardScaler()), ("logit", LogisticRegression())])
    return Experiment(pipe, cv=StratifiedKFold(2, shuffle=True, random_state=0),
                      param_grid={"logit__C": [0.1, 1.0]}, inner_cv=2).write(X, y, workdir)


@pytest.fixture(scope="module")
def local_reference(tmp_path_factory):
    workdir = write_iris(tmp_path_factory.mktemp("local") / "run")
    run(workdir, backend="local", progress=False)
    return workdir


@pytest.fixture
def sequential():
    register_backend("sequential", "sequential_backend:SequentialBackend")
    yield "sequential"
    del _BACKENDS["sequential"]


def summary(n, done, skipped=0):
    return f"mempamal: {n} tasks: {done} done, 0 failed, 0 not run, {skipped} skipped (already complete)"


def test_registered_backend_runs_through_run(sequential, local_reference, tmp_path):
    assert "sequential" in available_backends()
    workdir = write_iris(tmp_path / "run")
    record = tmp_path / "record.txt"
    report = run(workdir, backend="sequential", record=str(record), progress=False)
    names = [t.name for t in load_workflow(workdir).tasks]
    assert report.names("done") == names
    assert record.read_text().splitlines() == names  # it ran each task, in dependency order
    assert_same_results(workdir, local_reference)

    with pytest.raises(ValueError) as e:
        run(workdir, backend="sequential", n_jobs=2)
    assert str(e.value) == "backend 'sequential' has no option 'n_jobs'; its options: record"


def test_registered_backend_runs_through_the_command_line(sequential, local_reference, tmp_path, capsys):
    workdir = write_iris(tmp_path / "run")
    record = tmp_path / "record.txt"
    main(["run", str(workdir), "--backend", "sequential", "--record", str(record), "-q"])
    assert capsys.readouterr().out == summary(7, 7) + "\n"
    assert record.read_text().splitlines() == [t.name for t in load_workflow(workdir).tasks]
    assert_same_results(workdir, local_reference)

    with pytest.raises(SystemExit) as e:
        main(["run", str(workdir), "--backend", "sequential", "-j", "2"])
    assert e.value.code == "mempamal: error: backend 'sequential' has no option 'n_jobs'; its options: record"
    # Its declared option is a flag of `mempamal run`, its help naming the back-end.
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    assert "--record RECORD" in capsys.readouterr().out
    from mempamal.cli import _parser
    from test_cli import subcommands

    (flag,) = [a for a in subcommands(_parser())["run"]._actions if "--record" in a.option_strings]
    assert flag.help == "sequential: a file to which each task's name is appended as it starts"


def test_a_backend_option_is_a_flag_only_while_registered(sequential):
    from mempamal.cli import _parser
    from test_cli import subcommands

    def flags():
        return {s for a in subcommands(_parser())["run"]._actions for s in a.option_strings}

    assert "--record" in flags()
    del _BACKENDS["sequential"]
    try:
        assert "--record" not in flags()
    finally:
        register_backend("sequential", "sequential_backend:SequentialBackend")


class Clashing(Backend):
    """A back-end whose option is named like run's own --backend flag."""

    name = "clashing"
    options = (Option("backend", str, "clashes with run's --backend"),)

    def __init__(self, backend=None):
        self.backend = backend

    def execute(self, workdir, workflow, tasks, progress):
        return {}


def test_an_option_named_like_a_flag_of_run_gets_no_flag(capsys):
    from mempamal.cli import _parser
    from test_cli import subcommands

    register_backend("clashing", f"{__name__}:Clashing")
    try:
        (flag,) = [a for a in subcommands(_parser())["run"]._actions if "--backend" in a.option_strings]
        assert flag.dest == "backend"  # run's own, and every command still parses
    finally:
        del _BACKENDS["clashing"]


def test_register_backend_checks_its_path():
    with pytest.raises(ValueError, match=r"^path: expected 'module:Class', got 'sequential_backend'$"):
        register_backend("bad", "sequential_backend")
    assert "bad" not in available_backends()


@pytest.mark.parametrize("name", ["local", "dask", "soma-workflow"])
def test_declared_options_are_the_constructors_keywords(name):
    """Declared once, next to the constructor: the same names, the same defaults."""
    cls = get_backend(name)
    params = {p.name: p.default for p in inspect.signature(cls.__init__).parameters.values() if p.name != "self"}
    assert [o.name for o in cls.options] == list(params)
    for option in cls.options:
        assert option.default == params[option.name], option.name
        assert option.help and "\n" not in option.help


def test_every_backend_calls_tasks_at_once_n_jobs():
    for name in ("local", "dask", "soma-workflow"):
        assert "n_jobs" in [o.name for o in get_backend(name).options]


def test_soma_workflow_max_jobs_is_n_jobs_with_a_warning():
    from mempamal.backends.soma_workflow import SomaWorkflowBackend

    with pytest.warns(FutureWarning, match="max_jobs: renamed n_jobs"):
        assert SomaWorkflowBackend(max_jobs=2).n_jobs == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert SomaWorkflowBackend(n_jobs=3).n_jobs == 3
    with pytest.raises(ValueError, match="^max_jobs: the former name of n_jobs; give n_jobs only$"):
        SomaWorkflowBackend(n_jobs=2, max_jobs=2)
    with pytest.raises(ValueError, match=r"^n_jobs: expected a non-zero int or None, got 0$"):
        SomaWorkflowBackend(n_jobs=0)


@pytest.fixture
def makefile_format():
    from sequential_backend import export_makefile

    register_exporter("makefile", export_makefile)
    yield "makefile"
    del EXPORTERS["makefile"]


def test_registered_exporter_exports_a_workflow_that_runs(makefile_format, local_reference, tmp_path, capsys):
    workdir = write_iris(tmp_path / "it's a $(touch PWNED) dir")
    out = export(workdir, "makefile", tmp_path / "a.mk")
    assert out == tmp_path / "a.mk"
    # Through the command line too: --format takes the registered name.
    main(["export", str(workdir), "--format", "makefile", "-o", str(tmp_path / "Makefile")])
    assert capsys.readouterr().out == f"mempamal: wrote {tmp_path / 'Makefile'}\n"
    assert (tmp_path / "Makefile").read_text() == out.read_text()
    proc = subprocess.run(["make", "-s", "-j", "2", "-f", str(tmp_path / "Makefile")], cwd=tmp_path,
                          capture_output=True, text=True, env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr
    assert_same_results(workdir, local_reference)
    assert not list(tmp_path.rglob("PWNED"))
