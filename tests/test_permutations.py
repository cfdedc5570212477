"""Permutation inference against scikit-learn's permutation_test_score, on the same folds and data.

Every score, every permutation score and every p-value within 1e-12; max-T p-values against a
direct computation from scikit-learn's per-column results; a kill in the middle of the
permutations, then a resume.
"""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_iris, load_linnerud, make_classification
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import (GridSearchCV, GroupKFold, KFold, StratifiedKFold,
                                     permutation_test_score)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mempamal import Experiment, load_results, run
from mempamal.workdir.lock import StaleLockWarning
from mempamal.workdir.document import ExperimentDoc
from mempamal.workdir.layout import PERMUTED_FOLDS_DIR, chunk_count
from mempamal.experiment.permutations import default_chunk_size
from mempamal.workdir.workflow import build_workflow, load_workflow

from reliab_helpers import HoldAfter, kill_run_once_held

ATOL = 1e-12


def sklearn_permutations(estimator, X, y, *, cv, n_permutations, random_state, scoring, grid=None, inner_cv=None,
                         groups=None):
    """permutation_test_score of the estimator, or of GridSearchCV(estimator, grid) when there is a grid."""
    if grid is not None:
        estimator = GridSearchCV(estimator, grid, cv=inner_cv, scoring=scoring)
    params = None if groups is None or grid is None else {"groups": groups}
    return permutation_test_score(estimator, X, y, groups=groups, cv=cv, n_permutations=n_permutations,
                                  random_state=random_state, scoring=scoring, params=params)


def assert_same_as_permutation_test_score(res, metric, oracle, target=None):
    score, permutation_scores, pvalue = oracle
    pick = (lambda v: v) if target is None else (lambda v: v[target])
    np.testing.assert_allclose(pick(res.observed_score[metric]), score, rtol=0, atol=ATOL)
    np.testing.assert_allclose(pick(res.permutation_scores[metric]), permutation_scores, rtol=0, atol=ATOL)
    np.testing.assert_allclose(pick(res.pvalues[metric]), pvalue, rtol=0, atol=ATOL)


def iris():
    X, y = load_iris(return_X_y=True)
    return X, y, make_pipeline(StandardScaler(), LogisticRegression())


def test_plain_cv_stratified_two_metrics(workdir):
    X, y, pipe = iris()
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    Experiment(pipe, cv=cv, scoring=["accuracy", "f1_macro"], refit="accuracy", n_permutations=5,
               permutation_random_state=3, permutation_chunk_size=2).write(X, y, workdir)
    run(workdir, n_jobs=2, progress=False)
    res = load_results(workdir)
    assert res.n_permutations == 5 and res.permutation_scores["accuracy"].shape == (5,)
    for m in ("accuracy", "f1_macro"):
        oracle = sklearn_permutations(pipe, X, y, cv=cv, n_permutations=5, random_state=3, scoring=m)
        assert_same_as_permutation_test_score(res, m, oracle)
        assert res.pvalues_fwer[m] == res.pvalues[m]  # a family of one target
    # A stratified splitter splits each permuted y its own way: those folds are stored.
    assert list((workdir / PERMUTED_FOLDS_DIR).iterdir())


def test_nested_grid(workdir):
    X, y, pipe = iris()
    cv, inner, grid = StratifiedKFold(3, shuffle=True, random_state=0), StratifiedKFold(3), {
        "logisticregression__C": [0.1, 1.0]}
    Experiment(pipe, cv=cv, param_grid=grid, inner_cv=inner, scoring="accuracy", n_permutations=5,
               permutation_random_state=1, permutation_chunk_size=2).write(X, y, workdir)
    tasks = load_workflow(workdir).tasks
    # 3 chunks of at most 2 permutations x 3 outer folds, beside 9 maps, 3 refits, and one gather.
    assert [t.name for t in tasks if t.stage == "permute"][:4] == [
        "permute-p0-o0", "permute-p0-o1", "permute-p0-o2", "permute-p1-o0"]
    assert sum(t.stage == "permute" for t in tasks) == 9 and len(tasks) == 9 + 3 + 9 + 1
    run(workdir, n_jobs=2, progress=False)
    oracle = sklearn_permutations(pipe, X, y, cv=cv, n_permutations=5, random_state=1, scoring="accuracy",
                                  grid=grid, inner_cv=inner)
    assert_same_as_permutation_test_score(load_results(workdir), "accuracy", oracle)


