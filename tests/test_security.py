"""Security: nothing pickled; nothing run from a workdir not signed by our key (workdir.trust); nothing imported
that experiment.json may not name, even signed (the allow-list); every shell line quoted."""
import io
import json
import os
import pickle
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import make_regression
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from mempamal import Experiment, load_results, run, submit
from mempamal.experiment.encoding import EncodingError
from mempamal.export import export
from mempamal.workdir.manifest import DataChangedError, write_manifest
from mempamal.workdir.trust import KEY_ENV, UntrustedWorkdirError, sign
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


EVIL = """
from pathlib import Path
Path("IMPORTED").touch()  # importing this package is already running its code


class Evil:
    def __init__(self, **kwargs):
        Path("CALLED").touch()
"""


def reseal(workdir):
    """What someone holding the key does: record the edited files in the manifest, then sign. Tests of the
    second line of defence (the allow-list) use it: a workdir trusted by mistake still imports nothing bad,
    and only decoding can tell (test_integrity)."""
    files = list(json.loads((workdir / "manifest.json").read_text())["files"])
    write_manifest(workdir, files)
    sign(workdir)


def task_command(workdir, *task, pythonpath=()):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *map(str, pythonpath)])}
    return subprocess.run([sys.executable, "-m", "mempamal", "task", *task], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=300)


MAP_0 = ("map", ".", "--outer", "0", "--inner", "0", "--chunk", "0")


@pytest.mark.parametrize("where, path, params, allow, words", [
    ("estimator", "os.system", {"command": "touch PWNED"}, [], "'os' is never allowed"),
    ("estimator", "os.system", {"command": "touch PWNED"}, ["os"], "'os' is never allowed"),
    ("estimator", "subprocess.Popen", {"args": ["touch", "PWNED"]}, ["subprocess"], "'subprocess' is never allowed"),
    ("estimator", "builtins.eval", {"source": "open('PWNED', 'w')"}, [], "'builtins' is never allowed"),
    ("candidate", "builtins.eval", None, ["builtins"], "'builtins' is never allowed"),
    ("candidate", "_pickle.loads", None, ["_pickle"], "'_pickle' is never allowed"),
    ("estimator", "evilpkg.Evil", {}, [], "pass allowed_packages={'evilpkg'}"),
])
def test_tampered_experiment_is_refused_by_the_task_command(tmp_path, where, path, params, allow, words):
    """Through the real command: refused before anything is imported or called; unsigned, by the signature;
    signed (trusted by mistake), by the allow-list."""
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
    update_manifest(workdir)  # the manifest edited too: the signature tells
    proc = task_command(workdir, *MAP_0, pythonpath=[tmp_path])
    assert proc.returncode != 0
    assert proc.stderr.startswith(f"mempamal: {workdir}: not trusted: experiment.json, manifest.json "
                                  "(experiment.json) changed since it was signed. Nothing in it was imported or "
                                  "run."), proc.stderr
    reseal(workdir)
    proc = task_command(workdir, *MAP_0, pythonpath=[tmp_path])
    assert proc.returncode != 0
    assert proc.stderr.startswith(f"mempamal: experiment.json: {path!r} is not in the allowed packages"), proc.stderr
    assert words in proc.stderr
    leftovers = {p.name for p in tmp_path.rglob("*")} & {"PWNED", "IMPORTED", "CALLED"}
    assert not leftovers
    assert not (workdir / "maps").exists()


def test_packages_listed_in_a_signed_experiment_json_are_trusted(tmp_path):
    """The allow-list is experiment.json's own ``packages``, under the signature: a package added there and
    signed (``mempamal trust`` shows it first) is imported by the task command. The task then fails only
    because Evil is not an estimator."""
    X, y = make_regression(30, 3, random_state=0)
    workdir = small_experiment().write(X, y, tmp_path / "run")
    (tmp_path / "evilpkg").mkdir()
    (tmp_path / "evilpkg" / "__init__.py").write_text(EVIL)
    doc = json.loads((workdir / "experiment.json").read_text())
    doc["estimator"] = {"__estimator__": "evilpkg.Evil", "params": {}}
    doc["packages"] += ["evilpkg"]
    (workdir / "experiment.json").write_text(json.dumps(doc))
    reseal(workdir)
    # A map task: the first thing it decodes after reading its inputs is the estimator.
    proc = task_command(workdir, *MAP_0, pythonpath=[tmp_path])
    assert proc.returncode != 0
    assert proc.stderr == "mempamal: experiment.json: 'evilpkg.Evil' is not an estimator class\n"
    assert (workdir / "IMPORTED").exists()  # listed and signed, hence trusted: imported
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


