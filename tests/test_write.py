"""Experiment.write's three steps: validate, compile (in memory, no file touched), store (the files)."""
import json
import math

import numpy as np
import pytest
from sklearn.datasets import make_regression
from sklearn.linear_model import Ridge
from sklearn.model_selection import GroupKFold, KFold

from mempamal import Experiment
from mempamal.experiment.compile import check_data, compile_experiment
from mempamal.experiment.store import store
from mempamal.workdir.layout import chunk_count


def rich_case():
    """Grid, groups, per-sample params, two targets analysed apart, chunks of permutations."""
    X, Y = make_regression(40, 4, n_targets=2, noise=1.0, random_state=0)
    exp = Experiment(Ridge(), cv=GroupKFold(2), param_grid={"alpha": [0.1, 1.0, 10.0]}, inner_cv=GroupKFold(2),
                     grid_chunk_size=2, n_permutations=5, permutation_chunk_size=2, per_target=True)
    return exp, X, Y, {"groups": np.arange(40) % 4, "params": {"sample_weight": np.linspace(1, 2, 40)}}


def stamps(workdir):
    """(mtime_ns, inode, size) of every file: a file written again (atomic rename) gets a new inode."""
    return {str(p.relative_to(workdir)): (p.stat().st_mtime_ns, p.stat().st_ino, p.stat().st_size)
            for p in sorted(workdir.rglob("*")) if p.is_file()}


def test_writing_the_same_experiment_again_rewrites_nothing(workdir):
    exp, X, Y, kw = rich_case()
    exp.write(X, Y, workdir, **kw)
    before = stamps(workdir)
    # GroupKFold ignores y: every permutation has y's folds, and no permuted_folds/ file is written.
    assert {"experiment.json", "workflow.json", "manifest.json", "folds.npz", "data/permutations.npy"} <= set(before)
    assert not any(name.startswith("permuted_folds/") for name in before)
    again, X2, Y2, kw2 = rich_case()  # equal, not the same objects
    assert again.write(X2, Y2, workdir, **kw2) == workdir
    assert stamps(workdir) == before


def test_compile_touches_no_file_and_store_writes_its_document(tmp_path, monkeypatch):
    exp, X, Y, kw = rich_case()
    monkeypatch.chdir(tmp_path)
    checked = exp._validate()
    data = check_data(X, Y, kw["groups"], kw["params"], estimator=exp.estimator, per_target=exp.per_target)
    compiled = compile_experiment(exp, checked, *data)
    assert list(tmp_path.iterdir()) == []
    assert "data" not in compiled.doc and compiled.doc["n_chunks"] == 2 and compiled.doc["n_permutation_chunks"] == 3
    assert compiled.permuted_folds == {} and compiled.doc["permuted_folds"] is False  # GroupKFold ignores y

    stored = store(compiled, tmp_path / "stored", python="python3")
    doc = json.loads((stored / "experiment.json").read_text())
    assert list(doc) == list(compiled.doc) + ["data"]  # the file's order: data last, after the fingerprint
    assert {k: v for k, v in doc.items() if k != "data"} == compiled.doc
    # write() is these steps: the same fingerprint, byte for byte the same document.
    written = exp.write(X, Y, tmp_path / "written", **kw)
    assert (written / "experiment.json").read_bytes() == (stored / "experiment.json").read_bytes()


def test_store_refuses_a_different_experiment_without_overwrite(workdir):
    exp, X, Y, kw = rich_case()
    exp.write(X, Y, workdir, **kw)
    other = Experiment(Ridge(), cv=KFold(2))
    compiled = compile_experiment(other, other._validate(), *check_data(X, Y[:, 0], None, None,
                                                                         estimator=other.estimator,
                                                                         per_target=False))
    before = stamps(workdir)
    with pytest.raises(FileExistsError, match="holds a different experiment"):
        store(compiled, workdir, python="python3")
    assert stamps(workdir) == before
    store(compiled, workdir, python="python3", overwrite=True)  # and what the old one wrote goes
    assert not (workdir / "permuted_folds").exists() and not (workdir / "data/permutations.npy").exists()


@pytest.mark.parametrize("n_items", [0, 1, 7, 99, 100, 101, 1000])
@pytest.mark.parametrize("chunk_size", [1, 3, 100])
def test_chunk_count_is_the_ceiling(n_items, chunk_size):
    assert chunk_count(n_items, chunk_size) == math.ceil(n_items / chunk_size)