def test_groups_permute_within_groups(workdir):
    X, y = make_classification(60, 5, random_state=0)
    groups = np.repeat(np.arange(6), 10)
    pipe = make_pipeline(StandardScaler(), LogisticRegression())
    grid = {"logisticregression__C": [0.1, 1.0]}
    Experiment(pipe, cv=GroupKFold(3), param_grid=grid, inner_cv=GroupKFold(2), scoring="roc_auc",
               n_permutations=4, permutation_random_state=0).write(X, y, workdir, groups=groups)
    run(workdir, n_jobs=2, progress=False)
    oracle = sklearn_permutations(pipe, X, y, cv=GroupKFold(3), n_permutations=4, random_state=0,
                                  scoring="roc_auc", grid=grid, inner_cv=GroupKFold(2), groups=groups)
    assert_same_as_permutation_test_score(load_results(workdir), "roc_auc", oracle)
    # Each permutation moves samples within their group only.
    indices = np.load(workdir / "data" / "permutations.npy")
    assert indices.shape == (4, 60)
    for perm in indices:
        np.testing.assert_array_equal(groups[perm], groups)
    # GroupKFold ignores y: every permuted split is the unpermuted one; no permuted y is split, nothing stored.
    assert not (workdir / PERMUTED_FOLDS_DIR).exists()
    assert json.loads((workdir / "experiment.json").read_text())["permuted_folds"] is False


def test_per_target_nested_grid_and_max_t(workdir):
    X, Y = load_linnerud(return_X_y=True)
    cv, inner, grid = KFold(4, shuffle=True, random_state=0), KFold(3), {"alpha": [0.1, 10.0]}
    Experiment(Ridge(), cv=cv, param_grid=grid, inner_cv=inner, scoring="r2", n_permutations=6,
               per_target=True).write(X, Y, workdir)
    run(workdir, n_jobs=2, progress=False)
    res = load_results(workdir)
    assert res.test_scores["r2"].shape == (3, 4) and res.permutation_scores["r2"].shape == (3, 6)
    oracles = [sklearn_permutations(Ridge(), X, Y[:, t], cv=cv, n_permutations=6, random_state=0, scoring="r2",
                                    grid=grid, inner_cv=inner) for t in range(3)]
    for t, oracle in enumerate(oracles):
        assert_same_as_permutation_test_score(res, "r2", oracle, target=t)
        # Each target's own analysis is cross_validate(GridSearchCV) on its column.
        np.testing.assert_allclose(res.targets[t].test_scores["r2"], res.test_scores["r2"][t], rtol=0, atol=0)
    scores = np.array([o[0] for o in oracles])
    maxima = np.max([o[1] for o in oracles], axis=0)
    expected = [(np.sum(maxima >= s) + 1) / (6 + 1) for s in scores]
    np.testing.assert_allclose(res.pvalues_fwer["r2"], expected, rtol=0, atol=ATOL)
    assert np.all(res.pvalues_fwer["r2"] >= res.pvalues["r2"])
    doc = json.loads(json.dumps(res.to_dict(), allow_nan=False))
    assert doc["permutation"]["pvalues_fwer"]["r2"] == pytest.approx(expected, abs=ATOL)
    assert len(doc["targets"]) == 3
    assert res.predictions.shape == (20, 3)
    assert "p-value (FWER)" in res.summary()
    assert res.to_frame().index.names == ["target", "outer_fold"]
    from mempamal.results.report import write_report

    html = write_report(workdir, workdir / "report.html").read_text()
    assert "<th>p-value (FWER)</th>" in html and "data:image/png;base64," in html


def test_dataframe_and_sample_weight(workdir):
    """Per-sample params follow their samples, not the permuted y, as permutation_test_score's params do."""
    pytest.importorskip("pyarrow")
    X, y = load_iris(return_X_y=True, as_frame=True)
    weights = np.random.RandomState(0).uniform(0.5, 2.0, len(y))
    pipe = make_pipeline(StandardScaler(), LogisticRegression())
    cv, inner, grid = StratifiedKFold(3, shuffle=True, random_state=0), StratifiedKFold(3), {
        "logisticregression__C": [0.1, 1.0]}
    params = {"logisticregression__sample_weight": weights}
    Experiment(pipe, cv=cv, param_grid=grid, inner_cv=inner, scoring="accuracy", n_permutations=4).write(
        X, y, workdir, params=params)
    run(workdir, n_jobs=2, progress=False)
    search = GridSearchCV(pipe, grid, cv=inner, scoring="accuracy")
    oracle = permutation_test_score(search, X, y, cv=cv, n_permutations=4, random_state=0, scoring="accuracy",
                                    params=params)
    assert_same_as_permutation_test_score(load_results(workdir), "accuracy", oracle)


