"""Inputs changed after write(): run refuses them (size, time), ``mempamal verify`` checks their hashes."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import make_regression
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold

from mempamal import Experiment, run
from mempamal.workdir.manifest import DataChangedError, verify
from mempamal.workdir.trust import UntrustedWorkdirError

ROOT = Path(__file__).resolve().parent.parent
INPUTS = ["data/X.npy", "data/y.npy", "folds.npz", "experiment.json"]


def mempamal(*args):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "mempamal", *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=300)


def data():
    return make_regression(30, 3, noise=1.0, random_state=0)


def write(workdir):
    X, y = data()
    Experiment(Ridge(), cv=KFold(2), param_grid={"alpha": [0.1, 1.0]}, inner_cv=2).write(X, y, workdir)


def test_manifest_records_each_input(workdir):
    write(workdir)
    doc = json.loads((workdir / "manifest.json").read_text())
    assert doc["format"] == "mempamal/manifest-1" and sorted(doc["files"]) == sorted(INPUTS)
    import hashlib

    for name, entry in doc["files"].items():
        st = (workdir / name).stat()
        assert entry == {"size": st.st_size, "mtime_ns": st.st_mtime_ns,
                         "sha256": hashlib.sha256((workdir / name).read_bytes()).hexdigest()}
    out = mempamal("verify", workdir)
    assert out.returncode == 0, out.stderr
    assert all(f"ok      {workdir.resolve() / name}" in out.stdout for name in INPUTS)
    assert "every input is as written" in out.stdout


def test_edited_data_is_refused_by_run_and_reported_by_verify(workdir):
    write(workdir)
    y = np.load(workdir / "data/y.npy")
    np.save(workdir / "data/y.npy", y[:-1])  # an edit by hand: another size
    out = mempamal("run", workdir, "-q")
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert (f"mempamal: {workdir.resolve() / 'data/y.npy'}: its size changed ({y.nbytes + 128} bytes, now "
            f"{y.nbytes + 120}) since the experiment was written") in out.stderr
    assert "write the experiment again" in out.stderr and f"mempamal verify {workdir.resolve()}" in out.stderr
    assert not (workdir / "maps").exists() and not (workdir / "run.lock").exists()

    out = mempamal("verify", workdir)
    assert out.returncode == 1
    assert f"changed {workdir.resolve() / 'data/y.npy'}" in out.stdout
    assert f"ok      {workdir.resolve() / 'data/X.npy'}" in out.stdout

    np.save(workdir / "data/y.npy", y + 1)  # same size, other content: --update must not bless it
    out = mempamal("verify", "--update", workdir)
    assert out.returncode == 1 and f"changed {workdir.resolve() / 'data/y.npy'}" in out.stdout
    # run's check of the signed inputs hashes a file whose time changed: it knows the content did.
    with pytest.raises(DataChangedError, match=r"data/y\.npy: its content changed \(same size, new modification "):
        run(workdir, progress=False)

    # Writing the same experiment again restores the file, and run goes.
    write(workdir)
    np.testing.assert_array_equal(np.load(workdir / "data/y.npy"), y)
    assert mempamal("verify", workdir).returncode == 0
    assert len(run(workdir, progress=False).names("done")) == len(list(workdir.glob("maps/*"))) + 3


def test_touched_file_is_refused_until_verify_update_records_its_time(workdir):
    write(workdir)
    run(workdir, progress=False)
    path = workdir / "data/X.npy"
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # touch: same content, new time
    with pytest.raises(DataChangedError) as info:
        run(workdir, progress=False)
    message = str(info.value)
    assert f"{workdir.resolve() / 'data/X.npy'}: modified (same size, new modification time)" in message
    assert f"`mempamal verify --update {workdir.resolve()}` checks the contents" in message

    out = mempamal("verify", workdir)  # the content is unchanged: ok
    assert out.returncode == 0 and f"ok      {workdir.resolve() / 'data/X.npy'}" in out.stdout
    out = mempamal("verify", "--update", workdir)
    assert out.returncode == 0
    assert f"ok      {workdir.resolve() / 'data/X.npy'} (new time recorded)" in out.stdout
    assert json.loads((workdir / "manifest.json").read_text())["files"]["data/X.npy"]["mtime_ns"] == \
        st.st_mtime_ns + 10**9
    report = run(workdir, progress=False)  # accepted again, and nothing is recomputed
    assert not report.names("done") and report.skipped


def test_missing_input_and_workdir_without_manifest(workdir):
    write(workdir)
    (workdir / "folds.npz").unlink()
    with pytest.raises(DataChangedError, match=r"folds\.npz: missing since the experiment was written"):
        run(workdir, progress=False)
    out = mempamal("verify", workdir)
    assert out.returncode == 1 and f"missing {workdir.resolve() / 'folds.npz'}" in out.stdout

    write(workdir)  # restored
    (workdir / "manifest.json").unlink()  # as written by an older mempamal: nothing to compare
    assert verify(workdir).has_manifest is False
    out = mempamal("verify", workdir)
    assert out.returncode == 1 and "no manifest.json (written by an older mempamal)" in out.stdout
    # What the signature covers is gone: refused, as a workdir from before signatures is (test_security).
    with pytest.raises(UntrustedWorkdirError, match=r"not trusted: a file it signs cannot be read \(no manifest"):
        run(workdir, progress=False)
    write(workdir)  # the same experiment written again records one, and signs it
    assert (workdir / "manifest.json").exists()
    assert run(workdir, progress=False).names("done")
    assert mempamal("verify", workdir).returncode == 0
