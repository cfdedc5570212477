"""Security: nothing pickled, nothing imported that experiment.json may not name, every shell line quoted."""
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import make_regression
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold

from mempamal import Experiment, load_results, run
from mempamal.workdir.workflow import load_workflow

ROOT = Path(__file__).resolve().parent.parent
PICKLE_PROTOCOL = b"\x80"  # every pickle of protocol 2 or more starts with it


def _check_npy(data, where):
    """A .npy (file or .npz member) whose header declares no object dtype."""
    assert data[:6] == b"\x93NUMPY", f"{where}: not a .npy"
    stream = io.BytesIO(data)
    version = np.lib.format.read_magic(stream)
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    _, _, dtype = read_header(stream)
    assert not dtype.hasobject, f"{where}: object dtype (stored with pickle)"


def scan_for_pickles(workdir):
    """Every file and .npz member of a workdir: no pickle stream, no object array, JSON parses."""
    scanned = 0
    for path in sorted(Path(workdir).rglob("*")):
        if not path.is_file():
            continue
        scanned += 1
        with open(path, "rb") as f:
            assert f.read(1) != PICKLE_PROTOCOL, f"{path}: a pickle stream"
        if path.suffix == ".npy":
            _check_npy(path.read_bytes(), path)
        elif path.suffix == ".npz":
            with zipfile.ZipFile(path) as z:
                for member in z.namelist():
                    data = z.read(member)
                    assert data[:1] != PICKLE_PROTOCOL, f"{path}:{member}: a pickle stream"
                    _check_npy(data, f"{path}:{member}")
        elif path.suffix == ".json":
            json.loads(path.read_text())
        else:
            assert path.suffix == ".log", f"{path}: an unexpected file"
    return scanned


def small_experiment():
    return Experiment(Ridge(), cv=KFold(2), param_grid={"alpha": [0.1, 1.0]}, inner_cv=2)


def test_finished_workdir_holds_no_pickle(tmp_path):
    X, y = make_regression(30, 3, random_state=0)
    workdir = small_experiment().write(X, y, tmp_path / "run")
    run(workdir, progress=False)
    assert scan_for_pickles(workdir) >= 15  # data, folds, maps, outer, results, logs


def test_the_scan_finds_a_pickle(tmp_path):
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(AssertionError, match="object dtype"):
        scan_for_pickles(tmp_path)
    (tmp_path / "objects.npy").write_bytes(b"\x80\x04\x95")
    with pytest.raises(AssertionError, match="a pickle stream"):
        scan_for_pickles(tmp_path)


def reseal(workdir):
    """Record the files' new sizes and times in manifest.json, as one who tampers with both would."""
    from mempamal.workdir.manifest import read_manifest, write_manifest

    write_manifest(workdir, list(read_manifest(workdir)))


EVIL = '''
from pathlib import Path
Path("IMPORTED").touch()  # importing this package is already running its code


class Evil:
    def __init__(self, **kwargs):
        Path("CALLED").touch()
'''