def test_permutation_tasks_are_commands(tmp_path):
    """The permutation tasks run as the pasted commands of workflow.json, in a fresh interpreter each."""
    X, y, pipe = iris()
    exp = Experiment(pipe, cv=StratifiedKFold(2, shuffle=True, random_state=0), scoring="accuracy",
                     n_permutations=3, permutation_chunk_size=2)
    workdir = exp.write(X, y, tmp_path / "by_hand")
    doc = json.loads((workdir / "workflow.json").read_text())
    assert [t["name"] for t in doc["tasks"]] == [
        "refit-o0", "refit-o1", "permute-p0-o0", "permute-p0-o1", "permute-p1-o0", "permute-p1-o1", "gather"]
    for task in doc["tasks"]:
        subprocess.run(task["command"], cwd=workdir, check=True)
    oracle = sklearn_permutations(pipe, X, y, cv=StratifiedKFold(2, shuffle=True, random_state=0), n_permutations=3,
                                  random_state=0, scoring="accuracy")
    assert_same_as_permutation_test_score(load_results(workdir), "accuracy", oracle)
    out = subprocess.run([sys.executable, "-m", "mempamal", "results", str(workdir), "--json"], check=True,
                         capture_output=True, text=True).stdout
    assert json.loads(out)["permutation"]["pvalues"]["accuracy"] == pytest.approx(oracle[2], abs=ATOL)


def test_kill_in_the_middle_of_the_permutations_then_resume(tmp_path):
    X, Y = load_linnerud(return_X_y=True)
    gate, count = tmp_path / "gate", tmp_path / "fits"
    # No grid: each task is one fit per permutation. After 5 fits, every fit waits at the gate.
    exp = Experiment(HoldAfter(limit=5, count=str(count), gate=str(gate)), cv=KFold(2), scoring="r2",
                     n_permutations=6, permutation_chunk_size=1, per_target=True)
    killed = exp.write(X, Y, tmp_path / "killed")
    permutes = [t.outputs[0] for t in load_workflow(killed).tasks if t.stage == "permute"]
    gate.touch()
    kill_run_once_held(killed, gate)
    gate.unlink()
    done = [p for p in permutes if (killed / p).exists()]
    assert len(done) < len(permutes) and not (killed / "results.json").exists()
    before = {p: (killed / p).stat().st_mtime_ns for p in done}
    with pytest.warns(StaleLockWarning, match="took over the lock of a run that is no longer alive"):  # the killed run's lock
        report = run(killed, n_jobs=2, progress=False)
    assert {f"permute-{Path(p).stem}" for p in done} <= set(report.skipped)
    assert {p: (killed / p).stat().st_mtime_ns for p in done} == before  # not recomputed

    # The per-analysis path, as the killed run's (HoldAfter is not declared column-separable): bit for bit.
    reference = Experiment(Ridge(), cv=KFold(2), scoring="r2", n_permutations=6, permutation_chunk_size=1,
                           per_target=True, stack_columns=False).write(X, Y, tmp_path / "reference")
    run(reference, n_jobs=2, progress=False)
    a, b = load_results(killed), load_results(reference)
    np.testing.assert_array_equal(a.permutation_scores["r2"], b.permutation_scores["r2"])
    np.testing.assert_array_equal(a.pvalues_fwer["r2"], b.pvalues_fwer["r2"])


@pytest.mark.parametrize("kwargs, match", [
    (dict(n_permutations=-1), "n_permutations: expected a non-negative int, got -1"),
    (dict(n_permutations=2.5), "n_permutations: expected a non-negative int, got 2.5"),
    (dict(n_permutations=10, permutation_chunk_size=0), "permutation_chunk_size: expected a positive int"),
    (dict(per_target="yes"), "per_target: expected True or False"),
])
def test_bad_parameters_are_refused_at_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Experiment(Ridge(), **kwargs)


def test_per_target_needs_a_2d_y(workdir):
    X, y = load_linnerud(return_X_y=True)
    with pytest.raises(ValueError, match=r"per_target=True: expected y of shape \(n_samples, n_targets\)"):
        Experiment(Ridge(), cv=2, per_target=True, n_permutations=2).write(X, y[:, 0], workdir)


