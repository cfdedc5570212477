"""The workdir as values: the typed experiment document (ExperimentDoc) and the Workdir that owns
every file's path; per-sample params read once per task; the task command's imports.

Nothing here runs a whole workflow: write() and single tasks in this process.
"""
import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold, StratifiedKFold

from mempamal import Experiment
from mempamal.experiment.permutations import chunks
from mempamal.tasks import run_task
from mempamal.workdir import data as data_module
from mempamal.workdir.document import ExperimentDoc, chunk_ranges
from mempamal.workdir.files import InputFileError, read_json
from mempamal.workdir.layout import EXPERIMENT, TaskId, chunk_count, target_prefix, unprefixed
from mempamal.workdir.paths import Workdir
from mempamal.workdir.workflow import load_workflow

HEAVY = ("sklearn", "scipy", "pandas", "pyarrow", "matplotlib", "dask", "distributed", "soma_workflow", "joblib")


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """Two targets apart, a grid in chunks, permutations in chunks, per-sample weights."""
    rng = np.random.RandomState(0)
    X = rng.normal(size=(40, 3))
    y = np.stack([(X[:, 0] > 0), (X[:, 1] > 0)], axis=1).astype(int)
    exp = Experiment(LogisticRegression(), cv=StratifiedKFold(2), param_grid={"C": [0.1, 1.0, 10.0]},
                     inner_cv=KFold(3), grid_chunk_size=2, n_permutations=5, permutation_chunk_size=2,
                     per_target=True)
    workdir = exp.write(X, y, tmp_path_factory.mktemp("doc") / "run", params={"sample_weight": rng.rand(40) + 0.5})
    return workdir


def test_the_document_round_trips_to_the_same_file(written):
    text = (written / EXPERIMENT).read_text()
    parsed = json.loads(text)
    doc = ExperimentDoc.from_json(parsed)
    assert doc.to_json() == parsed
    assert list(doc.to_json()) == list(parsed)  # the same order of keys: the same file
    assert json.dumps(doc.to_json(), indent=1) + "\n" == text
    assert Workdir.of(written).read_experiment() == doc
    with pytest.raises(dataclasses.FrozenInstanceError):
        doc.n_outer = 3


def test_keys_of_another_version_are_kept_and_missing_ones_named(written):
    parsed = read_json(written / EXPERIMENT)
    assert ExperimentDoc.from_json({**parsed, "future": 1}).to_json() == {**parsed, "future": 1}
    del parsed["n_outer"]
    with pytest.raises(ValueError, match=r"experiment.json: no n_outer .*write the experiment again"):
        ExperimentDoc.from_json(parsed)
    with pytest.raises(InputFileError, match=r"experiment.json: missing; it is written by Experiment.write"):
        Workdir(written / "nowhere").read_experiment()


def test_the_derived_rules_are_the_workflows(written):
    doc = ExperimentDoc.read(written)
    assert doc.targets == [0, 1] and doc.with_search
    assert [list(doc.grid_chunk(c)) for c in range(doc.n_chunks)] == [[0, 1], [2]]
    assert doc.permutation_chunks == [range(0, 2), range(2, 4), range(4, 5)] == list(chunks(5, 2))
    assert doc.n_permutation_chunks == chunk_count(5, 2) == len(chunk_ranges(5, 2))
    tasks = load_workflow(written).tasks
    assert {t.id.target for t in tasks if t.stage != "gather"} == set(doc.targets)
    assert sum(t.stage == "map" for t in tasks) == len(doc.targets) * sum(doc.n_inner) * doc.n_chunks
    assert sum(t.stage == "permute" for t in tasks) == len(doc.targets) * doc.n_permutation_chunks * doc.n_outer
    assert {t.id.chunk for t in tasks if t.stage == "map"} == set(range(doc.n_chunks))


def test_prefixes_are_the_files_keys(written):
    with np.load(written / "folds.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    assert target_prefix(None) == "" and target_prefix(1) == "t1_"
    for t in (0, 1):
        own = unprefixed(arrays, target_prefix(t))
        assert "outer_train_0" in own and own["outer_test_1"] is arrays[f"t{t}_outer_test_1"]
    folds = Workdir.of(written).open_folds(1)
    np.testing.assert_array_equal(folds.outer(0)[1], arrays["t1_outer_test_0"])


def test_workdir_paths_are_the_layouts_names(tmp_path):
    paths = Workdir.of(str(tmp_path))
    assert Workdir.of(paths) is paths and paths.root == tmp_path
    task = TaskId("permute", target=1, perm=2, outer=0)
    assert paths.output(task) == tmp_path / "permutations" / "t1-p2-o0.npz"
    assert paths.log(task) == tmp_path / "logs" / "permute-t1-p2-o0.log"
    assert paths.running_record(task) == tmp_path / "logs" / "running" / "permute-t1-p2-o0.json"
    assert paths.outputs(TaskId("gather")) == [paths.results_json, paths.results_npz]
    assert paths.permuted_folds_npz(1, 2) == tmp_path / "permuted_folds" / "t1-p2.npz"
    assert paths.permuted_folds_npz(None, 0) == tmp_path / "permuted_folds" / "p0.npz"
    assert paths.experiment_json == tmp_path / EXPERIMENT


def test_per_sample_params_are_read_once_per_task(written, monkeypatch):
    """A permute task fits 2 permutations x 3 inner splits x 3 candidates, and refits twice: one read."""
    reads = []
    load_params = data_module.load_params

    def counted(*args):
        reads.append(args)
        return load_params(*args)

    monkeypatch.setattr(data_module, "load_params", counted)
    task = TaskId("permute", target=0, perm=0, outer=0)
    run_task(written, task)
    assert len(reads) == 1
    meta = np.load(Workdir.of(written).output(task), allow_pickle=False)["meta"]
    assert json.loads(str(meta))["permutations"] == [0, 2]


@pytest.mark.parametrize("argv", [["-m", "mempamal", "task", "--help"], ["-c", "import mempamal"]])
def test_the_task_command_imports_no_heavy_package(argv, tmp_path):
    """A task command starts before any scikit-learn import: compare imported module names, not times."""
    code = ("import runpy, sys\n"
            f"sys.argv = ['mempamal'] + {argv[2:]!r}\n"
            + ("try:\n    runpy.run_module('mempamal', run_name='__main__')\nexcept SystemExit:\n    pass\n"
               if argv[0] == "-m" else "import mempamal\n")
            + "print(' '.join(sorted(sys.modules)))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=True)
    modules = set(out.stdout.strip().splitlines()[-1].split())  # the last line, after the help
    assert "mempamal" in modules
    assert not {m.split(".")[0] for m in modules} & set(HEAVY)