@pytest.mark.parametrize("where, path, params, allow, words", [
    ("estimator", "os.system", {"command": "touch PWNED"}, [], "'os' is never allowed"),
    ("estimator", "os.system", {"command": "touch PWNED"}, ["os"], "'os' is never allowed"),
    ("estimator", "subprocess.Popen", {"args": ["touch", "PWNED"]}, ["subprocess"], "'subprocess' is never allowed"),
    ("estimator", "builtins.eval", {"source": "open('PWNED', 'w')"}, [], "'builtins' is never allowed"),
    ("candidate", "builtins.eval", None, ["builtins"], "'builtins' is never allowed"),
    ("estimator", "evilpkg.Evil", {}, [], "pass allowed_packages={'evilpkg'}"),
])
def test_tampered_experiment_is_refused_by_the_task_command(tmp_path, where, path, params, allow, words):
    """Through the real command: refused before anything is imported or called."""
    X, y = make_regression(30, 3, random_state=0)
    workdir = small_experiment().write(X, y, tmp_path / "run")
    (tmp_path / "evilpkg").mkdir()
    (tmp_path / "evilpkg" / "__init__.py").write_text(EVIL)
    doc = json.loads((workdir / "experiment.json").read_text())
    if where == "estimator":
        doc["estimator"] = {"__estimator__": path, "params": params}
    else:
        doc["candidates"][0]["alpha"] = {"__callable__": path}
    doc["packages"] += allow  # even listed, a denied package stays denied
    (workdir / "experiment.json").write_text(json.dumps(doc))
    reseal(workdir)  # the manifest edited too: else every task command refuses the changed experiment.json
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(tmp_path)])}
    proc = subprocess.run([sys.executable, "-m", "mempamal", "task", "map", ".", "--outer", "0", "--inner", "0",
                           "--chunk", "0"], cwd=workdir, env=env, capture_output=True, text=True)
    assert proc.returncode != 0
    assert proc.stderr.startswith(f"mempamal: experiment.json: {path!r} is not in the allowed packages"), proc.stderr
    assert words in proc.stderr
    leftovers = {p.name for p in tmp_path.rglob("*")} & {"PWNED", "IMPORTED", "CALLED"}
    assert not leftovers
    assert not (workdir / "maps").exists()


def test_packages_listed_in_experiment_json_are_trusted(tmp_path):
    """The allow-list is experiment.json's own ``packages`` (README: review it): a package added there
    is imported by the task command; only the default packages' and the never-allowed modules' rules
    remain. The task then fails only because Evil is not an estimator."""
    X, y = make_regression(30, 3, random_state=0)
    workdir = small_experiment().write(X, y, tmp_path / "run")
    (tmp_path / "evilpkg").mkdir()
    (tmp_path / "evilpkg" / "__init__.py").write_text(EVIL)
    doc = json.loads((workdir / "experiment.json").read_text())
    doc["estimator"] = {"__estimator__": "evilpkg.Evil", "params": {}}
    doc["packages"] += ["evilpkg"]
    (workdir / "experiment.json").write_text(json.dumps(doc))
    reseal(workdir)  # the manifest edited too: else every task command refuses the changed experiment.json
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(tmp_path)])}
    # A map task: the first thing it decodes after reading its inputs is the estimator.
    proc = subprocess.run([sys.executable, "-m", "mempamal", "task", "map", ".", "--outer", "0", "--inner", "0",
                           "--chunk", "0"], cwd=workdir, env=env, capture_output=True, text=True)
    assert proc.returncode != 0
    assert proc.stderr == "mempamal: experiment.json: 'evilpkg.Evil' is not an estimator class\n"
    assert (workdir / "IMPORTED").exists()  # listed, hence trusted: imported
    assert not (workdir / "CALLED").exists()


EVIL_DIR = "runs/it's a $(touch PWNED) dir"


def test_hostile_workdir_name_runs_locally_and_as_exported_cmd_list(tmp_path):
    X, y = make_regression(30, 3, random_state=0)
    workdir = Experiment(Ridge(), cv=KFold(2)).write(X, y, tmp_path / EVIL_DIR)  # refit-o0, refit-o1, gather
    run(workdir, n_jobs=2, progress=False)  # the local back-end
    expected = load_results(workdir).test_scores["score"]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    subprocess.run([sys.executable, "-m", "mempamal", "export", str(workdir), "--format", "cmd-list",
                    "-o", str(workdir / "cmds.json")], cwd=elsewhere, check=True, env=_env())
    exported = json.loads((workdir / "cmds.json").read_text())
    for task in load_workflow(workdir).tasks:
        (workdir / task.outputs[0]).unlink()
    for line in exported["commands"]:  # in dependency order; each line cd's into the workdir itself
        subprocess.run(["bash", "-c", line], cwd=elsewhere, check=True, env=_env())
    np.testing.assert_array_equal(load_results(workdir).test_scores["score"], expected)
    assert not list(tmp_path.rglob("PWNED")) and not Path("PWNED").exists()


def _env():
    return {**os.environ, "PYTHONPATH": str(ROOT)}
