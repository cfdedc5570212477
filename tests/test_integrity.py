"""Integrity at run start: an error every task would hit is found once, before any task runs."""
import json
import subprocess
import sys

import numpy as np
import pytest
from sklearn.datasets import make_regression
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mempamal import Experiment, run, submit
from mempamal.experiment.encoding import DecodingError

from test_security import reseal


def small(workdir, **write):
    X, y = make_regression(30, 3, random_state=0)
    return Experiment(Ridge(), cv=KFold(2), param_grid={"alpha": [0.1, 1.0]}, inner_cv=KFold(2)).write(
        X, y, workdir, **write)


def tamper(workdir):
    doc = json.loads((workdir / "experiment.json").read_text())
    doc["estimator"] = {"__estimator__": "os.system", "params": {"command": "touch PWNED"}}
    (workdir / "experiment.json").write_text(json.dumps(doc))


def test_a_class_outside_the_trusted_packages_is_one_error_before_any_task(tmp_path):
    workdir = small(tmp_path / "run")
    tamper(workdir)
    reseal(workdir)  # the manifest edited too: only decoding can tell
    for start in (lambda: run(workdir, progress=False), lambda: submit(workdir)):
        with pytest.raises(DecodingError, match=r"experiment.json: 'os.system' is not in the allowed packages.*"
                                                r"nothing was run"):
            start()
    assert not list((workdir / "logs").glob("*.log")) and not (workdir / "submission").exists()
    proc = subprocess.run([sys.executable, "-m", "mempamal", "run", str(workdir), "-q"], capture_output=True,
                          text=True)
    assert proc.returncode == 1 and proc.stderr.count("is not in the allowed packages") == 1, proc.stderr


def test_the_task_command_refuses_an_experiment_json_changed_since_write(tmp_path):
    workdir = small(tmp_path / "run")
    tamper(workdir)  # the manifest not updated
    proc = subprocess.run([sys.executable, "-m", "mempamal", "task", "map", ".", "--outer", "0", "--inner", "0",
                           "--chunk", "0"], cwd=workdir, capture_output=True, text=True)
    assert proc.returncode == 1
    # The signature covers experiment.json's content (not its time, which a transfer to a cluster loses).
    assert "not trusted: experiment.json changed since it was signed" in proc.stderr
    assert f"mempamal trust {workdir}" in proc.stderr
    assert not (workdir / "maps").exists()


@pytest.mark.parametrize("estimator, params, words", [
    (Ridge(), "sampel_weight", r"params\['sampel_weight'\]: Ridge.fit\(\) takes no 'sampel_weight' \(it takes "
                               r"sample_weight\); did you mean 'sample_weight'\?"),
    (make_pipeline(StandardScaler(), Ridge()), "sample_weight",
     r"a Pipeline takes a fit parameter as '<step>__<name>'.*params=\{'ridge__sample_weight': ...\}"),
])
def test_write_refuses_a_params_key_no_step_takes(tmp_path, estimator, params, words):
    X, y = make_regression(30, 3, random_state=0)
    with pytest.raises(ValueError, match=words):
        Experiment(estimator, cv=KFold(2), inner_cv=KFold(2)).write(X, y, tmp_path / "run",
                                                                    params={params: np.ones(30)})
    assert not (tmp_path / "run" / "experiment.json").exists()