# --------------------------------------------------------------------------- break-ins (issue 22)
class Payload:
    """A pickle that runs a command when loaded: what an attacker puts in X.npy."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


def sqrt_experiment():
    """The honest experiment of the issue: FunctionTransformer(np.sqrt) then Ridge, KFold(3)."""
    return Experiment(make_pipeline(FunctionTransformer(func=np.sqrt, validate=False), Ridge()), cv=KFold(3))


def write_sqrt(tmp_path, name="run"):
    X, y = make_regression(30, 3, random_state=0)
    return sqrt_experiment().write(np.abs(X), y, tmp_path / name)


def edit_experiment(workdir, func, extra_package):
    """Replace np.sqrt by ``func`` in experiment.json and allow its package, as an attacker would."""
    text = (workdir / "experiment.json").read_text()
    assert '"numpy.sqrt"' in text
    doc = json.loads(text.replace('"numpy.sqrt"', json.dumps(func)))
    doc["packages"].append(extra_package)
    (workdir / "experiment.json").write_text(json.dumps(doc))


def update_manifest(workdir):
    """Step 4: size, mtime and sha256 of every file recorded again (the manifest is plain JSON)."""
    write_manifest(workdir, list(json.loads((workdir / "manifest.json").read_text())["files"]))


def five_steps(tmp_path):
    workdir = write_sqrt(tmp_path)                                              # 1
    edit_experiment(workdir, "_pickle.loads", "_pickle")                       # 2
    payload = np.frombuffer(pickle.dumps(Payload(tmp_path / "PWNED")), dtype=np.uint8)
    np.save(workdir / "data" / "X.npy", np.tile(payload, (30, 1)))              # 3
    update_manifest(workdir)                                                    # 4
    return workdir


def assert_nothing_ran(tmp_path, workdir):
    assert not list(tmp_path.rglob("PWNED*")), "the attacker's command ran"
    logs = workdir / "logs"
    assert not logs.exists() or not [p for p in logs.rglob("*") if p.is_file()], "a task started"
    assert not any((workdir / d).exists() for d in ("maps", "outer", "results.json"))


def test_the_five_steps_of_the_issue_run_nothing(tmp_path):
    workdir = five_steps(tmp_path)
    with pytest.raises(UntrustedWorkdirError) as info:                          # 5
        run(workdir, progress=False)
    message = str(info.value)
    assert message.startswith(f"{workdir}: not trusted: experiment.json, manifest.json (data/X.npy), "
                              "manifest.json (experiment.json) changed since it was signed. Nothing in it was "
                              "imported or run."), message
    assert f"`mempamal trust {workdir}`" in message
    assert_nothing_ran(tmp_path, workdir)
    # The same from the command line: one message, no traceback; and from the task command.
    for argv in (["run", str(workdir), "-q"], ["task", "refit", ".", "--outer", "0"]):
        proc = subprocess.run([sys.executable, "-m", "mempamal", *argv], cwd=workdir, env=_env(),
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 1 and proc.stderr == f"mempamal: {message}\n", proc.stderr
    assert_nothing_ran(tmp_path, workdir)
    # Signed by mistake, the allow-list still refuses _pickle, whatever `packages` says.
    reseal(workdir)
    proc = task_command(workdir, "refit", ".", "--outer", "0")
    assert proc.returncode == 1
    assert proc.stderr.startswith("mempamal: experiment.json: '_pickle.loads' is not in the allowed packages"), \
        proc.stderr
    assert "'_pickle' is never allowed (part of the standard library" in proc.stderr
    assert not list(tmp_path.rglob("PWNED*"))


@pytest.mark.parametrize("func", [
    "_posixsubprocess.fork_exec", "_io.open", "posix.system", "builtins.exec", "_imp.create_dynamic",
    "_frozen_importlib.BuiltinImporter", "_frozen_importlib_external.SourceFileLoader", "marshal.loads",
    "importlib.machinery.SourceFileLoader", "joblib.load",
])
def test_stdlib_and_private_modules_are_refused_signed_or_not(tmp_path, func):
    workdir = write_sqrt(tmp_path)
    top = func.split(".")[0]
    edit_experiment(workdir, func, top)
    update_manifest(workdir)
    with pytest.raises(UntrustedWorkdirError, match="experiment.json.* changed since it was signed"):
        run(workdir, progress=False)
    assert_nothing_ran(tmp_path, workdir)
    reseal(workdir)  # trusted by mistake: the decoder refuses, before importing
    proc = task_command(workdir, "refit", ".", "--outer", "0")
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"mempamal: experiment.json: {func!r} is not in the allowed packages"), proc.stderr
    assert f"{top!r} is never allowed" in proc.stderr
    assert not (workdir / "outer").exists()


def test_the_encoder_refuses_what_the_decoder_would(tmp_path):
    import _posixsubprocess
    import importlib.machinery
    import marshal

    for func in [pickle.loads, os.system, subprocess.Popen, _posixsubprocess.fork_exec, io.open, exec,
                 importlib.machinery.SourceFileLoader, marshal.loads, shlex.split]:
        with pytest.raises(EncodingError) as info:
            Experiment(make_pipeline(FunctionTransformer(func=func), Ridge()), cv=KFold(3))
        message = str(info.value)
        assert message.startswith(f"functiontransformer__func: {func.__name__!r} cannot be stored: "), message
        assert "is never allowed (part of the standard library" in message, message


def test_a_signature_copied_from_another_workdir_is_refused(tmp_path):
    honest = write_sqrt(tmp_path, "honest")
    workdir = write_sqrt(tmp_path, "victim")
    edit_experiment(workdir, "posix.system", "posix")
    update_manifest(workdir)
    shutil.copy(honest / "signature.json", workdir / "signature.json")
    with pytest.raises(UntrustedWorkdirError, match="experiment.json.* changed since it was signed"):
        run(workdir, progress=False)
    # Its record of what was signed rewritten to match: the HMAC still does not.
    doc = json.loads((workdir / "signature.json").read_text())
    doc["signed"] = signed_contents(workdir)
    (workdir / "signature.json").write_text(json.dumps(doc))
    with pytest.raises(UntrustedWorkdirError, match=r"does not match its contents \(forged, or copied"):
        run(workdir, progress=False)
    assert_nothing_ran(tmp_path, workdir)


def signed_contents(workdir):
    import hashlib

    sha = {name: hashlib.sha256((workdir / name).read_bytes()).hexdigest() for name in ("experiment.json",
                                                                                       "workflow.json")}
    files = json.loads((workdir / "manifest.json").read_text())["files"]
    return {**sha, "manifest.json": {name: entry["sha256"] for name, entry in files.items()}}


def test_a_workdir_signed_with_another_key_is_refused(tmp_path, monkeypatch):
    workdir = write_sqrt(tmp_path)
    edit_experiment(workdir, "posix.system", "posix")
    update_manifest(workdir)
    with monkeypatch.context() as m:  # the attacker's own key
        m.setenv(KEY_ENV, str(tmp_path / "attacker" / "key"))
        sign(workdir)
    for attempt in (lambda: run(workdir, progress=False), lambda: export(workdir, "cmd-list", tmp_path / "c.json")):
        with pytest.raises(UntrustedWorkdirError, match="it was signed with another key"):
            attempt()
    proc = task_command(workdir, "refit", ".", "--outer", "0")
    assert proc.returncode == 1 and "it was signed with another key" in proc.stderr
    assert_nothing_ran(tmp_path, workdir)
    assert not (tmp_path / "c.json").exists()


def test_a_signed_workdir_whose_data_was_replaced_is_refused(tmp_path):
    workdir = write_sqrt(tmp_path)
    X = np.load(workdir / "data" / "X.npy")
    np.save(workdir / "data" / "X.npy", X + 1)  # same size, other content
    expected = f"{workdir / 'data' / 'X.npy'}: its content changed (same size, new modification time)"
    with pytest.raises(DataChangedError, match=re.escape(expected)):
        run(workdir, progress=False)
    proc = task_command(workdir, "refit", ".", "--outer", "0")
    assert proc.returncode == 1 and proc.stderr.startswith(f"mempamal: {expected}"), proc.stderr
    update_manifest(workdir)  # and the manifest edited to match: the signature does not
    with pytest.raises(UntrustedWorkdirError, match=re.escape("manifest.json (data/X.npy) changed since it was")):
        run(workdir, progress=False)
    assert_nothing_ran(tmp_path, workdir)


def test_workflow_json_is_signed_too(tmp_path):
    """workflow.json names the interpreter and commands that the back-ends and exports run."""
    workdir = write_sqrt(tmp_path)
    doc = json.loads((workdir / "workflow.json").read_text())
    doc["python"] = "/bin/sh"
    doc["tasks"][0]["command"] = ["/bin/sh", "-c", f"touch {tmp_path / 'PWNED'}"]
    (workdir / "workflow.json").write_text(json.dumps(doc))
    with pytest.raises(UntrustedWorkdirError, match="workflow.json changed since it was signed"):
        run(workdir, progress=False)
    with pytest.raises(UntrustedWorkdirError, match="workflow.json changed since it was signed"):
        export(workdir, "cmd-list", tmp_path / "cmds.json")
    assert_nothing_ran(tmp_path, workdir)


def test_every_entry_point_refuses_before_any_log(tmp_path):
    """The batch command, run_task (the local back-end's workers) and the Dask workers' function."""
    from mempamal.backends.dask import _run_on_worker
    from mempamal.tasks import run_task
    from mempamal.workdir.batches import plan_batches, write_batch_files
    from mempamal.workdir.layout import TaskId

    workdir = write_sqrt(tmp_path)
    batches = plan_batches(load_workflow(workdir).tasks, batch_size=3)
    write_batch_files(workdir, batches)
    edit_experiment(workdir, "posix.system", "posix")
    update_manifest(workdir)
    proc = task_command(workdir, "batch", ".", "--file", batches[0].file)
    assert proc.returncode == 1 and "not trusted: experiment.json" in proc.stderr and proc.stdout == ""
    refit = TaskId("refit", outer=0)
    with pytest.raises(UntrustedWorkdirError):
        run_task(workdir, refit, refit.log)
    with pytest.raises(UntrustedWorkdirError):
        _run_on_worker(str(workdir), refit.to_json(), None)
    assert_nothing_ran(tmp_path, workdir)


def test_writing_again_restores_a_tampered_experiment(tmp_path):
    """A tampered experiment.json that kept its fingerprint is not taken for the same experiment: write()
    rewrites it (and signs what it wrote), instead of signing the attacker's."""
    workdir = write_sqrt(tmp_path)
    honest = (workdir / "experiment.json").read_text()
    edit_experiment(workdir, "posix.system", "posix")
    update_manifest(workdir)
    X, y = make_regression(30, 3, random_state=0)
    sqrt_experiment().write(np.abs(X), y, workdir)
    assert (workdir / "experiment.json").read_text() == honest
    run(workdir, progress=False)
    assert not list(tmp_path.rglob("PWNED*"))


def test_an_unsigned_workdir_runs_once_trusted(tmp_path):
    """A workdir of a mempamal without signatures (or sent by someone): refused, then `mempamal trust`."""
    workdir = write_sqrt(tmp_path)
    (workdir / "signature.json").unlink()
    with pytest.raises(UntrustedWorkdirError, match="it has no signature.json: it was written by a mempamal "
                                                    "without signatures"):
        run(workdir, progress=False)
    trust = [sys.executable, "-m", "mempamal", "trust", str(workdir)]
    proc = subprocess.run(trust, env=_env(), capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert proc.returncode == 1 and "not signed: stdin is not a terminal" in proc.stderr
    assert "    numpy.sqrt\n" in proc.stdout and "    sklearn.linear_model.Ridge\n" in proc.stdout
    assert f"run as `{sys.executable} -P -m mempamal task ...`" in proc.stdout
    assert not (workdir / "signature.json").exists()
    proc = subprocess.run(trust + ["--yes"], env=_env(), capture_output=True, text=True)
    assert proc.returncode == 0 and "mempamal: signed" in proc.stdout, proc.stderr
    run(workdir, progress=False)
    assert load_results(workdir).n_outer == 3


def test_trust_shows_what_the_decoder_refuses_and_unverified_inputs(tmp_path):
    workdir = five_steps(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "mempamal", "trust", str(workdir)], env=_env(),
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert "packages its tasks may import (beyond mempamal, numpy, scipy, sklearn): _pickle  (REFUSED: " in proc.stdout
    assert "    _pickle.loads  (REFUSED: '_pickle' is never allowed" in proc.stdout
    X = np.load(workdir / "data" / "X.npy")
    np.save(workdir / "data" / "X.npy", X[:-1])  # not the manifest's: nothing is shown, nothing signed
    proc = subprocess.run([sys.executable, "-m", "mempamal", "trust", str(workdir), "--yes"], env=_env(),
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "not signed: its inputs do not match its manifest" in proc.stderr
    assert_nothing_ran(tmp_path, workdir)


def test_a_third_party_estimator_runs_with_no_configuration(tmp_path):
    """imbalanced-learn: its package recorded at write() under the signature, equal to scikit-learn's."""
    from imblearn.pipeline import make_pipeline as imb_pipeline
    from imblearn.under_sampling import RandomUnderSampler
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    from conftest import assert_same_as_sklearn, sklearn_nested

    X, y = make_classification(80, 5, weights=[0.7], random_state=0)
    pipe = imb_pipeline(RandomUnderSampler(random_state=0), LogisticRegression())
    grid = {"logisticregression__C": [0.1, 1.0]}
    cv, inner = StratifiedKFold(2, shuffle=True, random_state=0), StratifiedKFold(2)
    workdir = Experiment(pipe, cv=cv, param_grid=grid, inner_cv=inner, scoring="accuracy").write(X, y, tmp_path / "r")
    assert "imblearn" in json.loads((workdir / "experiment.json").read_text())["packages"]
    run(workdir, progress=False)
    oracle = sklearn_nested(pipe, grid, X, y, cv=cv, inner_cv=inner, scoring="accuracy")
    assert_same_as_sklearn(load_results(workdir), oracle, ["accuracy"])


def test_modules_dropped_in_the_workdir_are_not_imported_by_its_commands(tmp_path):
    """Commands run from the workdir: without -P, `python -m` would import a numpy.py (or a mempamal/)
    written there before anything is checked."""
    workdir = write_sqrt(tmp_path)
    marker = tmp_path / "PWNED"
    evil = f"open({str(marker)!r}, 'w').close()\nraise SystemExit('shadowed')\n"
    (workdir / "numpy.py").write_text(evil)
    (workdir / "mempamal").mkdir()
    (workdir / "mempamal" / "__init__.py").write_text(evil)
    (workdir / "mempamal" / "__main__.py").write_text(evil)
    submit(workdir).wait()  # a background `python -m mempamal run` started in the workdir, its workers
    # `cd WORKDIR && mempamal run .`: the local back-end's workers start in the workdir
    proc = subprocess.run([sys.executable, "-P", "-m", "mempamal", "run", ".", "--no-resume", "-j", "2", "-q"],
                          cwd=workdir, env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    workflow = load_workflow(workdir)
    for task in workflow.tasks:  # the commands of workflow.json, as a scheduler runs them
        proc = subprocess.run(task.command, cwd=workdir, env=_env(), capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
    export(workdir, "cmd-list", tmp_path / "cmds.json", batch_size=2)
    for line in json.loads((tmp_path / "cmds.json").read_text())["commands"]:
        subprocess.run(["bash", "-c", line], cwd=tmp_path, check=True, env=_env(), capture_output=True)
    assert not marker.exists()
    assert load_results(workdir).n_outer == 3


def test_a_workdir_checked_before_is_checked_again_once_edited(tmp_path):
    """The checks of one process after the first only stat the signed files: an edit keeping their size
    and time (forged with utime) is still seen, by its ctime, which no user can set."""
    from mempamal.workdir.trust import check_trusted

    workdir = write_sqrt(tmp_path)
    check_trusted(workdir)
    path = workdir / "experiment.json"
    st = path.stat()
    text = path.read_text().replace('"numpy.sqrt"', '"posix.system"').replace('"packages": [', '"packages": [1, ')
    text = text[:st.st_size].ljust(st.st_size)
    path.write_text(text)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns
    with pytest.raises(UntrustedWorkdirError, match="experiment.json changed since it was signed"):
        check_trusted(workdir)


def test_the_key_is_made_private_and_refused_when_others_may_read_it(tmp_path, monkeypatch):
    from mempamal.workdir.trust import KeyFileError, check_trusted, ensure_key

    monkeypatch.setenv(KEY_ENV, str(tmp_path / "conf" / "mempamal" / "key"))
    key = ensure_key()
    assert key.stat().st_mode & 0o777 == 0o600 and key.parent.stat().st_mode & 0o777 == 0o700
    assert len(bytes.fromhex(key.read_text().strip())) == 32
    workdir = write_sqrt(tmp_path)  # signed with it (checked here: warm workers hold the session's key)
    check_trusted(workdir)
    key.chmod(0o644)
    with pytest.raises(KeyFileError, match=r"may be read or written by others \(mode 644\).*chmod 600"):
        check_trusted(workdir)
    monkeypatch.delenv(KEY_ENV)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    from mempamal.workdir.trust import key_path

    assert key_path() == tmp_path / "xdg" / "mempamal" / "key"
