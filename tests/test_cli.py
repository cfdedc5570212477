"""The ``mempamal`` command, run as users run it: a real subprocess per call."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from mempamal import Experiment
from mempamal.cli import main
from mempamal.workdir.workflow import load_workflow

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "examples" / "iris_config.py"


def mempamal(*args, check=True):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
               MPLBACKEND="Agg")
    out = subprocess.run([sys.executable, "-m", "mempamal", *map(str, args)], capture_output=True, text=True,
                         env=env)
    if check:
        assert out.returncode == 0, out.stderr
    return out


def assert_user_error(out, *fragments):
    """A user's mistake: non-zero exit, a message on stderr naming the problem, no traceback."""
    assert out.returncode != 0
    assert "Traceback" not in out.stderr, out.stderr
    for fragment in fragments:
        assert fragment in out.stderr, out.stderr


SMALL_CONFIG = """
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from mempamal import Experiment
from mempamal.cli import main

experiment = Experiment(Pipeline([("scaler", StandardScaler()), ("logit", LogisticRegression())]),
                        cv=3, param_grid={"logit__C": [0.1, 1.0, 10.0]}, inner_cv=2, scoring="f1_weighted")

def load_data():
    return load_iris(return_X_y=True)
"""


def cli(capsys, *args, status=0):
    """``mempamal ARGS`` in-process (the subprocess tests cover the entry point): its stdout."""
    try:
        main([str(a) for a in args])
    except SystemExit as e:
        assert e.code == status
    else:
        assert status == 0
    return capsys.readouterr().out


def test_example_config_generates(tmp_path, capsys):
    out = cli(capsys, "generate", CONFIG, tmp_path / "iris")
    assert "31 tasks" in out and f"mempamal run {tmp_path / 'iris'}" in out


def test_generate_run_status_results_report(tmp_path, capsys):
    config = tmp_path / "config.py"
    config.write_text(SMALL_CONFIG)
    workdir = tmp_path / "iris"
    main(["generate", str(config), str(workdir)])
    assert "10 tasks" in capsys.readouterr().out
    main(["status", str(workdir)])
    assert "10 tasks: 0 done, 0 running, 10 pending, 0 failed" in capsys.readouterr().out

    assert mempamal("run", workdir, "--quiet").stdout == (
        "mempamal: 10 tasks: 10 done, 0 failed, 0 not run, 0 skipped (already complete)\n")
    status = json.loads(cli(capsys, "status", workdir, "--json"))
    assert status["counts"] == {"done": 10, "running": 0, "pending": 0, "failed": 0, "lost": 0, "total": 10}
    assert status["finished"]

    table = cli(capsys, "results", workdir)
    assert "f1_weighted" in table and "logit__C=" in table
    doc = json.loads(cli(capsys, "results", workdir, "--json"))
    assert doc["metrics"] == ["f1_weighted"] and len(doc["test_scores"]["f1_weighted"]) == 3
    assert len(doc["best_params"]) == 3 and "logit__C" in doc["best_params"][0]

    main(["report", str(workdir), "-o", str(tmp_path / "r.png")])
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"
    main(["report", str(workdir)])
    assert "data:image/png;base64," in (workdir / "report.html").read_text()

    # The same config again is the same experiment: kept, results included.
    main(["generate", str(config), str(workdir)])
    assert (workdir / "results.json").exists()


def test_status_names_failed_and_running_tasks(tmp_path, capsys):
    X, y = load_iris(return_X_y=True)
    workdir = tmp_path / "run"
    # C=-1 makes every fit raise; error_score="raise" makes the map tasks fail as a bug would.
    Experiment(LogisticRegression(), cv=2, param_grid={"C": [-1.0, 1.0]}, inner_cv=2,
               error_score="raise").write(X, y, workdir)
    tasks = load_workflow(workdir).tasks
    # The failed task's command, its output in its log, as a subprocess back-end runs it.
    (workdir / "logs").mkdir()
    with open(workdir / tasks[0].log, "w") as log:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        assert subprocess.run(tasks[0].command, cwd=workdir, stdout=log, stderr=subprocess.STDOUT,
                              env=env).returncode != 0
    (workdir / tasks[1].log).write_text("started, no output yet\n")  # what a running task's log looks like

    out = cli(capsys, "status", workdir, status=1)
    assert ": 7 tasks: 0 done, 1 running, 5 pending, 1 failed" in out
    assert f"failed {tasks[0].name}: sklearn.utils._param_validation.InvalidParameterError" in out
    assert str(workdir / tasks[0].log) in out and tasks[0].shell_command(workdir) in out
    doc = json.loads(cli(capsys, "status", workdir, "--json", status=1))
    assert doc["failed"][0]["task"] == tasks[0].name and doc["running"] == [tasks[1].name]


def user_error(*args):
    """A user's mistake, in-process: SystemExit with the message (printed to stderr by Python), no traceback."""
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in args])
    assert isinstance(e.value.code, str) and e.value.code.startswith("mempamal: error: ")
    return e.value.code