def test_a_permuted_y_that_cannot_be_split_names_the_permutation(workdir):
    # Each half of y holds 3 samples of each class: StratifiedKFold(3) splits each outer training set.
    # A permutation moves samples between the halves, leaving fewer than 3 of a class in one.
    X = np.arange(24, dtype=float).reshape(12, 2)
    y = np.array([0, 1] * 6)
    exp = Experiment(LogisticRegression(), cv=KFold(2), param_grid={"C": [1.0]}, inner_cv=StratifiedKFold(3),
                     n_permutations=20, permutation_random_state=0)
    with pytest.raises(ValueError, match=r"inner_cv=StratifiedKFold.* cannot split the data \(permutation \d+ of y; "
                                         r"permutation_random_state=0;.*Fix: "):
        exp.write(X, y, workdir)
    assert not workdir.exists()  # refused before anything is written


def test_default_granularity_keeps_the_workflow_a_few_tens_of_thousands_of_tasks():
    """1,000 permutations x 20 targets x nested 5 x 5: the task count the issue bounds (no data needed)."""
    chunk = default_chunk_size(1000)
    doc = ExperimentDoc(
        format="mempamal/experiment-1", mempamal_version="0", estimator={}, estimator_repr="", is_classifier=True,
        scoring={"score": "score"}, refit="score", error_score=None, search="grid", candidates=[{}],
        n_candidates=1, grid_chunk_size=1, n_chunks=1, cv="5", inner_cv="5", n_outer=5, n_inner=[5] * 5,
        n_samples=100, folds="folds.npz", per_target=True, n_targets=20, n_permutations=1000,
        permutation_random_state=0, permutation_chunk_size=chunk, n_permutation_chunks=chunk_count(1000, chunk),
        permutations="data/permutations.npy", data={"X": "data/X.npy", "y": "data/y.npy", "groups": None})
    tasks = build_workflow(doc, "python").tasks
    assert chunk == 10
    assert sum(t.stage == "permute" for t in tasks) == 20 * 100 * 5
    assert len(tasks) == 20 * (25 + 5) + 20 * 100 * 5 + 1  # 10,601 tasks, each ten analyses of one fold


@pytest.mark.parametrize("backend, options", [
    ("soma-workflow", {"n_jobs": 2}),  # permute tasks in batches, in Soma-Workflow's light mode
    ("dask", {"n_jobs": 2}),           # a LocalCluster of two worker processes
])
def test_other_back_ends_give_the_same_p_values(backend, options, tmp_path):
    if backend == "dask":
        pytest.importorskip("distributed")
    X, Y = load_linnerud(return_X_y=True)
    # The per-analysis path (permute tasks), then the stacked one (columns tasks) on the same back-end.
    exp = Experiment(Ridge(), cv=KFold(3, shuffle=True, random_state=0), param_grid={"alpha": [0.1, 10.0]},
                     inner_cv=KFold(2), scoring="r2", n_permutations=4, permutation_chunk_size=2, per_target=True,
                     stack_columns=False)
    local, other = exp.write(X, Y, tmp_path / "local"), exp.write(X, Y, tmp_path / backend)
    exp.stack_columns = True
    stacked = exp.write(X, Y, tmp_path / f"{backend}-stacked")
    run(local, n_jobs=2, progress=False)
    if backend == "soma-workflow":
        options = {**options, "isolated_light_mode": tmp_path / "soma"}
    report = run(other, backend=backend, progress=False, **options)
    assert sum(name.startswith("permute-") for name in report.names("done")) == 3 * 2 * 3
    a, b = load_results(local), load_results(other)
    np.testing.assert_array_equal(a.permutation_scores["r2"], b.permutation_scores["r2"])
    np.testing.assert_array_equal(a.pvalues_fwer["r2"], b.pvalues_fwer["r2"])
    np.testing.assert_array_equal(a.test_scores["r2"], b.test_scores["r2"])
    report = run(stacked, backend=backend, progress=False, **options)
    assert sum(name.startswith("columns-") for name in report.names("done")) == 3  # one chunk x 3 outer folds
    c = load_results(stacked)
    for name in ("permutation_scores", "pvalues", "pvalues_fwer", "test_scores"):
        np.testing.assert_allclose(getattr(c, name)["r2"], getattr(a, name)["r2"], rtol=0, atol=1e-9)
