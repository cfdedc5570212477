"""load_results(partial=True): what the finished tasks allow, against the complete results.

Tasks run in-process (run_task, the code path of their commands), a chosen subset at a
time; the complete run's results (themselves checked against scikit-learn elsewhere)
are the oracle: a partial fold equals that fold of the full results, partial
permutation scores equal the first permutations' scores.
"""
import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mempamal import Experiment, load_results
from mempamal.cli import main
from mempamal.experiment.permutations import pvalues
from mempamal.tasks import run_task
from mempamal.workdir.workflow import load_workflow

from conftest import assert_params_equal

GRID = {"logisticregression__C": [0.1, 10.0]}


def write(workdir, n_permutations=0, **kwargs):
    X, y = load_iris(return_X_y=True)
    pipe = make_pipeline(StandardScaler(), LogisticRegression())
    Experiment(pipe, cv=StratifiedKFold(3, shuffle=True, random_state=0), param_grid=GRID,
               inner_cv=StratifiedKFold(2), scoring=["accuracy", "f1_macro"], refit="accuracy",
               n_permutations=n_permutations, **kwargs).write(X, y, workdir)
    return load_workflow(workdir)


def run_some(workdir, workflow, keep):
    for task in workflow.tasks:
        if keep(task):
            run_task(workdir, task.id, log=task.log)


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("full") / "run"
    workflow = write(workdir, n_permutations=6, permutation_chunk_size=2, permutation_random_state=1)
    run_some(workdir, workflow, lambda t: True)
    return load_results(workdir)


def test_folds_done_so_far_equal_the_full_results(tmp_path, full, capsys):
    workdir = tmp_path / "run"
    workflow = write(workdir, n_permutations=6, permutation_chunk_size=2, permutation_random_state=1)
    with pytest.raises(FileNotFoundError, match=r"no results yet: \d+ of \d+ tasks not done.*partial=True"):
        load_results(workdir)
    empty = load_results(workdir, partial=True)
    assert empty.partial and empty.outer_folds == [] and empty.n_permutations == 0
    assert "0 of 3 outer folds done" in empty.summary()

    # Outer folds 0 and 2 (their maps and refits), and the first permutation chunk of each fold.
    run_some(workdir, workflow, lambda t: t.stage in ("map", "refit") and t.outer != 1
             or t.stage == "permute" and t.id.perm == 0)
    res = load_results(workdir, partial=True)
    assert res.partial and res.outer_folds == [0, 2] and res.n_outer == 2
    for m in full.metrics:
        np.testing.assert_array_equal(res.test_scores[m], full.test_scores[m][[0, 2]])
    for k, o in enumerate([0, 2]):
        assert res.best_index[k] == full.best_index[o]
        assert_params_equal(res.best_params[k], full.best_params[o])
        np.testing.assert_array_equal(res.test_predictions[k], full.test_predictions[o])
        np.testing.assert_array_equal(res.test_indices[k], full.test_indices[o])
        assert res.cv_results(outer=o)["mean_test_accuracy"].tolist() == \
            full.cv_results(outer=o)["mean_test_accuracy"].tolist()
    with pytest.raises(ValueError, match=r"outer folds \[0, 2\] \(the folds done so far\)"):
        res.cv_results(outer=1)
    with pytest.raises(ValueError, match="partial results"):
        res.predictions
    # Permutations: chunk 0 is done on every fold, but the observed score needs fold 1: no p-value yet.
    assert res.n_permutations == 2 and res.n_permutations_total == 6
    np.testing.assert_array_equal(res.permutation_scores["accuracy"], full.permutation_scores["accuracy"][:2])
    assert np.isnan(res.pvalues["accuracy"])
    text = res.summary()
    assert "PARTIAL results" in text and "2 of 3 outer folds done (0, 2)" in text and "2 of 6 permutations" in text
    assert res.to_frame().index.tolist() == [0, 2]
    assert res.to_dict()["partial"] is True

    # Every fold, 4 of the 6 permutations: p-values over those 4, as permutation_test_score counts.
    run_some(workdir, workflow, lambda t: t.stage in ("map", "refit") and t.outer == 1
             or t.stage == "permute" and t.id.perm == 1)
    res = load_results(workdir, partial=True)
    assert res.outer_folds == [0, 1, 2] and res.n_permutations == 4
    for m in full.metrics:
        np.testing.assert_array_equal(res.permutation_scores[m], full.permutation_scores[m][:4])
        assert res.observed_score[m] == full.observed_score[m]
        expected = pvalues(np.array([full.observed_score[m]]), full.permutation_scores[m][None, :4])[0]
        assert res.pvalues[m] == expected
    np.testing.assert_array_equal(res.predictions, full.predictions)

    # `mempamal results --partial` prints the same.
    main(["results", str(workdir), "--partial"])
    assert "4 of 6 permutations done" in capsys.readouterr().out

    # Finished: partial=True gives the results themselves.
    run_some(workdir, workflow, lambda t: t.stage in ("permute", "gather") and (t.stage == "gather" or t.id.perm == 2))
    res = load_results(workdir, partial=True)
    assert not res.partial and res.n_permutations == 6
    assert res.pvalues == full.pvalues


