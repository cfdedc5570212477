"""Shared test helpers: scikit-learn's own nested cross-validation is the oracle."""
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV, cross_validate


def pytest_configure(config):
    # The session's own signing key (mempamal.workdir.trust), never the user's ~/.config: set before the
    # test modules are collected (some build subprocess environments from os.environ at import), and in
    # os.environ, so that every subprocess (task commands, workers, the CLI) holds it. Created on first use.
    from mempamal.workdir.trust import KEY_ENV

    global _SAVED_KEY_ENV, _KEY_DIR
    _SAVED_KEY_ENV, _KEY_DIR = os.environ.get(KEY_ENV), tempfile.mkdtemp(prefix="mempamal-key-")
    os.environ[KEY_ENV] = os.path.join(_KEY_DIR, "key")
    config.addinivalue_line("markers", "slurm: needs a single-node SLURM started by the test session "
                                       "(root and apt-get; select with -m slurm)")
    config.addinivalue_line("markers", "remote: needs the loopback remote cluster (sshd, a cluster account, "
                                       "Soma-Workflow's server) started by the test session (root and apt-get; "
                                       "select with -m remote)")
    config.addinivalue_line("markers", "browser: opens the built documentation and a report in headless "
                                       "Chromium (installed with apt-get when missing; select with -m browser)")


def pytest_unconfigure(config):
    from mempamal.workdir.trust import KEY_ENV

    if _KEY_DIR is not None:
        shutil.rmtree(_KEY_DIR, ignore_errors=True)
        if _SAVED_KEY_ENV is None:
            os.environ.pop(KEY_ENV, None)
        else:
            os.environ[KEY_ENV] = _SAVED_KEY_ENV


_SAVED_KEY_ENV = _KEY_DIR = None


def sklearn_nested(estimator, param_grid, X, y, *, cv, inner_cv, scoring, refit=True, groups=None,
                   search_cls=GridSearchCV, **search_kwargs):
    """cross_validate(GridSearchCV(...)) on the same folds: the results mempamal must equal."""
    search = search_cls(estimator, param_grid, cv=inner_cv, scoring=scoring, refit=refit, **search_kwargs)
    params = None if groups is None else {"groups": groups}
    return cross_validate(search, X, y, cv=cv, scoring=scoring, groups=groups, params=params,
                          return_estimator=True)


def assert_same_as_sklearn(results, oracle, metrics):
    """Per-outer-fold test scores within 1e-12 and the same chosen parameters."""
    for m in metrics:
        key = f"test_{m}" if f"test_{m}" in oracle else "test_score"
        np.testing.assert_allclose(results.test_scores[m], oracle[key], rtol=0, atol=1e-12)
    if "estimator" in oracle and hasattr(oracle["estimator"][0], "best_params_"):
        for mine, search in zip(results.best_params, oracle["estimator"]):
            assert_params_equal(mine, search.best_params_)


def assert_params_equal(a, b):
    assert a.keys() == b.keys()
    for k in a:
        if hasattr(a[k], "get_params"):
            assert type(a[k]) is type(b[k])
            assert_params_equal(a[k].get_params(deep=False), b[k].get_params(deep=False))
        else:
            assert a[k] == b[k] or (a[k] != a[k] and b[k] != b[k]), (k, a[k], b[k])


def assert_same_results(a, b):
    """Two Results (or the workdirs holding them) are exactly equal, timings aside: test scores, inner
    scores, chosen candidates and parameters, and every outer fold's test samples and predictions."""
    from mempamal import load_results

    a, b = (load_results(r) if isinstance(r, (str, os.PathLike)) else r for r in (a, b))
    assert a.metrics == b.metrics and a.refit == b.refit
    for m in a.metrics:
        np.testing.assert_array_equal(a.test_scores[m], b.test_scores[m], err_msg=f"test_scores[{m!r}]")
    assert a.inner_scores.keys() == b.inner_scores.keys()
    for m in a.inner_scores:
        np.testing.assert_array_equal(a.inner_scores[m], b.inner_scores[m], err_msg=f"inner_scores[{m!r}]")
    assert a.best_index == b.best_index
    if a.best_params is None or b.best_params is None:
        assert a.best_params is b.best_params is None
    else:
        assert len(a.best_params) == len(b.best_params)
        for pa, pb in zip(a.best_params, b.best_params):
            assert_params_equal(pa, pb)
    assert len(a.test_predictions) == len(b.test_predictions) == a.n_outer
    for o in range(a.n_outer):
        np.testing.assert_array_equal(a.test_indices[o], b.test_indices[o], err_msg=f"test_indices[{o}]")
        np.testing.assert_array_equal(a.test_predictions[o], b.test_predictions[o],
                                      err_msg=f"test_predictions[{o}]")


CLUSTER = Path(__file__).parent / "cluster"


# Here, not in test_slurm.py: a session fixture imported into another test module is a second fixture
# there, and would start a second SLURM for that module's tests.
@pytest.fixture(scope="session")
def slurm():
    """A running single-node SLURM (tests/cluster/slurm_up.sh); yields its state directory, with
    SLURM_CONF set for this process."""
    if os.environ.get("MEMPAMAL_TEST_SLURM") == "0":
        pytest.skip("MEMPAMAL_TEST_SLURM=0: SLURM tests turned off")
    if os.geteuid() != 0:
        pytest.skip("SLURM tests need root: they start munged, slurmctld, slurmd, slurmdbd and MariaDB")
    if shutil.which("sbatch") is None and shutil.which("apt-get") is None:
        pytest.skip("SLURM tests need SLURM installed or apt-get to install it (Debian's slurm-wlm)")
    state = Path(tempfile.mkdtemp(prefix="mempamal-slurm-"))  # short: unix socket paths are limited
    log = state / "slurm_up.log"
    saved = os.environ.get("SLURM_CONF")
    started = False
    try:
        # Output to a file, not a pipe: the daemons inherit it and would keep a pipe open.
        with open(log, "w") as f:
            up = subprocess.run(["bash", str(CLUSTER / "slurm_up.sh"), str(state)], stdout=f,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=300)
        if up.returncode:
            pytest.fail(f"SLURM did not start (slurm_up.sh exited {up.returncode}); its output:\n"
                        f"{log.read_text()[-3000:]}\nlogs: {state / 'log'}", pytrace=False)
        os.environ["SLURM_CONF"] = str(state / "etc" / "slurm.conf")
        started = True
        yield state
    finally:
        if saved is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = saved
        stop = subprocess.run(["bash", str(CLUSTER / "slurm_stop.sh"), str(state)], capture_output=True,
                              text=True, timeout=120)
        assert stop.returncode == 0, f"slurm_stop.sh: {stop.stdout}{stop.stderr}"
        if started:  # ~200 MB of state and database; kept, with the logs, when the start failed
            shutil.rmtree(state, ignore_errors=True)


@pytest.fixture
def workdir(tmp_path):
    return tmp_path / "run"
