"""The examples run as written (the notebooks: test_notebooks.py)."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_diabetes
from sklearn.linear_model import ElasticNet

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


SCRIPTS = ["first_example.py", "second_example.py", "third_example.py", "fourth_example.py", "fifth_example.py",
           "tabular_example.py", "make_notebooks.py"]


def run_small(name, workdir, *options):
    """An example script run at its small size (``--small``), its output."""
    return subprocess.run([sys.executable, str(EXAMPLES / name), str(workdir), "--small", *options],
                          capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize("name", SCRIPTS)
def test_help_prints_usage_and_runs_nothing(name, tmp_path):
    out = subprocess.run([sys.executable, str(EXAMPLES / name), "--help"], cwd=tmp_path,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"usage: {name} ")
    if name != "make_notebooks.py":
        assert "[--small]" in out.stdout and "workdir" in out.stdout
    assert list(tmp_path.iterdir()) == [], "--help must create nothing (no workdir named --help)"


@pytest.mark.parametrize("name", SCRIPTS)
def test_an_unknown_option_is_an_error_not_a_workdir(name, tmp_path):
    out = subprocess.run([sys.executable, str(EXAMPLES / name), "--bogus"], cwd=tmp_path,
                         capture_output=True, text=True)
    assert out.returncode == 2 and "unrecognized arguments: --bogus" in out.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["first_example.py", "second_example.py"])
def test_example_runs(name, tmp_path):
    assert "f1_weighted" in run_small(name, tmp_path / "run")


def test_tabular_example_runs(tmp_path):
    pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    out = run_small("tabular_example.py", tmp_path / "run")
    assert "roc_auc" in out and "hgb__max_depth=" in out and "predictions: {'churn': " in out


def test_third_example_runs_small(tmp_path):
    out = run_small("third_example.py", tmp_path / "run", "--plot")
    assert "l1_ratio=" in out and "balanced_accuracy" in out
    assert (tmp_path / "run" / "elastic_net.png").stat().st_size > 0


def test_fifth_example_runs_small(tmp_path):
    out = run_small("fifth_example.py", tmp_path / "run")
    assert "p-value (FWER)" in out and "target 3 (noise): r2 " in out
    assert (tmp_path / "run" / "permutations.png").stat().st_size > 0


def test_user_written_elastic_net_equals_sklearn():
    sys.path.insert(0, str(EXAMPLES))
    try:
        from elastic_net import SimpleElasticNet
    finally:
        sys.path.remove(str(EXAMPLES))
    X, y = load_diabetes(return_X_y=True)
    for alpha, l1_ratio in [(0.01, 0.5), (0.1, 0.9), (0.001, 0.1)]:
        mine = SimpleElasticNet(alpha, l1_ratio, tol=1e-10, max_iter=10_000).fit(X, y)
        theirs = ElasticNet(alpha=alpha, l1_ratio=l1_ratio, tol=1e-12, max_iter=100_000).fit(X, y)
        np.testing.assert_allclose(mine.coef_, theirs.coef_, atol=1e-8)
        np.testing.assert_allclose(mine.intercept_, theirs.intercept_, atol=1e-8)