def test_user_errors_are_one_line_on_stderr(tmp_path):
    config = tmp_path / "own_estimator.py"
    config.write_text(
        "from sklearn.base import BaseEstimator\n"
        "from mempamal import Experiment\n"
        "class Mine(BaseEstimator):\n"
        "    def fit(self, X, y):\n"
        "        return self\n"
        "experiment = Experiment(Mine(), cv=3)\n"
        "def load_data():\n"
        "    return [[0.0]] * 6, [0, 1] * 3\n")
    assert_user_error(mempamal("generate", config, tmp_path / "w", check=False),
                      "own_estimator.py, line 6", "'Mine'", "put it in an importable module")

    bad = tmp_path / "bad.py"
    bad.write_text("x = 1\n")
    assert "must define `experiment" in user_error("generate", bad, tmp_path / "w")
    bad.write_text("from mempamal import Experiment\nfrom sklearn.linear_model import Ridge\n"
                   "experiment = Experiment(Ridge())\ndef load_data():\n    return 1\n")
    assert "load_data() must return (X, y) or (X, y, groups)" in user_error("generate", bad, tmp_path / "w")
    bad.write_text("import not_a_module_anywhere\n")
    assert "bad.py, line 1: No module named" in user_error("generate", bad, tmp_path / "w")
    assert "is not a file" in user_error("generate", tmp_path / "missing.py", tmp_path / "w")
    assert "no workflow here" in user_error("status", tmp_path / "nowhere")
    assert "no results yet" in user_error("results", tmp_path / "nowhere")
    assert "output: expected a .html or .png" in user_error("report", tmp_path / "nowhere", "-o", "x.pdf")
    with pytest.raises(SystemExit, match="no workflow here"):
        main(["run", str(tmp_path / "nowhere")])


def help_text(capsys, *args):
    with pytest.raises(SystemExit) as e:
        main([*args, "--help"])
    assert e.value.code == 0
    return capsys.readouterr().out


def subcommands(parser):
    import argparse

    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return action.choices


def test_every_command_explains_its_options(capsys):
    from mempamal.cli import _parser

    # The help's list of commands (not its epilog): argparse lists a command there only with its help.
    top = help_text(capsys)
    block = top.split("positional arguments:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert block[0].strip() == "COMMAND"
    listed = [line.split()[0] for line in block[1:]]
    assert listed == list(subcommands(_parser()))
    assert {"run", "export", "generate", "status", "results", "report", "task"} <= set(listed)
    expected = {"run": ["--backend", "--n-jobs", "--no-resume", "--quiet"],
                "generate": ["--overwrite", "--python", "config"],
                "status": ["--json"], "results": ["--json"], "report": ["--output"]}
    for command, options in expected.items():
        text = help_text(capsys, command)
        for option in options:
            assert option in text, (command, option)


def test_every_option_has_a_help_text():
    import argparse

    from mempamal.cli import _parser

    def check(parser, where):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    check(sub, f"{where} {name}")
            elif not isinstance(action, argparse._HelpAction):
                assert action.help, f"{where}: {action.option_strings or action.dest} has no help"

    check(_parser(), "mempamal")


def test_generate_passes_groups(tmp_path, capsys):
    config = tmp_path / "groups.py"
    config.write_text(
        "import numpy as np\n"
        "from sklearn.linear_model import Ridge\n"
        "from sklearn.model_selection import GroupKFold\n"
        "from mempamal import Experiment\n"
        "experiment = Experiment(Ridge(), cv=GroupKFold(3))\n"
        "def load_data():\n"
        "    return np.arange(24.0).reshape(12, 2), np.arange(12.0), np.repeat([0, 1, 2], 4)\n")
    cli(capsys, "generate", config, tmp_path / "w")
    assert (tmp_path / "w" / "data" / "groups.npy").exists()
    folds = np.load(tmp_path / "w" / "folds.npz")
    tests = [np.unique(np.repeat([0, 1, 2], 4)[folds[k]]) for k in folds.files if "test" in k and "o" in k]
    assert tests and all(len(t) == 1 for t in tests)  # each test fold is one whole group


def test_run_flags_come_from_the_back_ends_declarations(capsys):
    from mempamal.backends import available_backends, get_backend
    from mempamal.cli import _parser

    run_parser = subcommands(_parser())["run"]
    flags = {a.dest.removeprefix("backend option "): a for a in run_parser._actions
             if a.dest.startswith("backend option ")}
    declared = {o.name: [] for b in available_backends() for o in get_backend(b).options}
    for b in available_backends():
        for o in get_backend(b).options:
            declared[o.name].append((b, o))
    # One flag per option a back-end can take from a command line, however many back-ends take it.
    assert set(flags) == {name for name, users in declared.items() if any(o.cli for _, o in users)}
    assert {"client", "slurm", "config", "password", "max_jobs"}.isdisjoint(flags)  # Python-only
    assert flags["n_jobs"].option_strings == ["-j", "--n-jobs"]
    assert flags["n_jobs"].type is int
    assert all(f"{b}: " in flags["n_jobs"].help for b in ("local", "dask", "soma-workflow"))
    assert flags["scheduler_address"].help.startswith("dask: ")
    text = help_text(capsys, "run")
    for name in flags:
        assert f"--{name.replace('_', '-')}" in text


def test_run_refuses_an_option_of_another_back_end(tmp_path):
    X, y = load_iris(return_X_y=True)
    workdir = Experiment(LogisticRegression(), cv=2).write(X, y, tmp_path / "run")
    message = user_error("run", workdir, "--scheduler-address", "tcp://127.0.0.1:1")
    assert message == ("mempamal: error: backend 'local' has no option 'scheduler_address'; "
                       "its options: n_jobs, threads_per_task")
    assert not (workdir / "logs").exists()  # refused before anything ran
