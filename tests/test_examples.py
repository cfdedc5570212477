"""The examples run as written (the notebooks: test_notebooks.py)."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_diabetes
from sklearn.linear_model import ElasticNet

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize("name", ["first_example.py", "second_example.py"])
def test_example_runs(name, tmp_path):
    out = subprocess.run([sys.executable, str(EXAMPLES / name), str(tmp_path / "run")],
                         capture_output=True, text=True, check=True).stdout
    assert "f1_weighted" in out


def test_tabular_example_runs(tmp_path):
    pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    out = subprocess.run([sys.executable, str(EXAMPLES / "tabular_example.py"), str(tmp_path / "run")],
                         capture_output=True, text=True, check=True).stdout
    assert "roc_auc" in out and "hgb__max_depth=" in out and "predictions: {'churn': " in out


def test_third_example_runs_small(tmp_path):
    env = dict(os.environ, MEMPAMAL_EXAMPLE_SMALL="1")
    out = subprocess.run([sys.executable, str(EXAMPLES / "third_example.py"), str(tmp_path / "run")],
                         capture_output=True, text=True, check=True, env=env).stdout
    assert "l1_ratio=" in out and "balanced_accuracy" in out


def test_fifth_example_runs_small(tmp_path):
    env = dict(os.environ, MEMPAMAL_EXAMPLE_SMALL="1")
    out = subprocess.run([sys.executable, str(EXAMPLES / "fifth_example.py"), str(tmp_path / "run")],
                         capture_output=True, text=True, check=True, env=env).stdout
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