def test_targets_apart_use_the_folds_done_for_every_target(tmp_path):
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import KFold

    rng = np.random.RandomState(0)
    X, Y = rng.randn(40, 3), rng.randn(40, 2)
    workdir = tmp_path / "run"
    Experiment(Ridge(), cv=KFold(2), param_grid={"alpha": [0.1, 1.0]}, inner_cv=KFold(2), scoring="r2",
               per_target=True, stack_columns=False).write(X, Y, workdir)
    workflow = load_workflow(workdir)
    # Target 0 both folds; target 1 fold 1 only: fold 1 is the one done for every target.
    run_some(workdir, workflow, lambda t: t.stage in ("map", "refit") and (t.id.target == 0 or t.outer == 1))
    res = load_results(workdir, partial=True)
    assert res.partial and res.outer_folds == [1] and res.test_scores["r2"].shape == (2, 1)


def test_stacked_columns_partial_results_equal_the_full_results(tmp_path):
    """Columns tasks done so far: the outer folds done for every chunk, the permutations whose chunks are
    done on every outer fold; each equal to the complete run's."""
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import KFold

    rng = np.random.RandomState(0)
    X, Y = rng.randn(40, 3), rng.randn(40, 2)
    workdir = tmp_path / "run"
    Experiment(Ridge(), cv=KFold(3), param_grid={"alpha": [0.1, 1.0]}, inner_cv=KFold(2), scoring="r2",
               per_target=True, n_permutations=600, stack_columns=True).write(X, Y, workdir)
    workflow = load_workflow(workdir)
    chunks = sorted({t.id.chunk for t in workflow.tasks if t.stage == "columns"})
    assert len(chunks) >= 2  # 1,202 analyses: more than one chunk of at least 500 columns
    run_some(workdir, workflow, lambda t: t.stage == "columns" and (t.id.chunk == 0 or t.id.outer == 1))
    res = load_results(workdir, partial=True)
    assert res.partial and res.outer_folds == [1]
    # Chunk 0 (target 0's analyses) is done on every fold, target 1's are not: no permutation is done for both.
    assert _chunk_bounds(workdir, 0) == (0, 601) and res.permutation_scores["r2"].shape == (2, 0)
    run_some(workdir, workflow, lambda t: t.stage == "columns" and not (t.id.chunk == 0 or t.id.outer == 1))
    complete = load_results(workdir, partial=True)
    assert complete.partial and complete.outer_folds == [0, 1, 2]
    run_some(workdir, workflow, lambda t: t.stage == "gather")
    done = load_results(workdir)
    np.testing.assert_array_equal(res.test_scores["r2"][:, 0], done.test_scores["r2"][:, 1])
    assert [v.best_params[0] for v in res.targets] == [v.best_params[1] for v in done.targets]
    for name in ("test_scores", "permutation_scores", "pvalues", "pvalues_fwer"):
        np.testing.assert_array_equal(getattr(complete, name)["r2"], getattr(done, name)["r2"])
    np.testing.assert_array_equal(complete.predictions, done.predictions)


def _chunk_bounds(workdir, chunk):
    from mempamal.workdir.paths import Workdir

    members = Workdir.of(workdir).read_experiment().column_chunks[chunk]
    return members.start, members.stop
